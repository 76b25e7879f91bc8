//! # agentkit-voice
//!
//! Voice for agentkit agents: speech-to-text → agent → text-to-speech, streaming, with
//! barge-in, endpointing and per-turn latency metrics; tools, policy and approvals work during
//! a call exactly as in text.
//!
//! - [`audio`]: PCM16 frames and clips, WAV files, resampling; [`mulaw`]: the telephony codec.
//! - [`stt`] and [`tts`]: the [`SpeechToText`] and [`TextToSpeech`] contracts, batch and
//!   streaming (providers implement them; batch-only ones get streaming from
//!   [`stt::buffered_stream`] and [`tts::buffered_stream`]).
//! - [`vad`]: an energy VAD with a four-state machine; [`endpoint`]: turn detection with
//!   minimum and maximum endpointing delays; [`sentences`]: sentence chunking of streamed text.
//! - [`session`]: the [`VoiceSession`] pipeline around an agentkit `Agent`.
//! - [`transport`]: Twilio Media Streams (µ-law 8 kHz) and a WebSocket protocol, over any
//!   stream and sink of messages (axum, tungstenite, a test).
//! - [`providers`]: OpenAI audio, Deepgram, ElevenLabs and espeak-ng, each behind its feature.
//!
//! ## Example
//!
//! A call with the scripted speech providers of `testkit` (swap in Deepgram and ElevenLabs,
//! or OpenAI, for a real one): the caller's audio goes in, the session answers with the agent
//! and reports each turn's latency.
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use agentkit_core::agent::Agent;
//! use agentkit_core::store::InMemoryStore;
//! use agentkit_core::testkit::{ScriptedModel, ScriptedResponse};
//! use agentkit_voice::testkit::{ScriptedStt, ScriptedTts, silence, speech};
//! use agentkit_voice::{AudioFormat, VoiceEvent, VoiceSession};
//!
//! # tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap().block_on(async {
//! let agent = Agent::builder()
//!     .id("phone")
//!     .model(Arc::new(ScriptedModel::new([ScriptedResponse::text("It shipped on Monday.")])), "m")
//!     .store(Arc::new(InMemoryStore::new()))
//!     .build()?;
//! let stt = ScriptedStt::new(["Where is my order?"]);
//! let tts = ScriptedTts::default();
//! let session = VoiceSession::new(agent, Arc::new(stt), Arc::new(tts), "acme", "call-1")?;
//! let (input, mut events) = session.start().await?;
//!
//! // The caller speaks for a second, then is silent (a transport would push frames as they
//! // arrive; here they are paced at 20 ms).
//! let caller = tokio::spawn(async move {
//!     let frames = speech(AudioFormat::SPEECH, Duration::from_secs(1))
//!         .into_iter()
//!         .chain(silence(AudioFormat::SPEECH, Duration::from_secs(1)));
//!     for frame in frames {
//!         input.push_audio(frame).await?;
//!         tokio::time::sleep(Duration::from_millis(20)).await;
//!     }
//!     input.close().await
//! });
//!
//! let mut played = Duration::ZERO;
//! while let Some(event) = events.recv().await {
//!     match event {
//!         VoiceEvent::Audio(frame) => played += frame.duration(), // send it to the caller
//!         VoiceEvent::TurnCompleted(turn) => {
//!             assert_eq!(turn.reply, "It shipped on Monday.");
//!             println!("{}", turn.latency); // stt, endpointing, model, sentence, tts, end to end
//!         }
//!         VoiceEvent::Ended(result) => {
//!             result?;
//!             break;
//!         }
//!         _ => {}
//!     }
//! }
//! caller.await.expect("caller")?;
//! assert!(played > Duration::ZERO);
//! # Ok::<(), agentkit_core::Error>(())
//! # }).unwrap();
//! ```

pub mod audio;
pub mod endpoint;
pub mod mulaw;
pub mod providers;
pub mod sentences;
pub mod session;
pub mod stt;
pub mod transport;
pub mod tts;
pub mod vad;

#[cfg(feature = "testkit")]
pub mod testkit;

pub use audio::{AudioClip, AudioFormat, AudioFrame, FRAME};
pub use endpoint::{EndpointingConfig, TurnDetector};
pub use session::{
    InterruptionConfig, TurnLatency, TurnOutcome, TurnReport, VoiceConfig, VoiceEvent, VoiceInput,
    VoiceSession,
};
pub use stt::{SpeechToText, SttEvent, SttOptions, SttStream, Transcript};
pub use tts::{TextToSpeech, TtsEvent, TtsOptions, TtsStream};
pub use vad::{EnergyVad, VadConfig, VadEvent, VadState};
