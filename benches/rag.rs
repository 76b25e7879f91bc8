//! Run with: `cargo bench --bench rag --features rag` (add `-- <group>` for one group:
//! `chunking`, `exact_search`, `ann_search`, `filtered_search`, `ingestion`).
//!
//! Each group measures agentkit against a baseline in the same run:
//! - `chunking`: the default chunker (800 estimated tokens, 15 % overlap) and a 3,200-character
//!   one over 4 MiB of Markdown-like text, against splitting on blank lines (throughput, MB/s).
//! - `exact_search`: `InMemoryVectorStore::search` (k = 10) over 100k × 384 normalised vectors,
//!   against a bare `chunks_exact` dot-product scan keeping the best 10.
//! - `ann_search`: the same collection with the HNSW index, at `ef_search` 32, 64 and the
//!   default; recall@10 against the exact results is printed (over 200 queries) before each
//!   timing.
//! - `filtered_search`: a filter matching 1 % of the collection (posting list then exact scan
//!   of the matches), with and without the HNSW index; every query returns k hits.
//! - `ingestion`: documents per second through the pipeline into the in-memory store with the
//!   offline `HashEmbedder` (the pipeline's own cost; a model's cost is on top), against
//!   embedding the same chunks in one call.
//! - `ingestion_local` (with `--features rag-local` and `AGENTKIT_MINILM_DIR`): documents per
//!   second with all-MiniLM-L6-v2 on the CPU, against the embedder alone on the same chunks.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use agentkit::id::{AgentId, TenantId};
use agentkit::rag::memory::{AnnConfig, InMemoryVectorStore};
use agentkit::rag::testkit::HashEmbedder;
use agentkit::rag::{Chunker, ChunkingConfig, Document, Format, Ingestor};
use agentkit::retrieval::{Embedder, SearchRequest, SourceRef, VectorRecord, VectorStore, dot};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const N: usize = 100_000;
const DIM: usize = 384;
const K: usize = 10;

/// xorshift, for reproducible data without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        ((self.0 >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
}

fn unit(mut v: Vec<f32>) -> Vec<f32> {
    let n = dot(&v, &v).sqrt();
    v.iter_mut().for_each(|x| *x /= n);
    v
}

/// Clustered vectors (1,000 topics, each point a topic plus noise), like sentence embeddings
/// of a corpus; uniform random vectors in 384 dimensions have no neighbourhoods to find.
fn corpus(n: usize) -> (Vec<Vec<f32>>, Vec<Vec<f32>>) {
    let mut rng = Rng(0x5eed);
    let centers: Vec<Vec<f32>> = (0..1000)
        .map(|_| unit((0..DIM).map(|_| rng.next()).collect()))
        .collect();
    let point = |rng: &mut Rng| {
        let c = &centers[(rng.next().abs() * 999.0) as usize];
        unit(c.iter().map(|x| x + 0.06 * rng.next()).collect())
    };
    let data = (0..n).map(|_| point(&mut rng)).collect();
    let queries = (0..200).map(|_| point(&mut rng)).collect();
    (data, queries)
}

fn records(data: &[Vec<f32>]) -> Vec<VectorRecord> {
    data.iter()
        .enumerate()
        .map(|(i, v)| VectorRecord {
            id: format!("c{i:06}"),
            vector: v.clone(),
            text: String::new(),
            source: SourceRef {
                document_id: format!("d{}", i / 10),
                ..SourceRef::default()
            },
            metadata: BTreeMap::from([("tag".to_string(), (i % 100).to_string())]),
        })
        .collect()
}

