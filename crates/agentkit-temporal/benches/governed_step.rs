//! The cost of agentkit's governance on Temporal: a workflow running 200 governed tool-call
//! activities (allow-list, schema validation, policy, idempotency claim, execution record,
//! audit entry, metering — on the in-memory store and on SQLite) against the same workflow
//! running 200 bare activities doing the tool's work, in the same process, on the same dev
//! server. Each is run three times, alternating; the median per step is reported.
//!
//! `AGENTKIT_TEMPORAL_BIN=… cargo bench --bench governed_step` (results in BENCHMARKS.md).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use agentkit_core::agent::Agent;
use agentkit_core::id::RunId;
use agentkit_core::message::ToolCall;
use agentkit_core::policy::AllowListPolicy;
use agentkit_core::store::{InMemoryStore, StateStore};
use agentkit_core::testkit::ScriptedModel;
use agentkit_core::tool::{FnTool, ToolSpec};
use agentkit_store_sqlite::SqliteStore;
use agentkit_temporal::{AgentActivities, RunScope, ToolCallInput, ToolStep};
use serde_json::json;
use temporalio_client::{Client, WorkflowGetResultOptions, WorkflowStartOptions};
use temporalio_common::ActivityError;
use temporalio_macros::{activities, workflow, workflow_methods};
use temporalio_sdk::activities::ActivityContext;
use temporalio_sdk::{
    ActivityOptions, Runtime, Worker, WorkerOptions, WorkflowContext, WorkflowResult,
};

const STEPS: u32 = 200;

fn work(n: u64) -> serde_json::Value {
    json!({"order": n, "status": "shipped"})
}

pub struct BareActivities;

#[activities]
impl BareActivities {
    #[activity]
    pub async fn step(_ctx: ActivityContext, n: u64) -> Result<serde_json::Value, ActivityError> {
        Ok(work(n))
    }
}

fn options() -> ActivityOptions {
    ActivityOptions::start_to_close_timeout(Duration::from_secs(30))
}

#[workflow]
#[derive(Default)]
pub struct BareSteps;

#[workflow_methods]
impl BareSteps {
    #[run]
    pub async fn run(ctx: &mut WorkflowContext<Self>, steps: u32) -> WorkflowResult<u32> {
        for n in 0..steps {
            ctx.execute_activity(BareActivities::step, u64::from(n), options())
                .await?;
        }
        Ok(steps)
    }
}

#[workflow]
#[derive(Default)]
pub struct GovernedSteps;

#[workflow_methods]
impl GovernedSteps {
    #[run]
    pub async fn run(ctx: &mut WorkflowContext<Self>, steps: u32) -> WorkflowResult<u32> {
        let scope = RunScope {
            tenant: "acme".into(),
            agent: "orders".into(),
            session: "bench".into(),
            run: ctx.workflow_id().to_owned(),
        };
        ctx.execute_activity(AgentActivities::begin_run, scope.clone(), options())
            .await?;
        for n in 0..steps {
            let input = ToolCallInput {
                scope: scope.clone(),
                call: ToolCall::new(format!("c{n}"), "orders.status", json!({"order": n})),
                step: n,
                approval: None,
            };
            let out = ctx
                .execute_activity(AgentActivities::tool_call, input, options())
                .await?;
            assert!(
                matches!(
                    out,
                    ToolStep::Done {
                        is_error: false,
                        ..
                    }
                ),
                "{out:?}"
            );
        }
        Ok(steps)
    }
}

fn agent(store: Arc<dyn StateStore>) -> Agent {
    let status = FnTool::new(
        ToolSpec::new(
            "orders.status",
            "An order's status",
            json!({"type": "object", "properties": {"order": {"type": "integer"}},
                   "required": ["order"], "additionalProperties": false}),
        ),
        |_ctx, args| async move { Ok(work(args["order"].as_u64().unwrap_or(0))) },
    );
    Agent::builder()
        .id("orders")
        .model(Arc::new(ScriptedModel::new([])), "unused")
        .tool(Arc::new(status))
        .policy(AllowListPolicy::new(["orders.*"]).into_arc())
        .store(store)
        .build()
        .unwrap()
}

async fn timed<F: std::future::Future<Output = ()>>(f: F) -> Duration {
    let start = Instant::now();
    f.await;
    start.elapsed()
}

async fn run_bare(client: &Client, queue: &str) {
    let id = format!("bare-{}", RunId::generate());
    let handle = client
        .start_workflow(
            BareSteps::run,
            STEPS,
            WorkflowStartOptions::new(queue, id).build(),
        )
        .await
        .unwrap();
    handle
        .get_result(WorkflowGetResultOptions::default())
        .await
        .unwrap();
}

async fn run_governed(client: &Client, queue: &str) {
    let id = format!("gov-{}", RunId::generate());
    let handle = client
        .start_workflow(
            GovernedSteps::run,
            STEPS,
            WorkflowStartOptions::new(queue, id).build(),
        )
        .await
        .unwrap();
    handle
        .get_result(WorkflowGetResultOptions::default())
        .await
        .unwrap();
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn per_step(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3 / f64::from(STEPS)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let Some(server) = common::dev_server("governed_step bench").await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let sqlite: Arc<dyn StateStore> =
        Arc::new(SqliteStore::open(dir.path().join("b.db")).await.unwrap());
    let memory: Arc<dyn StateStore> = Arc::new(InMemoryStore::new());
    let client = agentkit_temporal::connect(&server.url, "default")
        .await
        .unwrap();
    let runtime = Runtime::from_current_tokio(Default::default()).unwrap();
    let worker = |queue: &str, store: Arc<dyn StateStore>| -> Worker {
        let options = WorkerOptions::new(queue)
            .register_workflow::<BareSteps>()
            .unwrap()
            .register_workflow::<GovernedSteps>()
            .unwrap()
            .register_activities(BareActivities)
            .register_activities(AgentActivities::new([agent(store)]))
            .build();
        Worker::new(&runtime, client.clone(), options).unwrap()
    };
    for (label, store) in [("in memory", memory), ("SQLite", sqlite)] {
        let queue = format!("bench-{}", RunId::generate());
        let mut w = worker(&queue, store);
        let shutdown = w.shutdown_handle();
        let flow = async {
            // Warm up both paths once.
            run_bare(&client, &queue).await;
            run_governed(&client, &queue).await;
            let (mut bare, mut governed) = (Vec::new(), Vec::new());
            for _ in 0..3 {
                bare.push(timed(run_bare(&client, &queue)).await);
                governed.push(timed(run_governed(&client, &queue)).await);
            }
            shutdown();
            (median(bare), median(governed))
        };
        let (result, (bare, governed)) = tokio::join!(w.run(), flow);
        result.unwrap();
        let (b, g) = (per_step(bare), per_step(governed));
        println!(
            "{label:<9}: bare activity {b:.3} ms/step, governed tool call {g:.3} ms/step, \
             overhead {:.3} ms ({:.2}x)",
            g - b,
            g / b
        );
    }
}
