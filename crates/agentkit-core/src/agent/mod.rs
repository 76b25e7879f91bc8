//! The agent: a persona, a model, tools, a policy and a store, and the turn loop over them.
//!
//! One [`Agent::run`] is one user input. The loop (see `ARCHITECTURE.md`, "The turn"):
//!
//! 1. load the session window (never splitting a tool call from its results);
//! 2. assemble the host's context ([`ContextSource`]s) and retrieve knowledge if the agent has
//!    a retriever, each as a delimited block marked as data;
//! 3. call the model with the agent's tool specs; record usage;
//! 4. for each proposed tool call: allow-list, JSON-schema validation (compiled once per tool),
//!    policy; allowed calls run concurrently with idempotency keys and their results are kept
//!    in call order; invalid, unknown, denied and failed calls go back to the model as error
//!    results (bounded);
//! 5. a call that needs approval suspends the run durably: [`RunOutcome::Suspended`] carries the
//!    approval requests, and any agent over the same store can [`Agent::resume`] once humans
//!    have decided;
//! 6. loop until a final answer or a limit; validate structured output if a schema is set.
//!
//! Every step is persisted as a delta (new messages, usage events, audit entries, the run
//! record), so a process can stop between any two steps.

mod config;
mod context;
mod eval;
mod memory;
mod parts;
mod turn;
mod window;

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::stream::BoxStream;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

pub use crate::config::{AgentConfig, ApprovalRules, ConfigStatus, Limits, MemoryPolicy, ModelRef};
pub use config::{AgentRegistry, Blueprint};
pub use context::{ContextRequest, ContextSource, FnContext};
pub use eval::{EvalSubject, EvalSummary, Evaluation, Evaluator};
pub use memory::apply_memory_policy;
pub use parts::ContextPrefix;
pub use turn::resume::decide_approval;

use crate::error::{Error, Result};
use crate::exec::{ToolExecutor, ToolSet};
use crate::id::{AgentId, ApprovalId, IntoId, RunId, SessionId, TenantId};
use crate::message::{ToolCall, Usage};
use crate::model::{LlmProvider, OutputSchema};
use crate::policy::{AllowListPolicy, PolicyEvaluator};
use crate::retrieval::{Citation, Retriever, ScoredChunk};
use crate::store::{ApprovalRequest, InMemoryStore, RunStatus, StateStore, UsageMeter};
use crate::tool::{Tool, ToolSpec};
use crate::validation::CompiledSchema;

/// One user input to an agent.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RunRequest {
    /// The tenant the agent acts for (checked when the request was made; a bad id is reported
    /// by `run`).
    pub(crate) tenant: std::result::Result<TenantId, String>,
    /// The session (created on first use).
    pub(crate) session: std::result::Result<SessionId, String>,
    /// The user's message.
    pub input: String,
    /// Use this run id instead of a fresh one.
    pub run_id: Option<RunId>,
    /// Cancels the run between steps and is passed to tools.
    pub cancellation: CancellationToken,
    /// The caller's confidence in the request (passed to the policy).
    pub confidence: Option<f64>,
    /// Metadata forwarded to the model request and the session on creation.
    pub metadata: BTreeMap<String, String>,
}

impl RunRequest {
    /// A run of `input` in `session` for `tenant`. Ids given as strings are checked here; a
    /// bad one makes [`Agent::run`] fail with [`Error::InvalidInput`] before anything is
    /// stored.
    pub fn new(
        tenant: impl IntoId<TenantId>,
        session: impl IntoId<SessionId>,
        input: impl Into<String>,
    ) -> Self {
        Self {
            tenant: tenant.into_id().map_err(|e| e.to_string()),
            session: session.into_id().map_err(|e| e.to_string()),
            input: input.into(),
            run_id: None,
            cancellation: CancellationToken::new(),
            confidence: None,
            metadata: BTreeMap::new(),
        }
    }

    /// The tenant, when its id is valid.
    pub fn tenant(&self) -> Option<&TenantId> {
        self.tenant.as_ref().ok()
    }

    /// The session, when its id is valid.
    pub fn session(&self) -> Option<&SessionId> {
        self.session.as_ref().ok()
    }

