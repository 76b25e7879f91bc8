//! The voice session through its public API, under paused Tokio time: a turn end to end with
//! latency that adds up, barge-in, false interruptions, endpointing, approvals, metering and a
//! cut speech-to-text stream.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use agentkit_core::model::{
    CompletionRequest, CompletionResponse, CompletionStream, FinishReason, LlmProvider,
    ProviderCapabilities, StreamEvent,
};
use agentkit_core::store::{InMemoryStore, StateStore, UsageKind, UsageQuery};
use agentkit_core::testkit::{ScriptedModel, ScriptedResponse};
use agentkit_core::{ErrorKind, Result};
use agentkit_voice::testkit::{ScriptedStt, ScriptedTts, silence, speech};
use agentkit_voice::{AudioFormat, TurnOutcome, TurnReport, VoiceEvent, VoiceInput};
use common::{agent, approval_agent, ms, voice_session};
use tokio::sync::mpsc;
use tokio::time::Instant;

fn store() -> Arc<dyn StateStore> {
    Arc::new(InMemoryStore::new())
}

/// Pushes `frames` at playing speed (20 ms each).
async fn play(input: &VoiceInput, frames: Vec<agentkit_voice::AudioFrame>) {
    for f in frames {
        input.push_audio(f).await.expect("push");
        tokio::time::sleep(ms(20)).await;
    }
}

async fn say_words(input: &VoiceInput, speech_for: Duration, pause: Duration) {
    play(input, speech(AudioFormat::SPEECH, speech_for)).await;
    play(input, silence(AudioFormat::SPEECH, pause)).await;
}

/// Events with the (paused) time they arrived, until `stop` matches one (included).
async fn collect_until(
    events: &mut mpsc::Receiver<VoiceEvent>,
    stop: impl Fn(&VoiceEvent) -> bool,
) -> Vec<(Instant, VoiceEvent)> {
    let mut out = Vec::new();
    while let Some(e) = events.recv().await {
        let done = stop(&e);
        out.push((Instant::now(), e));
        if done {
            return out;
        }
    }
    panic!("the events ended before the awaited one: {out:?}");
}

fn turns(events: &[(Instant, VoiceEvent)]) -> Vec<TurnReport> {
    events
        .iter()
        .filter_map(|(_, e)| match e {
            VoiceEvent::TurnCompleted(r) => Some(r.clone()),
            _ => None,
        })
        .collect()
}

fn audio_played(events: &[(Instant, VoiceEvent)]) -> Duration {
    events
        .iter()
        .map(|(_, e)| match e {
            VoiceEvent::Audio(f) => f.duration(),
            _ => Duration::ZERO,
        })
        .sum()
}

/// Drains the events in the background while the test pushes audio.
fn drain(
    mut events: mpsc::Receiver<VoiceEvent>,
) -> tokio::task::JoinHandle<Vec<(Instant, VoiceEvent)>> {
    tokio::spawn(async move {
        let mut out = Vec::new();
        while let Some(e) = events.recv().await {
            let ended = matches!(e, VoiceEvent::Ended(_));
            out.push((Instant::now(), e));
            if ended {
                break;
            }
        }
        out
    })
}

