//! The host's state: the stores, the model and tools configs can name, the approval queue,
//! the host's tables (API keys, agents, tenants' tools) and the price book.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use agentkit::agent::{AgentRegistry, Blueprint};
use agentkit::config::AgentConfig;
use agentkit::id::{AgentId, TenantId};
use agentkit::policy_engine::PriceBook;
use agentkit::policy_engine::approvals::{ApprovalQueue, QueueConfig, Reviewer};
use agentkit::prelude::*;
use agentkit::tools::http::OutboundPolicy;
use serde_json::json;

use agentkit::exec::{ToolExecutor, ToolSet};
use agentkit::policy::AllowListPolicy;
use agentkit::workflow::{Worker, WorkerConfig, Workflows};
use tokio_util::sync::CancellationToken;

use crate::backend::Backend;
use crate::model::HostModel;
use crate::tables::HostTables;
use crate::telemetry::Metrics;

/// How the host runs; every field has a default and an environment variable.
#[derive(Debug, Clone)]
pub struct HostConfig {
    /// The SQLite file (`AGENTKIT_HOST_DB`, default `agentkit-host.db`).
    pub db_path: PathBuf,
    /// A Postgres URL (`AGENTKIT_HOST_DATABASE_URL`; feature `postgres`): when set, the host
    /// keeps everything there instead of the SQLite file.
    pub database_url: Option<String>,
    /// Where to listen (`AGENTKIT_HOST_ADDR`, default `127.0.0.1:8080`).
    pub addr: String,
    /// Largest request body (`AGENTKIT_HOST_BODY_LIMIT`, default 64 KiB).
    pub body_limit: usize,
    /// Longest request (`AGENTKIT_HOST_TIMEOUT_SECS`, default 60 s; streams end at it too).
    pub request_timeout: Duration,
    /// The reviewers allowed to decide approvals (`AGENTKIT_HOST_REVIEWERS`, comma separated,
    /// default `alice,bob`).
    pub reviewers: Vec<String>,
    /// Where tenants' HTTP tools may connect (`AGENTKIT_HOST_TOOL_OUTBOUND`, an
    /// `OutboundPolicy` as JSON, e.g. `{"allow_domains": ["*.example.com"]}`; default: any
    /// public address, nothing private).
    pub tool_outbound: OutboundPolicy,
    /// The operator's token for the admin API (`AGENTKIT_HOST_ADMIN_TOKEN`, at least 16
    /// characters; default none: the admin API is off).
    pub admin_token: Option<crate::api::AdminToken>,
}

impl Default for HostConfig {
    fn default() -> Self {
        Self {
            db_path: PathBuf::from("agentkit-host.db"),
            database_url: None,
            addr: "127.0.0.1:8080".into(),
            body_limit: 64 * 1024,
            request_timeout: Duration::from_secs(60),
            reviewers: vec!["alice".into(), "bob".into()],
            tool_outbound: OutboundPolicy::new(),
            admin_token: None,
        }
    }
}

impl HostConfig {
    /// The defaults, overridden by the environment (an unreadable
    /// `AGENTKIT_HOST_TOOL_OUTBOUND` or a short `AGENTKIT_HOST_ADMIN_TOKEN` is an
    /// `InvalidConfig` error).
    pub fn from_env() -> Result<Self> {
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        let mut c = Self::default();
        if let Some(v) = env("AGENTKIT_HOST_DB") {
            c.db_path = v.into();
        }
        if let Some(v) = env("AGENTKIT_HOST_DATABASE_URL") {
            c.database_url = Some(v);
        }
        if let Some(v) = env("AGENTKIT_HOST_ADDR") {
            c.addr = v;
        }
        if let Some(v) = env("AGENTKIT_HOST_BODY_LIMIT").and_then(|v| v.parse().ok()) {
            c.body_limit = v;
        }
        if let Some(v) = env("AGENTKIT_HOST_TIMEOUT_SECS").and_then(|v| v.parse().ok()) {
            c.request_timeout = Duration::from_secs(v);
        }
        if let Some(v) = env("AGENTKIT_HOST_REVIEWERS") {
            c.reviewers = v.split(',').map(|s| s.trim().to_string()).collect();
        }
        if let Some(v) = env("AGENTKIT_HOST_TOOL_OUTBOUND") {
            c.tool_outbound = serde_json::from_str(&v)
                .map_err(|e| Error::InvalidConfig(format!("AGENTKIT_HOST_TOOL_OUTBOUND: {e}")))?;
        }
        if let Some(v) = env("AGENTKIT_HOST_ADMIN_TOKEN") {
            c.admin_token = Some(crate::api::AdminToken::new(&v)?);
        }
        Ok(c)
    }
}