    /// Uses a given run id (for host-side correlation).
    pub fn with_run_id(mut self, run: RunId) -> Self {
        self.run_id = Some(run);
        self
    }

    /// Uses a cancellation token.
    pub fn with_cancellation(mut self, token: CancellationToken) -> Self {
        self.cancellation = token;
        self
    }

    /// Sets the confidence passed to the policy.
    pub fn with_confidence(mut self, confidence: f64) -> Self {
        self.confidence = Some(confidence);
        self
    }

    /// Adds metadata.
    pub fn with_metadata(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.metadata.insert(key.into(), value.into());
        self
    }
}

/// A tool call as it ended in a run.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolCallSummary {
    /// The call.
    pub call: ToolCall,
    /// The text the model was shown.
    pub result: String,
    /// Whether it was an error (invalid, denied, rejected, failed).
    pub is_error: bool,
}

/// A finished run.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct RunReport {
    /// The run.
    pub run: RunId,
    /// The session.
    pub session: SessionId,
    /// The final answer text.
    pub reply: String,
    /// The parsed answer when an output schema is set.
    pub structured: Option<Value>,
    /// Tokens over the whole run (including before a suspension).
    pub usage: Usage,
    /// Model calls.
    pub turns: u32,
    /// Tool calls made in this invocation (run or resume), in order.
    pub tool_calls: Vec<ToolCallSummary>,
    /// The model that gave the final answer (`provider/model`); a backup shows here.
    pub answered_by: String,
    /// The knowledge the agent retrieved for this run, in the order of the context block's
    /// `[n]` markers (empty without a retriever).
    pub sources: Vec<ScoredChunk>,
    /// The sources the reply cites by marker (document, chunk, page).
    pub citations: Vec<Citation>,
}

/// A run waiting for humans.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Suspension {
    /// The run.
    pub run: RunId,
    /// The session.
    pub session: SessionId,
    /// Requests still pending.
    pub approvals: Vec<ApprovalRequest>,
    /// Tool calls resolved in this invocation before suspending.
    pub tool_calls: Vec<ToolCallSummary>,
}

/// How a run or resume ended.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum RunOutcome {
    /// A final answer.
    Completed(RunReport),
    /// Waiting for approval decisions; call [`Agent::resume`] after they are decided.
    Suspended(Suspension),
    /// Nothing was done: the run had already been resumed (or is being resumed elsewhere).
    AlreadyResumed {
        /// The run.
        run: RunId,
        /// Its status now.
        status: RunStatus,
    },
}

impl RunOutcome {
    /// The final answer, if completed.
    pub fn reply(&self) -> Option<&str> {
        match self {
            RunOutcome::Completed(r) => Some(&r.reply),
            _ => None,
        }
    }

    /// The pending approvals, if suspended.
    pub fn approvals(&self) -> &[ApprovalRequest] {
        match self {
            RunOutcome::Suspended(s) => &s.approvals,
            _ => &[],
        }
    }

    /// The run id.
    pub fn run_id(&self) -> &RunId {
        match self {
            RunOutcome::Completed(r) => &r.run,
            RunOutcome::Suspended(s) => &s.run,
            RunOutcome::AlreadyResumed { run, .. } => run,
        }
    }

    /// The completed report, if any.
    pub fn report(&self) -> Option<&RunReport> {
        match self {
            RunOutcome::Completed(r) => Some(r),
            _ => None,
        }
    }
}

/// What a streamed run emits.
// `Done` carries the whole outcome once per run; boxing it would only add an allocation to every
// stream. (Its size relative to the other variants depends on serde_json features unified from
// other crates, e.g. `preserve_order`.)
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum AgentEvent {
    /// The run began. Its record is written with its first step (after the model's first
    /// answer and that answer's tool calls), so `get_run` may not find it before then.
    RunStarted {
        /// The run.
        run: RunId,
    },
    /// Model text as it arrives.
    TextDelta(String),
    /// A tool call passed the gate and starts.
    ToolCallStarted(ToolCall),
    /// A tool call ended (or was refused).
    ToolCallFinished(ToolCallSummary),
    /// A call needs a human; the run will suspend.
    ApprovalRequired(ApprovalRequest),
    /// Usage of one model call.
    Usage(Usage),
    /// The run ended (always the last event).
    Done(RunOutcome),
}

