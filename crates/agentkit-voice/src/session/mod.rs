//! The voice session: audio in → VAD → streaming STT → endpointing → an agent turn (tools,
//! policy and approvals as always) → sentence chunking → streaming TTS → paced audio out, with
//! barge-in.
//!
//! A host starts a session with [`VoiceSession::start`], pushes the caller's audio through the
//! returned [`VoiceInput`] and forwards the [`VoiceEvent`]s (audio to play, transcripts,
//! interruptions, latency reports) to its transport.
//!
//! **Barge-in.** When the caller starts speaking while the agent speaks (or thinks), playback
//! pauses. The interruption is confirmed as soon as the speech-to-text hears words: the agent's
//! run is cancelled (its model stream is dropped), the reply's synthesis context is cancelled,
//! queued audio is dropped and [`VoiceEvent::Interrupted`] tells the transport to clear what it
//! buffered. A noise that brings no words within the false-interruption timeout resumes the
//! reply where it paused ([`VoiceEvent::Resumed`]). Segments spoken with
//! [`VoiceInput::say`]`(…, false)` (and the approval phrase) cannot be interrupted.
//!
//! **Approvals.** A tool call that needs a human suspends the run durably, as in text; the
//! caller hears the configured phrase ("I need a colleague to approve that.") and the host gets
//! [`VoiceEvent::ApprovalRequired`].
//!
//! **Metering.** Audio sent to speech-to-text and audio synthesised are recorded per turn as
//! [`UsageKind::AudioMillis`](agentkit_core::store::UsageKind::AudioMillis) events
//! (resources `stt:<provider>` and `tts:<provider>`), priced by the agent's meter and counted
//! against its budgets like tokens.

mod metrics;
mod playback;
mod run;

use std::sync::Arc;
use std::time::Duration;

use agentkit_core::agent::Agent;
use agentkit_core::id::{IntoId, RunId, SessionId, TenantId};
use agentkit_core::store::ApprovalRequest;
use agentkit_core::{Error, Result};
use tokio::sync::mpsc;

pub use metrics::TurnLatency;

use crate::audio::AudioFrame;
use crate::endpoint::EndpointingConfig;
use crate::stt::{SpeechToText, SttOptions};
use crate::tts::{TextToSpeech, TtsOptions};
use crate::vad::VadConfig;

/// How barge-in behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct InterruptionConfig {
    /// Whether the caller can interrupt the agent at all.
    pub enabled: bool,
    /// Words the speech-to-text must hear to confirm an interruption.
    pub min_words: usize,
    /// How long a pause with no words waits before the reply resumes (a false interruption).
    pub false_interruption_timeout: Duration,
}

impl Default for InterruptionConfig {
    /// Enabled, one word, 1.5 s.
    fn default() -> Self {
        Self {
            enabled: true,
            min_words: 1,
            false_interruption_timeout: Duration::from_millis(1500),
        }
    }
}

/// Voice session settings.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct VoiceConfig {
    /// Voice activity detection.
    pub vad: VadConfig,
    /// Turn detection delays.
    pub endpointing: EndpointingConfig,
    /// Barge-in.
    pub interruptions: InterruptionConfig,
    /// Speech-to-text options (the input audio's format is `stt.format`).
    pub stt: SttOptions,
    /// Text-to-speech options (the output audio's format is `tts.format`).
    pub tts: TtsOptions,
    /// Said when a tool call waits for a human's approval.
    pub approval_phrase: String,
    /// Said when the caller speaks while an earlier request of the conversation still waits
    /// for approval (the session takes no new runs until it is decided).
    pub still_waiting_phrase: String,
    /// Said when the agent's turn failed.
    pub error_phrase: String,
    /// How far ahead of real time audio is released to the host.
    pub playback_lead: Duration,
}

impl Default for VoiceConfig {
    fn default() -> Self {
        Self {
            vad: VadConfig::default(),
            endpointing: EndpointingConfig::default(),
            interruptions: InterruptionConfig::default(),
            stt: SttOptions::default(),
            tts: TtsOptions::default(),
            approval_phrase: "I need a colleague to approve that. I'll get back to you.".into(),
            still_waiting_phrase:
                "I'm still waiting for a colleague to approve your earlier request.".into(),
            error_phrase: "Sorry, something went wrong on my side. Could you say that again?"
                .into(),
            playback_lead: Duration::from_millis(60),
        }
    }
}

/// How a turn ended.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum TurnOutcome {
    /// The agent answered.
    Completed,
    /// The caller interrupted the reply.
    Interrupted,
    /// A tool call waits for approval; the run is suspended.
    Suspended,
    /// The agent's run failed (the error phrase was said).
    Failed(String),
}

/// One turn: what the caller said, what the agent said, and where the time went.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct TurnReport {
    /// The caller's words.
    pub user_text: String,
    /// The reply as sent to speech synthesis (up to the interruption, if any).
    pub reply: String,
    /// The agent's run, once it started.
    pub run: Option<RunId>,
    /// How the turn ended.
    pub outcome: TurnOutcome,
    /// Latency by stage.
    pub latency: TurnLatency,
    /// Caller audio sent to speech-to-text during the turn.
    pub stt_audio: Duration,
    /// Audio synthesised for the reply.
    pub tts_audio: Duration,
}

