//! Properties of the stream decoders, the code that parses what a server (or anything between
//! it and us) sends: `openai::decode_stream`, `anthropic::decode_stream` and
//! `ollama::decode_stream`.
//!
//! - A recorded stream cut at arbitrary byte boundaries (inside a line, inside a UTF-8
//!   character) decodes to the same events as in one piece.
//! - Arbitrary bytes (noise, the wire format's own tokens shuffled, a recorded stream with a few
//!   bytes changed) decode to events and at most one typed error, which ends the stream; never a
//!   panic, and the stream always ends, with no more items than bytes.
//! - Tool-call indexes in the wire format (OpenAI's `index`, Anthropic's content block index)
//!   come out dense, however huge or sparse they were (`2^40`, `u64::MAX`).
#![cfg(any(feature = "openai", feature = "anthropic", feature = "ollama"))]
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::time::Duration;

use agentkit_core::ErrorKind;
use agentkit_core::model::{CompletionStream, FinishReason, StreamAccumulator, StreamEvent};
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use proptest::prelude::*;
use proptest::sample::{Index, select};

type Body = BoxStream<'static, Result<Bytes, std::io::Error>>;
type Decode = fn(Body) -> CompletionStream;
type Item = Result<StreamEvent, (ErrorKind, String)>;

/// `body` cut at `cuts` (offsets taken modulo the length; repeats make empty chunks).
fn split(body: &[u8], cuts: &[usize]) -> Vec<Bytes> {
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (body.len() + 1)).collect();
    cuts.sort_unstable();
    let mut chunks = Vec::with_capacity(cuts.len() + 1);
    let mut start = 0;
    for cut in cuts {
        chunks.push(Bytes::copy_from_slice(&body[start..cut]));
        start = cut;
    }
    chunks.push(Bytes::copy_from_slice(&body[start..]));
    chunks
}

/// Every item `decode` makes of `chunks` (errors as kind and text), checking the stream's
/// shape: it ends within 10 s, with no more items than bytes (+ 2), at most one error and
/// then nothing, and a `Finish` only as the last event.
fn run(decode: Decode, chunks: Vec<Bytes>) -> Vec<Item> {
    let bytes: usize = chunks.iter().map(Bytes::len).sum();
    let limit = bytes + 2;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let items: Vec<Item> = runtime.block_on(async {
        let body = futures::stream::iter(chunks.into_iter().map(Ok)).boxed();
        let items = decode(body)
            .take(limit + 1)
            .map(|r| r.map_err(|e| (e.kind(), e.to_string())))
            .collect::<Vec<_>>();
        tokio::time::timeout(Duration::from_secs(10), items)
            .await
            .expect("the stream ends")
    });
    assert!(
        items.len() <= limit,
        "{} items from {bytes} bytes",
        items.len()
    );
    if let Some(at) = items.iter().position(Result::is_err) {
        assert_eq!(at, items.len() - 1, "an error ends the stream: {items:?}");
    }
    if let Some(at) = items
        .iter()
        .position(|i| matches!(i, Ok(StreamEvent::Finish(_))))
    {
        assert_eq!(at, items.len() - 1, "a finish ends the stream: {items:?}");
    }
    items
}

/// `body` with a few bytes replaced, inserted or removed.
fn mutate(body: &[u8], edits: &[(Index, u8, u8)]) -> Vec<u8> {
    let mut out = body.to_vec();
    for (at, op, byte) in edits {
        if out.is_empty() {
            out.push(*byte);
            continue;
        }
        let i = at.index(out.len());
        match op % 3 {
            0 => out[i] = *byte,
            1 => out.insert(i, *byte),
            _ => {
                out.remove(i);
            }
        }
    }
    out
}

