//! The store contracts on [`SqliteStore`]: each method copies its arguments (ids are `Arc`s;
//! JSON is serialized here, before the connection is taken) and runs one function of
//! [`crate::ops`] on the writer or a reader.

use agentkit_core::Result;
use agentkit_core::agent::AgentConfig;
use agentkit_core::id::{AgentId, ApprovalId, IdempotencyKey, RunId, SessionId, TenantId};
use agentkit_core::message::Message;
use agentkit_core::store::{
    AgentConfigStore, ApprovalDecision, ApprovalRequest, ApprovalStore, AuditEntry, AuditQuery,
    AuditStore, CounterOutcome, CounterStore, MemoryScope, MemoryStore, MessageWindow,
    NewAuditEntry, RunRecord, RunStore, SessionRecord, SessionStore, StoredMessage, ToolExecution,
    ToolExecutionStore, UsageEvent, UsageQuery, UsageStore,
};
use async_trait::async_trait;
use serde_json::Value;

use crate::SqliteStore;
use crate::codec::{stored_time, to_json};
use crate::ops;

#[async_trait]
impl SessionStore for SqliteStore {
    async fn create_session(&self, session: &SessionRecord) -> Result<bool> {
        let session = session.clone();
        self.db()
            .write(move |c| ops::create_session(c, &session))
            .await
    }

    async fn get_session(
        &self,
        tenant: &TenantId,
        id: &SessionId,
    ) -> Result<Option<SessionRecord>> {
        let (tenant, id) = (tenant.clone(), id.clone());
        self.db()
            .read(move |c| ops::get_session(c, &tenant, &id))
            .await
    }

    async fn append_messages(
        &self,
        tenant: &TenantId,
        session: &SessionId,
        run: Option<&RunId>,
        messages: &[Message],
    ) -> Result<u64> {
        let rows = messages
            .iter()
            .map(to_json)
            .collect::<Result<Vec<String>>>()?;
        let (tenant, session, run) = (tenant.clone(), session.clone(), run.cloned());
        self.db()
            .write(move |c| ops::append_messages(c, &tenant, &session, run.as_ref(), &rows))
            .await
    }

    async fn load_messages(
        &self,
        tenant: &TenantId,
        session: &SessionId,
        window: MessageWindow,
    ) -> Result<Vec<StoredMessage>> {
        let (tenant, session) = (tenant.clone(), session.clone());
        self.db()
            .read(move |c| ops::load_messages(c, &tenant, &session, window))
            .await
    }
}

#[async_trait]
impl AgentConfigStore for SqliteStore {
    async fn put_agent_config(&self, tenant: &TenantId, config: &AgentConfig) -> Result<()> {
        let (tenant, config) = (tenant.clone(), config.clone());
        self.db()
            .write(move |c| ops::put_agent_config(c, &tenant, &config))
            .await
    }

    async fn get_agent_config(
        &self,
        tenant: &TenantId,
        agent: &AgentId,
        version: Option<u32>,
    ) -> Result<Option<AgentConfig>> {
        let (tenant, agent) = (tenant.clone(), agent.clone());
        self.db()
            .read(move |c| ops::get_agent_config(c, &tenant, &agent, version))
            .await
    }

    async fn list_agent_config_versions(
        &self,
        tenant: &TenantId,
        agent: &AgentId,
    ) -> Result<Vec<u32>> {
        let (tenant, agent) = (tenant.clone(), agent.clone());
        self.db()
            .read(move |c| ops::list_agent_config_versions(c, &tenant, &agent))
            .await
    }
}

#[async_trait]
impl RunStore for SqliteStore {
    async fn create_run(&self, run: &RunRecord) -> Result<()> {
        let run = run.clone();
        self.db().write(move |c| ops::create_run(c, &run)).await
    }

    async fn get_run(&self, tenant: &TenantId, id: &RunId) -> Result<Option<RunRecord>> {
        let (tenant, id) = (tenant.clone(), id.clone());
        self.db().read(move |c| ops::get_run(c, &tenant, &id)).await
    }

    async fn update_run(&self, run: &RunRecord, expected_version: u64) -> Result<()> {
        let run = run.clone();
        self.db()
            .write(move |c| ops::update_run(c, &run, expected_version))
            .await
    }
}

#[async_trait]
impl ApprovalStore for SqliteStore {
    async fn create_approval(&self, request: &ApprovalRequest) -> Result<()> {
        let request = request.clone();
        self.db()
            .write(move |c| ops::create_approval(c, &request))
            .await
    }

    async fn get_approval(
        &self,
        tenant: &TenantId,
        id: &ApprovalId,
    ) -> Result<Option<ApprovalRequest>> {
        let (tenant, id) = (tenant.clone(), id.clone());
        self.db()
            .read(move |c| ops::get_approval(c, &tenant, &id))
            .await
    }

