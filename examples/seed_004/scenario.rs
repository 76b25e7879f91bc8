//! Seed 004's support organisation on agentkit, shared by `examples/seed_004` and
//! `tests/seed_004.rs`: one platform (a database, the policy engine, the approval queue, the
//! golden paths, the resilient models) serving tenants on different plans, each with support
//! and triage agents instantiated from blueprints.
//!
//! The pieces are in sibling modules, each with one job: `governance` (policy document, queue
//! settings, reviewers, the queue's clock), `blueprints` (catalogue and onboarding), `models`
//! (hosted LLM, resilience layers, rule-based fallbacks), `tools` (the integrations) and
//! `learning` (the reviewers' desk and the feedback loop).

use std::sync::Arc;
use std::time::Duration;

use agentkit::agent::{Agent, AgentConfig, AgentRegistry, RunOutcome, RunRequest};
use agentkit::id::{AgentId, RunId};
use agentkit::model::LlmProvider;
use agentkit::policy_engine::PolicyEngine;
use agentkit::policy_engine::approvals::ApprovalQueue;
use agentkit::rag::testkit::HashEmbedder;
use agentkit::rag::{Document, GoldenPaths, Ingestor, KnowledgeRetriever};
use agentkit::resilience::CircuitBreaker;
use agentkit::retrieval::{Embedder, VectorStore};
use agentkit::store::{CounterStore, StateStore};
use agentkit::{Error, Result};

use super::blueprints::{self, SUPPORT, TRIAGE, Tenant};
use super::governance::{self, QueueClock};
use super::learning::Desk;
use super::models;
use super::tools::{self, Effects};

/// The embedding length of the offline embedder.
pub const DIMENSIONS: usize = 256;

/// Chunks (documents and golden paths) scoring below this are not shown to the agent.
pub const MIN_SCORE: f32 = 0.15;

/// The knowledge each tenant's support agent starts with.
pub fn knowledge(tenant: &Tenant) -> Vec<Document> {
    vec![
        Document::markdown(
            "returns.md",
            format!(
                "# Returns and refunds at {}\n\nDamaged parcels: the customer sends a photo \
                 within 14 days and we refund the order or send a replacement.\n\nRefunds reach \
                 the customer's card within five business days.\n",
                tenant.name
            ),
        )
        .with_title("Returns and refunds"),
    ]
}

/// The platform: everything tenants share.
pub struct Platform {
    /// The database (agentkit's state store: configs, runs, approvals, audit, counters).
    pub state: Arc<dyn StateStore>,
    /// The vector store (documents and golden paths) in the same database.
    pub vectors: Arc<dyn VectorStore>,
    /// The policy engine (roles, tiers and quotas, approval rules), audited into `state`.
    pub policy: PolicyEngine,
    /// The human-in-the-loop queue.
    pub queue: ApprovalQueue,
    /// The queue's clock (moved forward to let time pass).
    pub clock: QueueClock,
    /// Approved outcomes, found again for similar requests.
    pub golden: GoldenPaths,
    /// Where reviewers decide (and approvals are learned).
    pub desk: Desk,
    /// The circuit breaker guarding the hosted LLM.
    pub breaker: CircuitBreaker,
    /// What the integrations did.
    pub effects: Effects,
    embedder: Arc<dyn Embedder>,
    registry: AgentRegistry,
}

impl std::fmt::Debug for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Platform")
            .field("breaker", &self.breaker.state())
            .finish_non_exhaustive()
    }
}

impl Platform {
    /// The platform over a database: `hosted` is the hosted LLM (behind the resilience layers,
    /// the breaker cooling down for `cool_down` once open).
    pub fn new(
        state: Arc<dyn StateStore>,
        vectors: Arc<dyn VectorStore>,
        hosted: Arc<dyn LlmProvider>,
        cool_down: Duration,
        effects: Effects,
    ) -> Result<Self> {
        let counters: Arc<dyn CounterStore> = state.clone();
        let policy =
            PolicyEngine::new(&governance::policy_document()?, counters)?.with_audit(state.clone());
        let clock = QueueClock::new();
        let queue = ApprovalQueue::new(
            state.clone(),
            governance::queue_config()?,
            governance::reviewers(),
        )
        .with_clock(clock.clock());
        let embedder: Arc<dyn Embedder> = Arc::new(HashEmbedder::new(DIMENSIONS));
        let golden = GoldenPaths::new(embedder.clone(), vectors.clone())?;
        let breaker = models::breaker(cool_down);
        let mut registry = AgentRegistry::new()
            .with_model(
                "llm.support",
                models::resilient(hosted.clone(), &breaker, models::support_rules()?),
            )
            .with_model(
                "llm.triage",
                models::resilient(hosted, &breaker, models::triage_rules()?),
            );
        for tool in tools::all(&effects) {
            registry = registry.with_tool(tool);
        }
        Ok(Self {
            desk: Desk::new(state.clone(), queue.clone(), golden.clone()),
            state,
            vectors,
            policy,
            queue,
            clock,
            golden,
            breaker,
            effects,
            embedder,
            registry,
        })
    }

    /// Onboards a tenant: its agents from the blueprints (final version 1, unless it has
    /// configs already) and its knowledge base. Returns the configs in force.
    pub async fn onboard(&self, tenant: &Tenant) -> Result<Vec<AgentConfig>> {
        let configs = blueprints::onboard(&*self.state, tenant).await?;
        let report = Ingestor::builder(self.embedder.clone(), self.vectors.clone())
            .build()?
            .ingest(
                &tenant.tenant_id()?,
                &AgentId::new(SUPPORT)?,
                knowledge(tenant),
            )
            .await;
        if let Some(failed) = report.failed.first() {
            return Err(Error::Internal(format!(
                "indexing {} for {}: {}",
                failed.document_id, tenant.id, failed.error
            )));
        }
        Ok(configs)
    }

    /// `agent` of `tenant`, built from the latest config version in the tenant's store, under
    /// the platform's policy; the support agent retrieves knowledge and the closest golden path.
    pub async fn agent(&self, tenant: &Tenant, agent: &str) -> Result<Agent> {
        let builder = Agent::from_store(
            self.state.clone(),
            &tenant.tenant_id()?,
            &AgentId::new(agent)?,
            None,
            &self.registry,
        )
        .await?
        .policy(Arc::new(self.policy.clone()));
        let builder = if agent == SUPPORT {
            let knowledge = KnowledgeRetriever::new(self.embedder.clone(), self.vectors.clone())?
                .min_score(MIN_SCORE)
                .with_golden_paths(self.golden.clone(), 1);
            builder.retriever(Arc::new(knowledge), 3)
        } else {
            builder
        };
        builder.build()
    }

    /// A customer's message to `agent` of `tenant`, in its own session.
    pub async fn ask(
        &self,
        tenant: &Tenant,
        agent: &str,
        session: &str,
        message: &str,
    ) -> Result<RunOutcome> {
        self.agent(tenant, agent)
            .await?
            .run(RunRequest::new(tenant.id, session, message))
            .await
    }

    /// A ticket for the triage agent.
    pub async fn triage(&self, tenant: &Tenant, ticket: &str, text: &str) -> Result<RunOutcome> {
        self.ask(
            tenant,
            TRIAGE,
            &format!("ticket-{ticket}"),
            &format!("Ticket {ticket}: {text}"),
        )
        .await
    }

    /// Resumes the run of a decided approval.
    pub async fn resume(&self, tenant: &Tenant, agent: &str, run: &RunId) -> Result<RunOutcome> {
        self.agent(tenant, agent)
            .await?
            .resume(tenant.id, run)
            .await
    }
}
