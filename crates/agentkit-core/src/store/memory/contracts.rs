//! The store contracts on [`InMemoryStore`]: each method checks the tenant and calls the
//! synchronous operation of the parent module that does the work under one lock.

use async_trait::async_trait;
use serde_json::Value;

use super::InMemoryStore;
use crate::config::AgentConfig;
use crate::error::Result;
use crate::id::{AgentId, ApprovalId, IdempotencyKey, RunId, SessionId, TenantId};
use crate::message::Message;
use crate::store::{
    AgentConfigStore, ApprovalDecision, ApprovalRequest, ApprovalStore, AuditEntry, AuditQuery,
    AuditStore, CounterDelta, CounterOutcome, CounterStore, MemoryScope, MemoryStore,
    MessageWindow, NewAuditEntry, RunRecord, RunStore, SessionRecord, SessionStore, StoredMessage,
    ToolClaim, ToolExecution, ToolExecutionStore, UsageEvent, UsageQuery, UsageStore,
    ensure_tenant,
};

#[async_trait]
impl SessionStore for InMemoryStore {
    async fn create_session(&self, tenant: &TenantId, session: &SessionRecord) -> Result<bool> {
        ensure_tenant(tenant, &session.tenant, "the session")?;
        self.create_session_sync(session)
    }

    async fn get_session(
        &self,
        tenant: &TenantId,
        id: &SessionId,
    ) -> Result<Option<SessionRecord>> {
        self.get_session_sync(tenant, id)
    }

    async fn append_messages(
        &self,
        tenant: &TenantId,
        session: &SessionId,
        run: Option<&RunId>,
        messages: &[Message],
    ) -> Result<u64> {
        self.append_messages_sync(tenant, session, run, messages)
    }

    async fn load_messages(
        &self,
        tenant: &TenantId,
        session: &SessionId,
        window: MessageWindow,
    ) -> Result<Vec<StoredMessage>> {
        self.load_messages_sync(tenant, session, window)
    }

    async fn retract_messages(
        &self,
        tenant: &TenantId,
        session: &SessionId,
        run: &RunId,
    ) -> Result<u64> {
        self.retract_messages_sync(tenant, session, run)
    }
}

#[async_trait]
impl AgentConfigStore for InMemoryStore {
    async fn put_agent_config(&self, tenant: &TenantId, config: &AgentConfig) -> Result<()> {
        self.put_agent_config_sync(tenant, config)
    }

    async fn get_agent_config(
        &self,
        tenant: &TenantId,
        agent: &AgentId,
        version: Option<u32>,
    ) -> Result<Option<AgentConfig>> {
        self.get_agent_config_sync(tenant, agent, version)
    }

    async fn list_agent_config_versions(
        &self,
        tenant: &TenantId,
        agent: &AgentId,
    ) -> Result<Vec<u32>> {
        self.list_agent_config_versions_sync(tenant, agent)
    }
}

#[async_trait]
impl RunStore for InMemoryStore {
    async fn create_run(&self, tenant: &TenantId, run: &RunRecord) -> Result<()> {
        ensure_tenant(tenant, &run.tenant, "the run")?;
        self.create_run_sync(run)
    }

    async fn get_run(&self, tenant: &TenantId, id: &RunId) -> Result<Option<RunRecord>> {
        self.get_run_sync(tenant, id)
    }

    async fn update_run(
        &self,
        tenant: &TenantId,
        run: &RunRecord,
        expected_version: u64,
    ) -> Result<()> {
        ensure_tenant(tenant, &run.tenant, "the run")?;
        self.update_run_sync(run, expected_version)
    }
}

#[async_trait]
impl ApprovalStore for InMemoryStore {
    async fn create_approval(&self, tenant: &TenantId, request: &ApprovalRequest) -> Result<()> {
        ensure_tenant(tenant, &request.tenant, "the approval request")?;
        self.create_approval_sync(request)
    }

    async fn get_approval(
        &self,
        tenant: &TenantId,
        id: &ApprovalId,
    ) -> Result<Option<ApprovalRequest>> {
        self.get_approval_sync(tenant, id)
    }

    async fn decide_approval(
        &self,
        tenant: &TenantId,
        id: &ApprovalId,
        decision: &ApprovalDecision,
    ) -> Result<ApprovalRequest> {
        self.decide_approval_sync(tenant, id, decision)
    }

