//! [`HashEmbedder`]: a deterministic, offline bag-of-words embedder for tests and examples.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;

use agentkit_core::retrieval::Embedder;
use agentkit_core::{Error, Result};

/// Hashes each lower-cased word (and each word's stem of its first five letters) into one of
/// `dimensions` buckets with a sign, then normalises: texts sharing words score high, texts
/// sharing none score near zero. Not a language model; it makes retrieval tests meaningful
/// without a network or model files.
///
/// It counts what it embeds ([`HashEmbedder::calls`], [`HashEmbedder::texts`]) and can be told
/// to fail its next calls ([`HashEmbedder::fail_next`]) or any batch holding a word
/// ([`HashEmbedder::fail_on`]).
#[derive(Debug)]
pub struct HashEmbedder {
    dims: usize,
    calls: AtomicUsize,
    texts: AtomicUsize,
    fail_next: AtomicUsize,
    fail_on: Mutex<Option<String>>,
}

impl HashEmbedder {
    /// An embedder of `dimensions`-long vectors.
    pub fn new(dimensions: usize) -> Self {
        Self {
            dims: dimensions.max(1),
            calls: AtomicUsize::new(0),
            texts: AtomicUsize::new(0),
            fail_next: AtomicUsize::new(0),
            fail_on: Mutex::new(None),
        }
    }

    /// The vector of one text.
    pub fn vector(&self, text: &str) -> Vec<f32> {
        let mut v = vec![0.0f32; self.dims];
        for word in text
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
        {
            let word = word.to_lowercase();
            let stem: String = word.chars().take(5).collect();
            for (token, weight) in [(word.as_str(), 1.0f32), (stem.as_str(), 0.5)] {
                let h = fnv1a(token.as_bytes());
                let bucket = (h % self.dims as u64) as usize;
                let sign = if (h >> 63) == 0 { 1.0 } else { -1.0 };
                v[bucket] += sign * weight;
            }
        }
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        if n > 0.0 {
            v.iter_mut().for_each(|x| *x /= n);
        }
        v
    }

    /// Calls of [`Embedder::embed`] so far (failed ones included).
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    /// Texts embedded so far.
    pub fn texts(&self) -> usize {
        self.texts.load(Ordering::SeqCst)
    }

    /// The next `n` calls fail with a retryable server error (503).
    pub fn fail_next(&self, n: usize) {
        self.fail_next.store(n, Ordering::SeqCst);
    }

    /// Every batch holding `word` fails with a non-retryable error (`None`: stop).
    pub fn fail_on(&self, word: Option<&str>) {
        *self
            .fail_on
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = word.map(str::to_string);
    }
}

fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

#[async_trait]
impl Embedder for HashEmbedder {
    fn dimensions(&self) -> usize {
        self.dims
    }

    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let failing = self
            .fail_next
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if failing {
            return Err(Error::Server {
                status: Some(503),
                message: "the test embedder was told to fail".into(),
            });
        }
        let poison = self
            .fail_on
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        if let Some(word) = poison
            && texts.iter().any(|t| t.contains(&word))
        {
            return Err(Error::InvalidInput(format!(
                "the test embedder refuses texts holding `{word}`"
            )));
        }
        self.texts.fetch_add(texts.len(), Ordering::SeqCst);
        Ok(texts.iter().map(|t| self.vector(t)).collect())
    }
}
