//! The ingestion pipeline: load → chunk → embed (batched, bounded concurrency, retried) →
//! replace the document's vectors atomically; incremental by content hash, with progress.

mod report;

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use backon::{BackoffBuilder, ExponentialBuilder};
use futures::{StreamExt, TryStreamExt, stream};
use tokio::sync::Semaphore;
use tracing::Instrument;

use agentkit_core::id::{AgentId, TenantId};
use agentkit_core::retrieval::{DocumentEntry, Embedder, SourceRef, VectorRecord, VectorStore};
use agentkit_core::{Error, Result};

use crate::chunk::{Chunk, Chunker, ChunkingConfig, sha256_hex};
use crate::document::Document;
use crate::golden::KIND_KEY;
use crate::loaders::{LoadLimits, extract};

pub use report::{DocumentFailure, IngestError, IngestReport, Progress};

/// The metadata key every chunk carries with its document's id (filterable in searches).
pub const DOCUMENT_ID_KEY: &str = "document_id";
/// The value of [`crate::golden::KIND_KEY`] on every document chunk.
pub const KIND_DOCUMENT: &str = "document";

type ProgressFn<'a> = dyn Fn(&Progress) + Send + Sync + 'a;

/// Indexes documents into a vector store for one tenant and agent at a time.
///
/// - **Incremental**: a document whose bytes, title, metadata and chunking are unchanged
///   since it was indexed (same content hash) costs one lookup and is skipped; a changed one
///   has its chunks replaced in one atomic store call; [`Ingestor::delete`] removes a
///   document's vectors.
/// - **Resumable**: each document is committed on its own, so a run stopped midway is resumed
///   by calling `ingest` again with the same documents: the finished ones are unchanged.
/// - **Bounded**: at most `concurrency` embedding calls are in flight, each of at most
///   `batch_size` chunks; a retryable embedder error (rate limit, timeout, 5xx) is retried with
///   exponential backoff (honouring the server's `retry_after`).
/// - **Per-document errors**: a corrupt, empty, oversized or non-UTF-8 document gets a typed
///   [`IngestError`] in the report and the rest of the batch goes on.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> agentkit_core::Result<()> {
/// use std::sync::Arc;
/// use agentkit_core::id::{AgentId, TenantId};
/// use agentkit_rag::{Document, Ingestor, memory::InMemoryVectorStore, testkit::HashEmbedder};
///
/// let store = Arc::new(InMemoryVectorStore::new(64));
/// let ingestor = Ingestor::builder(Arc::new(HashEmbedder::new(64)), store.clone()).build()?;
/// let (tenant, agent) = (TenantId::new("acme")?, AgentId::new("support")?);
/// let docs = vec![Document::markdown("refunds.md", "# Refunds\n\nRefunds take 5 days.")];
/// let report = ingestor
///     .ingest_with_progress(&tenant, &agent, docs, |p| println!("{p}"))
///     .await;
/// assert_eq!(report.indexed, [("refunds.md".to_string(), 1)]);
/// # Ok(())
/// # }
/// ```
pub struct Ingestor {
    embedder: Arc<dyn Embedder>,
    store: Arc<dyn VectorStore>,
    chunker: Chunker,
    batch_size: usize,
    concurrency: usize,
    retry: Retry,
    limits: LoadLimits,
    permits: Arc<Semaphore>,
}

impl std::fmt::Debug for Ingestor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ingestor")
            .field("chunker", &self.chunker)
            .field("batch_size", &self.batch_size)
            .field("concurrency", &self.concurrency)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Copy)]
struct Retry {
    attempts: usize,
    min_delay: Duration,
    max_delay: Duration,
}

/// Builds an [`Ingestor`].
pub struct IngestorBuilder {
    embedder: Arc<dyn Embedder>,
    store: Arc<dyn VectorStore>,
    chunking: ChunkingConfig,
    batch_size: usize,
    concurrency: usize,
    retry: Retry,
    limits: LoadLimits,
}

impl IngestorBuilder {
    /// Chunk size, overlap and section carrying (default: 800 tokens, 15 % overlap).
    pub fn chunking(mut self, config: ChunkingConfig) -> Self {
        self.chunking = config;
        self
    }

    /// Chunks per embedding call (default 64).
    pub fn batch_size(mut self, n: usize) -> Self {
        self.batch_size = n;
        self
    }