#[tokio::test(start_paused = true)]
async fn a_turn_end_to_end_with_latency_that_adds_up_and_metered_audio() {
    let st = store();
    let model = ScriptedModel::new([ScriptedResponse::text(
        "Your order 427 shipped yesterday. It arrives on Monday.",
    )
    .with_delay(ms(200))]);
    let stt = ScriptedStt::new(["Where is my order 427?"]).with_final_delay(ms(150));
    let tts = ScriptedTts::new(ms(80), ms(100));
    let session = voice_session(
        agent("phone", Arc::new(model), st.clone()),
        stt,
        tts.clone(),
        "call-1",
    );
    let (input, events) = session.start().await.expect("start");
    let all = drain(events);
    play(&input, silence(AudioFormat::SPEECH, ms(300))).await;
    say_words(&input, ms(1200), ms(600)).await;
    input.close().await.expect("close");
    let all = all.await.expect("events");

    let reports = turns(&all);
    assert_eq!(reports.len(), 1, "{all:?}");
    let r = &reports[0];
    assert_eq!(r.user_text, "Where is my order 427?");
    assert_eq!(
        r.reply,
        "Your order 427 shipped yesterday. It arrives on Monday."
    );
    assert_eq!(r.outcome, TurnOutcome::Completed);
    assert_eq!(
        tts.spoken(),
        vec!["Your order 427 shipped yesterday.", "It arrives on Monday."],
        "spoken sentence by sentence"
    );
    let l = r.latency;
    // The VAD hears the stop 300 ms after the last voiced frame; the transcript is 150 ms later.
    assert_eq!(l.stt, ms(450));
    // The turn had already waited its 400 ms minimum: no further endpointing delay.
    assert_eq!(l.endpointing, ms(0));
    assert_eq!(l.model, ms(200));
    assert_eq!(l.sentence, ms(0));
    assert_eq!(l.tts, ms(80));
    assert_eq!(l.end_to_end, ms(730));
    assert_eq!(
        l.stt + l.endpointing + l.model + l.sentence + l.tts,
        l.end_to_end
    );
    // All of the reply was played: 9 words at 100 ms.
    assert_eq!(audio_played(&all), ms(900));
    assert_eq!(r.tts_audio, ms(900));
    assert!(matches!(all.last(), Some((_, VoiceEvent::Ended(Ok(()))))));

    // Audio is metered per turn: what went to speech-to-text and what was synthesised.
    let usage = st
        .list_usage(
            &"acme".parse().expect("tenant"),
            &UsageQuery::all().kind(UsageKind::AudioMillis),
        )
        .await
        .expect("usage");
    let of = |res: &str| -> u64 {
        usage
            .iter()
            .filter(|e| e.resource.as_deref() == Some(res))
            .map(|e| e.quantity)
            .sum()
    };
    assert_eq!(of("tts:scripted"), 900);
    assert_eq!(of("stt:scripted"), (300 + 1200 + 600) as u64);
    assert!(
        usage.iter().any(|e| e.run == r.run && e.run.is_some()),
        "usage carries the run"
    );
}

/// A model that streams one sentence, then keeps the stream open until it is dropped; later
/// calls answer at once.
struct SlowModel {
    calls: AtomicUsize,
    dropped: Arc<AtomicBool>,
}

