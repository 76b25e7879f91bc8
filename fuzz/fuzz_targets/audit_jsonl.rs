//! Arbitrary bytes as an audit export: `verify_jsonl` reports or returns a typed error; never a
//! panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = agentkit_policy::audit::verify_jsonl(data);
});
