//! The session task: one loop over the caller's audio, the speech streams, the agent's turn
//! and the playback clock.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use agentkit_core::agent::{AgentEvent, RunOutcome, RunRequest};
use agentkit_core::id::RunId;
use agentkit_core::store::{UsageEvent, UsageKind};
use agentkit_core::{Error, ErrorKind, Result};
use futures::StreamExt;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::metrics::Marks;
use super::playback::Playback;
use super::{Input, TurnOutcome, TurnReport, VoiceEvent, VoiceSession};
use crate::audio::{AudioClip, AudioFrame};
use crate::endpoint::TurnDetector;
use crate::sentences::SentenceChunker;
use crate::stt::{SttCommand, SttEvent, SttStream};
use crate::tts::{TtsCommand, TtsEvent, TtsStream};
use crate::vad::{EnergyVad, VadEvent};

/// The agent's turn in progress: from the caller's turn end until the reply's audio is all
/// in the playback queue.
struct Turn {
    context: String,
    user_text: String,
    cancel: CancellationToken,
    task: JoinHandle<()>,
    rx: mpsc::Receiver<Result<AgentEvent>>,
    agent_done: bool,
    outcome: Option<TurnOutcome>,
    run: Option<RunId>,
    chunker: SentenceChunker,
    reply: String,
    marks: Marks,
    /// Flushes sent to the synthesiser whose audio has not all arrived.
    flushes_pending: usize,
    stt_audio: Duration,
    tts_audio: Duration,
    approval_said: bool,
    span: tracing::Span,
}

/// A barge-in waiting to be confirmed by words.
struct PendingInterruption {
    /// Set once the caller stops: when the reply resumes if no words came.
    resume_at: Option<Instant>,
}

pub(super) struct Session {
    agent: agentkit_core::agent::Agent,
    stt_name: String,
    tts_name: String,
    tenant: agentkit_core::id::TenantId,
    session: agentkit_core::id::SessionId,
    config: super::VoiceConfig,
    stt_tx: mpsc::Sender<SttCommand>,
    stt_rx: mpsc::Receiver<Result<SttEvent>>,
    tts_tx: mpsc::Sender<TtsCommand>,
    tts_rx: mpsc::Receiver<Result<TtsEvent>>,
    input: mpsc::Receiver<Input>,
    events: mpsc::Sender<VoiceEvent>,
    vad: EnergyVad,
    detector: TurnDetector,
    playback: Playback,
    turn: Option<Turn>,
    queued_turns: VecDeque<String>,
    pending: Option<PendingInterruption>,
    /// Moments of the caller's turn being formed.
    next_marks: Marks,
    /// Caller audio since the last turn started.
    stt_audio: Duration,
    /// Synthesised audio outside turns (greetings, phrases).
    loose_tts_audio: Duration,
    /// Synthesis contexts alive, and whether they can be interrupted.
    contexts: HashMap<String, bool>,
    /// `say` contexts whose audio has not all arrived.
    says_pending: usize,
    /// What the caller said in a turn interrupted before the agent answered: it begins the
    /// next turn.
    carry_over: String,
    seq: u64,
    closing: bool,
    /// Whether the host can still send input (false once every `VoiceInput` is dropped).
    input_open: bool,
    stt_done: bool,
}

impl Session {
    pub(super) fn new(
        parts: VoiceSession,
        stt: SttStream,
        tts: TtsStream,
        input: mpsc::Receiver<Input>,
        events: mpsc::Sender<VoiceEvent>,
    ) -> Self {
        let (stt_tx, stt_rx) = stt.split();
        let (tts_tx, tts_rx) = tts.split();
        let config = parts.config;
        Self {
            stt_name: parts.stt.name().to_owned(),
            tts_name: parts.tts.name().to_owned(),
            agent: parts.agent,
            tenant: parts.tenant,
            session: parts.session,
            stt_tx,
            stt_rx,
            tts_tx,
            tts_rx,
            input,
            events,
            vad: EnergyVad::new(config.vad),
            detector: TurnDetector::new(config.endpointing),
            playback: Playback::new(config.playback_lead),
            config,
            turn: None,
            queued_turns: VecDeque::new(),
            pending: None,
            next_marks: Marks::default(),
            stt_audio: Duration::ZERO,
            loose_tts_audio: Duration::ZERO,
            contexts: HashMap::new(),
            says_pending: 0,
            carry_over: String::new(),
            seq: 0,
            closing: false,
            input_open: true,
            stt_done: false,
        }
    }

    async fn emit(&self, event: VoiceEvent) {
        // A host that stopped listening does not stop the session's bookkeeping.
        let _ = self.events.send(event).await;
    }

