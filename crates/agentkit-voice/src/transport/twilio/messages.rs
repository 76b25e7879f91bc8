//! Twilio Media Streams messages, as Twilio documents them: what Twilio sends (`connected`,
//! `start`, `media`, `mark`, `dtmf`, `stop`) and what the bridge sends back (`media`, `mark`,
//! `clear`).

use std::collections::BTreeMap;

use agentkit_core::{Error, Result};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Deserializer, Serialize};

use crate::audio::AudioFormat;

/// The encoding Twilio media streams carry.
pub const MULAW_ENCODING: &str = "audio/x-mulaw";

/// A message from Twilio. Unknown event types parse as [`TwilioInbound::Other`] (skipped).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "lowercase")]
#[non_exhaustive]
pub enum TwilioInbound {
    /// The WebSocket is connected (the first message).
    Connected(Connected),
    /// The stream started: its metadata (sent once, after `connected`).
    Start(Start),
    /// The caller's audio.
    Media(Media),
    /// Audio the host sent, followed by a `mark`, has played (or was cleared).
    Mark(Mark),
    /// The caller pressed a key.
    Dtmf(Dtmf),
    /// The stream stopped (the call ended, or the stream was stopped).
    Stop(Stop),
    /// An event type this version does not know.
    #[serde(other)]
    Other,
}

impl TwilioInbound {
    /// Parses a text message; one that is not a Twilio message is an
    /// [`Error::MalformedResponse`].
    pub fn parse(text: &str) -> Result<Self> {
        serde_json::from_str(text).map_err(|e| {
            Error::MalformedResponse(format!("not a Twilio media stream message: {e}"))
        })
    }

    /// The event name (`media`, `start`, …).
    pub fn event(&self) -> &'static str {
        match self {
            Self::Connected(_) => "connected",
            Self::Start(_) => "start",
            Self::Media(_) => "media",
            Self::Mark(_) => "mark",
            Self::Dtmf(_) => "dtmf",
            Self::Stop(_) => "stop",
            Self::Other => "other",
        }
    }
}

/// The `connected` message.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Connected {
    /// The protocol (`Call`).
    #[serde(default)]
    pub protocol: String,
    /// The protocol's version.
    #[serde(default)]
    pub version: String,
}

/// The `start` message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Start {
    /// Message order (from 1).
    #[serde(
        default,
        deserialize_with = "lenient_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub sequence_number: Option<String>,
    /// The stream (also in `start.streamSid`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_sid: Option<String>,
    /// The stream's metadata.
    pub start: StartInfo,
}

impl Start {
    /// The stream's id.
    pub fn stream_sid(&self) -> &str {
        if self.start.stream_sid.is_empty() {
            self.stream_sid.as_deref().unwrap_or_default()
        } else {
            &self.start.stream_sid
        }
    }
}

/// What `start` says about the stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct StartInfo {
    /// The stream (`MZ…`).
    #[serde(default)]
    pub stream_sid: String,
    /// The account (`AC…`).
    #[serde(default)]
    pub account_sid: String,
    /// The call (`CA…`).
    #[serde(default)]
    pub call_sid: String,
    /// The tracks that follow (`inbound`, `outbound`).
    #[serde(default)]
    pub tracks: Vec<String>,
    /// The `<Parameter>`s of the `<Stream>` TwiML.
    #[serde(default)]
    pub custom_parameters: BTreeMap<String, String>,
    /// The format of the `media` payloads.
    #[serde(default)]
    pub media_format: MediaFormat,
}

/// The format of `media` payloads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct MediaFormat {
    /// Always [`MULAW_ENCODING`].
    pub encoding: String,
    /// Always 8000.
    pub sample_rate: u32,
    /// Always 1.
    pub channels: u16,
}

impl Default for MediaFormat {
    /// µ-law, 8000 Hz, mono.
    fn default() -> Self {
        Self {
            encoding: MULAW_ENCODING.into(),
            sample_rate: 8_000,
            channels: 1,
        }
    }
}

impl MediaFormat {
    /// The PCM format of the decoded payloads; anything but µ-law at 8 kHz mono is an
    /// [`Error::InvalidInput`].
    pub fn audio_format(&self) -> Result<AudioFormat> {
        let format = AudioFormat {
            sample_rate: self.sample_rate,
            channels: self.channels,
        };
        if !self.encoding.eq_ignore_ascii_case(MULAW_ENCODING) || format != AudioFormat::TELEPHONY {
            return Err(Error::InvalidInput(format!(
                "Twilio media format {} at {format} is not supported (expected {MULAW_ENCODING} at {})",
                self.encoding,
                AudioFormat::TELEPHONY
            )));
        }
        Ok(format)
    }
}

/// A `media` message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Media {
    /// Message order.
    #[serde(
        default,
        deserialize_with = "lenient_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub sequence_number: Option<String>,
    /// The stream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_sid: Option<String>,
    /// The audio.
    pub media: MediaChunk,
}