/// The host's shared state (cheap to clone).
#[derive(Clone)]
pub struct App {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) store: Arc<dyn StateStore>,
    pub(crate) registry: AgentRegistry,
    pub(crate) tools: Vec<Arc<dyn Tool>>,
    pub(crate) queue: ApprovalQueue,
    pub(crate) tables: Arc<dyn HostTables>,
    pub(crate) prices: PriceBook,
    pub(crate) blueprints: Vec<Blueprint>,
    pub(crate) model_label: String,
    /// `"SQLite"` or `"Postgres"`.
    pub(crate) database: &'static str,
    pub(crate) config: HostConfig,
    pub(crate) metrics: Metrics,
    /// Built agents by tenant and id (building one compiles its tools' schemas); dropped when
    /// the host stores a new config version for it.
    pub(crate) agents: std::sync::Mutex<std::collections::HashMap<(TenantId, AgentId), Arc<Agent>>>,
    /// Uploaded documents and their retrieval (feature `knowledge`, with a local model).
    #[cfg(feature = "knowledge")]
    pub(crate) knowledge: Option<crate::knowledge::Knowledge>,
    /// The workflow engine; its worker runs until the host's state is dropped.
    pub(crate) workflows: Workflows,
    worker: CancellationToken,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.worker.cancel();
    }
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

/// The demo's tools: a balance lookup, a campaign draft (approval required by the default
/// agent's config), and a customer lookup whose email is redacted in records and the review
/// page.
pub fn tools() -> Vec<Arc<dyn Tool>> {
    let balance = FnTool::new(
        ToolSpec::new(
            "budget.get_balance",
            "Returns the ad account balance in USD",
            json!({"type": "object", "properties": {}}),
        ),
        |_ctx, _args| async { Ok(json!({"balance_usd": 320.0})) },
    );
    let campaign = FnTool::new(
        ToolSpec::new(
            "marketing.create_campaign_draft",
            "Creates an ad campaign draft",
            json!({
                "type": "object",
                "properties": {
                    "name": {"type": "string", "minLength": 1},
                    "budget": {"type": "number", "minimum": 1, "maximum": 50},
                    "contact_email": {"type": "string"}
                },
                "required": ["name", "budget"],
                "additionalProperties": false
            }),
        )
        .with_side_effect(SideEffect::External)
        .with_redacted(["contact_email"]),
        |ctx, args| async move {
            Ok(json!({
                "campaign_id": format!("cmp_{}", &ctx.idempotency_key.as_str()[..8.min(ctx.idempotency_key.as_str().len())]),
                "status": "draft",
                "name": args["name"],
                "daily_budget_usd": args["budget"],
            }))
        },
    );
    vec![Arc::new(balance), Arc::new(campaign)]
}

/// The default agent every tenant starts with.
fn default_config(model: &str) -> Result<AgentConfig> {
    AgentConfig::from_json(
        &json!({
            "agent": "marketing",
            "version": 1,
            "status": "final",
            "name": "Marketing",
            "system_prompt": "You are a marketing agent. Check the ad account balance before \
                              creating a campaign draft; stay within $50/day.",
            "model": {"provider": "default", "name": model},
            "tools": ["budget.*", "marketing.*"],
            "policy": {"require_approval": ["marketing.create_campaign_draft"]}
        })
        .to_string(),
    )
}

