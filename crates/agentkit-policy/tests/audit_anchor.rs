//! Signed checkpoints anchor the audit chain: deleting its newest entries or rewriting the whole
//! history with fresh hashes passes the chain check alone, and is caught against the signed head.
#![allow(clippy::unwrap_used)]

use std::sync::Mutex;

use agentkit_core::id::TenantId;
use agentkit_core::store::{
    AUDIT_GENESIS_HASH, AuditEntry, AuditQuery, AuditStore, NewAuditEntry, verify_audit_chain,
};
use agentkit_core::{Error, Result};
use agentkit_policy::audit::{
    Anchor, CheckpointKey, CheckpointStore, FileCheckpoints, MemoryCheckpoints, checkpoint,
    export_jsonl_signed, verify, verify_anchored, verify_jsonl, verify_jsonl_signed,
};
use async_trait::async_trait;
use chrono::{TimeZone, Utc};

/// An audit table someone with write access to the database can rewrite at will.
#[derive(Default)]
struct Table(Mutex<Vec<AuditEntry>>);

impl Table {
    fn with(entries: Vec<AuditEntry>) -> Self {
        Self(Mutex::new(entries))
    }
}

#[async_trait]
impl AuditStore for Table {
    async fn append_audit(&self, _tenant: &TenantId, entry: NewAuditEntry) -> Result<AuditEntry> {
        let mut all = self.0.lock().unwrap();
        let (seq, prev) = all.last().map_or((1, AUDIT_GENESIS_HASH.to_string()), |e| {
            (e.seq + 1, e.hash.clone())
        });
        let chained = entry.chain(seq, prev);
        all.push(chained.clone());
        Ok(chained)
    }

    async fn list_audit(&self, _tenant: &TenantId, _query: &AuditQuery) -> Result<Vec<AuditEntry>> {
        Ok(self.0.lock().unwrap().clone())
    }
}

fn acme() -> TenantId {
    TenantId::from_static("acme")
}

/// A consistent chain of `n` entries whose actions start with `prefix`.
fn chain(n: u64, prefix: &str) -> Vec<AuditEntry> {
    let mut out: Vec<AuditEntry> = Vec::new();
    for i in 1..=n {
        let mut e = NewAuditEntry::new(acme(), "tool.call", "agent:a", format!("{prefix}{i}"));
        e.at = Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap()
            + chrono::Duration::seconds(i as i64);
        let prev = out
            .last()
            .map_or(AUDIT_GENESIS_HASH.to_string(), |p| p.hash.clone());
        out.push(e.chain(i, prev));
    }
    out
}

fn key() -> CheckpointKey {
    CheckpointKey::from_secret_bytes("audit-2026", &[7u8; 32])
}

#[tokio::test]
async fn a_truncated_tail_passes_the_chain_alone_and_is_caught_by_the_signed_head() {
    let original = Table::with(chain(5, "pay-"));
    let kept = MemoryCheckpoints::default();
    checkpoint(&original, &acme(), &key(), &kept).await.unwrap();

    // The newest two entries deleted.
    let cut = Table::with(chain(5, "pay-").into_iter().take(3).collect());
    let alone = verify(&cut, &acme()).await.unwrap();
    assert!(
        alone.is_intact(),
        "the hash chain alone cannot see a missing tail (this is why checkpoints exist)"
    );
    let anchored = verify_anchored(&cut, &acme(), &kept, &key().verifier())
        .await
        .unwrap();
    assert!(!anchored.is_intact());
    assert_eq!(
        anchored.anchor,
        Anchor::TruncatedTail {
            signed_seq: 5,
            last_seq: 3
        }
    );

    let intact = verify_anchored(&original, &acme(), &kept, &key().verifier())
        .await
        .unwrap();
    assert!(intact.is_intact(), "{intact:?}");
    assert_eq!(intact.anchor, Anchor::Matches { seq: 5 });
}

#[tokio::test]
async fn a_rewritten_history_with_fresh_hashes_is_caught() {
    let kept = MemoryCheckpoints::default();
    checkpoint(&Table::with(chain(5, "pay-")), &acme(), &key(), &kept)
        .await
        .unwrap();
    for forged in [chain(5, "forged-"), chain(7, "forged-")] {
        assert!(
            verify_audit_chain(&forged).is_ok(),
            "the forgery is a valid chain"
        );
        let report = verify_anchored(&Table::with(forged), &acme(), &kept, &key().verifier())
            .await
            .unwrap();
        assert_eq!(report.anchor, Anchor::Rechained { seq: 5 });
        assert!(!report.is_intact());
    }
    // New entries after the checkpoint are fine.
    let mut grown = chain(5, "pay-");
    let mut more = NewAuditEntry::new(acme(), "tool.call", "agent:a", "later");
    more.at = Utc.with_ymd_and_hms(2026, 11, 2, 0, 0, 0).unwrap();
    let prev = grown.last().unwrap().hash.clone();
    grown.push(more.chain(6, prev));
    let report = verify_anchored(&Table::with(grown), &acme(), &kept, &key().verifier())
        .await
        .unwrap();
    assert!(report.is_intact(), "{report:?}");
}

