//! Scenario C's sales call: a real `agentkit-voice` session on a simulated phone line.
//!
//! The sales agent greets the lead ("Hello, I saw your interest in Spicy Chips."), the lead's
//! audio goes through voice activity detection, speech-to-text and endpointing, the agent
//! answers with the first-timer discount and rates the lead's interest with a governed tool,
//! and the reply is spoken sentence by sentence. Offline, the recogniser and the voice are the
//! scripted test providers (the lead's "audio" is a tone the VAD hears as speech); a host swaps
//! in Deepgram/Whisper and ElevenLabs/espeak-ng and a Twilio media stream without changing this
//! code. The call's model tokens and audio seconds are metered to the tenant like any run.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use agentkit::agent::Agent;
use agentkit::id::TenantId;
use agentkit::policy::AllowListPolicy;
use agentkit::store::StateStore;
use agentkit::testkit::{ScriptedModel, ScriptedResponse};
use agentkit::tool::{FnTool, SideEffect, ToolSpec};
use agentkit::voice::testkit::{ScriptedStt, ScriptedTts, silence, speech};
use agentkit::voice::{AudioFormat, VoiceEvent, VoiceSession};
use agentkit::{Error, Result};
use serde_json::{Value, json};

/// What the sales agent says first.
pub const OPENING: &str = "Hello, I saw your interest in Spicy Chips.";
/// What the lead says (as the recogniser hears it).
pub const LEAD_SAYS: &str = "Yes, I love spicy snacks. Is there a deal for new customers?";

/// Calls `lead` (`{"name", "phone"}`) for `tenant`; returns the transcript and the interest the
/// agent recorded.
pub async fn phone_call(
    state: Arc<dyn StateStore>,
    tenant: TenantId,
    lead: Value,
) -> Result<Value> {
    let interest: Arc<Mutex<Option<String>>> = Arc::default();
    let rate = {
        let interest = interest.clone();
        FnTool::new(
            ToolSpec::new(
                "sales.rate_interest",
                "Records how interested the lead sounds: low, medium or high",
                json!({"type": "object", "properties": {"level": {"enum": ["low", "medium", "high"]}},
                       "required": ["level"], "additionalProperties": false}),
            )
            .with_side_effect(SideEffect::Write),
            move |_ctx, args| {
                let interest = interest.clone();
                async move {
                    let level = args["level"].as_str().unwrap_or_default().to_owned();
                    *interest.lock().map_err(|_| Error::Internal("poisoned".into()))? =
                        Some(level.clone());
                    Ok(json!({"recorded": level}))
                }
            },
        )
    };
    let model = ScriptedModel::new([
        ScriptedResponse::tool_call("sales.rate_interest", json!({"level": "high"})),
        ScriptedResponse::text(
            "Great! We have a 20% discount for first-timers. Shall I send you the code?",
        ),
    ]);
    let agent = Agent::builder()
        .id("sales_voice")
        .system_prompt("You call leads who asked about Spicy Chips. Be brief and friendly.")
        .model(Arc::new(model), "scripted-sales-1")
        .tool(Arc::new(rate))
        .policy(AllowListPolicy::new(["sales.rate_interest"]).into_arc())
        .store(state)
        .build()?;
    let phone = lead["phone"].as_str().unwrap_or("unknown");
    let digits: String = phone.chars().filter(char::is_ascii_digit).collect();
    let stt = ScriptedStt::new([LEAD_SAYS]).with_final_delay(Duration::from_millis(100));
    let tts = ScriptedTts::new(Duration::ZERO, Duration::from_millis(15));
    let session = VoiceSession::new(
        agent,
        Arc::new(stt),
        Arc::new(tts),
        tenant,
        format!("call-{digits}"),
    )?;
    let (input, mut events) = session.start().await?;
    input.say(OPENING, false).await?;
    // The lead's side of the line, at speaking pace: a pause, their answer, a pause.
    let feeder = {
        let input = input.clone();
        tokio::spawn(async move {
            let frames = silence(AudioFormat::SPEECH, Duration::from_millis(300))
                .into_iter()
                .chain(speech(AudioFormat::SPEECH, Duration::from_millis(1200)))
                .chain(silence(AudioFormat::SPEECH, Duration::from_millis(800)));
            let mut tick = tokio::time::interval(Duration::from_millis(20));
            for frame in frames {
                tick.tick().await;
                if input.push_audio(frame).await.is_err() {
                    return;
                }
            }
            let _ = input.close().await;
        })
    };
    // `say` speaks outside a turn, so it is not reported as a turn's text: log it here.
    let mut transcript = vec![json!({"role": "agent", "text": OPENING})];
    let mut ended = Ok(());
    while let Some(event) = events.recv().await {
        match event {
            VoiceEvent::AgentText(text) => transcript.push(json!({"role": "agent", "text": text})),
            VoiceEvent::UserTurn(text) => transcript.push(json!({"role": "lead", "text": text})),
            VoiceEvent::Ended(result) => {
                ended = result;
                break;
            }
            _ => {}
        }
    }
    let _ = feeder.await;
    ended?;
    let interest = interest
        .lock()
        .map_err(|_| Error::Internal("poisoned".into()))?
        .clone()
        .unwrap_or_else(|| "unknown".into());
    Ok(json!({"transcript": transcript, "interest": interest}))
}