pub(crate) struct ModelSlot {
    pub(crate) provider: Arc<dyn LlmProvider>,
    pub(crate) model: String,
    pub(crate) temperature: Option<f32>,
    pub(crate) max_tokens: Option<u32>,
}

pub(crate) struct AgentInner {
    pub(crate) id: AgentId,
    pub(crate) system_prompt: String,
    pub(crate) model: ModelSlot,
    pub(crate) backup: Option<ModelSlot>,
    pub(crate) executor: ToolExecutor,
    pub(crate) tool_specs: Arc<[ToolSpec]>,
    pub(crate) store: Arc<dyn StateStore>,
    pub(crate) retriever: Option<(Arc<dyn Retriever>, usize)>,
    pub(crate) context: Vec<Arc<dyn ContextSource>>,
    pub(crate) memory: MemoryPolicy,
    pub(crate) limits: Limits,
    pub(crate) output: Option<(OutputSchema, CompiledSchema)>,
}

/// A configured agent. Cheap to clone (an `Arc` inside) and safe to share across tasks.
#[derive(Clone)]
pub struct Agent {
    pub(crate) inner: Arc<AgentInner>,
}

impl std::fmt::Debug for Agent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agent")
            .field("id", &self.inner.id)
            .field("provider", &self.inner.model.provider.name())
            .field("model", &self.inner.model.model)
            .field(
                "tools",
                &self
                    .inner
                    .tool_specs
                    .iter()
                    .map(|s| &s.name)
                    .collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl Agent {
    /// A builder.
    pub fn builder() -> AgentBuilder {
        AgentBuilder::default()
    }

    /// A builder prefilled from a config: model and tools resolved through `registry`, the
    /// core allow-list policy with the config's approval rules, the backup agent's model when
    /// the registry holds its config. Add a store (and a richer policy) before `build()`.
    pub fn from_config(config: &AgentConfig, registry: &AgentRegistry) -> Result<AgentBuilder> {
        let provider = registry.model(&config.model.provider).ok_or_else(|| {
            Error::InvalidConfig(format!(
                "agent `{}` v{}: no model provider registered as `{}`",
                config.agent, config.version, config.model.provider
            ))
        })?;
        for pattern in &config.tools {
            if registry
                .tools_matching(std::slice::from_ref(pattern))
                .is_empty()
            {
                return Err(Error::InvalidConfig(format!(
                    "agent `{}` v{}: tool `{pattern}` matches no registered tool",
                    config.agent, config.version
                )));
            }
        }
        let mut builder = Agent::builder()
            .id(config.agent.clone())
            .system_prompt(config.system_prompt.clone())
            .model(provider.clone(), config.model.name.clone())
            .tools(registry.tools_matching(&config.tools))
            .policy(Arc::new(
                AllowListPolicy::allow_all()
                    .require_approval_for(config.policy.require_approval.clone()),
            ))
            .memory(config.memory)
            .limits(config.limits);
        builder.temperature = config.model.temperature;
        builder.max_tokens = config.model.max_tokens;
        if let Some(schema) = &config.output_schema {
            builder = builder.output_schema(schema.clone());
        }
        if let Some(backup_id) = &config.backup_agent {
            let backup = registry.configs.get(backup_id).ok_or_else(|| {
                Error::InvalidConfig(format!(
                    "agent `{}`: backup agent `{backup_id}` has no config in the registry",
                    config.agent
                ))
            })?;
            let provider = registry.model(&backup.model.provider).ok_or_else(|| {
                Error::InvalidConfig(format!(
                    "backup agent `{backup_id}`: no model provider registered as `{}`",
                    backup.model.provider
                ))
            })?;
            builder.backup = Some(ModelSlot {
                provider: provider.clone(),
                model: backup.model.name.clone(),
                temperature: backup.model.temperature,
                max_tokens: backup.model.max_tokens,
            });
        }
        Ok(builder)
    }

    /// Loads a config version from the store (the highest when `version` is `None`) and
    /// prefills a builder from it over that store.
    pub async fn from_store(
        store: Arc<dyn StateStore>,
        tenant: &TenantId,
        agent: &AgentId,
        version: Option<u32>,
        registry: &AgentRegistry,
    ) -> Result<AgentBuilder> {
        let config = store
            .get_agent_config(tenant, agent, version)
            .await?
            .ok_or_else(|| {
                Error::NotFound(format!(
                    "agent config `{agent}` {}",
                    version
                        .map(|v| format!("v{v}"))
                        .unwrap_or_else(|| "(any version)".into())
                ))
            })?;
        Ok(Agent::from_config(&config, registry)?.store(store))
    }

    /// The agent's id.
    pub fn id(&self) -> &AgentId {
        &self.inner.id
    }

    /// The tool specs the model sees.
    pub fn tool_specs(&self) -> &[ToolSpec] {
        &self.inner.tool_specs
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn StateStore> {
        &self.inner.store
    }

    /// The governed executor every tool call of this agent runs through (its tools, policy,
    /// store and meter). Hosts and workflows can run the agent's tools through it directly.
    pub fn executor(&self) -> &ToolExecutor {
        &self.inner.executor
    }

    /// Runs one user input to a final answer or a suspension.
    pub async fn run(&self, request: RunRequest) -> Result<RunOutcome> {
        turn::run(self, request, None).await
    }

    /// Runs one user input, streaming events. The last item is [`AgentEvent::Done`] or an
    /// error. The run is driven by a spawned task (a Tokio runtime is required) and continues
    /// to completion even if the stream is dropped, so the persisted history is always whole.
    pub fn run_stream(&self, request: RunRequest) -> BoxStream<'static, Result<AgentEvent>> {
        let agent = self.clone();
        turn::spawn_streamed(
            move |sink| async move { turn::run(&agent, request, Some(sink)).await },
        )
    }

    /// Continues a suspended run after its approvals were decided.
    ///
    /// - Still-pending approvals: returns [`RunOutcome::Suspended`] and changes nothing.
    /// - Approved calls run once, with exactly the approved arguments (edited arguments are
    ///   validated and evaluated by the policy again); rejected or expired calls are reported
    ///   to the model; then the loop continues.
    /// - A run that is not suspended any more (already resumed, here or in another process):
    ///   [`RunOutcome::AlreadyResumed`], nothing runs.
    pub async fn resume(&self, tenant: impl IntoId<TenantId>, run: &RunId) -> Result<RunOutcome> {
        turn::resume::resume(self, &tenant.into_id()?, run, None).await
    }

    /// Gives up on a suspended run, so its session takes new runs again.
    ///
    /// A session with a suspended run refuses new runs with [`Error::SessionSuspended`] (the
    /// run's tool calls have no results yet). Abandoning marks the run `failed` ("abandoned:
    /// `reason`"), retracts its messages from the conversation and audits `run.abandoned`; its
    /// approval requests stay in the queue, and deciding them later resumes nothing
    /// ([`RunOutcome::AlreadyResumed`]). Returns `false` when the run is not suspended (any
    /// more): it was resumed or abandoned, here or elsewhere.
    pub async fn abandon_run(
        &self,
        tenant: impl IntoId<TenantId>,
        run: &RunId,
        reason: &str,
    ) -> Result<bool> {
        turn::resume::abandon(self, &tenant.into_id()?, run, reason).await
    }

    /// [`Agent::resume`] for the run an approval belongs to.
    pub async fn resume_approval(
        &self,
        tenant: impl IntoId<TenantId>,
        approval: &ApprovalId,
    ) -> Result<RunOutcome> {
        let tenant = tenant.into_id()?;
        let request = self
            .inner
            .store
            .get_approval(&tenant, approval)
            .await?
            .ok_or_else(|| Error::NotFound(format!("approval {approval}")))?;
        turn::resume::resume(self, &tenant, &request.run, None).await
    }

    /// [`Agent::resume`], streaming events.
    pub fn resume_stream(
        &self,
        tenant: impl IntoId<TenantId>,
        run: RunId,
    ) -> BoxStream<'static, Result<AgentEvent>> {
        let agent = self.clone();
        let tenant = tenant.into_id();
        turn::spawn_streamed(move |sink| async move {
            turn::resume::resume(&agent, &tenant?, &run, Some(sink)).await
        })
    }
}

