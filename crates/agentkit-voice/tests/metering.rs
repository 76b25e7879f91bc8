//! Audio is usage like tokens: priced by the agent's meter and counted against its budgets.

use std::sync::Arc;
use std::time::Duration;

use agentkit_core::agent::Agent;
use agentkit_core::id::TenantId;
use agentkit_core::store::{InMemoryStore, StateStore, UsageKind, UsageQuery, UsageStore};
use agentkit_core::testkit::{ScriptedModel, ScriptedResponse};
use agentkit_policy::{Meter, PolicyEngine, PriceBook, PriceTable};
use agentkit_voice::testkit::{ScriptedStt, ScriptedTts, silence, speech};
use agentkit_voice::{AudioFormat, TurnOutcome, VoiceEvent, VoiceInput, VoiceSession};
use chrono::{TimeZone, Utc};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// $1 per minute of audio, nothing else.
fn book() -> Arc<PriceBook> {
    Arc::new(
        PriceBook::new(vec![PriceTable {
            version: "v1".into(),
            effective_from: Utc
                .with_ymd_and_hms(2020, 1, 1, 0, 0, 0)
                .single()
                .expect("date"),
            models: Default::default(),
            tool_call_usd: 0.0,
            tools: Default::default(),
            knowledge_query_usd: 0.0,
            audio_per_minute_usd: 1.0,
        }])
        .expect("prices"),
    )
}

async fn talk(input: &VoiceInput, speaking: Duration) {
    for f in speech(AudioFormat::SPEECH, speaking)
        .into_iter()
        .chain(silence(AudioFormat::SPEECH, ms(1500)))
    {
        input.push_audio(f).await.expect("push");
        tokio::time::sleep(ms(20)).await;
    }
}

#[tokio::test(start_paused = true)]
async fn audio_is_priced_and_an_exhausted_budget_stops_the_next_turn() {
    let store = Arc::new(InMemoryStore::new());
    // A daily budget of 5 cents: 3 seconds of audio.
    let engine = PolicyEngine::from_toml(
        r#"
        [agents.phone]
        spend = { day_usd = 0.05 }
        "#,
        store.clone(),
    )
    .expect("policy");
    let state: Arc<dyn StateStore> = store.clone();
    let model = ScriptedModel::repeating([ScriptedResponse::text("Certainly, one moment.")]);
    let agent = Agent::builder()
        .id("phone")
        .model(Arc::new(model.clone()), "m")
        .store(state)
        .policy(Arc::new(engine.clone()))
        .meter(Arc::new(Meter::new(book(), engine)))
        .build()
        .expect("agent");
    let stt = ScriptedStt::new(["Please check my order.", "And my other order?"]);
    let tts = ScriptedTts::new(ms(0), ms(250));
    let session =
        VoiceSession::new(agent, Arc::new(stt), Arc::new(tts), "acme", "call-1").expect("session");
    let (input, mut events) = session.start().await.expect("start");
    let feeder = {
        let input = input.clone();
        tokio::spawn(async move {
            talk(&input, ms(2000)).await;
            talk(&input, ms(1000)).await;
            input.close().await.expect("close");
        })
    };
    let mut reports = Vec::new();
    while let Some(e) = events.recv().await {
        match e {
            VoiceEvent::TurnCompleted(r) => reports.push(r),
            VoiceEvent::Ended(r) => {
                r.expect("the call ends cleanly");
                break;
            }
            _ => {}
        }
    }
    feeder.await.expect("feeder");

    // Turn 1 is answered; its audio (over 3 s) is priced and spends the budget.
    assert_eq!(reports.len(), 2, "{reports:?}");
    assert_eq!(reports[0].outcome, TurnOutcome::Completed);
    let usage = store
        .list_usage(
            &TenantId::new("acme").expect("tenant"),
            &UsageQuery::all().kind(UsageKind::AudioMillis),
        )
        .await
        .expect("usage");
    let first: Vec<_> = usage.iter().filter(|e| e.run == reports[0].run).collect();
    assert_eq!(first.len(), 2, "stt and tts audio of turn 1: {usage:?}");
    for e in &first {
        let cost = e.cost.expect("audio is priced");
        // $1 per minute: quantity ms / 60,000.
        let expected = e.quantity as f64 / 60_000.0;
        assert!(
            (cost.as_f64() - expected).abs() < 1e-6,
            "{} ms priced {cost:?}",
            e.quantity
        );
        assert_eq!(e.price_version.as_deref(), Some("v1"));
    }
    // Turn 2: the model call is refused by the spent budget; the caller hears the error phrase.
    match &reports[1].outcome {
        TurnOutcome::Failed(m) => assert!(m.contains("spend limit"), "{m}"),
        other => panic!("expected the budget to stop turn 2, got {other:?}"),
    }
    assert_eq!(model.calls(), 1, "the refused turn never reached the model");
}