const PRICES: &str = r#"{"tables": [{
  "version": "2026-01",
  "effective_from": "2020-01-01T00:00:00Z",
  "models": {
    "rules-v1": {"input_per_mtok": 0.5, "output_per_mtok": 1.5},
    "gpt-4o-mini": {"input_per_mtok": 0.15, "output_per_mtok": 0.6},
    "llama3.1": {"input_per_mtok": 0.0, "output_per_mtok": 0.0}
  },
  "tool_call_usd": 0.001,
  "knowledge_query_usd": 0.0005
}]}"#;

impl App {
    /// Opens the database and prepares the model ([`HostModel::from_env`]) and tools.
    pub async fn open(config: HostConfig) -> Result<Self> {
        Self::open_with_model(config, HostModel::from_env()?).await
    }

    /// Opens the database with `model` answering for every agent (configs name it as provider
    /// `default`, model `model.name`).
    pub async fn open_with_model(config: HostConfig, model: HostModel) -> Result<Self> {
        let backend = Backend::open(&config).await?;
        #[cfg(feature = "knowledge")]
        let knowledge = crate::knowledge::Knowledge::open(&backend).await?;
        let store = backend.store.clone();
        let HostModel {
            provider,
            name: model,
            label,
        } = model;
        let tools = tools();
        let mut registry = AgentRegistry::new().with_model("default", provider);
        for tool in &tools {
            registry = registry.with_tool(tool.clone());
        }
        let reviewers = config
            .reviewers
            .iter()
            .map(|id| Reviewer {
                id: id.clone(),
                roles: vec!["reviewer".into()],
                available: true,
                max_load: 50,
            })
            .collect();
        let queue = ApprovalQueue::new(store.clone(), QueueConfig::default(), reviewers);
        let prices: PriceBook = serde_json::from_str(PRICES)
            .map_err(|e| Error::InvalidConfig(format!("price book: {e}")))?;
        // Workflows: tool nodes through a governed executor over the host's tools (campaign
        // drafts need approval, as in the default agent), agent nodes by the default agent, a
        // worker driving runs until the host stops.
        let executor = ToolExecutor::builder(ToolSet::new(tools.clone())?, store.clone())
            .policy(
                AllowListPolicy::new(["budget.*", "marketing.*"])
                    .require_approval_for(["marketing.create_campaign_draft"])
                    .into_arc(),
            )
            .build();
        let workflow_agent = Agent::from_config(&default_config(&model)?, &registry)?
            .store(store.clone())
            .build()?;
        let workflows = Workflows::builder(backend.workflows.clone())
            .executor(executor)
            .agent(workflow_agent)
            .build();
        let worker = CancellationToken::new();
        let driver = Worker::new(
            workflows.clone(),
            WorkerConfig::new("agentkit-host").poll(Duration::from_millis(200)),
        );
        tokio::spawn(driver.run(worker.clone()));
        let blueprints = vec![Blueprint {
            name: "Marketing".into(),
            description: "Drafts ad campaigns within a daily budget".into(),
            category: "Marketing".into(),
            config: default_config(&model)?,
        }];
        Ok(Self {
            inner: Arc::new(Inner {
                store,
                registry,
                tools,
                queue,
                tables: backend.tables.clone(),
                prices,
                blueprints,
                model_label: label,
                database: backend.name(),
                config,
                metrics: Metrics::global(),
                agents: std::sync::Mutex::default(),
                #[cfg(feature = "knowledge")]
                knowledge,
                workflows,
                worker,
            }),
        })
    }

    /// The host's configuration.
    pub fn config(&self) -> &HostConfig {
        &self.inner.config
    }

    /// Which model answers ("the rule-based model (offline)", "OpenAI gpt-4o-mini").
    pub fn model_label(&self) -> &str {
        &self.inner.model_label
    }

