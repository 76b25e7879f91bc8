//! Arbitrary bytes as an OpenAI Chat Completions SSE body, cut at arbitrary chunk boundaries:
//! the decoder yields events and at most one typed error, then ends; never a panic.
#![no_main]

use agentkit_core::model::StreamAccumulator;
use futures::StreamExt;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (Vec<u8>, Vec<u8>)| {
    let (body, cuts) = input;
    let mut chunks = Vec::new();
    let mut rest = body.as_slice();
    for c in cuts {
        if rest.is_empty() {
            break;
        }
        let at = usize::from(c) % (rest.len() + 1);
        let (head, tail) = rest.split_at(at);
        chunks.push(bytes::Bytes::copy_from_slice(head));
        rest = tail;
    }
    chunks.push(bytes::Bytes::copy_from_slice(rest));
    let source = futures::stream::iter(chunks.into_iter().map(Ok::<_, std::io::Error>));
    let mut stream = agentkit_providers::openai::decode_stream(source);
    futures::executor::block_on(async {
        let mut acc = StreamAccumulator::new();
        let mut errors = 0;
        while let Some(item) = stream.next().await {
            match item {
                Ok(event) => {
                    assert_eq!(errors, 0, "no event after the error");
                    if acc.push(&event).is_err() {
                        return;
                    }
                }
                Err(_) => errors += 1,
            }
        }
        assert!(errors <= 1, "at most one error ends a stream");
        let _ = acc.finish();
    });
});
