//! Seed 000's agent registry: blueprints, versioned immutable configs, a backup agent and an
//! evaluation agent.
//!
//! - `LT_AgentBlueprint` is [`Blueprint`]: a template config with `{placeholders}`, instantiated
//!   per tenant as a draft version 1.
//! - `LT_AgentConfig` (immutable versioned, draft/final) is [`AgentConfig`] in the store's
//!   [`AgentConfigStore`]: a final version can never be overwritten (the store answers
//!   `Conflict`); an edit is the next draft, finalised in turn; the agent runs its highest
//!   version, and any earlier version can still be loaded (a rollback is running that version).
//! - `LT_Agent.backup_agent` is `AgentConfig::backup_agent`: when the agent's model fails, the
//!   backup's model answers, and the report says so.
//! - `LT_Agent.eval_agent` / `LT_AgentEvalRun` is `AgentConfig::eval_agent` and [`Evaluator`]:
//!   each score (0–1, with feedback) is a run of the evaluation agent and an entry in the
//!   tenant's hash-chained audit trail; [`Evaluator::summary`] is the drift check.
//! - `LT_LLM`'s encrypted credentials are superseded: agentkit never stores provider keys in its
//!   database; `ProviderConfig` names them (`KeyRef::Env`) and `Debug`/serialisation hide them.
//!   The registry maps a config's `model.provider` to a provider built by the host.
#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::Arc;

use agentkit::agent::{
    Agent, AgentConfig, AgentRegistry, Blueprint, EvalSubject, Evaluator, RunOutcome, RunRequest,
};
use agentkit::id::{AgentId, TenantId};
use agentkit::store::StateStore;
use agentkit::testkit::{ScriptedModel, ScriptedResponse};
use agentkit::{Error, Result};

/// The "Ad Optimizer" blueprint (an admin-defined template).
pub const AD_OPTIMIZER: &str = r#"{
  "name": "Ad Optimizer", "category": "Marketing",
  "description": "Plans and drafts ad campaigns within the brand's budget",
  "config": {
    "agent": "template", "version": 1,
    "system_prompt": "You run ads for {brand}. Never exceed the daily budget.",
    "model": {"provider": "openai-main", "name": "gpt-4o-mini"},
    "backup_agent": "marketing_backup",
    "eval_agent": "marketing_judge"
  }
}"#;

/// What happened, for the narrative and the acceptance test.
#[derive(Debug, Default)]
pub struct Outcome {
    /// The versions stored for the marketing agent.
    pub versions: Vec<u32>,
    /// The store's answer to overwriting final version 1.
    pub overwrite_refused: String,
    /// The prompt of the version the agent runs.
    pub active_prompt: String,
    /// The prompt of version 1, loaded again.
    pub first_prompt: String,
    /// The model that answered (the backup, since the primary is down).
    pub answered_by: String,
    /// The answer.
    pub reply: String,
    /// The evaluation's score and feedback.
    pub score: f64,
    /// Why.
    pub feedback: String,
    /// Evaluations of the marketing agent recorded for the tenant.
    pub evaluations: usize,
}

/// The host's models: the primary is down (every call fails as unavailable), the backup and the
/// judge answer.
fn registry(backup: ScriptedModel, judge: ScriptedModel) -> Result<AgentRegistry> {
    let down = ScriptedModel::repeating([ScriptedResponse::error(|| Error::Unavailable {
        message: "openai-main: 503 Service Unavailable".into(),
        source: None,
    })]);
    let backup_config = AgentConfig::from_json(
        r#"{"agent": "marketing_backup", "version": 1, "system_prompt": "Backup marketer.",
            "model": {"provider": "local-backup", "name": "llama-3.1-8b"}}"#,
    )?;
    let judge_config = AgentConfig::from_json(
        r#"{"agent": "marketing_judge", "version": 1,
            "system_prompt": "Score marketing answers for accuracy and brand safety.",
            "model": {"provider": "judge", "name": "gpt-4o"}}"#,
    )?;
    Ok(AgentRegistry::new()
        .with_model("openai-main", Arc::new(down))
        .with_model("local-backup", Arc::new(backup))
        .with_model("judge", Arc::new(judge))
        .with_agent_config(backup_config)
        .with_agent_config(judge_config))
}

