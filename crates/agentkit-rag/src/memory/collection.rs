//! One tenant and agent's records in memory: vectors in one contiguous slab (normalised, so a
//! dot product is the cosine), rows beside them, a posting list per metadata pair so a filter
//! narrows the scan before any vector is read, the records' words for keyword search, and the
//! documents' entries.

use std::collections::{BTreeMap, HashMap, HashSet};

use agentkit_core::retrieval::{DocumentEntry, ScoredChunk, SourceRef, TopK, VectorRecord, dot};

use super::ann::{Ann, AnnConfig};
use super::lexical::Lexical;

/// A live record's data (its vector is in the slab at the same slot).
#[derive(Debug, Clone)]
pub(crate) struct Row {
    pub(crate) id: String,
    pub(crate) text: String,
    pub(crate) source: SourceRef,
    pub(crate) metadata: BTreeMap<String, String>,
}

/// What a search asks of one collection.
pub(crate) struct Query<'a> {
    /// Normalised query vector.
    pub(crate) vector: &'a [f32],
    pub(crate) top_k: usize,
    pub(crate) filters: &'a BTreeMap<String, String>,
    pub(crate) min_score: Option<f32>,
}

#[derive(Debug)]
pub(crate) struct Collection {
    dims: usize,
    /// Slot-major normalised vectors; a dead slot's stay until compaction.
    vectors: Vec<f32>,
    rows: Vec<Option<Row>>,
    slots: HashMap<String, u32>,
    /// key → value → slots holding that pair.
    postings: HashMap<String, HashMap<String, HashSet<u32>>>,
    by_document: HashMap<String, HashSet<u32>>,
    pub(crate) documents: BTreeMap<String, DocumentEntry>,
    dead: usize,
    ann: Option<Ann>,
    /// The records' words, for keyword search.
    lexical: Lexical,
}

/// A vector scaled to unit length (a zero vector stays zero).
pub(crate) fn normalised(v: &[f32]) -> Vec<f32> {
    let n = dot(v, v).sqrt();
    if n == 0.0 {
        v.to_vec()
    } else {
        v.iter().map(|x| x / n).collect()
    }
}

