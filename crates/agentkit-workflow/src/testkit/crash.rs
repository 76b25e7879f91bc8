//! What the workflow crash tests of every backend share: a five-step workflow whose steps each
//! apply one side effect through an idempotent tool, and a worker process that drives it until
//! it is killed.
//!
//! The side effect is the tool's, keyed by the idempotency key the engine derives from (run,
//! node, visit, attempt) — the way an external API with idempotency keys dedupes retried
//! requests. A backend's crash test records effects in its own database and checks, after
//! SIGKILLs at random points, that every run is done and every step's effect was applied
//! exactly once.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use agentkit_core::exec::{ToolExecutor, ToolSet};
use agentkit_core::policy::AllowListPolicy;
use agentkit_core::store::StateStore;
use agentkit_core::tool::{FnTool, SideEffect, Tool, ToolSpec};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::definition::WorkflowDefinition;
use crate::engine::Workflows;
use crate::store::WorkflowStore;
use crate::worker::{Worker, WorkerConfig};

/// The workflow's id.
pub const WORKFLOW: &str = "five-effects";

/// The tool's name.
pub const TOOL: &str = "effect.apply";

/// Steps per run.
pub const STEPS: usize = 5;

/// `s1 → s2 → … → s5`, each a call of [`TOOL`].
pub fn five_step_workflow() -> WorkflowDefinition {
    let mut def = WorkflowDefinition::new(
        agentkit_core::id::WorkflowId::from_static(WORKFLOW),
        1,
        "s1",
    );
    for i in 1..=STEPS {
        def = def.with_node(crate::definition::Node::tool(
            format!("s{i}"),
            TOOL,
            json!({"step": i}),
        ));
        if i > 1 {
            def = def.with_edge(format!("s{}", i - 1), format!("s{i}"));
        }
    }
    def
}

/// The idempotent tool: `apply(key)` applies the effect of one call (and must dedupe by key).
pub fn effect_tool<F, Fut>(apply: F) -> Arc<dyn Tool>
where
    F: Fn(String) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = agentkit_core::Result<()>> + Send + 'static,
{
    let apply = Arc::new(apply);
    Arc::new(FnTool::new(
        ToolSpec::new(
            TOOL,
            "applies one counted side effect",
            json!({"type": "object"}),
        )
        .with_side_effect(SideEffect::External)
        .with_idempotent(true),
        move |ctx, _args| {
            let apply = apply.clone();
            async move {
                apply(ctx.idempotency_key.to_string()).await?;
                Ok(json!({"applied": true}))
            }
        },
    ))
}

/// The engine a crash-test worker runs: short leases and a short in-doubt period, so work of
/// a killed process is taken over within seconds.
pub fn engine(
    store: Arc<dyn WorkflowStore>,
    state: Arc<dyn StateStore>,
    tool: Arc<dyn Tool>,
) -> agentkit_core::Result<Workflows> {
    let executor = ToolExecutor::builder(ToolSet::new([tool])?, state)
        .policy(AllowListPolicy::allow_all().into_arc())
        .in_doubt_after(Duration::from_millis(500))
        .build();
    Ok(Workflows::builder(store)
        .executor(executor)
        .lease(Duration::from_millis(1500))
        .build())
}

/// Drives runs until the process is killed (or `shutdown` is cancelled).
pub async fn work_until_killed(engine: Workflows, id: &str, shutdown: CancellationToken) {
    let config = WorkerConfig::new(id)
        .concurrency(8)
        .poll(Duration::from_millis(50));
    if let Err(e) = Worker::new(engine, config).run(shutdown).await {
        eprintln!("worker {id} stopped: {e}");
    }
}

/// A number in `0..range` from the clock's nanoseconds: jitter for kill timing, no
/// dependency needed.
pub fn jitter(range: u64) -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    u64::from(nanos) % range.max(1)
}

/// After a crash test: `runs` runs exist and every one is done, `effects` (distinct effects the
/// tool applied) is one per step, and in each run every step completed once and was executed
/// once (one execution record per step). Returns the workers that wrote the steps. Panics with
/// what broke.
pub async fn check_every_effect_once(
    engine: &Workflows,
    state: &dyn StateStore,
    tenant: &str,
    runs: usize,
    effects: usize,
) -> std::collections::HashSet<String> {
    use crate::record::{RunQuery, RunState, StepStatus};
    assert_eq!(effects, runs * STEPS, "every step's effect, once");
    let all = engine
        .list_runs(tenant, &RunQuery::all())
        .await
        .expect("list runs");
    assert_eq!(all.len(), runs);
    assert!(
        all.iter().all(|r| r.state == RunState::Done),
        "every run done"
    );
    let mut workers = std::collections::HashSet::new();
    let names: Vec<String> = (1..=STEPS).map(|i| format!("s{i}")).collect();
    for run in &all {
        let steps = engine.steps(tenant, &run.id).await.expect("steps");
        let ok: Vec<&String> = steps
            .iter()
            .filter(|s| s.status == StepStatus::Succeeded)
            .map(|s| &s.node)
            .collect();
        assert_eq!(
            ok,
            names.iter().collect::<Vec<_>>(),
            "each step completed once: {steps:?}"
        );
        workers.extend(steps.iter().map(|s| s.worker.clone()));
        let executions = state
            .list_tool_executions(&run.tenant, &run.id)
            .await
            .expect("executions");
        assert_eq!(executions.len(), STEPS, "one execution per step");
    }
    workers
}