    /// Embedding calls in flight at once, and documents prepared at once (default 4).
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n;
        self
    }

    /// Attempts per embedding call for retryable errors, and the backoff between them
    /// (default: 4 attempts, 200 ms doubling to 10 s).
    pub fn retry(mut self, attempts: usize, min_delay: Duration, max_delay: Duration) -> Self {
        self.retry = Retry {
            attempts: attempts.max(1),
            min_delay,
            max_delay: max_delay.max(min_delay),
        };
        self
    }

    /// Loader limits (default: 64 MiB per document).
    pub fn limits(mut self, limits: LoadLimits) -> Self {
        self.limits = limits;
        self
    }

    /// The ingestor; fails when the embedder's and the store's dimensions differ or a setting
    /// is zero.
    pub fn build(self) -> Result<Ingestor> {
        if self.embedder.dimensions() != self.store.dimensions() {
            return Err(Error::InvalidConfig(format!(
                "the embedder makes {}-long vectors but the store holds {}-long ones",
                self.embedder.dimensions(),
                self.store.dimensions()
            )));
        }
        if self.batch_size == 0 || self.concurrency == 0 {
            return Err(Error::InvalidConfig(
                "batch_size and concurrency must be at least 1".into(),
            ));
        }
        Ok(Ingestor {
            chunker: Chunker::new(self.chunking)?,
            embedder: self.embedder,
            store: self.store,
            batch_size: self.batch_size,
            permits: Arc::new(Semaphore::new(self.concurrency)),
            concurrency: self.concurrency,
            retry: self.retry,
            limits: self.limits,
        })
    }
}

/// A document ready to embed.
struct Prepared {
    doc: Document,
    hash: String,
    chunks: Vec<Chunk>,
}

enum Prep {
    Ready(Prepared),
    Unchanged(String),
    Failed(String, IngestError),
}

struct Shared<'a> {
    progress: Mutex<Progress>,
    started: Instant,
    on_progress: &'a ProgressFn<'a>,
}

impl Shared<'_> {
    fn update(&self, change: impl FnOnce(&mut Progress)) {
        let snapshot = {
            let mut p = self.progress.lock().unwrap_or_else(PoisonError::into_inner);
            change(&mut p);
            p.tick(self.started.elapsed());
            p.clone()
        };
        tracing::debug!(
            documents_done = snapshot.documents_done,
            documents_total = snapshot.documents_total,
            chunks_done = snapshot.chunks_done,
            chunks_total = snapshot.chunks_total,
            "rag.ingest.progress"
        );
        (self.on_progress)(&snapshot);
    }
}

impl Ingestor {
    /// A builder over an embedder and a vector store of the same dimension.
    pub fn builder(embedder: Arc<dyn Embedder>, store: Arc<dyn VectorStore>) -> IngestorBuilder {
        IngestorBuilder {
            embedder,
            store,
            chunking: ChunkingConfig::default(),
            batch_size: 64,
            concurrency: 4,
            retry: Retry {
                attempts: 4,
                min_delay: Duration::from_millis(200),
                max_delay: Duration::from_secs(10),
            },
            limits: LoadLimits::default(),
        }
    }

    /// The chunker in use.
    pub fn chunker(&self) -> &Chunker {
        &self.chunker
    }

    /// Indexes documents (see [`Ingestor::ingest_with_progress`]).
    pub async fn ingest(
        &self,
        tenant: &TenantId,
        agent: &AgentId,
        documents: Vec<Document>,
    ) -> IngestReport {
        self.ingest_with_progress(tenant, agent, documents, |_| {})
            .await
    }

    /// Indexes documents for a tenant and agent, calling `progress` as documents and batches
    /// finish. Never fails as a whole: each document's outcome is in the report.
    pub async fn ingest_with_progress(
        &self,
        tenant: &TenantId,
        agent: &AgentId,
        documents: Vec<Document>,
        progress: impl Fn(&Progress) + Send + Sync,
    ) -> IngestReport {
        let span = tracing::info_span!("rag.ingest", tenant = %tenant, agent = %agent, documents = documents.len());
        self.run(tenant, agent, documents, &progress)
            .instrument(span)
            .await
    }