    pub(super) async fn run(mut self) {
        let result = self.drive().await;
        if let Some(turn) = self.turn.take() {
            turn.cancel.cancel();
            turn.task.abort();
        }
        let _ = self.stt_tx.try_send(SttCommand::Close);
        let _ = self.tts_tx.try_send(TtsCommand::Close);
        self.record_loose_usage().await;
        if let Err(e) = &result {
            tracing::warn!(error = %e, "voice session ended with an error");
        }
        self.emit(VoiceEvent::Ended(result)).await;
    }

    async fn drive(&mut self) -> Result<()> {
        loop {
            let now = Instant::now();
            for (_, frame) in self.playback.release(now) {
                self.emit(VoiceEvent::Audio(frame)).await;
            }
            if let Some(text) = self.detector.poll(now) {
                self.commit(text, now).await;
            }
            if let Some(p) = &self.pending
                && p.resume_at.is_some_and(|t| t <= now)
            {
                self.pending = None;
                self.playback.resume(now);
                self.emit(VoiceEvent::Resumed).await;
                continue;
            }
            if self.closing && self.stt_done && self.vad.in_speech() {
                self.vad.reset();
                self.detector.speech_stopped(now);
                continue;
            }
            if self.is_finished(now) {
                return Ok(());
            }

            let wake = [
                self.playback.next_release(now),
                self.detector.deadline(),
                self.pending.as_ref().and_then(|p| p.resume_at),
                // A closing session ends when the last audio has played.
                self.playback.playing_until(now).filter(|_| self.closing),
            ]
            .into_iter()
            .flatten()
            .min();
            let turn_rx = self
                .turn
                .as_mut()
                .filter(|t| !t.agent_done)
                .map(|t| &mut t.rx);
            tokio::select! {
                input = self.input.recv(), if self.input_open => match input {
                    Some(Input::Audio(frame)) => self.on_audio(frame).await,
                    Some(Input::Say { text, interruptible }) => self.say(&text, interruptible).await,
                    Some(Input::Close) | None => {
                        self.input_open &= input.is_some();
                        if !self.closing {
                            self.closing = true;
                            let _ = self.stt_tx.send(SttCommand::Close).await;
                        }
                    }
                    Some(Input::HangUp) => return Ok(()),
                },
                event = self.stt_rx.recv(), if !self.stt_done => match event {
                    Some(Ok(event)) => self.on_stt(event).await,
                    Some(Err(e)) => return Err(e),
                    None if self.closing => self.stt_done = true,
                    None => return Err(Error::Unavailable {
                        message: format!("speech-to-text `{}` ended the stream", self.stt_name),
                        source: None,
                    }),
                },
                event = self.tts_rx.recv() => match event {
                    Some(Ok(event)) => self.on_tts(event).await,
                    Some(Err(e)) => return Err(e),
                    None => return Err(Error::Unavailable {
                        message: format!("text-to-speech `{}` ended the stream", self.tts_name),
                        source: None,
                    }),
                },
                event = recv_turn(turn_rx) => self.on_agent(event).await,
                () = sleep_until(wake) => {}
            }
            self.finish_turn_if_done().await;
        }
    }

    fn is_finished(&self, now: Instant) -> bool {
        self.closing
            && self.stt_done
            && !self.detector.is_active()
            && self.turn.is_none()
            && self.queued_turns.is_empty()
            && self.says_pending == 0
            && !self.playback.is_speaking(now)
    }

    async fn on_audio(&mut self, frame: AudioFrame) {
        if self.closing {
            return;
        }
        let now = Instant::now();
        self.stt_audio += frame.duration();
        let vad = self.vad.process(&frame);
        // A send error means the provider's task ended; its error arrives on `stt_rx`.
        let _ = self.stt_tx.send(SttCommand::Audio(frame)).await;
        match vad {
            Some(VadEvent::SpeechStarted { .. }) => {
                self.detector.speech_started();
                self.emit(VoiceEvent::UserSpeechStarted).await;
                if let Some(p) = &mut self.pending {
                    p.resume_at = None;
                } else if self.config.interruptions.enabled
                    && (self.turn.is_some() || self.playback.is_speaking(now))
                    && self.playback.interruptible(now)
                {
                    // Barge-in: hold the reply until words confirm it.
                    self.playback.pause();
                    self.pending = Some(PendingInterruption { resume_at: None });
                }
            }
            Some(VadEvent::SpeechStopped { ago }) => {
                let at = now.checked_sub(ago).unwrap_or(now);
                self.detector.speech_stopped(at);
                self.next_marks.user_stopped = Some(at);
                let _ = self.stt_tx.send(SttCommand::Finalize).await;
                self.emit(VoiceEvent::UserSpeechStopped).await;
                if let Some(p) = &mut self.pending {
                    p.resume_at = Some(now + self.config.interruptions.false_interruption_timeout);
                }
            }
            None => {}
        }
    }

