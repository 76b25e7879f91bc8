//! Any sequence of streamed model events: the accumulator accepts it within its limits or
//! returns a typed error; it never panics or allocates without bound.
#![no_main]

use agentkit_core::model::{FinishReason, StreamAccumulator, StreamEvent};
use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
enum Event {
    Text(String),
    Call {
        index: usize,
        id: Option<String>,
        name: Option<String>,
        arguments: String,
    },
    Stop,
    ToolCalls,
}

fuzz_target!(|events: Vec<Event>| {
    let mut acc = StreamAccumulator::new();
    for e in events {
        let event = match e {
            Event::Text(t) => StreamEvent::TextDelta(t),
            Event::Call {
                index,
                id,
                name,
                arguments,
            } => StreamEvent::ToolCallDelta {
                index,
                id,
                name,
                arguments_delta: arguments,
            },
            Event::Stop => StreamEvent::Finish(FinishReason::Stop),
            Event::ToolCalls => StreamEvent::Finish(FinishReason::ToolCalls),
        };
        if acc.push(&event).is_err() {
            return;
        }
    }
    let _ = acc.finish();
});
