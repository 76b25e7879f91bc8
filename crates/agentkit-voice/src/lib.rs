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