fn ids() -> (TenantId, AgentId) {
    (TenantId::from_static("bench"), AgentId::from_static("kb"))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn markdown(bytes: usize) -> String {
    let mut rng = Rng(7);
    let words = [
        "refund",
        "policy",
        "customer",
        "order",
        "shipping",
        "the",
        "a",
        "within",
        "days",
        "warehouse",
        "invoice",
        "payment",
        "support",
        "agent",
        "ticket",
        "and",
        "of",
        "to",
    ];
    let mut out = String::with_capacity(bytes + 1024);
    let mut section = 0;
    while out.len() < bytes {
        section += 1;
        out.push_str(&format!("## Section {section}\n\n"));
        for _ in 0..4 {
            for _ in 0..60 {
                out.push_str(words[(rng.next().abs() * 17.0) as usize]);
                out.push(' ');
            }
            out.push_str("end.\n\n");
        }
    }
    out
}

fn chunking(c: &mut Criterion) {
    let text = markdown(4 << 20);
    let extracted = agentkit::rag::loaders::extract(
        Format::Text,
        text.as_bytes(),
        &agentkit::rag::LoadLimits::default(),
    )
    .unwrap();
    let mut group = c.benchmark_group("chunking");
    group.throughput(Throughput::Bytes(text.len() as u64));
    group.sample_size(10);
    group.bench_function("baseline_split_blank_lines", |b| {
        b.iter(|| black_box(text.split("\n\n").filter(|p| !p.is_empty()).count()))
    });
    let default = Chunker::new(ChunkingConfig::default()).unwrap();
    group.bench_function("default_800_tokens", |b| {
        b.iter(|| black_box(default.chunk(Format::Text, &extracted).unwrap().len()))
    });
    let chars = Chunker::new(ChunkingConfig::characters(3200, 480)).unwrap();
    group.bench_function("characters_3200", |b| {
        b.iter(|| black_box(chars.chunk(Format::Text, &extracted).unwrap().len()))
    });
    group.finish();
}

/// The baseline: a bare dot-product scan keeping the best K (no ids, no rows).
fn scan(flat: &[f32], q: &[f32]) -> [(f32, u32); K] {
    let mut best = [(f32::NEG_INFINITY, 0u32); K];
    for (i, v) in flat.chunks_exact(DIM).enumerate() {
        let s = dot(v, q);
        if s > best[K - 1].0 {
            let mut at = K - 1;
            while at > 0 && best[at - 1].0 < s {
                best[at] = best[at - 1];
                at -= 1;
            }
            best[at] = (s, i as u32);
        }
    }
    best
}

fn search_groups(c: &mut Criterion) {
    let rt = runtime();
    let (data, queries) = corpus(N);
    let flat: Vec<f32> = data.iter().flatten().copied().collect();
    let (t, a) = ids();
    let exact = InMemoryVectorStore::new(DIM);
    let recs = records(&data);
    rt.block_on(exact.upsert(&t, &a, &recs)).unwrap();

    let mut group = c.benchmark_group("exact_search");
    group.sample_size(30);
    let mut qi = 0;
    group.bench_function("baseline_chunks_exact_scan", |b| {
        b.iter(|| {
            qi = (qi + 1) % queries.len();
            black_box(scan(&flat, &queries[qi]))
        })
    });
    group.bench_function("in_memory_store_k10", |b| {
        b.iter(|| {
            qi = (qi + 1) % queries.len();
            let r = SearchRequest::new(t.clone(), a.clone(), queries[qi].clone(), K);
            black_box(rt.block_on(exact.search(&r)).unwrap())
        })
    });
    group.finish();

    let started = Instant::now();
    let mut ann = InMemoryVectorStore::new(DIM).with_ann(AnnConfig::default());
    rt.block_on(ann.upsert(&t, &a, &recs)).unwrap();
    eprintln!(
        "ann_search: HNSW built over {N} x {DIM} in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let truths: Vec<Vec<String>> = queries
        .iter()
        .map(|q| {
            rt.block_on(exact.search(&SearchRequest::new(t.clone(), a.clone(), q.clone(), K)))
                .unwrap()
                .into_iter()
                .map(|h| h.id)
                .collect()
        })
        .collect();
    let mut group = c.benchmark_group("ann_search");
    group.sample_size(50);
    // The default ef_search last, so the store is left with it for the filtered group.
    for ef in [32, 64, AnnConfig::default().ef_search] {
        ann.set_ef_search(ef);
        let mut recall = 0usize;
        for (q, truth) in queries.iter().zip(&truths) {
            let got = rt
                .block_on(ann.search(&SearchRequest::new(t.clone(), a.clone(), q.clone(), K)))
                .unwrap();
            recall += got.iter().filter(|h| truth.contains(&h.id)).count();
        }
        eprintln!(
            "ann_search: ef_search {ef}: recall@{K} = {:.4} over {} queries",
            recall as f64 / (K * queries.len()) as f64,
            queries.len()
        );
        group.bench_function(format!("hnsw_k10_ef{ef}"), |b| {
            b.iter(|| {
                qi = (qi + 1) % queries.len();
                let r = SearchRequest::new(t.clone(), a.clone(), queries[qi].clone(), K);
                black_box(rt.block_on(ann.search(&r)).unwrap())
            })
        });
    }
    group.finish();

    let mut group = c.benchmark_group("filtered_search");
    group.sample_size(30);
    for (name, store) in [("exact_store_1pct", &exact), ("hnsw_store_1pct", &ann)] {
        group.bench_function(name, |b| {
            b.iter(|| {
                qi = (qi + 1) % queries.len();
                let mut r = SearchRequest::new(t.clone(), a.clone(), queries[qi].clone(), K);
                r.metadata.insert("tag".into(), "42".into());
                let hits = rt.block_on(store.search(&r)).unwrap();
                assert_eq!(hits.len(), K, "a 1 % filter still returns k");
                black_box(hits)
            })
        });
    }
    group.finish();
}

/// The texts the pipeline embeds for `docs` (Markdown) under `chunker`.
fn chunk_texts(docs: &[Document], chunker: &Chunker) -> Vec<String> {
    let limits = agentkit::rag::LoadLimits::default();
    docs.iter()
        .flat_map(|d| {
            let extracted =
                agentkit::rag::loaders::extract(Format::Markdown, &d.bytes, &limits).unwrap();
            chunker.chunk(Format::Markdown, &extracted).unwrap()
        })
        .map(|c| c.embedding_text)
        .collect()
}

/// One ingestion of `docs` into a fresh in-memory store; the chunks written.
fn ingest_once(
    rt: &tokio::runtime::Runtime,
    embedder: Arc<dyn Embedder>,
    chunking: ChunkingConfig,
    docs: &[Document],
) -> usize {
    let store = Arc::new(InMemoryVectorStore::new(embedder.dimensions()));
    let ingestor = Ingestor::builder(embedder, store)
        .chunking(chunking)
        .build()
        .unwrap();
    let (t, a) = ids();
    let report = rt.block_on(ingestor.ingest(&t, &a, docs.to_vec()));
    assert!(report.is_complete());
    report.chunks
}

fn ingestion(c: &mut Criterion) {
    let rt = runtime();
    let docs: Vec<Document> = (0..200)
        .map(|i| Document::markdown(format!("doc-{i}"), markdown(6_000)))
        .collect();
    let mut group = c.benchmark_group("ingestion");
    group.throughput(Throughput::Elements(docs.len() as u64));
    group.sample_size(10);
    // Baseline: the same chunk texts embedded in one call (no loading, chunking or store).
    let texts = chunk_texts(&docs, &Chunker::new(ChunkingConfig::default()).unwrap());
    let embedder = HashEmbedder::new(256);
    group.bench_function("baseline_embed_chunks_alone", |b| {
        b.iter(|| black_box(rt.block_on(embedder.embed(&texts)).unwrap().len()))
    });
    let embedder: Arc<dyn Embedder> = Arc::new(HashEmbedder::new(256));
    group.bench_function("hash_embedder_200_docs", |b| {
        b.iter(|| {
            black_box(ingest_once(
                &rt,
                embedder.clone(),
                ChunkingConfig::default(),
                &docs,
            ))
        })
    });
    group.finish();
}

/// Ingestion with all-MiniLM-L6-v2 on the CPU (feature `rag-local`, model directory in
/// `AGENTKIT_MINILM_DIR`), against the embedder alone over the same chunk texts: the model is
/// the cost, the pipeline's share is the ratio's excess over 1.
#[cfg(feature = "rag-local")]
fn ingestion_local(c: &mut Criterion) {
    use agentkit::rag::local::LocalEmbedder;
    let Ok(embedder) = LocalEmbedder::from_env() else {
        eprintln!("ingestion_local: skipped (AGENTKIT_MINILM_DIR is not set)");
        return;
    };
    let rt = runtime();
    // Support-article-sized documents: two ~250-token chunks each.
    let docs: Vec<Document> = (0..16)
        .map(|i| Document::markdown(format!("doc-{i}"), markdown(1_600)))
        .collect();
    let chunker = Chunker::new(ChunkingConfig::tokens(
        250,
        30,
        Arc::new(agentkit::rag::chunk::EstimatedTokens),
    ))
    .unwrap();
    let texts = chunk_texts(&docs, &chunker);
    eprintln!(
        "ingestion_local: {} docs, {} chunks",
        docs.len(),
        texts.len()
    );
    let mut group = c.benchmark_group("ingestion_local");
    group.throughput(Throughput::Elements(docs.len() as u64));
    group.sample_size(10);
    group.bench_function("baseline_embed_chunks_alone", |b| {
        b.iter(|| black_box(rt.block_on(embedder.embed(&texts)).unwrap().len()))
    });
    let shared: Arc<dyn Embedder> = Arc::new(embedder.clone());
    group.bench_function("pipeline_minilm", |b| {
        b.iter(|| {
            black_box(ingest_once(
                &rt,
                shared.clone(),
                chunker.config().clone(),
                &docs,
            ))
        })
    });
    group.finish();
}

#[cfg(not(feature = "rag-local"))]
fn ingestion_local(_: &mut Criterion) {}

criterion_group!(benches, chunking, search_groups, ingestion, ingestion_local);
criterion_main!(benches);
