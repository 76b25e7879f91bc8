//! The approximate nearest-neighbour index of a large in-memory collection: an HNSW graph
//! (`hnsw_rs`) over the collection's normalised vectors, searched with the collection's
//! liveness and metadata filters applied inside the graph walk.

use hnsw_rs::prelude::{Distance, FilterT, Hnsw};

use agentkit_core::retrieval::dot;

/// Settings of the HNSW index of [`super::InMemoryVectorStore`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct AnnConfig {
    /// A collection gets an index once it holds this many records (default 10,000); below,
    /// every search is an exact scan.
    pub threshold: usize,
    /// Links per node (default 24; at most 255).
    pub max_connections: usize,
    /// Candidates explored while inserting (default 200).
    pub ef_construction: usize,
    /// Candidates explored while searching (default 96; raised to `top_k` when smaller).
    /// Higher finds more of the true nearest neighbours and costs more time: over 100,000
    /// clustered 384-dimensional vectors on 2 cores, 32 takes 0.75 ms at recall@10 0.998 and
    /// 96 takes 1.4 ms at 1.0 (`BENCHMARKS.md`); real embeddings are less clustered, so the
    /// default keeps a margin. [`super::InMemoryVectorStore::set_ef_search`] changes it later.
    pub ef_search: usize,
    /// A filtered search whose filter matches at most this many records scans them exactly
    /// instead of walking the graph (default 5,000).
    pub exact_below: usize,
}

impl Default for AnnConfig {
    fn default() -> Self {
        Self {
            threshold: 10_000,
            max_connections: 24,
            ef_construction: 200,
            ef_search: 96,
            exact_below: 5_000,
        }
    }
}

impl AnnConfig {
    /// Sets [`AnnConfig::threshold`].
    pub fn threshold(mut self, records: usize) -> Self {
        self.threshold = records;
        self
    }

    /// Sets [`AnnConfig::ef_search`].
    pub fn ef_search(mut self, ef: usize) -> Self {
        self.ef_search = ef;
        self
    }

    /// Sets [`AnnConfig::ef_construction`].
    pub fn ef_construction(mut self, ef: usize) -> Self {
        self.ef_construction = ef;
        self
    }

    /// Sets [`AnnConfig::max_connections`] (clamped to 2..=255).
    pub fn max_connections(mut self, m: usize) -> Self {
        self.max_connections = m.clamp(2, 255);
        self
    }

    /// Sets [`AnnConfig::exact_below`].
    pub fn exact_below(mut self, records: usize) -> Self {
        self.exact_below = records;
        self
    }
}

/// `1 - dot`: the cosine distance of normalised vectors (never panics on rounding).
#[derive(Debug, Clone, Copy, Default)]
struct CosineOfUnit;

impl Distance<f32> for CosineOfUnit {
    fn eval(&self, va: &[f32], vb: &[f32]) -> f32 {
        (1.0 - dot(va, vb)).max(0.0)
    }
}

struct Allowed<'a>(&'a dyn Fn(&usize) -> bool);

impl FilterT for Allowed<'_> {
    fn hnsw_filter(&self, id: &usize) -> bool {
        (self.0)(id)
    }
}

pub(crate) struct Ann {
    graph: Hnsw<'static, f32, CosineOfUnit>,
}

impl std::fmt::Debug for Ann {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ann")
            .field("points", &self.graph.get_nb_point())
            .finish()
    }
}

impl Ann {
    pub(crate) fn new(config: &AnnConfig, capacity: usize) -> Self {
        let layers = 16;
        let graph = Hnsw::new(
            config.max_connections.clamp(2, 255),
            capacity.max(1024),
            layers,
            config.ef_construction.max(config.max_connections),
            CosineOfUnit,
        );
        Self { graph }
    }

    pub(crate) fn insert(&self, vector: &[f32], slot: u32) {
        self.graph.insert_slice((vector, slot as usize));
    }

    /// Inserts on every core (rayon).
    pub(crate) fn insert_many(&self, points: &[(&[f32], usize)]) {
        self.graph.parallel_insert_slice(&points.to_vec());
    }

    /// Up to `k` slots near `query`, unfiltered (`hnsw_rs`'s unfiltered walk is several times
    /// faster than its filtered one, even with a filter that accepts everything).
    pub(crate) fn search_all(&self, query: &[f32], k: usize, ef: usize) -> Vec<u32> {
        self.graph
            .search(query, k, ef.max(k))
            .into_iter()
            .map(|n| n.d_id as u32)
            .collect()
    }

    /// Up to `k` slots near `query` that `allowed` accepts.
    pub(crate) fn search(
        &self,
        query: &[f32],
        k: usize,
        ef: usize,
        allowed: &dyn Fn(&usize) -> bool,
    ) -> Vec<u32> {
        let filter = Allowed(allowed);
        self.graph
            .search_filter(query, k, ef.max(k), Some(&filter))
            .into_iter()
            .map(|n| n.d_id as u32)
            .collect()
    }
}