    async fn on_stt(&mut self, event: SttEvent) {
        let now = Instant::now();
        match event {
            SttEvent::Interim(t) => {
                let words = t.text.split_whitespace().count();
                self.emit(VoiceEvent::Transcript {
                    text: t.text,
                    is_final: false,
                })
                .await;
                if words > 0 && words >= self.config.interruptions.min_words {
                    self.confirm_interruption().await;
                }
            }
            SttEvent::Final(t) => {
                let words = t.text.split_whitespace().count();
                if words == 0 {
                    return;
                }
                self.next_marks.stt_final = Some(now);
                self.detector.final_transcript(&t.text);
                self.emit(VoiceEvent::Transcript {
                    text: t.text,
                    is_final: true,
                })
                .await;
                if words >= self.config.interruptions.min_words {
                    self.confirm_interruption().await;
                }
                self.stopped_unless_speaking(now);
            }
            SttEvent::UtteranceEnd => self.stopped_unless_speaking(now),
            _ => {}
        }
    }

    /// Words that come when the detector is not waiting still end a turn: those of a quiet
    /// caller the VAD did not hear, and those of a recogniser slower than the endpointing
    /// maximum (the turn had ended empty). The stop the VAD dated recently counts, so the
    /// latency is measured from it.
    fn stopped_unless_speaking(&mut self, now: Instant) {
        if !self.vad.in_speech()
            && self.detector.deadline().is_none()
            && !self.detector.transcript().is_empty()
        {
            let recent = self.config.endpointing.max_delay * 4 + Duration::from_secs(10);
            let at = match self.next_marks.user_stopped {
                Some(at) if now.saturating_duration_since(at) <= recent => at,
                _ => now,
            };
            self.next_marks.user_stopped = Some(at);
            self.detector.speech_stopped(at);
        }
    }

    async fn confirm_interruption(&mut self) {
        if self.pending.take().is_none() {
            return;
        }
        self.playback.interrupt();
        let interruptible: Vec<String> = self
            .contexts
            .iter()
            .filter(|&(_, &i)| i)
            .map(|(c, _)| c.clone())
            .collect();
        for context in interruptible {
            let _ = self
                .tts_tx
                .send(TtsCommand::Cancel {
                    context: context.clone(),
                })
                .await;
            self.contexts.remove(&context);
            if context.starts_with("say-") {
                self.says_pending = self.says_pending.saturating_sub(1);
            }
        }
        if let Some(mut turn) = self.turn.take() {
            turn.cancel.cancel();
            turn.task.abort();
            if turn.marks.first_token.is_none() {
                // The agent had not begun to answer: the caller was still talking.
                self.carry_over = turn.user_text.clone();
            }
            turn.outcome = Some(TurnOutcome::Interrupted);
            self.report(turn).await;
        }
        self.emit(VoiceEvent::Interrupted).await;
    }

    async fn commit(&mut self, text: String, now: Instant) {
        let text = match std::mem::take(&mut self.carry_over) {
            c if c.is_empty() => text,
            c if text.is_empty() => c,
            c => format!("{c} {text}"),
        };
        if text.trim().is_empty() {
            // Nothing was heard (yet): a late transcript still dates from this stop.
            return;
        }
        self.emit(VoiceEvent::UserTurn(text.clone())).await;
        if self.turn.is_some() {
            self.queued_turns.push_back(text);
            return;
        }
        self.start_turn(text, now);
    }

