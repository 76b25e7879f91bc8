//! Arbitrary bytes as a streamed response body of each provider (OpenAI and Anthropic SSE,
//! Ollama NDJSON), cut at arbitrary chunk boundaries: each decoder yields events and at most
//! one typed error, then ends; never a panic.
#![no_main]

use agentkit_core::model::{CompletionStream, StreamAccumulator};
use bytes::Bytes;
use futures::StreamExt;
use libfuzzer_sys::fuzz_target;

type Chunks = futures::stream::Iter<std::vec::IntoIter<Result<Bytes, std::io::Error>>>;

fn chunks(body: &[u8], cuts: &[u8]) -> Chunks {
    let mut out = Vec::new();
    let mut rest = body;
    for c in cuts {
        if rest.is_empty() {
            break;
        }
        let at = usize::from(*c) % (rest.len() + 1);
        let (head, tail) = rest.split_at(at);
        out.push(Ok(Bytes::copy_from_slice(head)));
        rest = tail;
    }
    out.push(Ok(Bytes::copy_from_slice(rest)));
    futures::stream::iter(out)
}

fn drain(mut stream: CompletionStream) {
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
}

fuzz_target!(|input: (Vec<u8>, Vec<u8>)| {
    let (body, cuts) = input;
    drain(agentkit_providers::openai::decode_stream(chunks(&body, &cuts)));
    drain(agentkit_providers::anthropic::decode_stream(chunks(&body, &cuts)));
    drain(agentkit_providers::ollama::decode_stream(chunks(&body, &cuts)));
});
