//! The stream driver: [`drive`] runs a [`Decoder`] over a provider's stream items.

use std::collections::VecDeque;

use agentkit_core::error::{Error, Result};
use agentkit_core::model::{CompletionStream, StreamEvent};
use futures::{Stream, StreamExt};

/// Whether [`drive`] keeps reading a stream, as a [`Decoder`] says after each item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Read the next item.
    Continue,
    /// The provider said the response is complete; the rest of the body is not read.
    Done,
}

/// Turns one provider's stream items (SSE events, NDJSON lines, ...) into [`StreamEvent`]s;
/// [`drive`] runs it.
pub trait Decoder<T>: Send + 'static {
    /// Handles one item, pushing events.
    fn item(&mut self, item: T, out: &mut VecDeque<StreamEvent>) -> Result<Flow>;
    /// The body ended without [`Flow::Done`]: push the last events or report truncation.
    fn end(&mut self, out: &mut VecDeque<StreamEvent>) -> Result<()>;
}

struct Drive<S, D> {
    source: S,
    decoder: D,
    pending: VecDeque<StreamEvent>,
    error: Option<Error>,
    finished: bool,
}

/// Runs `decoder` over `source`: events in order, then at most one error, then the end.
///
/// An error from `source` or the decoder ends the stream after the events already decoded;
/// after [`Flow::Done`] the rest of `source` is not read.
///
/// ```
/// use std::collections::VecDeque;
/// use agentkit_core::Result;
/// use agentkit_core::model::{FinishReason, StreamEvent};
/// use agentkit_providers::http::{Decoder, ErrorContext, Flow, drive};
/// use futures::StreamExt;
///
/// /// Lines of text; an empty line ends the response.
/// struct Lines(ErrorContext);
///
/// impl Decoder<String> for Lines {
///     fn item(&mut self, line: String, out: &mut VecDeque<StreamEvent>) -> Result<Flow> {
///         if line.is_empty() {
///             out.push_back(StreamEvent::Finish(FinishReason::Stop));
///             return Ok(Flow::Done);
///         }
///         out.push_back(StreamEvent::TextDelta(line));
///         Ok(Flow::Continue)
///     }
///     fn end(&mut self, _out: &mut VecDeque<StreamEvent>) -> Result<()> {
///         Err(self.0.malformed("the stream ended without an empty line"))
///     }
/// }
///
/// # futures::executor::block_on(async {
/// let source = futures::stream::iter(["Hel", "lo", ""].map(|s| Ok(s.to_owned())));
/// let events: Vec<_> = drive(source, Lines(ErrorContext::detached("lines"))).collect().await;
/// assert_eq!(events.len(), 3);
/// assert!(matches!(events[2], Ok(StreamEvent::Finish(FinishReason::Stop))));
///
/// let cut = futures::stream::iter(["Hel"].map(|s| Ok(s.to_owned())));
/// let events: Vec<_> = drive(cut, Lines(ErrorContext::detached("lines"))).collect().await;
/// assert!(events[1].is_err(), "a truncated stream ends with its error");
/// # });
/// ```
pub fn drive<T, S, D>(source: S, decoder: D) -> CompletionStream
where
    T: Send + 'static,
    S: Stream<Item = Result<T>> + Send + Unpin + 'static,
    D: Decoder<T>,
{
    let state = Drive {
        source,
        decoder,
        pending: VecDeque::new(),
        error: None,
        finished: false,
    };
    Box::pin(futures::stream::unfold(state, |mut st| async move {
        loop {
            if let Some(event) = st.pending.pop_front() {
                return Some((Ok(event), st));
            }
            if let Some(e) = st.error.take() {
                st.finished = true;
                return Some((Err(e), st));
            }
            if st.finished {
                return None;
            }
            let step = match st.source.next().await {
                Some(Ok(item)) => st.decoder.item(item, &mut st.pending),
                Some(Err(e)) => Err(e),
                None => {
                    st.finished = true;
                    st.decoder.end(&mut st.pending).map(|()| Flow::Done)
                }
            };
            match step {
                Ok(Flow::Continue) => {}
                Ok(Flow::Done) => st.finished = true,
                Err(e) => {
                    st.finished = true;
                    st.error = Some(e);
                }
            }
        }
    }))
}
