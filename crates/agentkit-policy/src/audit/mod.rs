//! Audit trail verification and compliance export.
//!
//! Entries are appended by the agent and the engine through the store's `AuditStore`, each
//! carrying the hash of the tenant's previous entry. [`verify`] re-checks a tenant's chain in the
//! store; [`export_jsonl`] writes it as JSON Lines, and [`verify_jsonl`] re-checks such an export
//! offline, so an edited, removed or re-ordered line *inside* the chain is detected wherever the
//! file went.
//!
//! A chain alone cannot tell that its newest entries were deleted, or that a whole history was
//! rewritten with fresh hashes. Signed [`checkpoint`]s of the chain head, kept out of the audit
//! table's reach, can: [`verify_anchored`] checks a chain against the latest one, and
//! [`export_jsonl_signed`] / [`verify_jsonl_signed`] carry a signed head inside an export.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! use agentkit_core::id::TenantId;
//! use agentkit_core::store::{AuditStore, InMemoryStore, NewAuditEntry};
//! use agentkit_policy::audit::{Anchor, CheckpointKey, MemoryCheckpoints, checkpoint, verify_anchored};
//!
//! let store = InMemoryStore::new();
//! let acme = TenantId::from_static("acme");
//! for i in 0..3 {
//!     let e = NewAuditEntry::new(acme.clone(), "tool.call", "agent:a", format!("t{i}"));
//!     store.append_audit(&acme, e).await?;
//! }
//! let key = CheckpointKey::generate("audit-2026")?;
//! let kept_elsewhere = MemoryCheckpoints::default();
//! checkpoint(&store, &acme, &key, &kept_elsewhere).await?;
//!
//! let report = verify_anchored(&store, &acme, &kept_elsewhere, &key.verifier()).await?;
//! assert!(report.is_intact());
//! assert!(matches!(report.anchor, Anchor::Matches { seq: 3 }));
//! # Ok::<(), agentkit_core::Error>(())
//! # }).unwrap();
//! ```

mod checkpoint;

use std::io::{BufRead, Write};

use agentkit_core::error::{Error, Result};
use agentkit_core::id::TenantId;
use agentkit_core::store::{AuditEntry, AuditQuery, AuditStore, verify_audit_chain};
use serde::{Deserialize, Serialize};

pub use checkpoint::{
    Checkpoint, CheckpointKey, CheckpointStore, CheckpointVerifier, FileCheckpoints,
    MemoryCheckpoints,
};

/// The result of a verification.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AuditReport {
    /// Entries checked.
    pub entries: usize,
    /// Sequence number of the first entry that does not verify, if any.
    pub first_bad: Option<u64>,
    /// What the signed head said, when one was checked.
    pub anchor: Anchor,
}

/// The chain against a signed [`Checkpoint`] of its head.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Anchor {
    /// No checkpoint was checked (the chain alone: a truncated tail is not detectable).
    NotChecked,
    /// The entry at the checkpoint's sequence number has the signed hash.
    Matches {
        /// The signed sequence number.
        seq: u64,
    },
    /// The chain ends before the signed head: its newest entries were removed.
    TruncatedTail {
        /// The signed sequence number.
        signed_seq: u64,
        /// The chain's last sequence number (0: empty).
        last_seq: u64,
    },
    /// The entry at the signed sequence number has another hash: the history was rewritten.
    Rechained {
        /// The signed sequence number.
        seq: u64,
    },
    /// The checkpoint's signature does not verify (or another key signed it).
    BadSignature,
    /// A signed head was required but is missing (no checkpoint for the tenant, or an export
    /// without its signed head line).
    Missing,
}

impl AuditReport {
    /// Whether the chain verified and, when a checkpoint was checked, matches it.
    pub fn is_intact(&self) -> bool {
        self.first_bad.is_none()
            && matches!(self.anchor, Anchor::NotChecked | Anchor::Matches { .. })
    }
}

