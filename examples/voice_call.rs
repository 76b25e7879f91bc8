//! A phone call, offline: a caller's question spoken by espeak-ng into a WAV → the voice
//! session (VAD, speech-to-text, endpointing) → an agent that looks the order up with a tool
//! under the policy gate → sentence-by-sentence speech → the reply written to a WAV, with the
//! turn's latency table and the metered audio.
//!
//! `cargo run --example voice_call --features voice,voice-espeak,sqlite`
//!
//! Needs the `espeak-ng` program (`apt-get install espeak-ng`); without it the voices are
//! synthetic tones and the example says so. Speech-to-text is scripted: no offline recogniser
//! that builds here is good enough (PocketSphinx 0.8 misheard 80 % of the words of espeak-ng
//! speech); with a key, `voice-deepgram` or `voice-openai` hear the WAV for real.

use std::sync::Arc;
use std::time::Duration;

use agentkit::agent::Agent;
use agentkit::policy::AllowListPolicy;
use agentkit::store::{StateStore, UsageKind, UsageQuery};
use agentkit::testkit::{ScriptedModel, ScriptedResponse};
use agentkit::tool::{FnTool, ToolSpec};
use agentkit::voice::providers::espeak::EspeakTts;
use agentkit::voice::testkit::{ScriptedStt, ScriptedTts};
use agentkit::voice::tts::{TextToSpeech, TtsOptions};
use agentkit::voice::{AudioClip, AudioFormat, FRAME, VoiceEvent, VoiceSession};
use agentkit::{Error, Result};
use agentkit_store_sqlite::SqliteStore;
use serde_json::json;

const QUESTION: &str = "What is the status of order 427?";

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
    let status = FnTool::new(
        ToolSpec::new(
            "orders.status",
            "Looks up an order's shipping status",
            json!({"type": "object", "properties": {"order": {"type": "string"}}, "required": ["order"]}),
        ),
        |_ctx, args| async move {
            Ok(json!({"order": args["order"], "status": "shipped", "eta": "Monday"}))
        },
    );
    let model = ScriptedModel::new([
        ScriptedResponse::tool_call("orders.status", json!({"order": "427"})),
        ScriptedResponse::text(
            "Order 427 shipped yesterday. It should arrive on Monday. Anything else?",
        ),
    ]);
    let agent = Agent::builder()
        .id("phone")
        .system_prompt("You answer the phone for an online shop. Keep answers short.")
        .model(Arc::new(model), "scripted")
        .tool(Arc::new(status))
        .policy(AllowListPolicy::new(["orders.status"]).into_arc())
        .store(Arc::clone(&store))
        .build()?;

    // 3. The call: the WAV is played into the session at speaking pace.
    let stt = ScriptedStt::new([QUESTION]).with_final_delay(Duration::from_millis(120));
    let session = VoiceSession::new(agent, Arc::new(stt), voice, "acme", "call-1")?;
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
