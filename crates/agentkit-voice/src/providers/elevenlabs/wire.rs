//! ElevenLabs' multi-context WebSocket messages: the JSON the session sends, the server's
//! messages read back (base64 PCM16 audio split anywhere, `isFinal`, errors), and PCM turned
//! into frames of the host's format.

use agentkit_core::{Error, Result};
use base64::Engine as _;
use serde_json::{Value, json};

use crate::audio::{AudioFormat, AudioFrame, remix};
use crate::providers::ws::{self, Ctx};

/// Opens context `id` (`{"text":" ","context_id":..}`), with the voice settings when configured.
pub(super) fn init(id: &str, voice_settings: Option<&Value>) -> Value {
    let mut init = json!({"text": " ", "context_id": id});
    if let Some(settings) = voice_settings {
        init["voice_settings"] = settings.clone();
    }
    init
}

/// Text for context `id`.
pub(super) fn text(id: &str, text: &str) -> Value {
    json!({"text": text, "context_id": id})
}

/// Speak context `id`'s buffered text now.
pub(super) fn flush(id: &str) -> Value {
    json!({"context_id": id, "flush": true})
}

/// Close context `id` (what was flushed is still spoken, then `isFinal`).
pub(super) fn close_context(id: &str) -> Value {
    json!({"context_id": id, "close_context": true})
}

/// The documented `KeepContextAlive` message for context `id`.
pub(super) fn keep_alive(id: &str) -> Value {
    json!({"text": "", "context_id": id})
}

/// End the connection once the flushed audio is sent.
pub(super) fn close_socket() -> Value {
    json!({"close_socket": true})
}

/// A server message, read.
pub(super) struct ServerMessage {
    /// The ElevenLabs context it is about (`contextId`, or `context_id`).
    pub(super) context: Option<String>,
    /// Its audio, base64 (not empty).
    pub(super) audio: Option<String>,
    /// `isFinal` (or `is_final`): the context's audio has all been sent.
    pub(super) is_final: bool,
}

impl ServerMessage {
    /// Reads a text message: one that is not a JSON object is a
    /// [`Error::MalformedResponse`], an error message its typed error ([`api_error`]).
    pub(super) fn parse(ctx: &Ctx, text: &str) -> Result<Self> {
        let value: Value = serde_json::from_str(text).map_err(|e| {
            ctx.malformed(format!(
                "a message that is not JSON ({e}): {}",
                ws::shorten(text, 200)
            ))
        })?;
        if !value.is_object() {
            return Err(ctx.malformed(format!(
                "a message that is not a JSON object: {}",
                ws::shorten(text, 200)
            )));
        }
        if let Some(error) = value.get("error").filter(|e| !e.is_null()) {
            return Err(api_error(ctx, error, &value));
        }
        let context = value
            .get("contextId")
            .or_else(|| value.get("context_id"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        let audio = value
            .get("audio")
            .and_then(Value::as_str)
            .filter(|a| !a.is_empty())
            .map(str::to_owned);
        let is_final = value
            .get("isFinal")
            .or_else(|| value.get("is_final"))
            .and_then(Value::as_bool)
            .unwrap_or(false);
        Ok(Self {
            context,
            audio,
            is_final,
        })
    }
}

/// The bytes of base64 `audio`; anything else is a [`Error::MalformedResponse`].
pub(super) fn decode_audio(ctx: &Ctx, audio: &str) -> Result<Vec<u8>> {
    base64::engine::general_purpose::STANDARD
        .decode(audio)
        .map_err(|e| ctx.malformed(format!("audio that is not base64: {e}")))
}

/// The little-endian PCM16 samples of `bytes`, after the odd byte `carry` left by the previous
/// chunk; an odd byte at the end is left in `carry` for the next one.
pub(super) fn pcm16(carry: &mut Option<u8>, bytes: &[u8]) -> Vec<i16> {
    let mut data = Vec::with_capacity(bytes.len() + 1);
    data.extend(carry.take());
    data.extend_from_slice(bytes);
    if !data.len().is_multiple_of(2) {
        *carry = data.pop();
    }
    data.chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect()
}

/// Mono samples copied into every channel of `format`, as a frame (`None` when empty).
pub(super) fn to_frame(format: AudioFormat, mono: Vec<i16>) -> Result<Option<AudioFrame>> {
    if mono.is_empty() {
        return Ok(None);
    }
    let samples = if format.channels <= 1 {
        mono
    } else {
        remix(&mono, 1, format.channels)
    };
    AudioFrame::new(format, samples).map(Some)
}

/// An error message from the server (`{"error": "...", "message": "...", "code": 1008}`).
pub(super) fn api_error(ctx: &Ctx, error: &Value, value: &Value) -> Error {
    let code = error.as_str().unwrap_or_default().to_ascii_lowercase();
    let message = value
        .get("message")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .unwrap_or_else(|| error.to_string());
    let text = ctx.msg(format!("{message} ({code})"));
    let lower = format!("{code} {}", message.to_ascii_lowercase());
    if lower.contains("api_key") || lower.contains("api key") || lower.contains("unauthori") {
        Error::Unauthenticated(text)
    } else if lower.contains("quota") {
        Error::PermissionDenied(text)
    } else if lower.contains("rate_limit") || lower.contains("too_many") {
        Error::RateLimited {
            message: text,
            retry_after: None,
        }
    } else if lower.contains("timeout") {
        Error::Timeout(text)
    } else {
        Error::Server {
            status: None,
            message: text,
        }
    }
}
