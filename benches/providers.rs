//! Run with: `cargo bench --bench providers --features openai`
//!
//! SSE parsing throughput of a long streamed OpenAI response (2,000 chunks: text deltas, then
//! two tool calls whose arguments arrive in pieces, the finish chunk, the usage-only chunk and
//! `[DONE]`), fed in 4 KiB network-sized pieces. Four ways through the same bytes:
//!
//! - `baseline_split_lines`: only splits the raw bytes into lines (a floor no SSE parser beats);
//! - `sse_crate_only`: the `sse-stream` parser alone, yielding raw events;
//! - `agentkit_decode_stream`: our provider's stream path after HTTP (`sse-stream`, JSON
//!   chunk parsing, tool-name mapping, `StreamEvent`s);
//! - `agentkit_decode_and_accumulate`: the same plus the `StreamAccumulator` the agent runs,
//!   ending in a `CompletionResponse` with parsed tool arguments.
#![allow(missing_docs, clippy::unwrap_used)]

use std::convert::Infallible;
use std::hint::black_box;

use agentkit::model::StreamAccumulator;
use agentkit::providers::openai::decode_stream;
use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use futures::StreamExt;
use serde_json::json;

const CHUNKS: usize = 2_000;
const PIECE: usize = 4096;

fn chunk(delta: serde_json::Value, finish: Option<&str>) -> String {
    let c = json!({
        "id": "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT", "object": "chat.completion.chunk",
        "created": 1741569952, "model": "gpt-4o-2024-08-06", "service_tier": "default",
        "system_fingerprint": "fp_eb9dce56a8",
        "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]
    });
    format!("data: {c}\n\n")
}

/// A 2,000-chunk streamed response as OpenAI sends it.
fn body() -> Vec<u8> {
    let mut out = String::new();
    out.push_str(&chunk(
        json!({"role": "assistant", "content": "", "refusal": null}),
        None,
    ));
    let words = [
        "The ",
        "lead ",
        "was ",
        "qualified ",
        "after ",
        "a ",
        "demo, ",
        "and ",
    ];
    let text_chunks = CHUNKS - 2 - 2 * 200 - 3;
    for i in 0..text_chunks {
        out.push_str(&chunk(json!({"content": words[i % words.len()]}), None));
    }
    for call in 0..2 {
        out.push_str(&chunk(
            json!({"tool_calls": [{"index": call, "id": format!("call_{call}"), "type": "function",
                   "function": {"name": "crm__update_lead", "arguments": ""}}]}),
            None,
        ));
        out.push_str(&chunk(
            json!({"tool_calls": [{"index": call, "function": {"arguments": "{\"notes\": \""}}]}),
            None,
        ));
        for _ in 0..198 {
            out.push_str(&chunk(
                json!({"tool_calls": [{"index": call, "function": {"arguments": "follow up "}}]}),
                None,
            ));
        }
        out.push_str(&chunk(
            json!({"tool_calls": [{"index": call, "function": {"arguments": "\", \"stage\": \"won\"}"}}]}),
            None,
        ));
    }
    out.push_str(&chunk(json!({}), Some("tool_calls")));
    let usage = json!({
        "id": "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT", "object": "chat.completion.chunk",
        "created": 1741569952, "model": "gpt-4o-2024-08-06", "choices": [],
        "usage": {"prompt_tokens": 1200, "completion_tokens": 1990, "total_tokens": 3190,
                  "prompt_tokens_details": {"cached_tokens": 1024, "audio_tokens": 0},
                  "completion_tokens_details": {"reasoning_tokens": 0}}
    });
    out.push_str(&format!("data: {usage}\n\n"));
    out.push_str("data: [DONE]\n\n");
    out.into_bytes()
}

fn pieces(body: &Bytes) -> Vec<Bytes> {
    (0..body.len())
        .step_by(PIECE)
        .map(|start| body.slice(start..(start + PIECE).min(body.len())))
        .collect()
}

fn source(
    pieces: Vec<Bytes>,
) -> impl futures::Stream<Item = Result<Bytes, Infallible>> + Send + 'static {
    futures::stream::iter(pieces.into_iter().map(Ok::<_, Infallible>))
}

fn sse(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let body = Bytes::from(body());
    let pieces = pieces(&body);
    let data_lines = body
        .split(|b| *b == b'\n')
        .filter(|l| l.starts_with(b"data:"))
        .count();
    assert_eq!(data_lines, CHUNKS + 1, "2,000 chunks plus [DONE]");

    // Sanity: the decoded response is what was streamed.
    let r = rt.block_on(async {
        let mut acc = StreamAccumulator::new();
        let mut s = decode_stream(source(pieces.clone()));
        while let Some(e) = s.next().await {
            acc.push(&e.unwrap()).unwrap();
        }
        acc.finish().unwrap()
    });
    assert_eq!(r.tool_calls.len(), 2);
    assert_eq!(r.tool_calls[1].arguments["stage"], "won");
    assert_eq!(r.usage.cached_input_tokens, 1024);

    let mut group = c.benchmark_group(format!("openai_sse_{CHUNKS}_chunks"));
    group.throughput(Throughput::BytesDecimal(body.len() as u64));
    group.bench_function("baseline_split_lines", |b| {
        b.iter(|| {
            let mut lines = 0usize;
            for p in &pieces {
                for line in p.split(|b| *b == b'\n') {
                    lines += usize::from(!black_box(line).is_empty());
                }
            }
            black_box(lines)
        })
    });
    group.bench_function("sse_crate_only", |b| {
        b.to_async(&rt).iter(|| async {
            let mut s = sse_stream::SseByteStream::new(source(pieces.clone()));
            let mut n = 0usize;
            while let Some(e) = s.next().await {
                black_box(e.unwrap());
                n += 1;
            }
            black_box(n)
        })
    });
    group.bench_function("agentkit_decode_stream", |b| {
        b.to_async(&rt).iter(|| async {
            let mut s = decode_stream(source(pieces.clone()));
            let mut n = 0usize;
            while let Some(e) = s.next().await {
                black_box(e.unwrap());
                n += 1;
            }
            black_box(n)
        })
    });
    group.bench_function("agentkit_decode_and_accumulate", |b| {
        b.to_async(&rt).iter(|| async {
            let mut acc = StreamAccumulator::new();
            let mut s = decode_stream(source(pieces.clone()));
            while let Some(e) = s.next().await {
                acc.push(&e.unwrap()).unwrap();
            }
            black_box(acc.finish().unwrap())
        })
    });
    group.finish();
}

criterion_group!(benches, sse);
criterion_main!(benches);
