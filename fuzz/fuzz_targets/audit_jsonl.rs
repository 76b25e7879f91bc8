//! Arbitrary bytes as an audit export, plain or signed: `verify_jsonl` and
//! `verify_jsonl_signed` report or return a typed error; never a panic.
#![no_main]

use agentkit_policy::audit::{CheckpointKey, verify_jsonl, verify_jsonl_signed};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = verify_jsonl(data);
    let verifier = CheckpointKey::from_secret_bytes("fuzz", &[1u8; 32]).verifier();
    let _ = verify_jsonl_signed(data, &verifier);
});
