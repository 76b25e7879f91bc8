//! [`CachedEmbedder`]: embeddings cached by the hash of their text.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;

use agentkit_core::Result;
use agentkit_core::retrieval::Embedder;

use crate::chunk::sha256_hex;

#[derive(Debug, Default)]
struct Entries {
    map: HashMap<String, Arc<[f32]>>,
    order: VecDeque<String>,
}

/// Wraps an embedder with a bounded cache keyed by the SHA-256 of each text: an unchanged
/// chunk, a repeated query or a re-ingested document is not embedded twice. The oldest entry
/// goes first when the cache is full. Only the texts missing from the cache reach the inner
/// embedder, in one call, in order.
pub struct CachedEmbedder {
    inner: Arc<dyn Embedder>,
    capacity: usize,
    entries: Mutex<Entries>,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl std::fmt::Debug for CachedEmbedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedEmbedder")
            .field("capacity", &self.capacity)
            .field("hits", &self.hits())
            .field("misses", &self.misses())
            .finish()
    }
}

impl CachedEmbedder {
    /// A cache of at most `capacity` vectors in front of `inner`.
    pub fn new(inner: Arc<dyn Embedder>, capacity: usize) -> Self {
        Self {
            inner,
            capacity,
            entries: Mutex::new(Entries::default()),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// Texts answered from the cache so far.
    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }

    /// Texts sent to the inner embedder so far.
    pub fn misses(&self) -> u64 {
        self.misses.load(Ordering::Relaxed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait]
impl Embedder for CachedEmbedder {
    fn dimensions(&self) -> usize {
        self.inner.dimensions()
    }

    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>> {
        let keys: Vec<String> = texts.iter().map(|t| sha256_hex(t.as_bytes())).collect();
        let mut out: Vec<Option<Vec<f32>>> = {
            let entries = self.lock();
            keys.iter()
                .map(|k| entries.map.get(k).map(|v| v.to_vec()))
                .collect()
        };
        let missing: Vec<usize> = (0..texts.len()).filter(|i| out[*i].is_none()).collect();
        self.hits
            .fetch_add((texts.len() - missing.len()) as u64, Ordering::Relaxed);
        if !missing.is_empty() {
            self.misses
                .fetch_add(missing.len() as u64, Ordering::Relaxed);
            let batch: Vec<String> = missing.iter().map(|i| texts[*i].clone()).collect();
            let vectors = self.inner.embed(&batch).await?;
            if vectors.len() != batch.len() {
                return Err(agentkit_core::Error::MalformedResponse(format!(
                    "the embedder returned {} vectors for {} texts",
                    vectors.len(),
                    batch.len()
                )));
            }
            let mut entries = self.lock();
            for (i, v) in missing.into_iter().zip(vectors) {
                if self.capacity > 0 && !entries.map.contains_key(&keys[i]) {
                    while entries.map.len() >= self.capacity {
                        match entries.order.pop_front() {
                            Some(old) => {
                                entries.map.remove(&old);
                            }
                            None => break,
                        }
                    }
                    entries.map.insert(keys[i].clone(), Arc::from(v.as_slice()));
                    entries.order.push_back(keys[i].clone());
                }
                out[i] = Some(v);
            }
        }
        Ok(out.into_iter().map(Option::unwrap_or_default).collect())
    }
}