    fn start_turn(&mut self, text: String, now: Instant) {
        self.seq += 1;
        let context = format!("turn-{}", self.seq);
        self.contexts.insert(context.clone(), true);
        let mut marks = std::mem::take(&mut self.next_marks);
        marks.committed = Some(now);
        let cancel = CancellationToken::new();
        let request = RunRequest::new(self.tenant.clone(), self.session.clone(), text.clone())
            .with_cancellation(cancel.clone());
        let mut stream = self.agent.run_stream(request);
        let (tx, rx) = mpsc::channel(64);
        let task = tokio::spawn(async move {
            while let Some(event) = stream.next().await {
                if tx.send(event).await.is_err() {
                    break;
                }
            }
        });
        let span = tracing::info_span!(
            "voice.turn",
            session = %self.session,
            stt_ms = tracing::field::Empty,
            endpointing_ms = tracing::field::Empty,
            model_ms = tracing::field::Empty,
            sentence_ms = tracing::field::Empty,
            tts_ms = tracing::field::Empty,
            end_to_end_ms = tracing::field::Empty,
            outcome = tracing::field::Empty,
        );
        self.turn = Some(Turn {
            context,
            user_text: text,
            cancel,
            task,
            rx,
            agent_done: false,
            outcome: None,
            run: None,
            chunker: SentenceChunker::default(),
            reply: String::new(),
            marks,
            flushes_pending: 0,
            stt_audio: std::mem::take(&mut self.stt_audio),
            tts_audio: Duration::ZERO,
            approval_said: false,
            span,
        });
    }

    async fn on_agent(&mut self, event: Option<Result<AgentEvent>>) {
        let now = Instant::now();
        let Some(turn) = self.turn.as_mut() else {
            return;
        };
        let mut sentences = Vec::new();
        let mut say_approval = false;
        let mut failed = None;
        match event {
            Some(Ok(AgentEvent::RunStarted { run })) => turn.run = Some(run),
            Some(Ok(AgentEvent::TextDelta(text))) => {
                turn.marks.first_token.get_or_insert(now);
                sentences = turn.chunker.push(&text);
            }
            Some(Ok(AgentEvent::ApprovalRequired(request))) => {
                say_approval = !std::mem::replace(&mut turn.approval_said, true);
                self.emit(VoiceEvent::ApprovalRequired(Box::new(request)))
                    .await;
            }
            Some(Ok(AgentEvent::Done(outcome))) => {
                turn.agent_done = true;
                sentences.extend(turn.chunker.finish());
                turn.outcome = Some(match outcome {
                    RunOutcome::Suspended(_) => {
                        say_approval = !std::mem::replace(&mut turn.approval_said, true);
                        TurnOutcome::Suspended
                    }
                    _ => TurnOutcome::Completed,
                });
            }
            Some(Ok(_)) => {}
            Some(Err(e)) if e.kind() == ErrorKind::Cancelled => turn.agent_done = true,
            Some(Err(e)) => {
                turn.agent_done = true;
                turn.chunker.clear();
                turn.outcome = Some(TurnOutcome::Failed(e.to_string()));
                failed = Some(e);
            }
            None => {
                turn.agent_done = true;
                sentences.extend(turn.chunker.finish());
                turn.outcome.get_or_insert_with(|| {
                    TurnOutcome::Failed("the agent's run ended without an outcome".into())
                });
            }
        }
        for sentence in sentences {
            self.speak_sentence(sentence, now).await;
        }
        if say_approval {
            let phrase = self.config.approval_phrase.clone();
            self.say(&phrase, false).await;
        }
        if let Some(e) = failed {
            let phrase = if e.kind() == ErrorKind::SessionSuspended {
                self.config.still_waiting_phrase.clone()
            } else {
                tracing::warn!(error = %e, "the agent's voice turn failed");
                self.config.error_phrase.clone()
            };
            self.emit(VoiceEvent::Error(e.to_string())).await;
            self.say(&phrase, true).await;
        }
    }

    async fn speak_sentence(&mut self, sentence: String, now: Instant) {
        let Some(turn) = self.turn.as_mut() else {
            return;
        };
        turn.marks.first_sentence.get_or_insert(now);
        if !turn.reply.is_empty() {
            turn.reply.push(' ');
        }
        turn.reply.push_str(&sentence);
        turn.flushes_pending += 1;
        let context = turn.context.clone();
        self.emit(VoiceEvent::AgentText(sentence.clone())).await;
        let _ = self
            .tts_tx
            .send(TtsCommand::Text {
                context: context.clone(),
                text: format!("{sentence} "),
            })
            .await;
        let _ = self.tts_tx.send(TtsCommand::Flush { context }).await;
    }

    async fn say(&mut self, text: &str, interruptible: bool) {
        if text.trim().is_empty() {
            return;
        }
        self.seq += 1;
        let context = format!("say-{}", self.seq);
        self.contexts.insert(context.clone(), interruptible);
        self.says_pending += 1;
        let _ = self
            .tts_tx
            .send(TtsCommand::Text {
                context: context.clone(),
                text: text.to_owned(),
            })
            .await;
        let _ = self.tts_tx.send(TtsCommand::Flush { context }).await;
    }

