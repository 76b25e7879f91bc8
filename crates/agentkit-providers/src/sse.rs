//! Server-sent events (OpenAI and Anthropic streams), parsed by `sse-stream`. Compiled with the
//! features `openai` or `anthropic`.

use std::sync::Arc;

use agentkit_core::error::Result;
use bytes::Buf;
use futures::stream::BoxStream;
use futures::{Stream, StreamExt};
pub use sse_stream::Sse;
use sse_stream::SseByteStream;

use crate::http::ErrorContext;

/// The events of an SSE body (`reqwest::Response::bytes_stream()`, or any stream of byte
/// buffers). A body error is mapped like a transport error ([`ErrorContext::body_error`]); a
/// block that is not valid SSE (invalid UTF-8) is a malformed response. Feed the result to
/// [`drive`](crate::http::drive) with a [`Decoder`](crate::http::Decoder) of [`Sse`] events.
pub fn events<S, B, E>(body: S, ctx: Arc<ErrorContext>) -> BoxStream<'static, Result<Sse>>
where
    S: Stream<Item = std::result::Result<B, E>> + Send + 'static,
    B: Buf + Send + 'static,
    E: std::error::Error + Send + Sync + 'static,
{
    SseByteStream::new(body)
        .map(move |r| {
            r.map_err(|e| match e {
                sse_stream::Error::Body(b) => ctx.body_error(b),
                other => ctx.malformed(format!("invalid server-sent event: {other}")),
            })
        })
        .boxed()
}
