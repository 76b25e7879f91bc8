//! What ingestion reports: [`Progress`] while it runs, an [`IngestReport`] when it ends, and
//! a typed [`IngestError`] for each document that failed.

use std::time::Duration;

use crate::loaders::LoadError;

/// Why one document was not indexed. The rest of its batch goes on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IngestError {
    /// Its bytes could not be read as its format (corrupt PDF, invalid UTF-8, empty, too big).
    #[error("could not load: {0}")]
    Load(#[from] LoadError),
    /// The batch held another document with the same id.
    #[error("the batch holds this document id twice")]
    DuplicateId,
    /// Chunking failed.
    #[error("could not chunk: {0}")]
    Chunk(agentkit_core::Error),
    /// The embedder failed (after retries when the error was retryable).
    #[error("could not embed: {0}")]
    Embed(agentkit_core::Error),
    /// The vector store refused or failed the write.
    #[error("could not store: {0}")]
    Store(agentkit_core::Error),
}

/// A document that failed, with why.
#[derive(Debug)]
pub struct DocumentFailure {
    /// The document.
    pub document_id: String,
    /// Why.
    pub error: IngestError,
}

/// How ingestion is going, reported after each document is prepared and after each embedded
/// batch is stored.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Progress {
    /// Documents in this call.
    pub documents_total: usize,
    /// Documents finished: indexed, unchanged or failed.
    pub documents_done: usize,
    /// Of which failed.
    pub documents_failed: usize,
    /// Of which unchanged (skipped by content hash).
    pub documents_unchanged: usize,
    /// Chunks to embed (known once every document is chunked).
    pub chunks_total: usize,
    /// Chunks embedded and stored.
    pub chunks_done: usize,
    /// Time since the call began.
    pub elapsed: Duration,
    /// Embedded chunks per second so far.
    pub chunks_per_second: f64,
    /// Time left at the current pace (`None` before the first batch).
    pub eta: Option<Duration>,
}

impl Progress {
    pub(crate) fn new(documents_total: usize) -> Self {
        Self {
            documents_total,
            documents_done: 0,
            documents_failed: 0,
            documents_unchanged: 0,
            chunks_total: 0,
            chunks_done: 0,
            elapsed: Duration::ZERO,
            chunks_per_second: 0.0,
            eta: None,
        }
    }

    pub(crate) fn tick(&mut self, elapsed: Duration) {
        self.elapsed = elapsed;
        let secs = elapsed.as_secs_f64();
        if self.chunks_done > 0 && secs > 0.0 {
            self.chunks_per_second = self.chunks_done as f64 / secs;
            let left = self.chunks_total.saturating_sub(self.chunks_done) as f64;
            self.eta = Some(Duration::from_secs_f64(left / self.chunks_per_second));
        }
    }
}

impl std::fmt::Display for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}/{} documents ({} unchanged, {} failed), {}/{} chunks, {:.0} chunks/s",
            self.documents_done,
            self.documents_total,
            self.documents_unchanged,
            self.documents_failed,
            self.chunks_done,
            self.chunks_total,
            self.chunks_per_second
        )?;
        if let Some(eta) = self.eta {
            write!(f, ", ETA {:.1}s", eta.as_secs_f64())?;
        }
        Ok(())
    }
}

/// What one ingestion call did.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct IngestReport {
    /// Documents indexed (new or changed), with their chunk counts.
    pub indexed: Vec<(String, usize)>,
    /// Documents skipped because their content hash had not changed.
    pub unchanged: Vec<String>,
    /// Documents that failed, each with a typed error.
    pub failed: Vec<DocumentFailure>,
    /// Chunks embedded and stored.
    pub chunks: usize,
    /// Time the call took.
    pub elapsed: Duration,
}

impl IngestReport {
    /// Whether every document was indexed or unchanged.
    pub fn is_complete(&self) -> bool {
        self.failed.is_empty()
    }

    /// The failure of a document, if it failed.
    pub fn failure(&self, document_id: &str) -> Option<&IngestError> {
        self.failed
            .iter()
            .find(|f| f.document_id == document_id)
            .map(|f| &f.error)
    }
}
