//! Evaluation agents: one agent scoring another's output.
//!
//! An [`Evaluator`] wraps an agent whose answer is a score from 0 to 1 and feedback
//! ([`Evaluator::output_schema`], enforced like any structured output). Each evaluation is a run
//! of that agent (metered and budgeted like any other) and an `agent.evaluation` entry in the
//! tenant's audit chain, tied to the evaluated agent and run — so scores are tamper-evident,
//! tenant-scoped and queryable with the audit queries, and [`Evaluator::summary`] reads recent
//! scores back for drift detection. Evaluating the same run again returns the recorded
//! evaluation.
//!
//! ```
//! # #[cfg(feature = "testkit")]
//! # async fn demo() -> agentkit_core::Result<()> {
//! use std::sync::Arc;
//! use agentkit_core::agent::{Agent, EvalSubject, Evaluator, RunRequest};
//! use agentkit_core::store::InMemoryStore;
//! use agentkit_core::testkit::{ScriptedModel, ScriptedResponse};
//!
//! let store = Arc::new(InMemoryStore::new());
//! let judge = Arc::new(ScriptedModel::new([ScriptedResponse::text(
//!     r#"{"score": 0.9, "feedback": "On brand and within budget."}"#,
//! )]));
//! let evaluator = Evaluator::new(
//!     Agent::builder().id("marketing_judge").model(judge, "scripted").store(store.clone()),
//! )?;
//! let subject = EvalSubject::new("marketing", "run-1", "Sell Spicy Chips", "Draft created.")?;
//! let eval = evaluator.evaluate("acme", &subject).await?;
//! assert_eq!(eval.score, 0.9);
//! let summary = evaluator.summary("acme", &"marketing".parse()?, None).await?;
//! assert_eq!((summary.count, summary.mean), (1, 0.9));
//! # Ok(()) }
//! # #[cfg(feature = "testkit")]
//! # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
//! ```

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::{Agent, AgentBuilder, RunOutcome, RunRequest};
use crate::error::{Error, Result};
use crate::id::{AgentId, IntoId, RunId, SessionId, TenantId};
use crate::model::OutputSchema;
use crate::redact::hash_json;
use crate::store::{AuditEntry, AuditQuery, NewAuditEntry};

/// The audit entry kind of an evaluation.
pub const EVALUATION_KIND: &str = "agent.evaluation";

/// What is evaluated: one run of an agent, its request and its answer.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct EvalSubject {
    /// The agent that answered.
    pub agent: AgentId,
    /// Its run.
    pub run: RunId,
    /// The request it answered.
    pub input: String,
    /// Its answer.
    pub output: String,
}

impl EvalSubject {
    /// A subject from ids (validated) and texts.
    pub fn new(
        agent: impl IntoId<AgentId>,
        run: impl IntoId<RunId>,
        input: impl Into<String>,
        output: impl Into<String>,
    ) -> Result<Self> {
        Ok(Self {
            agent: agent.into_id()?,
            run: run.into_id()?,
            input: input.into(),
            output: output.into(),
        })
    }
}

/// One evaluation: a score from 0 to 1 and the evaluator's feedback.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Evaluation {
    /// The evaluating agent.
    pub evaluator: AgentId,
    /// The evaluated agent.
    pub agent: AgentId,
    /// The evaluated run.
    pub run: RunId,
    /// From 0 (useless) to 1 (perfect).
    pub score: f64,
    /// Why.
    pub feedback: String,
    /// The evaluator's own run.
    pub eval_run: RunId,
    /// When it was recorded.
    pub at: DateTime<Utc>,
}

/// Scores of an agent over a period (drift detection).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
#[non_exhaustive]
pub struct EvalSummary {
    /// Evaluations in the period.
    pub count: usize,
    /// Their mean score (0 when there are none).
    pub mean: f64,
    /// The lowest score (0 when there are none).
    pub min: f64,
}

/// An agent that scores other agents' outputs (see the module docs).
#[derive(Debug, Clone)]
pub struct Evaluator {
    agent: Agent,
}

impl Evaluator {
    /// The structured output every evaluation answers with: `{"score": 0..1, "feedback": ""}`.
    pub fn output_schema() -> OutputSchema {
        OutputSchema {
            name: "evaluation".into(),
            schema: json!({
                "type": "object",
                "properties": {
                    "score": {"type": "number", "minimum": 0, "maximum": 1},
                    "feedback": {"type": "string"}
                },
                "required": ["score", "feedback"],
                "additionalProperties": false
            }),
        }
    }

    /// Builds the evaluating agent with [`Evaluator::output_schema`] as its output schema (its
    /// tools, policy and store are the builder's).
    pub fn new(agent: AgentBuilder) -> Result<Self> {
        Ok(Self {
            agent: agent.output_schema(Self::output_schema()).build()?,
        })
    }

    /// The evaluating agent.
    pub fn agent(&self) -> &Agent {
        &self.agent
    }