    async fn list_pending_approvals(&self, tenant: &TenantId) -> Result<Vec<ApprovalRequest>> {
        self.list_pending_approvals_sync(tenant)
    }
}

#[async_trait]
impl ToolExecutionStore for InMemoryStore {
    async fn claim_tool_execution(
        &self,
        tenant: &TenantId,
        execution: &ToolExecution,
    ) -> Result<ToolClaim> {
        ensure_tenant(tenant, &execution.tenant, "the tool execution")?;
        self.claim_tool_execution_sync(execution)
    }

    async fn record_tool_execution(
        &self,
        tenant: &TenantId,
        execution: &ToolExecution,
    ) -> Result<()> {
        ensure_tenant(tenant, &execution.tenant, "the tool execution")?;
        self.record_tool_execution_sync(execution)
    }

    async fn get_tool_execution(
        &self,
        tenant: &TenantId,
        key: &IdempotencyKey,
    ) -> Result<Option<ToolExecution>> {
        self.get_tool_execution_sync(tenant, key)
    }

    async fn list_tool_executions(
        &self,
        tenant: &TenantId,
        run: &RunId,
    ) -> Result<Vec<ToolExecution>> {
        self.list_tool_executions_sync(tenant, run)
    }
}

#[async_trait]
impl UsageStore for InMemoryStore {
    async fn append_usage(&self, tenant: &TenantId, events: &[UsageEvent]) -> Result<()> {
        for e in events {
            ensure_tenant(tenant, &e.tenant, "a usage event")?;
        }
        self.append_usage_sync(events)
    }

    async fn list_usage(&self, tenant: &TenantId, query: &UsageQuery) -> Result<Vec<UsageEvent>> {
        self.list_usage_sync(tenant, query)
    }
}

#[async_trait]
impl AuditStore for InMemoryStore {
    async fn append_audit(&self, tenant: &TenantId, entry: NewAuditEntry) -> Result<AuditEntry> {
        ensure_tenant(tenant, &entry.tenant, "the audit entry")?;
        self.append_audit_sync(entry)
    }

    async fn list_audit(&self, tenant: &TenantId, query: &AuditQuery) -> Result<Vec<AuditEntry>> {
        self.list_audit_sync(tenant, query)
    }
}

#[async_trait]
impl CounterStore for InMemoryStore {
    async fn counter_add(
        &self,
        tenant: &TenantId,
        key: &str,
        delta: i64,
        limit: Option<i64>,
    ) -> Result<CounterOutcome> {
        self.counter_add_sync(tenant, key, delta, limit)
    }

    async fn counter_get(&self, tenant: &TenantId, key: &str) -> Result<i64> {
        self.counter_get_sync(tenant, key)
    }

    async fn counter_add_many(
        &self,
        tenant: &TenantId,
        deltas: &[CounterDelta<'_>],
    ) -> Result<Option<usize>> {
        self.counter_add_many_sync(tenant, deltas)
    }

    fn counter_add_many_now(
        &self,
        tenant: &TenantId,
        deltas: &[CounterDelta<'_>],
    ) -> Option<Result<Option<usize>>> {
        Some(self.counter_add_many_sync(tenant, deltas))
    }
}

#[async_trait]
impl MemoryStore for InMemoryStore {
    async fn put_memory(
        &self,
        tenant: &TenantId,
        scope: &MemoryScope,
        key: &str,
        value: &Value,
    ) -> Result<()> {
        self.put_memory_sync(tenant, scope, key, value)
    }

    async fn get_memory(
        &self,
        tenant: &TenantId,
        scope: &MemoryScope,
        key: &str,
    ) -> Result<Option<Value>> {
        self.get_memory_sync(tenant, scope, key)
    }

    async fn list_memory(
        &self,
        tenant: &TenantId,
        scope: &MemoryScope,
    ) -> Result<Vec<(String, Value)>> {
        self.list_memory_sync(tenant, scope)
    }

    async fn delete_memory(
        &self,
        tenant: &TenantId,
        scope: &MemoryScope,
        key: &str,
    ) -> Result<bool> {
        self.delete_memory_sync(tenant, scope, key)
    }
}