    async fn run(
        &self,
        tenant: &TenantId,
        agent: &AgentId,
        documents: Vec<Document>,
        progress: &ProgressFn<'_>,
    ) -> IngestReport {
        let shared = Shared {
            progress: Mutex::new(Progress::new(documents.len())),
            started: Instant::now(),
            on_progress: progress,
        };
        let mut report = IngestReport::default();
        let mut seen = HashSet::new();
        let mut unique = Vec::with_capacity(documents.len());
        for doc in documents {
            if seen.insert(doc.id.clone()) {
                unique.push(doc);
            } else {
                report.failed.push(DocumentFailure {
                    document_id: doc.id,
                    error: IngestError::DuplicateId,
                });
                shared.update(|p| {
                    p.documents_done += 1;
                    p.documents_failed += 1;
                });
            }
        }

        let prepared: Vec<Prep> = stream::iter(unique)
            .map(|doc| self.prepare(tenant, agent, doc))
            .buffered(self.concurrency)
            .collect()
            .await;
        let mut ready = Vec::new();
        for prep in prepared {
            match prep {
                Prep::Ready(p) => ready.push(p),
                Prep::Unchanged(id) => {
                    report.unchanged.push(id);
                    shared.update(|p| {
                        p.documents_done += 1;
                        p.documents_unchanged += 1;
                    });
                }
                Prep::Failed(id, error) => {
                    tracing::warn!(document = %id, error = %error, "rag.ingest.document_failed");
                    report.failed.push(DocumentFailure {
                        document_id: id,
                        error,
                    });
                    shared.update(|p| {
                        p.documents_done += 1;
                        p.documents_failed += 1;
                    });
                }
            }
        }
        let total: usize = ready.iter().map(|p| p.chunks.len()).sum();
        shared.update(|p| p.chunks_total = total);

        let outcomes: Vec<(String, std::result::Result<usize, IngestError>)> = stream::iter(ready)
            .map(|p| async {
                let id = p.doc.id.clone();
                let result = self.index(tenant, agent, p, &shared).await;
                if let Err(error) = &result {
                    tracing::warn!(document = %id, error = %error, "rag.ingest.document_failed");
                }
                shared.update(|pr| {
                    pr.documents_done += 1;
                    pr.documents_failed += usize::from(result.is_err());
                });
                (id, result)
            })
            .buffer_unordered(self.concurrency)
            .collect()
            .await;
        for (id, result) in outcomes {
            match result {
                Ok(chunks) => {
                    report.chunks += chunks;
                    report.indexed.push((id, chunks));
                }
                Err(error) => report.failed.push(DocumentFailure {
                    document_id: id,
                    error,
                }),
            }
        }
        report.indexed.sort();
        report.elapsed = shared.started.elapsed();
        tracing::info!(
            indexed = report.indexed.len(),
            unchanged = report.unchanged.len(),
            failed = report.failed.len(),
            chunks = report.chunks,
            elapsed_ms = report.elapsed.as_millis() as u64,
            "rag.ingest.done"
        );
        report
    }

    /// Removes a document and its vectors; returns its entry when it was indexed.
    pub async fn delete(
        &self,
        tenant: &TenantId,
        agent: &AgentId,
        document_id: &str,
    ) -> Result<Option<DocumentEntry>> {
        self.store.delete_document(tenant, agent, document_id).await
    }

    /// The content hash of a document under this ingestor's chunking.
    pub fn content_hash(&self, doc: &Document) -> String {
        let mut bytes = Vec::with_capacity(doc.bytes.len() + 256);
        bytes.extend_from_slice(&doc.bytes);
        let meta = serde_json::json!({
            "format": doc.format,
            "title": doc.title,
            "metadata": doc.metadata,
            "chunking": self.chunker.config().fingerprint(),
            "dimensions": self.embedder.dimensions(),
        });
        bytes.extend_from_slice(meta.to_string().as_bytes());
        sha256_hex(&bytes)
    }