/// Inputs that are not (quite) the wire format: noise, shuffled wire tokens, a recorded
/// stream with a few bytes changed.
fn hostile(valid: &'static [u8], tokens: &'static [&'static [u8]]) -> BoxedStrategy<Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..512),
        proptest::collection::vec(select(tokens), 0..96).prop_map(|t| t.concat()),
        proptest::collection::vec((any::<Index>(), any::<u8>(), any::<u8>()), 1..8)
            .prop_map(move |edits| mutate(valid, &edits)),
    ]
    .boxed()
}

fn cuts() -> impl Strategy<Value = Vec<usize>> {
    proptest::collection::vec(any::<usize>(), 0..24)
}

/// The tool-call indexes of the events, checked dense (`0..n`, each call one index) and
/// accumulated: core's accumulator assembles them into as many calls.
fn dense_tool_indexes(items: &[Item]) -> usize {
    let mut acc = StreamAccumulator::new();
    let mut seen = Vec::new();
    for item in items {
        let event = item.as_ref().unwrap();
        if let StreamEvent::ToolCallDelta { index, .. } = event {
            assert!(
                *index <= seen.len(),
                "index {index} after {} calls: not dense",
                seen.len()
            );
            if *index == seen.len() {
                seen.push(*index);
            }
        }
        acc.push(event).unwrap();
    }
    let response = acc.finish().unwrap();
    assert_eq!(response.tool_calls.len(), seen.len());
    seen.len()
}

/// Wire tokens every SSE decoder sees.
const SSE_TOKENS: &[&[u8]] = &[
    b"data: ",
    b"data:",
    b"event: ",
    b"event: error",
    b"id: 1",
    b"retry: 10",
    b": ping",
    b"\n",
    b"\r\n",
    b"\r",
    b"\n\n",
    b"{",
    b"}",
    b"[",
    b"]",
    b",",
    b":",
    b"\"",
    b"null",
    b"true",
    b"0",
    b"-1",
    b"1e400",
    b"18446744073709551615",
    b"\"x\"",
    b"\"\\u00e9\"",
    "é🦀".as_bytes(),
    b"\xff",
    b"\xf0\x9f",
    b"\0",
    b" ",
];

#[cfg(feature = "openai")]
mod openai {
    use super::*;
    use agentkit_providers::openai::decode_stream;

    fn decode(body: Body) -> CompletionStream {
        decode_stream(body)
    }

    /// Text with multi-byte characters, a comment line, two tool calls (one with its
    /// arguments in fragments), a usage-only chunk and `[DONE]`.
    pub(super) const RECORDED: &str = concat!(
        "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,",
        "\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}\n\n",
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Héllo 🦀, \"}}]}\n\n",
        ": keep-alive\n\n",
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"wörld\"}}]}\r\n\r\n",
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"call_1\",",
        "\"type\":\"function\",\"function\":{\"name\":\"crm__lookup\",\"arguments\":\"\"}}]}}]}\n\n",
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":",
        "{\"arguments\":\"{\\\"lead_id\\\":\"}}]}}]}\n\n",
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":",
        "{\"arguments\":\" 42}\"}}]}}]}\n\n",
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":1,\"id\":\"call_2\",",
        "\"type\":\"function\",\"function\":{\"name\":\"crm__note\",\"arguments\":\"{}\"}}]}}]}\n\n",
        "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\"}]}\n\n",
        "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":7,",
        "\"prompt_tokens_details\":{\"cached_tokens\":4}}}\n\n",
        "data: [DONE]\n\n",
    );

    const TOKENS: &[&[u8]] = &[
        b"[DONE]",
        b"\"choices\":",
        b"\"delta\":",
        b"\"content\":",
        b"\"refusal\":",
        b"\"tool_calls\":",
        b"\"index\":",
        b"\"id\":",
        b"\"function\":",
        b"\"name\":",
        b"\"arguments\":",
        b"\"finish_reason\":",
        b"\"stop\"",
        b"\"usage\":",
        b"\"prompt_tokens\":",
        b"\"error\":",
        b"\"message\":",
    ];

