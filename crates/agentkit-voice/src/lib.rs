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

pub mod audio;
pub mod endpoint;
pub mod mulaw;
pub mod providers;
pub mod sentences;
pub mod stt;
pub mod tts;
pub mod vad;

pub use audio::{AudioClip, AudioFormat, AudioFrame, FRAME};
pub use endpoint::{EndpointingConfig, TurnDetector};
pub use stt::{SpeechToText, SttEvent, SttOptions, SttStream, Transcript};
pub use tts::{TextToSpeech, TtsEvent, TtsOptions, TtsStream};
pub use vad::{EnergyVad, VadConfig, VadEvent, VadState};
