//! A model that replays a script.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::message::{ToolCall, Usage};
use crate::model::{
    CompletionRequest, CompletionResponse, CompletionStream, FinishReason, LlmProvider,
    ProviderCapabilities, StreamAccumulator, StreamEvent,
};

type ErrorFn = Arc<dyn Fn() -> Error + Send + Sync>;

#[derive(Clone)]
enum Step {
    Respond(CompletionResponse),
    Events {
        events: Vec<StreamEvent>,
        then_error: Option<ErrorFn>,
    },
    Fail(ErrorFn),
}

/// One scripted model reply.
#[derive(Clone)]
pub struct ScriptedResponse {
    step: Step,
    delay: Option<Duration>,
    usage: Option<Usage>,
}

impl std::fmt::Debug for ScriptedResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.step {
            Step::Respond(r) => f.debug_tuple("Respond").field(r).finish(),
            Step::Events { events, .. } => f.debug_tuple("Events").field(events).finish(),
            Step::Fail(e) => f.debug_tuple("Fail").field(&e().to_string()).finish(),
        }
    }
}

impl ScriptedResponse {
    fn new(step: Step) -> Self {
        Self {
            step,
            delay: None,
            usage: None,
        }
    }

    /// A final text answer.
    pub fn text(text: impl Into<String>) -> Self {
        Self::new(Step::Respond(CompletionResponse::new(
            text,
            Vec::new(),
            Usage::default(),
        )))
    }

    /// One tool call (id `call_1`).
    pub fn tool_call(name: impl Into<String>, arguments: Value) -> Self {
        Self::tool_calls([ToolCall::new("call_1", name, arguments)])
    }

    /// Several tool calls in one response (parallel calls).
    pub fn tool_calls(calls: impl IntoIterator<Item = ToolCall>) -> Self {
        Self::new(Step::Respond(CompletionResponse::new(
            String::new(),
            calls.into_iter().collect(),
            Usage::default(),
        )))
    }

    /// Text and tool calls together.
    pub fn text_and_tool_calls(
        text: impl Into<String>,
        calls: impl IntoIterator<Item = ToolCall>,
    ) -> Self {
        Self::new(Step::Respond(CompletionResponse::new(
            text,
            calls.into_iter().collect(),
            Usage::default(),
        )))
    }

    /// A complete response as given.
    pub fn response(response: CompletionResponse) -> Self {
        Self::new(Step::Respond(response))
    }

    /// Explicit stream events (`complete` assembles them); a stream without a `Finish` event
    /// is truncated and yields an error.
    pub fn events(events: impl IntoIterator<Item = StreamEvent>) -> Self {
        Self::new(Step::Events {
            events: events.into_iter().collect(),
            then_error: None,
        })
    }

    /// Stream events, then an error (a connection cut mid-stream).
    pub fn events_then_error(
        events: impl IntoIterator<Item = StreamEvent>,
        error: impl Fn() -> Error + Send + Sync + 'static,
    ) -> Self {
        Self::new(Step::Events {
            events: events.into_iter().collect(),
            then_error: Some(Arc::new(error)),
        })
    }

    /// The call fails with the error `error()` makes.
    pub fn error(error: impl Fn() -> Error + Send + Sync + 'static) -> Self {
        Self::new(Step::Fail(Arc::new(error)))
    }

    /// Waits before answering (use paused Tokio time in tests).
    pub fn with_delay(mut self, delay: Duration) -> Self {
        self.delay = Some(delay);
        self
    }

    /// Reports this usage instead of the estimate.
    pub fn with_usage(mut self, usage: Usage) -> Self {
        self.usage = Some(usage);
        self
    }
}

struct State {
    script: VecDeque<ScriptedResponse>,
    cycle: Vec<ScriptedResponse>,
    next_cycle: usize,
    requests: Vec<CompletionRequest>,
    calls: usize,
}

/// A model that answers from a queue of [`ScriptedResponse`]s and records every request.
///
/// Usage is estimated from the messages (about 4 bytes a token) unless a response sets it.
/// When the queue is empty, calls fail with [`Error::Internal`] — or, for
/// [`ScriptedModel::repeating`], the script starts over.
#[derive(Clone)]
pub struct ScriptedModel {
    state: Arc<Mutex<State>>,
    name: String,
    record: bool,
}

