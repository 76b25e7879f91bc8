//! Signed checkpoints of a tenant's audit chain head: the anchor that makes a truncated tail
//! or a re-chained history detectable.
//!
//! A hash chain proves that no entry *inside* it was edited or removed, but not that its end is
//! still there: delete the newest entries, or recompute every hash of a rewritten history, and
//! the chain verifies again. A [`Checkpoint`] records the head (sequence number and hash) of a
//! tenant's chain at a moment, signed with a key the host holds ([`CheckpointKey`]), and is kept
//! where whoever can write the audit table cannot (a [`CheckpointStore`]: an append-only file on
//! another volume, object storage with retention, another database). Verifying against the
//! latest checkpoint ([`super::verify_anchored`]) then tells a truncated tail (the signed head is
//! beyond the chain's end) and a re-chained history (the entry at the signed sequence number has
//! another hash) from an intact chain.
//!
//! Signatures are Ed25519 (`ed25519-dalek`): an auditor verifies with the public key alone
//! ([`CheckpointVerifier`]), so the verifying side cannot forge checkpoints.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use agentkit_core::error::{Error, Result};
use agentkit_core::id::TenantId;
use async_trait::async_trait;
use chrono::{DateTime, SubsecRound, Utc};
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};

/// The head of one tenant's audit chain at a moment, signed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checkpoint {
    /// The tenant.
    pub tenant: TenantId,
    /// Sequence number of the newest entry (0: the chain was empty).
    pub seq: u64,
    /// That entry's hash (the genesis hash for an empty chain).
    pub head_hash: String,
    /// When the checkpoint was taken (microseconds).
    pub at: DateTime<Utc>,
    /// Which key signed it.
    pub key_id: String,
    /// Ed25519 signature over [`Checkpoint::signed_bytes`], hex.
    pub signature: String,
}

impl Checkpoint {
    /// The exact bytes signed: a versioned, line-separated text of every field but the
    /// signature.
    pub fn signed_bytes(&self) -> Vec<u8> {
        format!(
            "agentkit-audit-checkpoint/v1\n{}\n{}\n{}\n{}\n{}",
            self.tenant,
            self.seq,
            self.head_hash,
            self.at.timestamp_micros(),
            self.key_id
        )
        .into_bytes()
    }

    /// Checks the signature with `verifier` (its key id must match).
    pub fn verify(&self, verifier: &CheckpointVerifier) -> Result<()> {
        if self.key_id != verifier.id {
            return Err(Error::InvalidInput(format!(
                "checkpoint signed by key `{}`, not `{}`",
                self.key_id, verifier.id
            )));
        }
        let bytes: [u8; 64] = hex::decode(&self.signature)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| {
                Error::InvalidInput("checkpoint signature is not 64 hex bytes".into())
            })?;
        verifier
            .key
            .verify(&self.signed_bytes(), &Signature::from_bytes(&bytes))
            .map_err(|_| Error::InvalidInput("checkpoint signature does not verify".into()))
    }
}

/// The host's signing key for checkpoints. `Debug` never shows it.
pub struct CheckpointKey {
    id: String,
    key: SigningKey,
}

impl std::fmt::Debug for CheckpointKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CheckpointKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl CheckpointKey {
    /// A key from its 32 secret bytes (kept in the host's secret store), named `id`.
    pub fn from_secret_bytes(id: impl Into<String>, secret: &[u8; 32]) -> Self {
        Self {
            id: id.into(),
            key: SigningKey::from_bytes(secret),
        }
    }

    /// A key from 64 hex digits.
    pub fn from_hex(id: impl Into<String>, hex_secret: &str) -> Result<Self> {
        let bytes: [u8; 32] = hex::decode(hex_secret.trim())
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| {
                Error::InvalidConfig("a checkpoint key is 64 hex digits (32 bytes)".into())
            })?;
        Ok(Self::from_secret_bytes(id, &bytes))
    }

    /// A new random key (the operating system's generator); store
    /// [`CheckpointKey::secret_hex`] in the host's secret store.
    pub fn generate(id: impl Into<String>) -> Result<Self> {
        let mut secret = [0u8; 32];
        getrandom::fill(&mut secret)
            .map_err(|e| Error::Internal(format!("no randomness for a checkpoint key: {e}")))?;
        Ok(Self::from_secret_bytes(id, &secret))
    }

    /// The secret as 64 hex digits (to store it).
    pub fn secret_hex(&self) -> String {
        hex::encode(self.key.to_bytes())
    }

    /// The key's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The public half, for whoever verifies.
    pub fn verifier(&self) -> CheckpointVerifier {
        CheckpointVerifier {
            id: self.id.clone(),
            key: self.key.verifying_key(),
        }
    }

    /// Signs the head `(seq, head_hash)` of `tenant`'s chain now.
    pub fn sign(&self, tenant: &TenantId, seq: u64, head_hash: &str) -> Checkpoint {
        let mut c = Checkpoint {
            tenant: tenant.clone(),
            seq,
            head_hash: head_hash.to_owned(),
            at: Utc::now().trunc_subsecs(6),
            key_id: self.id.clone(),
            signature: String::new(),
        };
        c.signature = hex::encode(self.key.sign(&c.signed_bytes()).to_bytes());
        c
    }
}