impl Collection {
    pub(crate) fn new(dims: usize) -> Self {
        Self {
            dims,
            vectors: Vec::new(),
            rows: Vec::new(),
            slots: HashMap::new(),
            postings: HashMap::new(),
            by_document: HashMap::new(),
            documents: BTreeMap::new(),
            dead: 0,
            ann: None,
            lexical: Lexical::default(),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.slots.len()
    }

    /// Writes records (already checked), replacing any of the same id.
    pub(crate) fn upsert(&mut self, records: &[VectorRecord], ann: Option<&AnnConfig>) {
        for r in records {
            self.remove(&r.id);
            let slot = self.rows.len() as u32;
            self.vectors.extend(normalised(&r.vector));
            for (k, v) in &r.metadata {
                self.postings
                    .entry(k.clone())
                    .or_default()
                    .entry(v.clone())
                    .or_default()
                    .insert(slot);
            }
            self.by_document
                .entry(r.source.document_id.clone())
                .or_default()
                .insert(slot);
            self.lexical.insert(slot, &r.text);
            self.rows.push(Some(Row {
                id: r.id.clone(),
                text: r.text.clone(),
                source: r.source.clone(),
                metadata: r.metadata.clone(),
            }));
            self.slots.insert(r.id.clone(), slot);
            if let Some(index) = &self.ann {
                index.insert(self.vector(slot), slot);
            }
        }
        self.maintain(ann);
    }

    fn vector(&self, slot: u32) -> &[f32] {
        let at = slot as usize * self.dims;
        &self.vectors[at..at + self.dims]
    }

    /// Removes a record by id; whether it existed.
    pub(crate) fn remove(&mut self, id: &str) -> bool {
        let Some(slot) = self.slots.remove(id) else {
            return false;
        };
        self.lexical.remove(slot);
        if let Some(row) = self.rows[slot as usize].take() {
            for (k, v) in &row.metadata {
                if let Some(values) = self.postings.get_mut(k)
                    && let Some(set) = values.get_mut(v)
                {
                    set.remove(&slot);
                    if set.is_empty() {
                        values.remove(v);
                    }
                }
            }
            if let Some(set) = self.by_document.get_mut(&row.source.document_id) {
                set.remove(&slot);
                if set.is_empty() {
                    self.by_document.remove(&row.source.document_id);
                }
            }
        }
        self.dead += 1;
        true
    }

    /// Removes every record of a document; how many.
    pub(crate) fn remove_document_records(&mut self, document: &str) -> usize {
        let slots: Vec<u32> = self
            .by_document
            .get(document)
            .map(|s| s.iter().copied().collect())
            .unwrap_or_default();
        let ids: Vec<String> = slots
            .iter()
            .filter_map(|s| self.rows[*s as usize].as_ref().map(|r| r.id.clone()))
            .collect();
        ids.iter().filter(|id| self.remove(id)).count()
    }

    /// Builds the ANN index once the collection is big enough, and compacts away dead slots
    /// once they are a quarter of the slab (rebuilding the index, which cannot delete).
    pub(crate) fn maintain(&mut self, ann: Option<&AnnConfig>) {
        if self.dead > 1024 && self.dead * 4 > self.rows.len() {
            self.compact();
        }
        if let Some(config) = ann
            && self.ann.is_none()
            && self.len() >= config.threshold
        {
            let index = Ann::new(config, self.rows.len());
            let live: Vec<(&[f32], usize)> = (0..self.rows.len() as u32)
                .filter(|s| self.rows[*s as usize].is_some())
                .map(|s| (self.vector(s), s as usize))
                .collect();
            index.insert_many(&live);
            self.ann = Some(index);
        }
    }

    fn compact(&mut self) {
        let rows = std::mem::take(&mut self.rows);
        let vectors = std::mem::take(&mut self.vectors);
        let documents = std::mem::take(&mut self.documents);
        *self = Collection::new(self.dims);
        self.documents = documents;
        for (slot, row) in rows.into_iter().enumerate() {
            if let Some(row) = row {
                let at = slot * self.dims;
                let record = VectorRecord {
                    id: row.id,
                    vector: vectors[at..at + self.dims].to_vec(),
                    text: row.text,
                    source: row.source,
                    metadata: row.metadata,
                };
                self.upsert(std::slice::from_ref(&record), None);
            }
        }
    }

    /// The slots matching every filter, from the smallest posting list (`None`: no filter).
    fn candidates(&self, filters: &BTreeMap<String, String>) -> Option<Vec<u32>> {
        if filters.is_empty() {
            return None;
        }
        let mut lists = Vec::with_capacity(filters.len());
        for (k, v) in filters {
            match self.postings.get(k).and_then(|values| values.get(v)) {
                Some(set) => lists.push(set),
                None => return Some(Vec::new()),
            }
        }
        lists.sort_by_key(|s| s.len());
        let (first, rest) = lists.split_first()?;
        let mut slots: Vec<u32> = first
            .iter()
            .copied()
            .filter(|s| rest.iter().all(|set| set.contains(s)))
            .collect();
        slots.sort_unstable();
        Some(slots)
    }

    fn hit(&self, score: f32, slot: u32) -> Option<ScoredChunk> {
        let row = self.rows[slot as usize].as_ref()?;
        Some(ScoredChunk {
            id: row.id.clone(),
            score,
            text: row.text.clone(),
            source: row.source.clone(),
            metadata: row.metadata.clone(),
        })
    }

    fn finish(&self, top: TopK<u32>) -> Vec<ScoredChunk> {
        top.into_sorted()
            .into_iter()
            .filter_map(|(score, _, slot)| self.hit(score, slot))
            .collect()
    }

    /// The best `top_k` among `slots` (all live slots when `None`), exactly.
    fn exact(&self, q: &Query<'_>, slots: Option<&[u32]>) -> Vec<ScoredChunk> {
        let mut top = TopK::new(q.top_k);
        let min = q.min_score.unwrap_or(f32::NEG_INFINITY);
        let consider = |slot: u32, score: f32, top: &mut TopK<u32>| {
            if score < min {
                return;
            }
            if let Some(row) = &self.rows[slot as usize]
                && top.admits(score, &row.id)
            {
                top.push(score, row.id.clone(), slot);
            }
        };
        match slots {
            Some(slots) => {
                for &slot in slots {
                    consider(slot, dot(self.vector(slot), q.vector), &mut top);
                }
            }
            None => {
                let mut worst = f32::NEG_INFINITY;
                for (slot, v) in self.vectors.chunks_exact(self.dims).enumerate() {
                    let score = dot(v, q.vector);
                    // Cheap reject before the tie-break's id comparison.
                    if score < worst {
                        continue;
                    }
                    consider(slot as u32, score, &mut top);
                    if let Some(s) = top.threshold() {
                        worst = s;
                    }
                }
            }
        }
        self.finish(top)
    }

    /// The best `top_k` records by BM25 over the query's words, among those matching the
    /// filters; ties by id.
    pub(crate) fn search_text(
        &self,
        query: &str,
        top_k: usize,
        filters: &BTreeMap<String, String>,
    ) -> Vec<ScoredChunk> {
        if top_k == 0 {
            return Vec::new();
        }
        let candidates = self.candidates(filters);
        let allowed = |slot: u32| match &candidates {
            Some(c) => c.binary_search(&slot).is_ok(),
            None => self.rows[slot as usize].is_some(),
        };
        let mut top = TopK::new(top_k);
        for (slot, score) in self.lexical.scores(query, allowed) {
            if let Some(row) = &self.rows[slot as usize]
                && top.admits(score, &row.id)
            {
                top.push(score, row.id.clone(), slot);
            }
        }
        self.finish(top)
    }

    /// Nearest records: the ANN index for a large collection (filters applied inside its
    /// graph walk), an exact scan otherwise or when the index returns fewer than the matches
    /// allow; a filter matching few records scans just those.
    pub(crate) fn search(&self, q: &Query<'_>, ann: Option<&AnnConfig>) -> Vec<ScoredChunk> {
        if q.top_k == 0 {
            return Vec::new();
        }
        let candidates = self.candidates(q.filters);
        let matching = candidates.as_ref().map_or(self.len(), Vec::len);
        let small = candidates
            .as_ref()
            .is_some_and(|c| ann.is_none_or(|a| c.len() <= a.exact_below));
        if let (Some(index), Some(config), false) = (&self.ann, ann, small) {
            let allowed = |slot: &usize| match &candidates {
                Some(c) => c.binary_search(&(*slot as u32)).is_ok(),
                None => self.rows[*slot].is_some(),
            };
            let found = match &candidates {
                // No filter: the unfiltered walk, asking for a few more when removed records
                // (still in the graph until compaction) may take places; the filtered walk only
                // if too many of those came back.
                None => {
                    let extra = if self.dead == 0 { 0 } else { q.top_k };
                    let live: Vec<u32> = index
                        .search_all(q.vector, q.top_k + extra, config.ef_search)
                        .into_iter()
                        .filter(|slot| self.rows[*slot as usize].is_some())
                        .collect();
                    if live.len() >= q.top_k.min(matching) {
                        live
                    } else {
                        index.search(q.vector, q.top_k, config.ef_search, &allowed)
                    }
                }
                Some(_) => index.search(q.vector, q.top_k, config.ef_search, &allowed),
            };
            let mut top = TopK::new(q.top_k);
            for slot in found {
                if let Some(row) = &self.rows[slot as usize] {
                    top.push(dot(self.vector(slot), q.vector), row.id.clone(), slot);
                }
            }
            let hits: Vec<ScoredChunk> = self
                .finish(top)
                .into_iter()
                .filter(|h| q.min_score.is_none_or(|m| h.score >= m))
                .collect();
            if hits.len() >= q.top_k.min(matching) || q.min_score.is_some() {
                return hits;
            }
        }
        self.exact(q, candidates.as_deref())
    }
}