    fn tokens() -> &'static [&'static [u8]] {
        static ALL: std::sync::OnceLock<Vec<&'static [u8]>> = std::sync::OnceLock::new();
        ALL.get_or_init(|| SSE_TOKENS.iter().chain(TOKENS).copied().collect())
    }

    #[test]
    fn the_recorded_stream_decodes_in_one_piece() {
        let items = run(decode, vec![Bytes::from_static(RECORDED.as_bytes())]);
        let text: String = items
            .iter()
            .filter_map(|i| match i {
                Ok(StreamEvent::TextDelta(t)) => Some(t.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(text, "Héllo 🦀, wörld");
        assert_eq!(dense_tool_indexes(&items), 2);
        assert_eq!(
            items.last().unwrap().as_ref().unwrap(),
            &StreamEvent::Finish(FinishReason::ToolCalls)
        );
    }

    /// A tool-call chunk whose `index` is `raw` JSON text.
    fn tool_chunk(raw: &str, id: &str) -> String {
        format!(
            "data: {{\"choices\":[{{\"index\":0,\"delta\":{{\"tool_calls\":[{{\"index\":{raw},\
             \"id\":\"{id}\",\"function\":{{\"name\":\"t\",\"arguments\":\"{{}}\"}}}}]}}}}]}}\n\n"
        )
    }

    #[test]
    fn indexes_that_are_not_unsigned_integers_are_malformed() {
        for raw in ["-1", "1.5", "1e30", "18446744073709551616", "\"3\"", "null"] {
            let body = tool_chunk(raw, "c") + "data: [DONE]\n\n";
            let items = run(decode, vec![Bytes::from(body)]);
            match items.last().unwrap() {
                Err((kind, _)) => assert_eq!(*kind, ErrorKind::MalformedResponse, "{raw}"),
                // `null` is no index: the call's position stands in.
                Ok(_) => assert_eq!(dense_tool_indexes(&items), 1, "{raw}"),
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn splitting_never_changes_the_events(cuts in cuts()) {
            let whole = run(decode, vec![Bytes::from_static(RECORDED.as_bytes())]);
            let pieces = run(decode, split(RECORDED.as_bytes(), &cuts));
            prop_assert_eq!(whole, pieces);
        }

        #[test]
        fn hostile_bytes_give_events_or_one_typed_error(
            body in hostile(RECORDED.as_bytes(), tokens()),
            cuts in cuts(),
        ) {
            run(decode, split(&body, &cuts));
        }

        #[test]
        fn huge_and_sparse_tool_indexes_come_out_dense(
            indexes in proptest::collection::vec(
                prop_oneof![0u64..4, Just(1u64 << 40), Just(u64::MAX), any::<u64>()],
                1..12,
            ),
            cuts in cuts(),
        ) {
            let mut body = String::new();
            for (i, index) in indexes.iter().enumerate() {
                body.push_str(&tool_chunk(&index.to_string(), &format!("call_{i}")));
            }
            body.push_str("data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\"}]}\n\n");
            body.push_str("data: [DONE]\n\n");
            let items = run(decode, split(body.as_bytes(), &cuts));
            let distinct = indexes.iter().collect::<std::collections::HashSet<_>>().len();
            prop_assert_eq!(dense_tool_indexes(&items), distinct);
            // The same wire index always maps to the same call.
            let mut mapped: HashMap<u64, usize> = HashMap::new();
            let deltas = items.iter().filter_map(|i| match i {
                Ok(StreamEvent::ToolCallDelta { index, .. }) => Some(*index),
                _ => None,
            });
            for (wire, index) in indexes.iter().zip(deltas) {
                prop_assert_eq!(*mapped.entry(*wire).or_insert(index), index);
            }
        }
    }
}

#[cfg(feature = "anthropic")]
mod anthropic {
    use super::*;
    use agentkit_providers::anthropic::decode_stream;

    fn decode(body: Body) -> CompletionStream {
        decode_stream(body)
    }

    /// Usage, a text block with multi-byte characters, a ping, a tool block (content block
    /// index 1) with its input in fragments, the stop reason and `message_stop`.
    const RECORDED: &str = concat!(
        "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",",
        "\"usage\":{\"input_tokens\":20,\"cache_read_input_tokens\":5,\"output_tokens\":1}}}\n\n",
        "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,",
        "\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
        "event: ping\ndata: {\"type\":\"ping\"}\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,",
        "\"delta\":{\"type\":\"text_delta\",\"text\":\"Héllo 🦀 wörld\"}}\n\n",
        "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
        "event: content_block_start\r\ndata: {\"type\":\"content_block_start\",\"index\":1,",
        "\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_1\",\"name\":\"crm__lookup\",",
        "\"input\":{}}}\r\n\r\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,",
        "\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"lead_id\\\":\"}}\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,",
        "\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\" 42}\"}}\n\n",
        "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":1}\n\n",
        "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":",
        "\"tool_use\"},\"usage\":{\"output_tokens\":15}}\n\n",
        "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
    );

    const TOKENS: &[&[u8]] = &[
        b"\"type\":",
        b"\"message_start\"",
        b"\"content_block_start\"",
        b"\"content_block_delta\"",
        b"\"message_delta\"",
        b"\"message_stop\"",
        b"\"error\"",
        b"\"index\":",
        b"\"content_block\":",
        b"\"tool_use\"",
        b"\"text\"",
        b"\"delta\":",
        b"\"text_delta\"",
        b"\"input_json_delta\"",
        b"\"partial_json\":",
        b"\"stop_reason\":",
        b"\"usage\":",
        b"\"input\":",
    ];

    fn tokens() -> &'static [&'static [u8]] {
        static ALL: std::sync::OnceLock<Vec<&'static [u8]>> = std::sync::OnceLock::new();
        ALL.get_or_init(|| SSE_TOKENS.iter().chain(TOKENS).copied().collect())
    }

    #[test]
    fn the_recorded_stream_decodes_in_one_piece() {
        let items = run(decode, vec![Bytes::from_static(RECORDED.as_bytes())]);
        assert!(items.contains(&Ok(StreamEvent::TextDelta("Héllo 🦀 wörld".into()))));
        assert_eq!(dense_tool_indexes(&items), 1);
        assert_eq!(
            items.last().unwrap().as_ref().unwrap(),
            &StreamEvent::Finish(FinishReason::ToolCalls)
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn splitting_never_changes_the_events(cuts in cuts()) {
            let whole = run(decode, vec![Bytes::from_static(RECORDED.as_bytes())]);
            let pieces = run(decode, split(RECORDED.as_bytes(), &cuts));
            prop_assert_eq!(whole, pieces);
        }

        #[test]
        fn hostile_bytes_give_events_or_one_typed_error(
            body in hostile(RECORDED.as_bytes(), tokens()),
            cuts in cuts(),
        ) {
            run(decode, split(&body, &cuts));
        }

        #[test]
        fn huge_and_sparse_block_indexes_come_out_dense(
            blocks in proptest::collection::vec(
                prop_oneof![0u64..4, Just(1u64 << 40), Just(u64::MAX), any::<u64>()],
                1..8,
            ),
        ) {
            let mut body = String::new();
            for (i, block) in blocks.iter().enumerate() {
                body.push_str(&format!(
                    "event: content_block_start\ndata: {{\"type\":\"content_block_start\",\
                     \"index\":{block},\"content_block\":{{\"type\":\"tool_use\",\
                     \"id\":\"toolu_{i}\",\"name\":\"t\",\"input\":{{}}}}}}\n\n"
                ));
            }
            body.push_str("event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\"}}\n\n");
            body.push_str("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n");
            let items = run(decode, vec![Bytes::from(body)]);
            let distinct = blocks.iter().collect::<std::collections::HashSet<_>>().len();
            prop_assert_eq!(dense_tool_indexes(&items), distinct);
        }
    }
}

#[cfg(feature = "ollama")]
mod ollama {
    use super::*;
    use agentkit_providers::ollama::decode_stream;

    fn decode(body: Body) -> CompletionStream {
        decode_stream(body)
    }

    /// Text over two lines with multi-byte characters, a blank line, two tool calls with ids
    /// (ids are invented when missing, and would differ between runs) and the final counts.
    const RECORDED: &str = concat!(
        "{\"model\":\"qwen3\",\"message\":{\"role\":\"assistant\",\"content\":\"Hé\"},\"done\":false}\n",
        "{\"model\":\"qwen3\",\"message\":{\"role\":\"assistant\",\"content\":\"llo 🦀\"},\"done\":false}\r\n",
        "\n",
        "{\"model\":\"qwen3\",\"message\":{\"role\":\"assistant\",\"content\":\"\",\"tool_calls\":[",
        "{\"id\":\"call_a\",\"function\":{\"name\":\"crm.lookup\",\"arguments\":{\"lead_id\":42}}},",
        "{\"id\":\"call_b\",\"function\":{\"name\":\"crm.note\",\"arguments\":{}}}]},\"done\":false}\n",
        "{\"model\":\"qwen3\",\"message\":{\"role\":\"assistant\",\"content\":\"\"},\"done\":true,",
        "\"done_reason\":\"stop\",\"prompt_eval_count\":30,\"eval_count\":9}\n",
    );

    const TOKENS: &[&[u8]] = &[
        b"\n",
        b"\r\n",
        b"{",
        b"}",
        b"[",
        b"]",
        b",",
        b":",
        b"\"",
        b"\"message\":",
        b"\"role\":\"assistant\"",
        b"\"content\":",
        b"\"tool_calls\":",
        b"\"function\":",
        b"\"name\":",
        b"\"arguments\":",
        b"\"id\":",
        b"\"done\":",
        b"true",
        b"false",
        b"\"done_reason\":",
        b"\"error\":",
        b"\"eval_count\":",
        b"18446744073709551615",
        b"-1",
        b"null",
        b"\"x\"",
        b"\xff",
        b"\xf0\x9f",
        "é🦀".as_bytes(),
    ];

    #[test]
    fn the_recorded_stream_decodes_in_one_piece() {
        let items = run(decode, vec![Bytes::from_static(RECORDED.as_bytes())]);
        let text: String = items
            .iter()
            .filter_map(|i| match i {
                Ok(StreamEvent::TextDelta(t)) => Some(t.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(text, "Héllo 🦀");
        assert_eq!(dense_tool_indexes(&items), 2);
        assert_eq!(
            items.last().unwrap().as_ref().unwrap(),
            &StreamEvent::Finish(FinishReason::ToolCalls)
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn splitting_never_changes_the_events(cuts in cuts()) {
            let whole = run(decode, vec![Bytes::from_static(RECORDED.as_bytes())]);
            let pieces = run(decode, split(RECORDED.as_bytes(), &cuts));
            prop_assert_eq!(whole, pieces);
        }

        #[test]
        fn hostile_bytes_give_events_or_one_typed_error(
            body in hostile(RECORDED.as_bytes(), TOKENS),
            cuts in cuts(),
        ) {
            let items = run(decode, split(&body, &cuts));
            // Ollama's tool calls are numbered by the decoder itself: always dense.
            let ok: Vec<Item> = items.into_iter().filter(Result::is_ok).collect();
            let mut next = 0;
            for item in &ok {
                if let Ok(StreamEvent::ToolCallDelta { index, .. }) = item {
                    prop_assert_eq!(*index, next);
                    next += 1;
                }
            }
        }
    }
}