    /// Which database the host keeps its data in: `"SQLite"` or `"Postgres"`.
    pub fn database(&self) -> &'static str {
        self.inner.database
    }

    /// The price book usage and invoices are priced with.
    pub fn prices(&self) -> &PriceBook {
        &self.inner.prices
    }

    /// Creates a tenant: its default agent config and a first API key (returned once).
    pub async fn create_tenant(&self, tenant: &TenantId) -> Result<String> {
        let model = self.inner.blueprints[0].config.model.name.clone();
        let config = default_config(&model)?;
        let existing = self
            .inner
            .store
            .get_agent_config(tenant, &config.agent, None)
            .await?;
        if existing.is_none() {
            self.inner.store.put_agent_config(tenant, &config).await?;
        }
        self.inner
            .tables
            .add_agent(tenant, config.agent.as_str())
            .await?;
        self.inner.tables.create_key(tenant).await
    }

    /// The host's own tables: API keys, agent lists, tenants' tools.
    pub fn tables(&self) -> &dyn HostTables {
        &*self.inner.tables
    }

    /// The agent `agent` of `tenant`, built from its latest config over the host's store
    /// (once; kept until a new config version is stored through this host).
    pub async fn agent(&self, tenant: &TenantId, agent: &AgentId) -> Result<Arc<Agent>> {
        let key = (tenant.clone(), agent.clone());
        if let Some(built) = self.agents().get(&key) {
            return Ok(built.clone());
        }
        let registry = self.registry_for(tenant).await?;
        #[allow(unused_mut)] // without feature `knowledge`
        let mut builder =
            Agent::from_store(self.inner.store.clone(), tenant, agent, None, &registry).await?;
        #[cfg(feature = "knowledge")]
        if let Some(knowledge) = &self.inner.knowledge {
            builder = builder.retriever(knowledge.retriever()?, crate::knowledge::TOP_K);
        }
        let built = Arc::new(builder.build()?);
        self.agents().insert(key, built.clone());
        Ok(built)
    }

    /// Forgets the built agent (its config changed).
    pub(crate) fn forget_agent(&self, tenant: &TenantId, agent: &AgentId) {
        self.agents().remove(&(tenant.clone(), agent.clone()));
    }

    /// Forgets every built agent of `tenant` (its tools changed).
    pub(crate) fn forget_tenant(&self, tenant: &TenantId) {
        self.agents().retain(|(t, _), _| t != tenant);
    }

    fn agents(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<(TenantId, AgentId), Arc<Agent>>> {
        self.inner
            .agents
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records a finished run or resume in the metrics: its tool calls, its refusals and the
    /// priced cost of its usage.
    pub(crate) async fn record_run(
        &self,
        tenant: &TenantId,
        outcome: &agentkit::agent::RunOutcome,
    ) {
        use agentkit::agent::RunOutcome;
        let (agent, calls) = match outcome {
            RunOutcome::Completed(r) => (None, &r.tool_calls),
            RunOutcome::Suspended(s) => (
                s.approvals.first().map(|a| a.agent.to_string()),
                &s.tool_calls,
            ),
            _ => return,
        };
        let denied = calls.iter().filter(|c| c.is_error).count() as u64;
        let ran = calls.len() as u64 - denied;
        let query = agentkit::store::UsageQuery::all().run(outcome.run_id().clone());
        let (cost, agent) = match self.inner.store.list_usage(tenant, &query).await {
            Ok(events) => {
                let (lines, _) =
                    agentkit::policy_engine::metering::aggregate(&events, &self.inner.prices);
                let agent = agent.or_else(|| events.first().map(|e| e.agent.to_string()));
                (lines.iter().map(|l| l.amount.as_f64()).sum(), agent)
            }
            Err(_) => (0.0, agent),
        };
        self.inner.metrics.record_run(
            tenant.as_str(),
            agent.as_deref().unwrap_or("-"),
            ran,
            denied,
            cost,
        );
    }

    /// A tool's redaction rules (for showing arguments to reviewers).
    pub(crate) fn redaction_of(&self, tool: &str) -> Vec<String> {
        self.inner
            .tools
            .iter()
            .find(|t| t.spec().name == tool)
            .map(|t| t.spec().redact.clone())
            .unwrap_or_default()
    }
}