/// Builds an [`Agent`]; `build()` validates everything and never panics.
#[derive(Default)]
pub struct AgentBuilder {
    id: Option<std::result::Result<AgentId, String>>,
    system_prompt: String,
    provider: Option<Arc<dyn LlmProvider>>,
    model: String,
    temperature: Option<f32>,
    max_tokens: Option<u32>,
    tools: Vec<Arc<dyn Tool>>,
    policy: Option<Arc<dyn PolicyEvaluator>>,
    store: Option<Arc<dyn StateStore>>,
    retriever: Option<(Arc<dyn Retriever>, usize)>,
    context: Vec<Arc<dyn ContextSource>>,
    memory: MemoryPolicy,
    limits: Limits,
    output_schema: Option<OutputSchema>,
    backup: Option<ModelSlot>,
    meter: Option<Arc<dyn UsageMeter>>,
}

impl std::fmt::Debug for AgentBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentBuilder")
            .field("id", &self.id)
            .field("model", &self.model)
            .field(
                "tools",
                &self
                    .tools
                    .iter()
                    .map(|t| t.spec().name.clone())
                    .collect::<Vec<_>>(),
            )
            .field("memory", &self.memory)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl AgentBuilder {
    /// The agent id (required).
    pub fn id(mut self, id: impl IntoId<AgentId>) -> Self {
        self.id = Some(id.into_id().map_err(|e| e.to_string()));
        self
    }

    /// Persona and rules.
    pub fn system_prompt(mut self, prompt: impl Into<String>) -> Self {
        self.system_prompt = prompt.into();
        self
    }

    /// The model provider and the model name to request (required).
    pub fn model(mut self, provider: Arc<dyn LlmProvider>, model: impl Into<String>) -> Self {
        self.provider = Some(provider);
        self.model = model.into();
        self
    }

    /// Sampling temperature.
    pub fn temperature(mut self, t: f32) -> Self {
        self.temperature = Some(t);
        self
    }

    /// Output token cap per model call.
    pub fn max_tokens(mut self, n: u32) -> Self {
        self.max_tokens = Some(n);
        self
    }

    /// Adds a tool (the agent's tools are its allow-list: the model sees only these).
    pub fn tool(mut self, tool: Arc<dyn Tool>) -> Self {
        self.tools.push(tool);
        self
    }

    /// Adds tools.
    pub fn tools(mut self, tools: impl IntoIterator<Item = Arc<dyn Tool>>) -> Self {
        self.tools.extend(tools);
        self
    }

    /// The policy gate (default: allow every tool the agent has).
    pub fn policy(mut self, policy: Arc<dyn PolicyEvaluator>) -> Self {
        self.policy = Some(policy);
        self
    }

    /// The store (default: a fresh [`InMemoryStore`]).
    pub fn store(mut self, store: Arc<dyn StateStore>) -> Self {
        self.store = Some(store);
        self
    }

    /// Knowledge: `top_k` chunks are retrieved for each run's input.
    pub fn retriever(mut self, retriever: Arc<dyn Retriever>, top_k: usize) -> Self {
        self.retriever = Some((retriever, top_k));
        self
    }

    /// Adds a [`ContextSource`]: data assembled before the first model call of every run
    /// (in the order added, after the system prompt and before retrieved knowledge).
    pub fn context(mut self, source: Arc<dyn ContextSource>) -> Self {
        self.context.push(source);
        self
    }

    /// History window (default: last 50 messages).
    pub fn memory(mut self, memory: MemoryPolicy) -> Self {
        self.memory = memory;
        self
    }

    /// All limits at once.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Model calls per run (default 10).
    pub fn max_turns(mut self, n: u32) -> Self {
        self.limits.max_turns = n;
        self
    }

    /// Tool calls honoured per model response (default 8).
    pub fn max_tool_calls_per_turn(mut self, n: u32) -> Self {
        self.limits.max_tool_calls_per_turn = n;
        self
    }

    /// Tool calls executed at once (default 4).
    pub fn tool_concurrency(mut self, n: usize) -> Self {
        self.limits.tool_concurrency = n;
        self
    }

    /// Structured output: the final answer must be JSON matching this schema.
    pub fn output_schema(mut self, schema: OutputSchema) -> Self {
        self.output_schema = Some(schema);
        self
    }

    /// Prices usage before it is recorded and accounts its spend (budgets from the usage
    /// ledger); see `agentkit_policy::Meter`.
    pub fn meter(mut self, meter: Arc<dyn UsageMeter>) -> Self {
        self.meter = Some(meter);
        self
    }

    /// A backup agent: when this agent's model call fails, the backup's model answers instead
    /// (with this agent's prompt, tools and policy).
    pub fn backup_agent(mut self, backup: &Agent) -> Self {
        let m = &backup.inner.model;
        self.backup = Some(ModelSlot {
            provider: m.provider.clone(),
            model: m.model.clone(),
            temperature: m.temperature,
            max_tokens: m.max_tokens,
        });
        self
    }

    /// Validates and builds.
    pub fn build(self) -> Result<Agent> {
        let id = self
            .id
            .ok_or_else(|| Error::InvalidConfig("agent: an id is required (`.id(..)`)".into()))?
            .map_err(|e| Error::InvalidConfig(format!("agent: {e}")))?;
        let provider = self.provider.ok_or_else(|| {
            Error::InvalidConfig(format!(
                "agent `{id}`: a model is required (`.model(provider, name)`)"
            ))
        })?;
        if self.model.trim().is_empty() {
            return Err(Error::InvalidConfig(format!(
                "agent `{id}`: the model name is empty"
            )));
        }
        let l = &self.limits;
        if l.max_turns == 0
            || l.max_tool_calls_per_turn == 0
            || l.tool_concurrency == 0
            || l.tool_timeout_secs == 0
        {
            return Err(Error::InvalidConfig(format!(
                "agent `{id}`: max_turns, max_tool_calls_per_turn, tool_concurrency and \
                 tool_timeout_secs must be at least 1"
            )));
        }
        if l.max_tool_result_bytes < 64 {
            return Err(Error::InvalidConfig(format!(
                "agent `{id}`: max_tool_result_bytes must be at least 64"
            )));
        }
        match self.memory {
            MemoryPolicy::LastMessages { count: 0 }
            | MemoryPolicy::TokenBudget {
                max_messages: 0, ..
            }
            | MemoryPolicy::TokenBudget { tokens: 0, .. } => {
                return Err(Error::InvalidConfig(format!(
                    "agent `{id}`: the memory window must keep at least one message"
                )));
            }
            _ => {}
        }
        if let Some((_, 0)) = self.retriever {
            return Err(Error::InvalidConfig(format!(
                "agent `{id}`: retriever top_k must be at least 1"
            )));
        }
        for source in &self.context {
            context::check_name(id.as_str(), source.name())?;
        }
        let tools = ToolSet::new(self.tools)
            .map_err(|e| Error::InvalidConfig(format!("agent `{id}`: {e}")))?;
        let specs: Arc<[ToolSpec]> = tools.specs().into();
        let store = self.store.unwrap_or_else(|| Arc::new(InMemoryStore::new()));
        let executor = ToolExecutor::builder(tools, store.clone())
            .policy(
                self.policy
                    .unwrap_or_else(|| AllowListPolicy::allow_all().into_arc()),
            )
            .meter(self.meter)
            .timeout(l.tool_timeout())
            .max_calls_per_turn(l.max_tool_calls_per_turn)
            .build();
        let output = self
            .output_schema
            .map(|s| {
                let compiled = CompiledSchema::compile_named("output schema", &s.schema)?;
                Ok::<_, Error>((s, compiled))
            })
            .transpose()?;
        Ok(Agent {
            inner: Arc::new(AgentInner {
                id,
                system_prompt: self.system_prompt,
                model: ModelSlot {
                    provider,
                    model: self.model,
                    temperature: self.temperature,
                    max_tokens: self.max_tokens,
                },
                backup: self.backup,
                executor,
                tool_specs: specs,
                store,
                retriever: self.retriever,
                context: self.context,
                memory: self.memory,
                limits: self.limits,
                output,
            }),
        })
    }
}
