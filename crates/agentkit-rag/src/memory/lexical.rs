//! The in-memory store's keyword index: an inverted index of each record's words, scored with
//! Okapi BM25 at query time.
//!
//! Words come from the `bm25` crate's English tokenizer (Unicode normalisation, lower case,
//! stop words removed, Snowball stemming), so "Refunds" finds "refund". The index is keyed by
//! the collection's slots; a removed slot is dropped from the document statistics at once and
//! from the posting lists when the collection compacts (dead postings are skipped meanwhile).

use std::collections::HashMap;
use std::sync::OnceLock;

use bm25::{DefaultTokenizer, Language, Tokenizer};

/// BM25's term-frequency saturation.
const K1: f32 = 1.2;
/// BM25's length normalisation.
const B: f32 = 0.75;

/// The shared tokenizer (building one loads its stop words and stemmer).
fn tokenizer() -> &'static DefaultTokenizer {
    static TOKENIZER: OnceLock<DefaultTokenizer> = OnceLock::new();
    TOKENIZER.get_or_init(|| DefaultTokenizer::new(Language::English))
}

/// A text's searchable words, as the index stores them.
pub(crate) fn words(text: &str) -> Vec<String> {
    tokenizer().tokenize(text)
}

#[derive(Debug, Default)]
pub(crate) struct Lexical {
    /// word → (slot, occurrences in that slot's text).
    postings: HashMap<String, Vec<(u32, u32)>>,
    /// Words per slot (0 for a removed or empty one).
    lengths: Vec<u32>,
    /// Live slots with at least one word, and their words in all.
    documents: u32,
    total: u64,
}

impl Lexical {
    /// Indexes the text of a new slot (slots are added in increasing order).
    pub(crate) fn insert(&mut self, slot: u32, text: &str) {
        let words = words(text);
        let mut counts: HashMap<String, u32> = HashMap::new();
        for w in &words {
            *counts.entry(w.clone()).or_default() += 1;
        }
        for (word, n) in counts {
            self.postings.entry(word).or_default().push((slot, n));
        }
        let at = slot as usize;
        if self.lengths.len() <= at {
            self.lengths.resize(at + 1, 0);
        }
        let len = u32::try_from(words.len()).unwrap_or(u32::MAX);
        self.lengths[at] = len;
        if len > 0 {
            self.documents += 1;
            self.total += u64::from(len);
        }
    }

    /// Forgets a slot's statistics; its postings are skipped until the next compaction.
    pub(crate) fn remove(&mut self, slot: u32) {
        if let Some(len) = self.lengths.get_mut(slot as usize)
            && *len > 0
        {
            self.documents -= 1;
            self.total -= u64::from(*len);
            *len = 0;
        }
    }

    /// Every live slot holding at least one of `query`'s words and accepted by `allowed`,
    /// with its BM25 score (unordered).
    pub(crate) fn scores(&self, query: &str, allowed: impl Fn(u32) -> bool) -> Vec<(u32, f32)> {
        let mut terms = words(query);
        terms.sort_unstable();
        terms.dedup();
        if self.documents == 0 {
            return Vec::new();
        }
        let n = self.documents as f32;
        let average = self.total as f32 / n;
        let mut scores: HashMap<u32, f32> = HashMap::new();
        for term in &terms {
            let Some(list) = self.postings.get(term) else {
                continue;
            };
            let live = |slot: u32| self.lengths.get(slot as usize).is_some_and(|l| *l > 0);
            // Document frequency among live slots (all of them, not only the allowed ones:
            // a filter narrows the hits, not the corpus statistics).
            let df = list.iter().filter(|(s, _)| live(*s)).count() as f32;
            if df == 0.0 {
                continue;
            }
            let idf = (1.0 + (n - df + 0.5) / (df + 0.5)).ln();
            for &(slot, tf) in list {
                if !live(slot) || !allowed(slot) {
                    continue;
                }
                let len = self.lengths[slot as usize] as f32;
                let tf = tf as f32;
                let part = idf * tf * (K1 + 1.0) / (tf + K1 * (1.0 - B + B * len / average));
                *scores.entry(slot).or_default() += part;
            }
        }
        scores.into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_normalised_and_stemmed() {
        assert_eq!(words("Refunds"), words("refund"));
        assert_eq!(words("ZX81:"), vec!["zx81".to_string()]);
        assert!(words("the of and").is_empty(), "stop words");
    }

    #[test]
    fn rarer_and_denser_words_score_higher() {
        let mut index = Lexical::default();
        index.insert(0, "refund refund policy");
        index.insert(
            1,
            "refund policy for a long list of many other things entirely",
        );
        index.insert(2, "shipping policy");
        let mut s = index.scores("refund", |_| true);
        s.sort_by(|a, b| b.1.total_cmp(&a.1));
        assert_eq!(s.iter().map(|(slot, _)| *slot).collect::<Vec<_>>(), [0, 1]);
        index.remove(0);
        let s = index.scores("refund", |_| true);
        assert_eq!(s.len(), 1, "a removed slot is not found");
        let s = index.scores("refund", |slot| slot != 1);
        assert!(s.is_empty(), "the filter applies");
    }
}