/// What a session reports to the host.
#[derive(Debug)]
#[non_exhaustive]
pub enum VoiceEvent {
    /// Audio to play, paced at playing speed.
    Audio(AudioFrame),
    /// The VAD heard the caller start speaking.
    UserSpeechStarted,
    /// The VAD heard the caller stop.
    UserSpeechStopped,
    /// A transcript of the caller (`is_final`: it will not change).
    Transcript {
        /// The text.
        text: String,
        /// Whether it is final.
        is_final: bool,
    },
    /// The caller's turn ended and went to the agent.
    UserTurn(String),
    /// A sentence of the reply went to speech synthesis.
    AgentText(String),
    /// The caller interrupted: drop any audio not yet played.
    Interrupted,
    /// A false interruption: the reply goes on.
    Resumed,
    /// A tool call waits for a human.
    ApprovalRequired(Box<ApprovalRequest>),
    /// A turn ended.
    TurnCompleted(TurnReport),
    /// Something failed that did not end the session (a turn's run, usage recording).
    Error(String),
    /// The session ended (always the last event); `Err` when a provider failed.
    Ended(std::result::Result<(), Error>),
}

/// A voice session's parts, ready to start.
pub struct VoiceSession {
    agent: Agent,
    stt: Arc<dyn SpeechToText>,
    tts: Arc<dyn TextToSpeech>,
    tenant: TenantId,
    session: SessionId,
    config: VoiceConfig,
}

impl std::fmt::Debug for VoiceSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VoiceSession")
            .field("agent", self.agent.id())
            .field("stt", &self.stt.name())
            .field("tts", &self.tts.name())
            .field("tenant", &self.tenant)
            .field("session", &self.session)
            .finish()
    }
}

impl VoiceSession {
    /// A session of `agent` for `tenant`'s conversation `session`, hearing through `stt` and
    /// speaking through `tts`, with the default [`VoiceConfig`].
    pub fn new(
        agent: Agent,
        stt: Arc<dyn SpeechToText>,
        tts: Arc<dyn TextToSpeech>,
        tenant: impl IntoId<TenantId>,
        session: impl IntoId<SessionId>,
    ) -> Result<Self> {
        Ok(Self {
            agent,
            stt,
            tts,
            tenant: tenant.into_id()?,
            session: session.into_id()?,
            config: VoiceConfig::default(),
        })
    }

    /// Replaces the settings.
    pub fn with_config(mut self, config: VoiceConfig) -> Self {
        self.config = config;
        self
    }

    /// The settings.
    pub fn config(&self) -> &VoiceConfig {
        &self.config
    }

    /// Opens the speech streams and starts the session on a spawned task. Push audio through
    /// the [`VoiceInput`]; read [`VoiceEvent`]s (the last is [`VoiceEvent::Ended`]).
    pub async fn start(self) -> Result<(VoiceInput, mpsc::Receiver<VoiceEvent>)> {
        if self.config.endpointing.max_delay < self.config.endpointing.min_delay {
            return Err(Error::InvalidConfig(
                "endpointing max_delay must not be below min_delay".into(),
            ));
        }
        let stt = self.stt.stream(&self.config.stt).await?;
        let tts = self.tts.stream(&self.config.tts).await?;
        let (input_tx, input_rx) = mpsc::channel(256);
        let (event_tx, event_rx) = mpsc::channel(1024);
        let task = run::Session::new(self, stt, tts, input_rx, event_tx);
        tokio::spawn(task.run());
        Ok((VoiceInput { tx: input_tx }, event_rx))
    }
}

/// What the host sends into a session.
#[derive(Debug)]
pub(crate) enum Input {
    Audio(AudioFrame),
    Say { text: String, interruptible: bool },
    Close,
    HangUp,
}

/// The host's handle to push audio into a running session.
#[derive(Debug, Clone)]
pub struct VoiceInput {
    tx: mpsc::Sender<Input>,
}

fn ended() -> Error {
    Error::Unavailable {
        message: "the voice session has ended".into(),
        source: None,
    }
}

impl VoiceInput {
    /// The caller's audio, in the session's input format (`VoiceConfig::stt.format`).
    pub async fn push_audio(&self, frame: AudioFrame) -> Result<()> {
        self.tx.send(Input::Audio(frame)).await.map_err(|_| ended())
    }

    /// Speaks `text` outside a turn (a greeting, a notice); `interruptible: false` makes it
    /// play to the end even if the caller talks over it.
    pub async fn say(&self, text: impl Into<String>, interruptible: bool) -> Result<()> {
        self.tx
            .send(Input::Say {
                text: text.into(),
                interruptible,
            })
            .await
            .map_err(|_| ended())
    }

    /// The caller's audio has ended: the last turn is finished and answered, its audio played,
    /// then the session ends.
    pub async fn close(&self) -> Result<()> {
        self.tx.send(Input::Close).await.map_err(|_| ended())
    }

    /// Ends the session now (the caller hung up): the running turn is cancelled.
    pub async fn hang_up(&self) -> Result<()> {
        self.tx.send(Input::HangUp).await.map_err(|_| ended())
    }
}
