//! [`Log`]: an append-only sequence stored in fixed-size chunks.
//!
//! The in-memory store keeps every usage event and audit entry of a tenant in insertion order.
//! In one `Vec`, each time it doubles every record kept so far is moved to new memory (and the
//! new pages are faulted in): on the turn bench that copying was a tenth of a turn's cost on a
//! grown store. A `Log` never moves a record once pushed: it grows by whole chunks.

/// Records per chunk: large enough that chunk bookkeeping is negligible, small enough that a
/// new chunk is an ordinary heap allocation.
const CHUNK: usize = 256;

/// An append-only sequence that never moves its records.
#[derive(Debug)]
pub(super) struct Log<T> {
    chunks: Vec<Vec<T>>,
    len: usize,
}

impl<T> Default for Log<T> {
    fn default() -> Self {
        Self {
            chunks: Vec::new(),
            len: 0,
        }
    }
}

impl<T> Log<T> {
    /// Appends `value` at the end.
    pub(super) fn push(&mut self, value: T) {
        match self.chunks.last_mut() {
            Some(chunk) if chunk.len() < CHUNK => chunk.push(value),
            _ => {
                let mut chunk = Vec::with_capacity(CHUNK);
                chunk.push(value);
                self.chunks.push(chunk);
            }
        }
        self.len += 1;
    }

    /// How many records it holds.
    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// The newest record.
    pub(super) fn last(&self) -> Option<&T> {
        self.chunks.last().and_then(|c| c.last())
    }

    /// The records in insertion order.
    pub(super) fn iter(&self) -> impl Iterator<Item = &T> {
        self.chunks.iter().flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_insertion_order_across_chunks() {
        let mut log = Log::default();
        assert_eq!(log.len(), 0);
        assert!(log.last().is_none());
        let n = CHUNK * 2 + 3;
        for i in 0..n {
            log.push(i);
            assert_eq!(log.last(), Some(&i));
        }
        assert_eq!(log.len(), n);
        assert!(log.iter().copied().eq(0..n));
        assert_eq!(log.chunks.len(), 3);
        assert!(
            log.chunks.iter().all(|c| c.capacity() == CHUNK),
            "chunks never reallocate"
        );
    }
}