    async fn decide_approval(
        &self,
        tenant: &TenantId,
        id: &ApprovalId,
        decision: &ApprovalDecision,
    ) -> Result<ApprovalRequest> {
        decision.validate()?;
        let (tenant, id, decision) = (tenant.clone(), id.clone(), decision.clone());
        self.db()
            .write(move |c| ops::decide_approval(c, &tenant, &id, &decision))
            .await
    }

    async fn list_pending_approvals(&self, tenant: &TenantId) -> Result<Vec<ApprovalRequest>> {
        let tenant = tenant.clone();
        self.db()
            .read(move |c| ops::list_pending_approvals(c, &tenant))
            .await
    }
}

#[async_trait]
impl ToolExecutionStore for SqliteStore {
    async fn record_tool_execution(&self, execution: &ToolExecution) -> Result<()> {
        let execution = execution.clone();
        self.db()
            .write(move |c| ops::record_tool_execution(c, &execution))
            .await
    }

    async fn get_tool_execution(
        &self,
        tenant: &TenantId,
        key: &IdempotencyKey,
    ) -> Result<Option<ToolExecution>> {
        let (tenant, key) = (tenant.clone(), key.clone());
        self.db()
            .read(move |c| ops::get_tool_execution(c, &tenant, &key))
            .await
    }

    async fn list_tool_executions(
        &self,
        tenant: &TenantId,
        run: &RunId,
    ) -> Result<Vec<ToolExecution>> {
        let (tenant, run) = (tenant.clone(), run.clone());
        self.db()
            .read(move |c| ops::list_tool_executions(c, &tenant, &run))
            .await
    }
}

#[async_trait]
impl UsageStore for SqliteStore {
    async fn append_usage(&self, events: &[UsageEvent]) -> Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        let events = events.to_vec();
        self.db()
            .write(move |c| ops::append_usage(c, &events))
            .await
    }

    async fn list_usage(&self, tenant: &TenantId, query: &UsageQuery) -> Result<Vec<UsageEvent>> {
        let (tenant, query) = (tenant.clone(), query.clone());
        self.db()
            .read(move |c| ops::list_usage(c, &tenant, &query))
            .await
    }
}

#[async_trait]
impl AuditStore for SqliteStore {
    async fn append_audit(&self, mut entry: NewAuditEntry) -> Result<AuditEntry> {
        // The hash covers `at`: cut it to the stored precision first, so the chain verifies
        // from what is read back.
        entry.at = stored_time(entry.at);
        self.db().write(move |c| ops::append_audit(c, entry)).await
    }

    async fn list_audit(&self, tenant: &TenantId, query: &AuditQuery) -> Result<Vec<AuditEntry>> {
        let (tenant, query) = (tenant.clone(), query.clone());
        self.db()
            .read(move |c| ops::list_audit(c, &tenant, &query))
            .await
    }
}

#[async_trait]
impl CounterStore for SqliteStore {
    async fn counter_add(
        &self,
        tenant: &TenantId,
        key: &str,
        delta: i64,
        limit: Option<i64>,
    ) -> Result<CounterOutcome> {
        let (tenant, key) = (tenant.clone(), key.to_owned());
        self.db()
            .write(move |c| ops::counter_add(c, &tenant, &key, delta, limit))
            .await
    }

    async fn counter_get(&self, tenant: &TenantId, key: &str) -> Result<i64> {
        let (tenant, key) = (tenant.clone(), key.to_owned());
        self.db()
            .read(move |c| ops::counter_get(c, &tenant, &key))
            .await
    }
}

#[async_trait]
impl MemoryStore for SqliteStore {
    async fn put_memory(
        &self,
        tenant: &TenantId,
        scope: &MemoryScope,
        key: &str,
        value: &Value,
    ) -> Result<()> {
        let value = to_json(value)?;
        let (tenant, scope, key) = (tenant.clone(), scope.storage_key(), key.to_owned());
        self.db()
            .write(move |c| ops::put_memory(c, &tenant, &scope, &key, &value))
            .await
    }

    async fn get_memory(
        &self,
        tenant: &TenantId,
        scope: &MemoryScope,
        key: &str,
    ) -> Result<Option<Value>> {
        let (tenant, scope, key) = (tenant.clone(), scope.storage_key(), key.to_owned());
        self.db()
            .read(move |c| ops::get_memory(c, &tenant, &scope, &key))
            .await
    }

    async fn list_memory(
        &self,
        tenant: &TenantId,
        scope: &MemoryScope,
    ) -> Result<Vec<(String, Value)>> {
        let (tenant, scope) = (tenant.clone(), scope.storage_key());
        self.db()
            .read(move |c| ops::list_memory(c, &tenant, &scope))
            .await
    }

    async fn delete_memory(
        &self,
        tenant: &TenantId,
        scope: &MemoryScope,
        key: &str,
    ) -> Result<bool> {
        let (tenant, scope, key) = (tenant.clone(), scope.storage_key(), key.to_owned());
        self.db()
            .write(move |c| ops::delete_memory(c, &tenant, &scope, &key))
            .await
    }
}