struct DropFlag(Arc<AtomicBool>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

#[async_trait::async_trait]
impl LlmProvider for SlowModel {
    fn name(&self) -> &str {
        "slow"
    }

    fn capabilities(&self) -> ProviderCapabilities {
        ProviderCapabilities::default()
    }

    async fn complete(&self, _request: &CompletionRequest) -> Result<CompletionResponse> {
        Ok(CompletionResponse::new(
            "Okay, stopping there.",
            Vec::new(),
            agentkit_core::message::Usage::default(),
        ))
    }

    async fn stream(&self, request: &CompletionRequest) -> Result<CompletionStream> {
        if self.calls.fetch_add(1, Ordering::SeqCst) > 0 {
            let r = self.complete(request).await?;
            return Ok(Box::pin(futures::stream::iter(
                agentkit_core::model::response_to_events(r)
                    .into_iter()
                    .map(Ok),
            )));
        }
        let flag = DropFlag(Arc::clone(&self.dropped));
        let first = futures::stream::iter([Ok(StreamEvent::TextDelta(
            "Our return policy has many parts, so let me read all of them to you now. ".into(),
        ))]);
        let rest = futures::stream::unfold(flag, |flag| async move {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Some((Ok(StreamEvent::Finish(FinishReason::Stop)), flag))
        });
        Ok(Box::pin(futures::StreamExt::chain(first, rest)))
    }
}

#[tokio::test(start_paused = true)]
async fn barge_in_cancels_playback_the_synthesis_and_the_model_stream() {
    let dropped = Arc::new(AtomicBool::new(false));
    let model = SlowModel {
        calls: AtomicUsize::new(0),
        dropped: Arc::clone(&dropped),
    };
    let stt = ScriptedStt::new([
        "What is your return policy?",
        "Stop, I just want the address.",
    ])
    .with_interim_after(ms(100));
    let tts = ScriptedTts::new(ms(50), ms(200));
    let session = voice_session(agent("phone", Arc::new(model), store()), stt, tts, "call-2");
    let (input, mut events) = session.start().await.expect("start");
    let pusher = {
        let input = input.clone();
        tokio::spawn(async move {
            say_words(&input, ms(1000), ms(400)).await;
            // The reply has 15 words (3 s of audio); interrupt one second into it.
            play(&input, silence(AudioFormat::SPEECH, ms(1000))).await;
            say_words(&input, ms(800), ms(1500)).await;
            input.close().await.expect("close");
        })
    };
    let before = collect_until(&mut events, |e| matches!(e, VoiceEvent::Interrupted)).await;
    let interrupted_at = before.last().expect("events").0;
    assert!(
        dropped.load(Ordering::SeqCst),
        "the model's stream was dropped on barge-in"
    );
    let reports = turns(&before);
    assert_eq!(reports.len(), 1);
    assert_eq!(reports[0].outcome, TurnOutcome::Interrupted);
    let played = audio_played(&before);
    assert!(
        played < ms(2000),
        "playback stopped early: {played:?} of 3 s released"
    );
    let after = collect_until(&mut events, |e| matches!(e, VoiceEvent::Ended(_))).await;
    pusher.await.expect("pusher");
    // No audio of the interrupted reply after the interruption: the next audio is the new
    // turn's answer, after its own user turn.
    let first_audio = after
        .iter()
        .position(|(_, e)| matches!(e, VoiceEvent::Audio(_)));
    let user_turn = after
        .iter()
        .position(|(_, e)| matches!(e, VoiceEvent::UserTurn(t) if t.contains("address")))
        .expect("the interrupting words became the next turn");
    assert!(first_audio.is_some_and(|a| a > user_turn), "{after:?}");
    let reports = turns(&after);
    assert_eq!(reports.len(), 1);
    assert_eq!(reports[0].reply, "Okay, stopping there.");
    assert_eq!(reports[0].outcome, TurnOutcome::Completed);
    assert!(after[0].0 >= interrupted_at);
}

#[tokio::test(start_paused = true)]
async fn a_false_interruption_resumes_the_reply_and_nothing_is_lost() {
    let model = ScriptedModel::new([ScriptedResponse::text(
        "We are open from nine to five on weekdays and from ten to two on Saturdays.",
    )]);
    // The cough is heard as speech by the VAD but brings no words.
    let stt = ScriptedStt::new(["When are you open?", ""]);
    let tts = ScriptedTts::new(ms(50), ms(150));
    let session = voice_session(agent("phone", Arc::new(model), store()), stt, tts, "call-3");
    let (input, events) = session.start().await.expect("start");
    let all = drain(events);
    say_words(&input, ms(1000), ms(800)).await;
    say_words(&input, ms(300), ms(3000)).await;
    play(&input, silence(AudioFormat::SPEECH, ms(2000))).await;
    input.close().await.expect("close");
    let all = all.await.expect("events");
    let resumed = all
        .iter()
        .filter(|(_, e)| matches!(e, VoiceEvent::Resumed))
        .count();
    assert_eq!(resumed, 1, "{all:?}");
    assert!(
        !all.iter()
            .any(|(_, e)| matches!(e, VoiceEvent::Interrupted))
    );
    // 16 words at 150 ms: all of it played.
    assert_eq!(audio_played(&all), ms(16 * 150));
    assert_eq!(turns(&all)[0].outcome, TurnOutcome::Completed);
}

#[tokio::test(start_paused = true)]
async fn an_unfinished_sentence_waits_the_maximum_delay() {
    async fn stop_to_turn(line: &str) -> Duration {
        let model = ScriptedModel::repeating([ScriptedResponse::text("Sure.")]);
        let stt = ScriptedStt::new([line]);
        let session = voice_session(
            agent("phone", Arc::new(model), store()),
            stt,
            ScriptedTts::default(),
            "call-4",
        );
        let (input, events) = session.start().await.expect("start");
        let all = drain(events);
        say_words(&input, ms(800), ms(3000)).await;
        input.close().await.expect("close");
        let all = all.await.expect("events");
        let at = |f: &dyn Fn(&VoiceEvent) -> bool| {
            all.iter()
                .find(|(_, e)| f(e))
                .map(|(t, _)| *t)
                .expect("event")
        };
        let stopped = at(&|e| matches!(e, VoiceEvent::UserSpeechStopped));
        let turn = at(&|e| matches!(e, VoiceEvent::UserTurn(_)));
        // The VAD reports the stop 300 ms after the speech ended.
        turn - stopped + ms(300)
    }
    assert_eq!(stop_to_turn("Book me a table for two.").await, ms(400));
    assert_eq!(stop_to_turn("I'd like to").await, ms(2000));
}

#[tokio::test(start_paused = true)]
async fn an_approval_is_spoken_uninterruptibly_and_the_run_suspends() {
    let st = store();
    let agent = approval_agent("phone", st.clone());
    // The caller talks over the approval phrase: it is not interrupted.
    let stt = ScriptedStt::new(["Refund order 427.", "Hello? Are you there?"])
        .with_interim_after(ms(100));
    let tts = ScriptedTts::new(ms(50), ms(100));
    let session = voice_session(agent, stt, tts.clone(), "call-5");
    let phrase = session.config().approval_phrase.clone();
    let waiting = session.config().still_waiting_phrase.clone();
    let (input, mut events) = session.start().await.expect("start");
    let pusher = {
        let input = input.clone();
        tokio::spawn(async move {
            say_words(&input, ms(800), ms(800)).await;
            say_words(&input, ms(600), ms(600)).await;
        })
    };
    let all = collect_until(&mut events, |e| matches!(e, VoiceEvent::TurnCompleted(_))).await;
    pusher.await.expect("pusher");
    assert!(all.iter().any(
        |(_, e)| matches!(e, VoiceEvent::ApprovalRequired(r) if r.call.name == "orders.refund")
    ));
    let report = turns(&all).remove(0);
    assert_eq!(report.outcome, TurnOutcome::Suspended);
    let run = report.run.expect("a run");
    let record = st
        .get_run(&"acme".parse().expect("tenant"), &run)
        .await
        .expect("store")
        .expect("the run is stored");
    assert_eq!(record.status, agentkit_core::store::RunStatus::Suspended);
    // The caller's next words wait for the approval too: the run is not retried.
    let rest = collect_until(&mut events, |e| matches!(e, VoiceEvent::TurnCompleted(_))).await;
    assert!(
        matches!(&turns(&rest)[0].outcome, TurnOutcome::Failed(m) if m.contains("suspended")),
        "{rest:?}"
    );
    play(&input, silence(AudioFormat::SPEECH, ms(2000))).await;
    assert_eq!(tts.spoken(), vec![phrase.clone(), waiting.clone()]);
    input.hang_up().await.expect("hang up");
    let mut rest2 = collect_until(&mut events, |e| matches!(e, VoiceEvent::Ended(_))).await;
    let mut rest = rest;
    rest.append(&mut rest2);
    let words = (phrase.split_whitespace().count() + waiting.split_whitespace().count()) as u64;
    let mut everything = all;
    everything.extend(rest);
    assert!(
        !everything
            .iter()
            .any(|(_, e)| matches!(e, VoiceEvent::Interrupted))
    );
    assert_eq!(
        audio_played(&everything),
        ms(words * 100),
        "the phrase played whole"
    );
}

#[tokio::test(start_paused = true)]
async fn a_cut_speech_stream_is_a_typed_error_and_the_session_ends_cleanly() {
    let model = ScriptedModel::new(Vec::<ScriptedResponse>::new());
    let stt = ScriptedStt::new(["never heard"]).failing_after(ms(500));
    let session = voice_session(
        agent("phone", Arc::new(model), store()),
        stt,
        ScriptedTts::default(),
        "call-6",
    );
    let (input, mut events) = session.start().await.expect("start");
    let pusher = {
        let input = input.clone();
        tokio::spawn(async move {
            for f in speech(AudioFormat::SPEECH, ms(2000)) {
                if input.push_audio(f).await.is_err() {
                    return true;
                }
                tokio::time::sleep(ms(20)).await;
            }
            false
        })
    };
    let all = collect_until(&mut events, |e| matches!(e, VoiceEvent::Ended(_))).await;
    match &all.last().expect("events").1 {
        VoiceEvent::Ended(Err(e)) => assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}"),
        other => panic!("expected a failed end, got {other:?}"),
    }
    assert!(events.recv().await.is_none(), "nothing after Ended");
    assert!(pusher.await.expect("pusher"), "pushing after the end fails");
    assert!(
        input
            .push_audio(silence(AudioFormat::SPEECH, ms(20)).remove(0))
            .await
            .is_err()
    );
}