/// The audio of a `media` message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct MediaChunk {
    /// `inbound` (the caller) or `outbound`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub track: Option<String>,
    /// The chunk's number (from 1).
    #[serde(
        default,
        deserialize_with = "lenient_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub chunk: Option<String>,
    /// Milliseconds from the start of the stream.
    #[serde(
        default,
        deserialize_with = "lenient_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub timestamp: Option<String>,
    /// Base64 µ-law.
    pub payload: String,
}

impl MediaChunk {
    /// The µ-law bytes; a payload that is not base64 is an [`Error::MalformedResponse`].
    pub fn decode_payload(&self) -> Result<Vec<u8>> {
        BASE64.decode(self.payload.as_bytes()).map_err(|e| {
            Error::MalformedResponse(format!("Twilio media payload is not base64: {e}"))
        })
    }

    /// Whether the audio is the caller's (`inbound`, or no track given).
    pub fn is_inbound(&self) -> bool {
        self.track
            .as_deref()
            .is_none_or(|t| t == "inbound" || t == "inbound_track")
    }
}

/// A `mark` message (from Twilio: the marked audio has played; to Twilio: see
/// [`TwilioOutbound::mark`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Mark {
    /// Message order.
    #[serde(
        default,
        deserialize_with = "lenient_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub sequence_number: Option<String>,
    /// The stream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_sid: Option<String>,
    /// The mark.
    pub mark: MarkName,
}

/// A mark's name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct MarkName {
    /// The name the host gave.
    pub name: String,
}

/// A `dtmf` message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Dtmf {
    /// Message order.
    #[serde(
        default,
        deserialize_with = "lenient_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub sequence_number: Option<String>,
    /// The stream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_sid: Option<String>,
    /// The key.
    pub dtmf: DtmfDigit,
}

/// A key press.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct DtmfDigit {
    /// The track (`inbound_track`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub track: Option<String>,
    /// The key (`0`–`9`, `*`, `#`).
    pub digit: String,
}

/// A `stop` message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Stop {
    /// Message order.
    #[serde(
        default,
        deserialize_with = "lenient_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub sequence_number: Option<String>,
    /// The stream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_sid: Option<String>,
    /// The call.
    #[serde(default)]
    pub stop: StopInfo,
}

/// What `stop` says.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct StopInfo {
    /// The account.
    #[serde(default)]
    pub account_sid: String,
    /// The call.
    #[serde(default)]
    pub call_sid: String,
}

/// Twilio sends its counters as strings; numbers are accepted too.
fn lenient_string<'de, D: Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Value {
        Text(String),
        Number(serde_json::Number),
    }
    Ok(Option::<Value>::deserialize(d)?.map(|v| match v {
        Value::Text(s) => s,
        Value::Number(n) => n.to_string(),
    }))
}

/// A message to Twilio (bidirectional streams only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    tag = "event",
    rename_all = "lowercase",
    rename_all_fields = "camelCase"
)]
#[non_exhaustive]
pub enum TwilioOutbound {
    /// Audio to play: `{"event":"media","streamSid":…,"media":{"payload":…}}`.
    Media {
        /// The stream.
        stream_sid: String,
        /// The audio.
        media: OutboundMedia,
    },
    /// Asks Twilio to say when the audio sent so far has played:
    /// `{"event":"mark","streamSid":…,"mark":{"name":…}}`.
    Mark {
        /// The stream.
        stream_sid: String,
        /// The mark.
        mark: MarkName,
    },
    /// Drops the audio Twilio has buffered: `{"event":"clear","streamSid":…}`.
    Clear {
        /// The stream.
        stream_sid: String,
    },
}

/// The audio of an outbound `media` message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct OutboundMedia {
    /// Base64 µ-law, 8 kHz mono.
    pub payload: String,
}

impl TwilioOutbound {
    /// A `media` message of µ-law bytes.
    pub fn media(stream_sid: impl Into<String>, mulaw: &[u8]) -> Self {
        Self::Media {
            stream_sid: stream_sid.into(),
            media: OutboundMedia {
                payload: BASE64.encode(mulaw),
            },
        }
    }

    /// A `mark` message.
    pub fn mark(stream_sid: impl Into<String>, name: impl Into<String>) -> Self {
        Self::Mark {
            stream_sid: stream_sid.into(),
            mark: MarkName { name: name.into() },
        }
    }

    /// A `clear` message.
    pub fn clear(stream_sid: impl Into<String>) -> Self {
        Self::Clear {
            stream_sid: stream_sid.into(),
        }
    }

    /// The message as JSON text.
    pub fn to_json(&self) -> Result<String> {
        serde_json::to_string(self)
            .map_err(|e| Error::Internal(format!("serialising a Twilio message: {e}")))
    }
}
