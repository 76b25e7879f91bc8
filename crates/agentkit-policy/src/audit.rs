//! Audit trail verification and compliance export.
//!
//! Entries are appended by the agent and the engine through the store's `AuditStore`, each
//! carrying the hash of the tenant's previous entry. [`verify`] re-checks a tenant's chain in the
//! store; [`export_jsonl`] writes it as JSON Lines, and [`verify_jsonl`] re-checks such an export
//! offline, so an edited, removed or re-ordered line is detected wherever the file went.

use std::io::{BufRead, Write};

use agentkit_core::error::{Error, Result};
use agentkit_core::id::TenantId;
use agentkit_core::store::{AuditEntry, AuditQuery, AuditStore, verify_audit_chain};

/// The result of a verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditReport {
    /// Entries checked.
    pub entries: usize,
    /// Sequence number of the first entry that does not verify, if any.
    pub first_bad: Option<u64>,
}

impl AuditReport {
    /// Whether the whole chain verified.
    pub fn is_intact(&self) -> bool {
        self.first_bad.is_none()
    }
}

/// Verifies a tenant's whole chain in the store.
pub async fn verify(store: &dyn AuditStore, tenant: &TenantId) -> Result<AuditReport> {
    let entries = store.list_audit(tenant, &AuditQuery::all()).await?;
    Ok(report(&entries))
}

fn report(entries: &[AuditEntry]) -> AuditReport {
    AuditReport {
        entries: entries.len(),
        first_bad: verify_audit_chain(entries).err(),
    }
}

/// Writes the entries matching `query` as JSON Lines (one entry per line, in sequence order)
/// and returns how many were written. Export the whole chain (`AuditQuery::all()`) to be able to
/// verify it later.
pub async fn export_jsonl(
    store: &dyn AuditStore,
    tenant: &TenantId,
    query: &AuditQuery,
    out: &mut dyn Write,
) -> Result<usize> {
    let entries = store.list_audit(tenant, query).await?;
    for e in &entries {
        serde_json::to_writer(&mut *out, e)
            .map_err(|err| Error::Internal(format!("audit export: {err}")))?;
        out.write_all(b"\n").map_err(|err| Error::Unavailable {
            message: format!("audit export: {err}"),
            source: Some(Box::new(err)),
        })?;
    }
    Ok(entries.len())
}

/// Verifies a JSON Lines export of a whole chain. A line that is not an entry is reported as
/// [`Error::InvalidInput`] with its line number.
pub fn verify_jsonl(input: impl BufRead) -> Result<AuditReport> {
    let mut entries = Vec::new();
    for (i, line) in input.lines().enumerate() {
        let line =
            line.map_err(|e| Error::InvalidInput(format!("audit export line {}: {e}", i + 1)))?;
        if line.trim().is_empty() {
            continue;
        }
        let entry: AuditEntry = serde_json::from_str(&line)
            .map_err(|e| Error::InvalidInput(format!("audit export line {}: {e}", i + 1)))?;
        entries.push(entry);
    }
    Ok(report(&entries))
}