/// The public key that verifies checkpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointVerifier {
    id: String,
    key: VerifyingKey,
}

impl CheckpointVerifier {
    /// A verifier from the public key's 64 hex digits.
    pub fn from_hex(id: impl Into<String>, public_hex: &str) -> Result<Self> {
        let bytes: [u8; 32] = hex::decode(public_hex.trim())
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| {
                Error::InvalidConfig("a checkpoint public key is 64 hex digits (32 bytes)".into())
            })?;
        let key = VerifyingKey::from_bytes(&bytes)
            .map_err(|_| Error::InvalidConfig("not an Ed25519 public key".into()))?;
        Ok(Self { id: id.into(), key })
    }

    /// The public key as 64 hex digits.
    pub fn public_hex(&self) -> String {
        hex::encode(self.key.to_bytes())
    }
}

/// Where checkpoints are kept: out of reach of whoever can write the audit table.
#[async_trait]
pub trait CheckpointStore: Send + Sync {
    /// Appends a checkpoint.
    async fn put(&self, checkpoint: &Checkpoint) -> Result<()>;
    /// The newest checkpoint of `tenant` (highest `seq`, then latest), if any.
    async fn latest(&self, tenant: &TenantId) -> Result<Option<Checkpoint>>;
}

fn newer(a: &Checkpoint, b: &Checkpoint) -> bool {
    (a.seq, a.at) > (b.seq, b.at)
}

/// Checkpoints in memory (tests, or a host that forwards them elsewhere itself).
#[derive(Debug, Default)]
pub struct MemoryCheckpoints {
    all: Mutex<Vec<Checkpoint>>,
}

#[async_trait]
impl CheckpointStore for MemoryCheckpoints {
    async fn put(&self, checkpoint: &Checkpoint) -> Result<()> {
        self.all
            .lock()
            .map_err(|_| Error::Internal("checkpoint lock poisoned".into()))?
            .push(checkpoint.clone());
        Ok(())
    }

    async fn latest(&self, tenant: &TenantId) -> Result<Option<Checkpoint>> {
        let all = self
            .all
            .lock()
            .map_err(|_| Error::Internal("checkpoint lock poisoned".into()))?;
        Ok(all
            .iter()
            .filter(|c| &c.tenant == tenant)
            .fold(None, |best: Option<&Checkpoint>, c| match best {
                Some(b) if !newer(c, b) => Some(b),
                _ => Some(c),
            })
            .cloned())
    }
}

/// Checkpoints appended to a JSON Lines file (put it on storage the database's writers cannot
/// change: another volume, a WORM bucket mount). Lines that do not parse are errors, naming the
/// line.
#[derive(Debug)]
pub struct FileCheckpoints {
    path: PathBuf,
    lock: tokio::sync::Mutex<()>,
}

impl FileCheckpoints {
    /// Checkpoints in the file at `path` (created on the first `put`).
    pub fn new(path: impl AsRef<Path>) -> Self {
        Self {
            path: path.as_ref().to_owned(),
            lock: tokio::sync::Mutex::new(()),
        }
    }
}

fn io_error(what: &str, e: std::io::Error) -> Error {
    Error::Unavailable {
        message: format!("checkpoint file: {what}: {e}"),
        source: Some(Box::new(e)),
    }
}

#[async_trait]
impl CheckpointStore for FileCheckpoints {
    async fn put(&self, checkpoint: &Checkpoint) -> Result<()> {
        let _guard = self.lock.lock().await;
        let mut line = serde_json::to_vec(checkpoint)
            .map_err(|e| Error::Internal(format!("checkpoint: {e}")))?;
        line.push(b'\n');
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(|e| io_error("open", e))?;
        file.write_all(&line).map_err(|e| io_error("write", e))?;
        file.sync_data().map_err(|e| io_error("sync", e))
    }

    async fn latest(&self, tenant: &TenantId) -> Result<Option<Checkpoint>> {
        let _guard = self.lock.lock().await;
        let file = match std::fs::File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_error("open", e)),
        };
        let mut best: Option<Checkpoint> = None;
        for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
            let line = line.map_err(|e| io_error("read", e))?;
            if line.trim().is_empty() {
                continue;
            }
            let c: Checkpoint = serde_json::from_str(&line)
                .map_err(|e| Error::InvalidInput(format!("checkpoint file line {}: {e}", i + 1)))?;
            if &c.tenant == tenant && best.as_ref().is_none_or(|b| newer(&c, b)) {
                best = Some(c);
            }
        }
        Ok(best)
    }
}