    /// Scores `subject` for `tenant`: a run of the evaluating agent, recorded in the audit chain.
    /// A run already evaluated by this agent returns the recorded evaluation.
    pub async fn evaluate(
        &self,
        tenant: impl IntoId<TenantId>,
        subject: &EvalSubject,
    ) -> Result<Evaluation> {
        let tenant = tenant.into_id()?;
        if let Some(done) = self.recorded(&tenant, subject).await? {
            return Ok(done);
        }
        let digest = hash_json(&json!([subject.agent.as_str(), subject.run.as_str()]));
        let session = SessionId::new(format!("eval:{}", &digest[..32]))?;
        let request = RunRequest::new(
            tenant.clone(),
            session.clone(),
            format!(
                "Evaluate one answer of the agent `{agent}`. Score it from 0 to 1 and say why.\n\
                 <request>\n{input}\n</request>\n<answer>\n{output}\n</answer>",
                agent = subject.agent,
                input = subject.input,
                output = subject.output,
            ),
        );
        let report = match self.agent.run(request).await? {
            RunOutcome::Completed(report) => report,
            other => {
                return Err(Error::InvalidOutput(format!(
                    "evaluator `{}` did not answer (it {}); evaluators must not need approvals",
                    self.agent.id(),
                    match other {
                        RunOutcome::Suspended(_) => "suspended for approval",
                        _ => "was already resumed",
                    }
                )));
            }
        };
        let answer = report.structured.unwrap_or(Value::Null);
        let score = answer["score"]
            .as_f64()
            .ok_or_else(|| Error::InvalidOutput(format!("evaluation without a score: {answer}")))?;
        let feedback = answer["feedback"].as_str().unwrap_or_default().to_owned();
        let mut entry = NewAuditEntry::new(
            tenant.clone(),
            EVALUATION_KIND,
            format!("agent:{}", self.agent.id()),
            "agent.evaluate",
        );
        entry.decision = Some(format!("{score:.3}"));
        entry.agent = Some(subject.agent.clone());
        entry.run = Some(subject.run.clone());
        entry.output = json!({
            "evaluator": self.agent.id().as_str(),
            "score": score,
            "feedback": feedback,
            "eval_run": report.run.as_str(),
        })
        .into();
        let stored = self.agent.store().append_audit(&tenant, entry).await?;
        parse(&stored).ok_or_else(|| {
            Error::storage(
                "the stored evaluation entry does not read back",
                false,
                None,
            )
        })
    }

    /// This evaluator's recorded evaluations of `agent` since `since` (all when `None`), oldest
    /// first.
    pub async fn evaluations(
        &self,
        tenant: impl IntoId<TenantId>,
        agent: &AgentId,
        since: Option<DateTime<Utc>>,
    ) -> Result<Vec<Evaluation>> {
        let tenant = tenant.into_id()?;
        let mut query = AuditQuery::all().kind(EVALUATION_KIND).agent(agent.clone());
        query.from = since;
        let entries = self.agent.store().list_audit(&tenant, &query).await?;
        Ok(entries
            .iter()
            .filter_map(parse)
            .filter(|e| &e.evaluator == self.agent.id())
            .collect())
    }

    /// Count, mean and lowest score of this evaluator's evaluations of `agent` since `since`.
    pub async fn summary(
        &self,
        tenant: impl IntoId<TenantId>,
        agent: &AgentId,
        since: Option<DateTime<Utc>>,
    ) -> Result<EvalSummary> {
        let scores: Vec<f64> = self
            .evaluations(tenant, agent, since)
            .await?
            .iter()
            .map(|e| e.score)
            .collect();
        if scores.is_empty() {
            return Ok(EvalSummary::default());
        }
        Ok(EvalSummary {
            count: scores.len(),
            mean: scores.iter().sum::<f64>() / scores.len() as f64,
            min: scores.iter().copied().fold(f64::INFINITY, f64::min),
        })
    }

    async fn recorded(
        &self,
        tenant: &TenantId,
        subject: &EvalSubject,
    ) -> Result<Option<Evaluation>> {
        let mut query = AuditQuery::all()
            .kind(EVALUATION_KIND)
            .agent(subject.agent.clone());
        query.run = Some(subject.run.clone());
        let entries = self.agent.store().list_audit(tenant, &query).await?;
        Ok(entries
            .iter()
            .filter_map(parse)
            .find(|e| &e.evaluator == self.agent.id()))
    }
}

/// An evaluation from its audit entry (`None` for an entry of another shape).
fn parse(entry: &AuditEntry) -> Option<Evaluation> {
    let e = &entry.entry;
    let out = &e.output;
    Some(Evaluation {
        evaluator: out["evaluator"].as_str()?.parse().ok()?,
        agent: e.agent.clone()?,
        run: e.run.clone()?,
        score: out["score"].as_f64()?,
        feedback: out["feedback"].as_str()?.to_owned(),
        eval_run: out["eval_run"].as_str()?.parse().ok()?,
        at: e.at,
    })
}