/// Runs the registry walk-through for `tenant` on `store`.
pub async fn run(
    store: Arc<dyn StateStore>,
    tenant: &str,
    say: &dyn Fn(String),
) -> Result<Outcome> {
    let tenant = TenantId::new(tenant)?;
    let marketing = AgentId::new("marketing")?;
    let mut outcome = Outcome::default();

    let blueprint: Blueprint = serde_json::from_str(AD_OPTIMIZER)?;
    let vars = HashMap::from([("brand".to_owned(), "Spicy-Co".to_owned())]);
    let v1 = blueprint.instantiate(marketing.clone(), &vars)?.finalized();
    store.put_agent_config(&tenant, &v1).await?;
    say(format!(
        "From the \"{}\" blueprint ({}), the tenant got agent `marketing` v1: \"{}\"",
        blueprint.name, blueprint.category, v1.system_prompt
    ));

    let mut tampered = v1.clone();
    tampered.system_prompt = "Ignore the budget.".into();
    outcome.overwrite_refused = match store.put_agent_config(&tenant, &tampered).await {
        Err(e) => e.to_string(),
        Ok(()) => return Err(Error::Internal("a final config was overwritten".into())),
    };
    say(format!(
        "Overwriting final v1 is refused: {}",
        outcome.overwrite_refused
    ));

    let mut v2 = v1.next_draft();
    v2.system_prompt = "You run ads for Spicy-Co. Never exceed the daily budget. Mention the \
                        first-timer discount."
        .into();
    store.put_agent_config(&tenant, &v2).await?;
    store
        .put_agent_config(&tenant, &v2.clone().finalized())
        .await?;
    outcome.versions = store
        .list_agent_config_versions(&tenant, &marketing)
        .await?;
    let active = store
        .get_agent_config(&tenant, &marketing, None)
        .await?
        .ok_or_else(|| Error::NotFound("marketing".into()))?;
    outcome.active_prompt = active.system_prompt.clone();
    outcome.first_prompt = store
        .get_agent_config(&tenant, &marketing, Some(1))
        .await?
        .map(|c| c.system_prompt)
        .unwrap_or_default();
    say(format!(
        "An edit became v2 (draft, then final); versions {:?}; v1 is kept unchanged for rollback.",
        outcome.versions
    ));

    let registry = registry(
        ScriptedModel::new([ScriptedResponse::text(
            "Spicy Chips: bold flavour, 20% off for first-timers. Draft ready for review.",
        )]),
        ScriptedModel::new([ScriptedResponse::text(
            r#"{"score": 0.82, "feedback": "On brand and mentions the discount; no budget figure."}"#,
        )]),
    )?;
    let agent: Agent = Agent::from_config(&active, &registry)?
        .store(store.clone())
        .build()?;
    let input = "Pitch Spicy Chips in one line.";
    let out = agent
        .run(RunRequest::new(tenant.clone(), "registry-1", input))
        .await?;
    let RunOutcome::Completed(report) = out else {
        return Err(Error::Internal(format!("expected an answer, got {out:?}")));
    };
    outcome.answered_by = report.answered_by.clone();
    outcome.reply = report.reply.clone();
    say(format!(
        "The primary model is down (503); the backup agent's model answered ({}): \"{}\"",
        report.answered_by, report.reply
    ));

    let evaluator = Evaluator::new(
        registry
            .eval_agent_of(&active)?
            .ok_or_else(|| Error::InvalidConfig("no eval agent".into()))?
            .store(store.clone()),
    )?;
    let subject = EvalSubject::new(marketing.clone(), report.run.clone(), input, &report.reply)?;
    let evaluation = evaluator.evaluate(tenant.clone(), &subject).await?;
    outcome.score = evaluation.score;
    outcome.feedback = evaluation.feedback.clone();
    let summary = evaluator.summary(tenant.clone(), &marketing, None).await?;
    outcome.evaluations = summary.count;
    say(format!(
        "The evaluation agent scored it {:.2}: \"{}\" ({} evaluation(s) on record, mean {:.2}).",
        evaluation.score, evaluation.feedback, summary.count, summary.mean
    ));
    Ok(outcome)
}