#[tokio::test]
async fn a_forged_or_foreign_checkpoint_is_a_bad_signature_and_none_is_missing() {
    let table = Table::with(chain(3, "pay-"));
    let kept = MemoryCheckpoints::default();
    let report = verify_anchored(&table, &acme(), &kept, &key().verifier())
        .await
        .unwrap();
    assert_eq!(report.anchor, Anchor::Missing);

    let mut c = checkpoint(&table, &acme(), &key(), &MemoryCheckpoints::default())
        .await
        .unwrap();
    c.seq = 2; // moved back to hide entry 3
    kept.put(&c).await.unwrap();
    let report = verify_anchored(&table, &acme(), &kept, &key().verifier())
        .await
        .unwrap();
    assert_eq!(report.anchor, Anchor::BadSignature);

    let other = CheckpointKey::from_secret_bytes("audit-2026", &[9u8; 32]);
    let kept = MemoryCheckpoints::default();
    checkpoint(&table, &acme(), &other, &kept).await.unwrap();
    let report = verify_anchored(&table, &acme(), &kept, &key().verifier())
        .await
        .unwrap();
    assert_eq!(report.anchor, Anchor::BadSignature, "signed by another key");
}

#[tokio::test]
async fn a_signed_export_detects_a_removed_last_line_or_a_missing_head() {
    let table = Table::with(chain(4, "pay-"));
    let mut out = Vec::new();
    let sink = MemoryCheckpoints::default();
    let n = export_jsonl_signed(&table, &acme(), &key(), Some(&sink), &mut out)
        .await
        .unwrap();
    assert_eq!(n, 4);
    assert!(
        sink.latest(&acme()).await.unwrap().is_some(),
        "the head is also kept"
    );
    let text = String::from_utf8(out).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 5);
    let verifier = key().verifier();

    let whole = verify_jsonl_signed(text.as_bytes(), &verifier).unwrap();
    assert!(whole.is_intact(), "{whole:?}");
    assert_eq!(whole.anchor, Anchor::Matches { seq: 4 });
    assert!(verify_jsonl(text.as_bytes()).unwrap().is_intact());

    // The last entry removed, the signed head kept.
    let cut = [&lines[..3], &lines[4..]].concat().join("\n");
    assert!(
        verify_jsonl(cut.as_bytes()).unwrap().is_intact(),
        "the chain alone cannot see it"
    );
    let report = verify_jsonl_signed(cut.as_bytes(), &verifier).unwrap();
    assert_eq!(
        report.anchor,
        Anchor::TruncatedTail {
            signed_seq: 4,
            last_seq: 3
        }
    );

    // Both the last entry and the head removed.
    let no_head = lines[..3].join("\n");
    let report = verify_jsonl_signed(no_head.as_bytes(), &verifier).unwrap();
    assert_eq!(report.anchor, Anchor::Missing);
    assert!(!report.is_intact());

    // A line after the head, or a malformed head, is an error naming the line.
    let extra = format!("{text}{}\n", lines[0]);
    let err = verify_jsonl_signed(extra.as_bytes(), &verifier).unwrap_err();
    assert!(err.to_string().contains("line 6"), "{err}");
    let broken = format!("{}\n{{\"checkpoint\": 5}}\n", lines[..4].join("\n"));
    assert!(matches!(
        verify_jsonl_signed(broken.as_bytes(), &verifier),
        Err(Error::InvalidInput(_))
    ));
}

#[tokio::test]
async fn checkpoints_in_a_file_survive_and_the_latest_wins() {
    let dir = tempfile::tempdir().unwrap();
    let file = FileCheckpoints::new(dir.path().join("checkpoints.jsonl"));
    assert!(file.latest(&acme()).await.unwrap().is_none());
    checkpoint(&Table::with(chain(2, "a-")), &acme(), &key(), &file)
        .await
        .unwrap();
    checkpoint(&Table::with(chain(6, "a-")), &acme(), &key(), &file)
        .await
        .unwrap();
    let reopened = FileCheckpoints::new(dir.path().join("checkpoints.jsonl"));
    let latest = reopened.latest(&acme()).await.unwrap().unwrap();
    assert_eq!(latest.seq, 6);
    assert!(latest.verify(&key().verifier()).is_ok());
    assert!(
        reopened
            .latest(&TenantId::from_static("other"))
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        !format!("{:?}", key()).contains(&key().secret_hex()),
        "Debug hides the key"
    );
}

/// The checkpointer never anchors tampering: after a truncation or a re-chained (even longer)
/// history it refuses to sign, so the latest checkpoint keeps telling the truth.
#[tokio::test]
async fn a_tampered_chain_is_never_signed() {
    let kept = MemoryCheckpoints::default();
    checkpoint(&Table::with(chain(5, "pay-")), &acme(), &key(), &kept)
        .await
        .unwrap();
    for tampered in [
        chain(5, "pay-").into_iter().take(3).collect::<Vec<_>>(),
        chain(7, "forged-"),
    ] {
        let err = checkpoint(&Table::with(tampered.clone()), &acme(), &key(), &kept)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), agentkit_core::ErrorKind::Conflict, "{err}");
        let report = verify_anchored(&Table::with(tampered), &acme(), &kept, &key().verifier())
            .await
            .unwrap();
        assert!(!report.is_intact(), "{report:?}");
    }
    let mut broken = chain(4, "pay-");
    broken[1].hash = "0".repeat(64);
    let err = checkpoint(
        &Table::with(broken),
        &acme(),
        &key(),
        &MemoryCheckpoints::default(),
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind(), agentkit_core::ErrorKind::Conflict, "{err}");
    // An honest chain that grew is signed again.
    let mut grown = chain(5, "pay-");
    let mut more = NewAuditEntry::new(acme(), "tool.call", "agent:a", "later");
    more.at = Utc.with_ymd_and_hms(2026, 11, 2, 0, 0, 0).unwrap();
    let prev = grown.last().unwrap().hash.clone();
    grown.push(more.chain(6, prev));
    let c = checkpoint(&Table::with(grown), &acme(), &key(), &kept)
        .await
        .unwrap();
    assert_eq!(c.seq, 6);
}