impl std::fmt::Debug for ScriptedModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScriptedModel")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl ScriptedModel {
    /// A model answering with `script`, in order.
    pub fn new(script: impl IntoIterator<Item = ScriptedResponse>) -> Self {
        Self {
            state: Arc::new(Mutex::new(State {
                script: script.into_iter().collect(),
                cycle: Vec::new(),
                next_cycle: 0,
                requests: Vec::new(),
                calls: 0,
            })),
            name: "scripted".into(),
            record: true,
        }
    }

    /// A model that repeats `script` forever (benchmarks, load tests). Requests are not recorded.
    pub fn repeating(script: impl IntoIterator<Item = ScriptedResponse>) -> Self {
        let m = Self::new([]);
        if let Ok(mut s) = m.state.lock() {
            s.cycle = script.into_iter().collect();
        }
        Self { record: false, ..m }
    }

    /// Sets the provider name (shown in traces and `answered_by`).
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Appends a response to the script.
    pub fn push(&self, response: ScriptedResponse) {
        if let Ok(mut s) = self.state.lock() {
            s.script.push_back(response);
        }
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<CompletionRequest> {
        self.lock().map(|s| s.requests.clone()).unwrap_or_default()
    }

    /// How many calls were made.
    pub fn calls(&self) -> usize {
        self.lock().map(|s| s.calls).unwrap_or_default()
    }

    /// Scripted responses not consumed yet.
    pub fn remaining(&self) -> usize {
        self.lock().map(|s| s.script.len()).unwrap_or_default()
    }

    fn lock(&self) -> Result<MutexGuard<'_, State>> {
        self.state
            .lock()
            .map_err(|_| Error::Internal("scripted model lock poisoned".into()))
    }

    async fn next(&self, request: &CompletionRequest) -> Result<ScriptedResponse> {
        let response = {
            let mut s = self.lock()?;
            s.calls += 1;
            if self.record {
                s.requests.push(request.clone());
            }
            match s.script.pop_front() {
                Some(r) => r,
                None if !s.cycle.is_empty() => {
                    let i = s.next_cycle % s.cycle.len();
                    s.next_cycle += 1;
                    s.cycle[i].clone()
                }
                None => {
                    return Err(Error::Internal(format!(
                        "scripted model: no response left for call {}",
                        s.calls
                    )));
                }
            }
        };
        if let Some(d) = response.delay {
            tokio::time::sleep(d).await;
        }
        Ok(response)
    }
}

fn estimate_usage(request: &CompletionRequest, response: &CompletionResponse) -> Usage {
    let input: usize = request.messages.iter().map(|m| m.estimated_tokens()).sum();
    let output = response.to_message().estimated_tokens();
    Usage {
        input_tokens: input as u64,
        output_tokens: output as u64,
        cached_input_tokens: 0,
        latency: Duration::ZERO,
    }
}

fn split_text(text: &str, pieces: usize) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let size = chars.len().div_ceil(pieces.max(1)).max(1);
    chars.chunks(size).map(|c| c.iter().collect()).collect()
}

#[async_trait]
impl LlmProvider for ScriptedModel {
    fn name(&self) -> &str {
        &self.name
    }

    fn capabilities(&self) -> ProviderCapabilities {
        ProviderCapabilities::new(true, true, true)
    }

    async fn complete(&self, request: &CompletionRequest) -> Result<CompletionResponse> {
        let scripted = self.next(request).await?;
        let mut response = match scripted.step {
            Step::Respond(r) => r,
            Step::Fail(e) => return Err(e()),
            Step::Events { events, then_error } => {
                let mut acc = StreamAccumulator::new();
                for e in &events {
                    acc.push(e)?;
                }
                if let Some(err) = then_error {
                    return Err(err());
                }
                acc.finish()?
            }
        };
        response.usage = scripted
            .usage
            .unwrap_or_else(|| estimate_usage(request, &response));
        if response.model.is_empty() {
            response.model.clone_from(&request.model);
        }
        Ok(response)
    }

    async fn stream(&self, request: &CompletionRequest) -> Result<CompletionStream> {
        let scripted = self.next(request).await?;
        let items: Vec<Result<StreamEvent>> = match scripted.step {
            Step::Fail(e) => return Err(e()),
            Step::Events { events, then_error } => {
                let mut items: Vec<_> = events.into_iter().map(Ok).collect();
                if let Some(err) = then_error {
                    items.push(Err(err()));
                }
                items
            }
            Step::Respond(r) => {
                let usage = scripted
                    .usage
                    .unwrap_or_else(|| estimate_usage(request, &r));
                let mut items = Vec::new();
                for piece in split_text(&r.content, 3) {
                    items.push(Ok(StreamEvent::TextDelta(piece)));
                }
                for (index, call) in r.tool_calls.iter().enumerate() {
                    let args = call.arguments.to_string();
                    for (i, piece) in split_text(&args, 3).into_iter().enumerate() {
                        items.push(Ok(StreamEvent::ToolCallDelta {
                            index,
                            id: (i == 0).then(|| call.id.clone()),
                            name: (i == 0).then(|| call.name.clone()),
                            arguments_delta: piece,
                        }));
                    }
                }
                items.push(Ok(StreamEvent::Usage(usage)));
                items.push(Ok(StreamEvent::Finish(r.finish_reason)));
                items
            }
        };
        Ok(Box::pin(futures::stream::iter(items)))
    }
}

impl ScriptedResponse {
    /// A finish reason other than the default (`Stop`/`ToolCalls`).
    pub fn with_finish_reason(mut self, reason: FinishReason) -> Self {
        if let Step::Respond(r) = &mut self.step {
            r.finish_reason = reason;
        }
        self
    }
}
