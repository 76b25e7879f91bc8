//! Speech providers, each behind its feature and tested offline against a local server that
//! speaks the vendor's documented wire format.
//!
//! | feature | provider |
//! |---|---|
//! | `openai` | `openai`: OpenAI audio, batch transcription and speech (streaming through the buffered adapters) |
//! | `deepgram` | `deepgram`: Deepgram live transcription over a WebSocket |
//! | `elevenlabs` | `elevenlabs`: ElevenLabs multi-context streaming speech over a WebSocket |
//! | `espeak` | `espeak`: espeak-ng, offline speech from a local program |
//! | `whisper` | `whisper`: OpenAI Whisper tiny.en, offline transcription on the CPU from a local model directory |

#[cfg(feature = "deepgram")]
pub mod deepgram;
#[cfg(feature = "elevenlabs")]
pub mod elevenlabs;
#[cfg(feature = "espeak")]
pub mod espeak;
#[cfg(feature = "openai")]
pub mod openai;
#[cfg(feature = "whisper")]
pub mod whisper;
#[cfg(any(feature = "deepgram", feature = "elevenlabs"))]
mod ws;