    async fn on_tts(&mut self, event: TtsEvent) {
        let now = Instant::now();
        match event {
            TtsEvent::Audio { context, frame } => {
                let Some(&interruptible) = self.contexts.get(&context) else {
                    return; // cancelled: late audio is dropped
                };
                let frame = match self.conform(frame) {
                    Ok(f) => f,
                    Err(e) => {
                        self.emit(VoiceEvent::Error(e.to_string())).await;
                        return;
                    }
                };
                match self.turn.as_mut().filter(|t| t.context == context) {
                    Some(turn) => {
                        turn.marks.first_audio.get_or_insert(now);
                        turn.tts_audio += frame.duration();
                    }
                    None => self.loose_tts_audio += frame.duration(),
                }
                self.playback.push(context, frame, interruptible);
            }
            TtsEvent::Flushed { context } => {
                if let Some(turn) = self.turn.as_mut().filter(|t| t.context == context) {
                    turn.flushes_pending = turn.flushes_pending.saturating_sub(1);
                } else if context.starts_with("say-") && self.contexts.remove(&context).is_some() {
                    self.says_pending = self.says_pending.saturating_sub(1);
                }
            }
        }
    }

    /// Audio in the session's output format (a provider that answered in another rate or
    /// channel count is converted).
    fn conform(&self, frame: AudioFrame) -> Result<AudioFrame> {
        let want = self.config.tts.format;
        if frame.format() == want {
            return Ok(frame);
        }
        let clip = AudioClip::from_samples(frame.format(), frame.samples().to_vec())?;
        Ok(clip.to_format(want)?.to_frame())
    }

    async fn finish_turn_if_done(&mut self) {
        let done = self
            .turn
            .as_ref()
            .is_some_and(|t| t.agent_done && t.flushes_pending == 0);
        if !done {
            return;
        }
        if let Some(turn) = self.turn.take() {
            self.contexts.remove(&turn.context);
            self.report(turn).await;
        }
        if let Some(next) = self.queued_turns.pop_front() {
            self.start_turn(next, Instant::now());
        }
    }

    async fn report(&mut self, turn: Turn) {
        let latency = turn.marks.latency();
        let outcome = turn.outcome.unwrap_or(TurnOutcome::Completed);
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        turn.span.record("stt_ms", ms(latency.stt));
        turn.span.record("endpointing_ms", ms(latency.endpointing));
        turn.span.record("model_ms", ms(latency.model));
        turn.span.record("sentence_ms", ms(latency.sentence));
        turn.span.record("tts_ms", ms(latency.tts));
        turn.span.record("end_to_end_ms", ms(latency.end_to_end));
        turn.span.record("outcome", tracing::field::debug(&outcome));
        turn.span.in_scope(|| {
            tracing::info!(end_to_end_ms = ms(latency.end_to_end), "voice turn ended");
        });
        self.record_usage(turn.run.clone(), turn.stt_audio, turn.tts_audio)
            .await;
        self.emit(VoiceEvent::TurnCompleted(TurnReport {
            user_text: turn.user_text,
            reply: turn.reply,
            run: turn.run,
            outcome,
            latency,
            stt_audio: turn.stt_audio,
            tts_audio: turn.tts_audio,
        }))
        .await;
    }

    async fn record_loose_usage(&mut self) {
        let stt = std::mem::take(&mut self.stt_audio);
        let tts = std::mem::take(&mut self.loose_tts_audio);
        self.record_usage(None, stt, tts).await;
    }

    /// Audio usage, priced by the agent's meter and written to its store.
    async fn record_usage(&mut self, run: Option<RunId>, stt: Duration, tts: Duration) {
        let mut events = Vec::new();
        for (audio, resource) in [
            (stt, format!("stt:{}", self.stt_name)),
            (tts, format!("tts:{}", self.tts_name)),
        ] {
            let millis = audio.as_millis() as u64;
            if millis == 0 {
                continue;
            }
            let mut e = UsageEvent::new(
                self.tenant.clone(),
                self.agent.id().clone(),
                UsageKind::AudioMillis,
                millis,
            );
            e.resource = Some(resource);
            e.session = Some(self.session.clone());
            e.run.clone_from(&run);
            events.push(e);
        }
        if events.is_empty() {
            return;
        }
        if let Err(e) = self
            .agent
            .executor()
            .append_usage(&self.tenant, events)
            .await
        {
            tracing::warn!(error = %e, "voice usage could not be recorded");
            self.emit(VoiceEvent::Error(format!(
                "audio usage was not recorded: {e}"
            )))
            .await;
        }
    }
}

async fn recv_turn(
    rx: Option<&mut mpsc::Receiver<Result<AgentEvent>>>,
) -> Option<Result<AgentEvent>> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
