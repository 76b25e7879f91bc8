//! A host's setup for engine tests: in-memory stores, a manual clock, tools that count their
//! effects.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use agentkit_core::Error;
use agentkit_core::exec::{ToolExecutor, ToolSet};
use agentkit_core::id::{RunId, TenantId};
use agentkit_core::policy::{AllowListPolicy, PolicyEvaluator};
use agentkit_core::store::{InMemoryStore, StateStore};
use agentkit_core::tool::{FnTool, SideEffect, Tool, ToolSpec};
use agentkit_workflow::clock::ManualClock;
use agentkit_workflow::{
    InMemoryWorkflowStore, RunState, StartRequest, WorkflowDefinition, WorkflowRun, WorkflowStore,
    Workflows,
};
use chrono::{TimeDelta, TimeZone, Utc};
use serde_json::{Value, json};

/// What the tools did, by tool name: the arguments of each real execution.
#[derive(Default, Clone)]
pub struct Effects(Arc<Mutex<BTreeMap<String, Vec<Value>>>>);

impl Effects {
    pub fn record(&self, tool: &str, args: &Value) {
        self.0
            .lock()
            .unwrap()
            .entry(tool.to_owned())
            .or_default()
            .push(args.clone());
    }

    pub fn count(&self, tool: &str) -> usize {
        self.0.lock().unwrap().get(tool).map_or(0, Vec::len)
    }

    pub fn calls(&self, tool: &str) -> Vec<Value> {
        self.0
            .lock()
            .unwrap()
            .get(tool)
            .cloned()
            .unwrap_or_default()
    }

    /// Every effect in order of tool name then time (for order checks use `calls`).
    pub fn order(&self) -> Vec<String> {
        self.0.lock().unwrap().keys().cloned().collect()
    }
}

pub struct Harness {
    pub engine: Workflows,
    pub clock: Arc<ManualClock>,
    pub state: Arc<dyn StateStore>,
    pub store: Arc<dyn WorkflowStore>,
    pub effects: Effects,
    /// Every executed call in order: "tool:args".
    pub log: Arc<Mutex<Vec<String>>>,
    pub tenant: TenantId,
}

/// A tool that records its effect and returns `{"ok": true, "echo": args}`.
pub fn recording_tool(
    name: &str,
    effects: &Effects,
    log: &Arc<Mutex<Vec<String>>>,
) -> Arc<dyn Tool> {
    let effects = effects.clone();
    let log = log.clone();
    let tool = name.to_owned();
    Arc::new(FnTool::new(
        ToolSpec::new(name, "records an effect", json!({"type": "object"}))
            .with_side_effect(SideEffect::External),
        move |_ctx, args| {
            let effects = effects.clone();
            let log = log.clone();
            let tool = tool.clone();
            async move {
                effects.record(&tool, &args);
                log.lock().unwrap().push(format!("{tool}:{args}"));
                Ok(json!({"ok": true, "echo": args}))
            }
        },
    ))
}

/// A tool that fails its first `failures` calls, then records its effect.
pub fn flaky_tool(name: &str, failures: usize, effects: &Effects) -> Arc<dyn Tool> {
    let effects = effects.clone();
    let calls = Arc::new(AtomicUsize::new(0));
    let tool = name.to_owned();
    Arc::new(FnTool::new(
        ToolSpec::new(name, "fails, then works", json!({"type": "object"}))
            .with_side_effect(SideEffect::External),
        move |_ctx, args| {
            let effects = effects.clone();
            let calls = calls.clone();
            let tool = tool.clone();
            async move {
                let n = calls.fetch_add(1, Ordering::SeqCst);
                if n < failures {
                    return Err(Error::Timeout(format!("{tool} is down (call {})", n + 1)));
                }
                effects.record(&tool, &args);
                Ok(json!({"ok": true, "call": n + 1}))
            }
        },
    ))
}

impl Harness {
    pub fn new(
        extra: impl FnOnce(&Effects, &Arc<Mutex<Vec<String>>>) -> Vec<Arc<dyn Tool>>,
    ) -> Self {
        Self::with_policy(extra, AllowListPolicy::allow_all().into_arc())
    }

    pub fn with_policy(
        extra: impl FnOnce(&Effects, &Arc<Mutex<Vec<String>>>) -> Vec<Arc<dyn Tool>>,
        policy: Arc<dyn PolicyEvaluator>,
    ) -> Self {
        Self::with_store(extra, policy, Arc::new(InMemoryWorkflowStore::new()))
    }

    pub fn with_store(
        extra: impl FnOnce(&Effects, &Arc<Mutex<Vec<String>>>) -> Vec<Arc<dyn Tool>>,
        policy: Arc<dyn PolicyEvaluator>,
        store: Arc<dyn WorkflowStore>,
    ) -> Self {
        let effects = Effects::default();
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut tools = vec![
            recording_tool("crm.update", &effects, &log),
            recording_tool("crm.revert", &effects, &log),
            recording_tool("ads.launch", &effects, &log),
            recording_tool("ads.stop", &effects, &log),
            recording_tool("mail.send", &effects, &log),
        ];
        tools.extend(extra(&effects, &log));
        let state: Arc<dyn StateStore> = Arc::new(InMemoryStore::new());
        let executor = ToolExecutor::builder(ToolSet::new(tools).unwrap(), state.clone())
            .policy(policy)
            .build();
        let clock = Arc::new(ManualClock::new(
            Utc.with_ymd_and_hms(2026, 3, 2, 8, 0, 0).unwrap(),
        ));
        let engine = Workflows::builder(store.clone())
            .executor(executor)
            .clock(clock.clone())
            .build();
        Self {
            engine,
            clock,
            state,
            store,
            effects,
            log,
            tenant: TenantId::new("acme").unwrap(),
        }
    }

    pub fn def(&self, v: Value) -> WorkflowDefinition {
        serde_json::from_value(v).expect("definition")
    }

    pub async fn publish(&self, v: Value) -> WorkflowDefinition {
        let def = self.def(v);
        self.engine
            .publish(&self.tenant, &def)
            .await
            .expect("publish");
        def
    }

    pub async fn start(&self, workflow: &str, input: Value) -> RunId {
        let req = StartRequest::new(workflow, input).unwrap();
        self.engine
            .start(&self.tenant, req)
            .await
            .unwrap()
            .run()
            .id
            .clone()
    }

    /// Runs everything due now.
    pub async fn settle(&self) -> usize {
        self.engine.run_due("test-worker").await.expect("run_due")
    }

    pub async fn run(&self, id: &RunId) -> WorkflowRun {
        self.engine
            .get_run(&self.tenant, id)
            .await
            .unwrap()
            .expect("run")
    }

    pub async fn state_of(&self, id: &RunId) -> RunState {
        self.run(id).await.state
    }

    pub fn clock_now(&self) -> chrono::DateTime<Utc> {
        use agentkit_workflow::clock::Clock;
        self.clock.now()
    }

    pub fn advance(&self, d: TimeDelta) {
        self.clock.advance(d);
    }

    pub async fn step_nodes(&self, id: &RunId) -> Vec<String> {
        self.engine
            .steps(&self.tenant, id)
            .await
            .unwrap()
            .iter()
            .map(|s| format!("{}:{}", s.node, s.status.as_str()))
            .collect()
    }
}