    async fn prepare(&self, tenant: &TenantId, agent: &AgentId, doc: Document) -> Prep {
        if doc.id.is_empty() {
            return Prep::Failed(
                doc.id,
                IngestError::Store(Error::InvalidInput("a document needs an id".into())),
            );
        }
        let hash = self.content_hash(&doc);
        match self.store.document(tenant, agent, &doc.id).await {
            Ok(Some(entry)) if entry.content_hash == hash => return Prep::Unchanged(doc.id),
            Ok(_) => {}
            Err(e) => return Prep::Failed(doc.id, IngestError::Store(e)),
        }
        let id = doc.id.clone();
        let chunker = self.chunker.clone();
        let limits = self.limits;
        let work = tokio::task::spawn_blocking(move || {
            let chunks = extract(doc.format, &doc.bytes, &limits)
                .map_err(IngestError::from)
                .and_then(|text| chunker.chunk(doc.format, &text).map_err(IngestError::Chunk));
            (doc, chunks)
        });
        match work.await {
            Ok((doc, Ok(chunks))) => Prep::Ready(Prepared { doc, hash, chunks }),
            Ok((doc, Err(e))) => Prep::Failed(doc.id, e),
            Err(join) => Prep::Failed(
                id,
                IngestError::Chunk(Error::Internal(format!("chunking task failed: {join}"))),
            ),
        }
    }

    async fn index(
        &self,
        tenant: &TenantId,
        agent: &AgentId,
        p: Prepared,
        shared: &Shared<'_>,
    ) -> std::result::Result<usize, IngestError> {
        let batches: Vec<Vec<String>> = p
            .chunks
            .chunks(self.batch_size)
            .map(|b| b.iter().map(|c| c.embedding_text.clone()).collect())
            .collect();
        let vectors: Vec<Vec<Vec<f32>>> = stream::iter(batches)
            .map(|texts| async move {
                let vectors = self.embed(&texts).await?;
                shared.update(|pr| pr.chunks_done += texts.len());
                Ok::<_, Error>(vectors)
            })
            .buffered(self.concurrency)
            .try_collect()
            .await
            .map_err(IngestError::Embed)?;
        let doc = &p.doc;
        let records: Vec<VectorRecord> = p
            .chunks
            .iter()
            .zip(vectors.into_iter().flatten())
            .map(|(c, vector)| {
                let mut metadata = doc.metadata.clone();
                metadata.insert(DOCUMENT_ID_KEY.to_string(), doc.id.clone());
                metadata.insert(KIND_KEY.to_string(), KIND_DOCUMENT.to_string());
                VectorRecord {
                    id: format!("{}#{}", doc.id, c.index),
                    vector,
                    text: c.text.clone(),
                    source: SourceRef {
                        document_id: doc.id.clone(),
                        title: doc.title.clone(),
                        page: c.page,
                        offset: Some(c.offset as u64),
                        length: Some(c.text.len() as u64),
                        section: c.section.clone(),
                    },
                    metadata,
                }
            })
            .collect();
        let entry = DocumentEntry {
            id: doc.id.clone(),
            title: doc.title.clone(),
            content_hash: p.hash.clone(),
            chunks: records.len(),
            metadata: doc.metadata.clone(),
        };
        self.store
            .replace_document(tenant, agent, &entry, &records)
            .await
            .map_err(IngestError::Store)?;
        Ok(records.len())
    }

    /// One embedding call under the concurrency bound, retried when retryable.
    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| Error::Internal("the ingestor's permits were closed".into()))?;
        let mut delays = ExponentialBuilder::new()
            .with_min_delay(self.retry.min_delay)
            .with_max_delay(self.retry.max_delay)
            .with_max_times(self.retry.attempts - 1)
            .with_jitter()
            .build();
        loop {
            match self.embedder.embed(texts).await {
                Ok(vectors) => {
                    if vectors.len() != texts.len() {
                        return Err(Error::MalformedResponse(format!(
                            "the embedder returned {} vectors for {} texts",
                            vectors.len(),
                            texts.len()
                        )));
                    }
                    let dims = self.store.dimensions();
                    if let Some(bad) = vectors.iter().find(|v| v.len() != dims) {
                        return Err(Error::DimensionMismatch {
                            expected: dims,
                            got: bad.len(),
                        });
                    }
                    return Ok(vectors);
                }
                Err(e) if e.is_retryable() => match delays.next() {
                    Some(delay) => {
                        let wait = e.retry_after().map_or(delay, |r| r.max(delay));
                        tracing::debug!(error = %e, wait_ms = wait.as_millis() as u64, "rag.embed.retry");
                        tokio::time::sleep(wait).await;
                    }
                    None => return Err(e),
                },
                Err(e) => return Err(e),
            }
        }
    }
}