#[tokio::test(start_paused = true)]
async fn an_uninterruptible_notice_plays_to_the_end() {
    let model = ScriptedModel::repeating([ScriptedResponse::text("Noted.")]);
    let stt = ScriptedStt::new(["Wait, what?"]).with_interim_after(ms(100));
    let tts = ScriptedTts::new(ms(0), ms(100));
    let session = voice_session(agent("phone", Arc::new(model), store()), stt, tts, "call-7");
    let (input, events) = session.start().await.expect("start");
    let all = drain(events);
    let notice = "This call is recorded for quality and training purposes.";
    input.say(notice, false).await.expect("say");
    play(&input, silence(AudioFormat::SPEECH, ms(100))).await;
    say_words(&input, ms(400), ms(1500)).await;
    input.close().await.expect("close");
    let all = all.await.expect("events");
    assert!(
        !all.iter()
            .any(|(_, e)| matches!(e, VoiceEvent::Interrupted))
    );
    // The notice (9 words) and the answer (1 word) both played whole.
    assert_eq!(audio_played(&all), ms(10 * 100));
}

#[tokio::test(start_paused = true)]
async fn dropping_every_input_handle_closes_the_session_after_the_last_turn() {
    let model = ScriptedModel::new([ScriptedResponse::text("Goodbye.")]);
    let stt = ScriptedStt::new(["Thanks, that's all."]);
    let session = voice_session(
        agent("phone", Arc::new(model), store()),
        stt,
        ScriptedTts::default(),
        "call-8",
    );
    let (input, events) = session.start().await.expect("start");
    let all = drain(events);
    say_words(&input, ms(600), ms(400)).await;
    drop(input);
    let all = tokio::time::timeout(Duration::from_secs(60), all)
        .await
        .expect("the session ends once its input is gone")
        .expect("events");
    assert_eq!(turns(&all)[0].reply, "Goodbye.");
    assert!(matches!(all.last(), Some((_, VoiceEvent::Ended(Ok(()))))));
}

#[tokio::test(start_paused = true)]
async fn a_recogniser_slower_than_the_endpointing_maximum_still_gets_its_turn_timed_from_the_stop()
{
    let model = ScriptedModel::new([ScriptedResponse::text("Done.")]);
    // 3 s to transcribe, longer than the 2 s endpointing maximum (a batch model on a CPU).
    let stt = ScriptedStt::new(["Cancel my subscription."]).with_final_delay(ms(3000));
    let session = voice_session(
        agent("phone", Arc::new(model), store()),
        stt,
        ScriptedTts::new(ms(0), ms(100)),
        "call-9",
    );
    let (input, events) = session.start().await.expect("start");
    let all = drain(events);
    say_words(&input, ms(800), ms(4000)).await;
    input.close().await.expect("close");
    let all = all.await.expect("events");
    let reports = turns(&all);
    assert_eq!(reports.len(), 1, "{all:?}");
    assert_eq!(reports[0].user_text, "Cancel my subscription.");
    let l = reports[0].latency;
    // From the stop: the VAD's 300 ms, then the recogniser's 3 s; no endpointing wait after.
    assert_eq!(l.stt, ms(3300));
    assert_eq!(l.endpointing, ms(0));
    assert_eq!(l.end_to_end, ms(3300));
}
