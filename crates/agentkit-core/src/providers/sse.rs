//! Server-sent events (OpenAI and Anthropic streams), parsed by `sse-stream`.

use std::sync::Arc;

use bytes::Buf;
use futures::stream::BoxStream;
use futures::{Stream, StreamExt};
pub(crate) use sse_stream::Sse;
use sse_stream::SseByteStream;

use super::http::Ctx;
use crate::error::Result;

/// The events of an SSE body. A body error is mapped like a transport error; a block that is
/// not valid SSE (invalid UTF-8) is a malformed response.
pub(crate) fn events<S, B, E>(body: S, ctx: Arc<Ctx>) -> BoxStream<'static, Result<Sse>>
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