fn anchor(entries: &[AuditEntry], c: &Checkpoint, verifier: &CheckpointVerifier) -> Anchor {
    if c.verify(verifier).is_err() {
        return Anchor::BadSignature;
    }
    let last_seq = entries.last().map_or(0, |e| e.seq);
    if c.seq == 0 {
        return Anchor::Matches { seq: 0 };
    }
    match entries.iter().find(|e| e.seq == c.seq) {
        Some(e) if e.hash == c.head_hash => Anchor::Matches { seq: c.seq },
        Some(_) => Anchor::Rechained { seq: c.seq },
        None if last_seq < c.seq => Anchor::TruncatedTail {
            signed_seq: c.seq,
            last_seq,
        },
        None => Anchor::Rechained { seq: c.seq },
    }
}

/// Verifies a tenant's chain in the store **and** against the latest checkpoint in
/// `checkpoints`: a truncated tail or a re-chained history is reported in
/// [`AuditReport::anchor`]; no checkpoint for the tenant is [`Anchor::Missing`].
pub async fn verify_anchored(
    store: &dyn AuditStore,
    tenant: &TenantId,
    checkpoints: &dyn CheckpointStore,
    verifier: &CheckpointVerifier,
) -> Result<AuditReport> {
    let entries = store.list_audit(tenant, &AuditQuery::all()).await?;
    let mut r = report(&entries);
    r.anchor = match checkpoints.latest(tenant).await? {
        Some(c) if &c.tenant == tenant => anchor(&entries, &c, verifier),
        _ => Anchor::Missing,
    };
    Ok(r)
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
        anchor: Anchor::NotChecked,
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

/// The last line of a signed export.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SignedHead {
    checkpoint: Checkpoint,
}

fn io(err: std::io::Error) -> Error {
    Error::Unavailable {
        message: format!("audit export: {err}"),
        source: Some(Box::new(err)),
    }
}

/// [`export_jsonl`] of the whole chain, ending with a signed head line
/// (`{"checkpoint": {...}}`) for the last entry; the checkpoint is also put in `sink` when
/// given. [`verify_jsonl_signed`] checks such a file.
pub async fn export_jsonl_signed(
    store: &dyn AuditStore,
    tenant: &TenantId,
    key: &CheckpointKey,
    sink: Option<&dyn CheckpointStore>,
    out: &mut dyn Write,
) -> Result<usize> {
    let entries = store.list_audit(tenant, &AuditQuery::all()).await?;
    for e in &entries {
        serde_json::to_writer(&mut *out, e)
            .map_err(|err| Error::Internal(format!("audit export: {err}")))?;
        out.write_all(b"\n").map_err(io)?;
    }
    let (seq, hash) = entries.last().map_or_else(
        || (0, agentkit_core::store::AUDIT_GENESIS_HASH.to_owned()),
        |e| (e.seq, e.hash.clone()),
    );
    let head = key.sign(tenant, seq, &hash);
    if let Some(sink) = sink {
        sink.put(&head).await?;
    }
    serde_json::to_writer(&mut *out, &SignedHead { checkpoint: head })
        .map_err(|err| Error::Internal(format!("audit export: {err}")))?;
    out.write_all(b"\n").map_err(io)?;
    Ok(entries.len())
}

/// The entries of an export and its signed head line, if any; any other line is
/// [`Error::InvalidInput`] naming it, and so is a line after the signed head.
fn read_export(input: impl BufRead) -> Result<(Vec<AuditEntry>, Option<Checkpoint>)> {
    let mut entries = Vec::new();
    let mut head = None;
    for (i, line) in input.lines().enumerate() {
        let line =
            line.map_err(|e| Error::InvalidInput(format!("audit export line {}: {e}", i + 1)))?;
        if line.trim().is_empty() {
            continue;
        }
        if head.is_some() {
            return Err(Error::InvalidInput(format!(
                "audit export line {}: nothing may follow the signed head",
                i + 1
            )));
        }
        if line.trim_start().starts_with("{\"checkpoint\"") {
            let h: SignedHead = serde_json::from_str(&line)
                .map_err(|e| Error::InvalidInput(format!("audit export line {}: {e}", i + 1)))?;
            head = Some(h.checkpoint);
            continue;
        }
        let entry: AuditEntry = serde_json::from_str(&line)
            .map_err(|e| Error::InvalidInput(format!("audit export line {}: {e}", i + 1)))?;
        entries.push(entry);
    }
    Ok((entries, head))
}

