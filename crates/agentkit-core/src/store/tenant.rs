//! One way to pass the tenant: [`ensure_tenant`] for backends, [`TenantStore`] for callers.

use std::sync::Arc;

use serde_json::Value;

use super::{
    AuditEntry, AuditQuery, MemoryScope, MessageWindow, NewAuditEntry, StateStore, StoredMessage,
    UsageEvent, UsageQuery,
};
use crate::error::{Error, Result};
use crate::id::{SessionId, TenantId};

/// `Ok` when a record's tenant is the tenant the call was made for. Every backend calls it
/// before writing, so a record of another tenant can never be written through a call made for
/// `tenant` — and a batch can never mix tenants.
pub fn ensure_tenant(tenant: &TenantId, record_tenant: &TenantId, what: &str) -> Result<()> {
    if tenant == record_tenant {
        Ok(())
    } else {
        Err(Error::InvalidInput(format!(
            "{what} belongs to tenant `{record_tenant}`, but the call is for tenant `{tenant}`"
        )))
    }
}

/// A store bound to one tenant: `store.tenant(&t)` (with [`StateStoreExt`]) — every call
/// through it is made for that tenant, so code holding a `TenantStore` cannot reach another
/// tenant's data.
///
/// It covers the calls hosts make most; everything else is on the store itself, with the
/// tenant as the first argument.
///
/// ```
/// # async fn demo() -> agentkit_core::Result<()> {
/// use std::sync::Arc;
/// use agentkit_core::id::TenantId;
/// use agentkit_core::store::{InMemoryStore, StateStore, StateStoreExt, UsageQuery};
///
/// let store: Arc<dyn StateStore> = Arc::new(InMemoryStore::new());
/// let acme = store.tenant(TenantId::new("acme")?);
/// assert!(acme.usage(&UsageQuery::all()).await?.is_empty());
/// # Ok(()) }
/// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
/// ```
#[derive(Clone)]
pub struct TenantStore {
    store: Arc<dyn StateStore>,
    tenant: TenantId,
}

impl std::fmt::Debug for TenantStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TenantStore")
            .field("tenant", &self.tenant)
            .finish_non_exhaustive()
    }
}

/// `store.tenant(&t)` on any `Arc<dyn StateStore>`.
pub trait StateStoreExt {
    /// The store bound to `tenant`.
    fn tenant(&self, tenant: TenantId) -> TenantStore;
}

impl StateStoreExt for Arc<dyn StateStore> {
    fn tenant(&self, tenant: TenantId) -> TenantStore {
        TenantStore {
            store: self.clone(),
            tenant,
        }
    }
}

impl TenantStore {
    /// The tenant.
    pub fn id(&self) -> &TenantId {
        &self.tenant
    }

    /// The underlying store.
    pub fn store(&self) -> &Arc<dyn StateStore> {
        &self.store
    }

    /// Messages of a session.
    pub async fn messages(
        &self,
        session: &SessionId,
        window: MessageWindow,
    ) -> Result<Vec<StoredMessage>> {
        self.store
            .load_messages(&self.tenant, session, window)
            .await
    }

    /// Usage events.
    pub async fn usage(&self, query: &UsageQuery) -> Result<Vec<UsageEvent>> {
        self.store.list_usage(&self.tenant, query).await
    }

    /// Appends usage events (all must belong to this tenant).
    pub async fn append_usage(&self, events: &[UsageEvent]) -> Result<()> {
        self.store.append_usage(&self.tenant, events).await
    }

    /// Audit entries.
    pub async fn audit(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>> {
        self.store.list_audit(&self.tenant, query).await
    }

    /// Appends an audit entry (it must belong to this tenant).
    pub async fn append_audit(&self, entry: NewAuditEntry) -> Result<AuditEntry> {
        self.store.append_audit(&self.tenant, entry).await
    }

    /// Commits a whole step atomically ([`crate::store::StepStore::commit_step`]; every record
    /// must belong to this tenant).
    pub async fn commit_step(&self, step: crate::store::Step) -> Result<crate::store::StepReceipt> {
        self.store.commit_step(&self.tenant, step).await
    }

    /// A counter's value.
    pub async fn counter(&self, key: &str) -> Result<i64> {
        self.store.counter_get(&self.tenant, key).await
    }

    /// A long-term memory value.
    pub async fn memory(&self, scope: &MemoryScope, key: &str) -> Result<Option<Value>> {
        self.store.get_memory(&self.tenant, scope, key).await
    }
}