/// Verifies a signed export ([`export_jsonl_signed`]): the chain, and its signed head line,
/// which must be there ([`Anchor::Missing`] otherwise), verify with `verifier` and match the
/// last entry — so a removed last line, or a file cut anywhere, is detected.
pub fn verify_jsonl_signed(
    input: impl BufRead,
    verifier: &CheckpointVerifier,
) -> Result<AuditReport> {
    let (entries, head) = read_export(input)?;
    let mut r = report(&entries);
    r.anchor = match head {
        None => Anchor::Missing,
        Some(c) => match (anchor(&entries, &c, verifier), entries.last()) {
            // The export must end exactly at the signed head.
            (Anchor::Matches { seq }, Some(last)) if last.seq != seq => Anchor::Rechained { seq },
            (a, _) => a,
        },
    };
    Ok(r)
}

/// Verifies a JSON Lines export of a whole chain (a signed head line, if present, is read
/// but not checked: use [`verify_jsonl_signed`]). A line that is neither an entry nor the
/// signed head is reported as [`Error::InvalidInput`] with its line number.
pub fn verify_jsonl(input: impl BufRead) -> Result<AuditReport> {
    let (entries, _head) = read_export(input)?;
    Ok(report(&entries))
}

/// Signs the current head of `tenant`'s chain and puts the checkpoint in `sink`.
///
/// A chain that does not verify, or that no longer matches the latest checkpoint in `sink`
/// (a truncated tail or a re-chained history), is never signed: that would anchor the
/// tampering. It is [`Error::Conflict`] naming what was found. A latest checkpoint signed by
/// another key (a rotated one) is not checked here; verify it with its own verifier.
pub async fn checkpoint(
    store: &dyn AuditStore,
    tenant: &TenantId,
    key: &CheckpointKey,
    sink: &dyn CheckpointStore,
) -> Result<Checkpoint> {
    let entries = store.list_audit(tenant, &AuditQuery::all()).await?;
    if let Err(seq) = verify_audit_chain(&entries) {
        return Err(Error::Conflict(format!(
            "the audit chain of `{tenant}` is broken at entry {seq}; not signing it"
        )));
    }
    if let Some(previous) = sink.latest(tenant).await?
        && previous.key_id == key.id()
    {
        match anchor(&entries, &previous, &key.verifier()) {
            Anchor::Matches { .. } => {}
            other => {
                return Err(Error::Conflict(format!(
                    "the audit chain of `{tenant}` does not match its latest checkpoint \
                     ({other:?}); not signing it"
                )));
            }
        }
    }
    let (seq, hash) = entries.last().map_or_else(
        || (0, agentkit_core::store::AUDIT_GENESIS_HASH.to_owned()),
        |e| (e.seq, e.hash.clone()),
    );
    let c = key.sign(tenant, seq, &hash);
    sink.put(&c).await?;
    Ok(c)
}

/// Takes a checkpoint of every tenant in `tenants` every `every`, until the future is dropped
/// (spawn it). A failure is logged (an error for a chain that no longer matches, so alerting
/// can pick it up) and tried again at the next tick.
pub async fn run_checkpoints(
    store: &dyn AuditStore,
    tenants: Vec<TenantId>,
    key: &CheckpointKey,
    sink: &dyn CheckpointStore,
    every: std::time::Duration,
) {
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        for t in &tenants {
            match checkpoint(store, t, key, sink).await {
                Ok(c) => tracing::debug!(tenant = %t, seq = c.seq, "audit checkpoint"),
                Err(e) if e.kind() == agentkit_core::ErrorKind::Conflict => {
                    tracing::error!(tenant = %t, error = %e, "audit chain tampered with");
                }
                Err(e) => tracing::warn!(tenant = %t, error = %e, "audit checkpoint failed"),
            }
        }
    }
}
