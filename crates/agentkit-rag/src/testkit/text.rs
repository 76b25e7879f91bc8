//! The conformance checks of [`VectorStore::search_text`], part of
//! [`run_all`](super::vectors::run_all).
//!
//! A store without a text index answers `Ok(None)` to every text search, and each check
//! verifies just that. A store with one must find records by their words (case-insensitively,
//! whatever its stemming and stop words), rank a record dense in a rare query word above one
//! that mentions it once in passing, apply filters inside the search, keep tenants and agents
//! apart, forget deleted and replaced text, order ties by id, and read any query as plain
//! words.

use std::collections::BTreeMap;
use std::sync::Arc;

use agentkit_core::retrieval::{
    DocumentEntry, ScoredChunk, TextSearchRequest, VectorRecord, VectorStore,
};

use super::vectors::{agent, record, tenant};

/// A record whose text is `text` (vector from `seed`, metadata `tag = tag`).
fn texted(id: &str, doc: &str, seed: u64, text: &str, tag: &str) -> VectorRecord {
    let mut r = record(id, doc, seed);
    r.text = text.to_string();
    r.metadata = BTreeMap::from([("tag".to_string(), tag.to_string())]);
    r
}

/// `None` when the store has no text index.
async fn find(
    store: &dyn VectorStore,
    t: &str,
    a: &str,
    query: &str,
    k: usize,
    filter: Option<(&str, &str)>,
) -> Option<Vec<ScoredChunk>> {
    let mut request = TextSearchRequest::new(tenant(t), agent(a), query, k);
    if let Some((key, value)) = filter {
        request.metadata.insert(key.to_string(), value.to_string());
    }
    store.search_text(&request).await.expect("search_text")
}

fn ids(hits: &[ScoredChunk]) -> Vec<&str> {
    hits.iter().map(|h| h.id.as_str()).collect()
}

fn sorted(hits: &[ScoredChunk]) -> Vec<&str> {
    let mut v = ids(hits);
    v.sort_unstable();
    v
}

/// Checks that a store without a text index says so the same way every time.
async fn unsupported(store: &dyn VectorStore) -> bool {
    find(store, "t1", "a1", "anything", 5, None).await.is_none()
}

/// Records are found by their words, case-insensitively; a record dense in a rare query word
/// ranks above one mentioning it once in a long text; words found nowhere find nothing; hits
/// carry the record's text, source and metadata; scores are in descending order.
pub async fn text_search_finds_words(store: Arc<dyn VectorStore>) {
    if unsupported(&*store).await {
        return;
    }
    let (t, a) = (tenant("t1"), agent("a1"));
    let filler = "the customer wrote about an order and the warehouse sent a parcel ";
    let records = vec![
        texted(
            "dense",
            "d1",
            1,
            "Error ZX81 again: ZX81 means the ZX81 sensor is unplugged.",
            "x",
        ),
        texted(
            "passing",
            "d2",
            2,
            &format!(
                "{} and once the code zx81 appeared. {}",
                filler.repeat(6),
                filler
            ),
            "x",
        ),
        texted(
            "unrelated",
            "d3",
            3,
            "Invoices are sent monthly to the billing contact.",
            "x",
        ),
    ];
    store.upsert(&t, &a, &records).await.expect("upsert");
    let hits = find(&*store, "t1", "a1", "zx81", 10, None)
        .await
        .expect("a store with a text index");
    assert_eq!(
        ids(&hits),
        ["dense", "passing"],
        "both records holding the word, the dense one first (case-insensitive), nothing else"
    );
    assert!(
        hits[0].score > hits[1].score,
        "best first by relevance: {hits:?}"
    );
    assert_eq!(hits[0].text, records[0].text, "the hit carries its text");
    assert_eq!(
        hits[0].source, records[0].source,
        "the hit carries its source"
    );
    assert_eq!(
        hits[0].metadata, records[0].metadata,
        "the hit carries its metadata"
    );
    let hits = find(&*store, "t1", "a1", "billing ZX81 unknownword", 10, None)
        .await
        .expect("text index");
    assert_eq!(
        sorted(&hits),
        ["dense", "passing", "unrelated"],
        "any query word matches"
    );
    let none = find(&*store, "t1", "a1", "quasar nebula", 10, None)
        .await
        .expect("text index");
    assert!(
        none.is_empty(),
        "words found nowhere find nothing: {none:?}"
    );
    let one = find(&*store, "t1", "a1", "zx81", 1, None)
        .await
        .expect("text index");
    assert_eq!(ids(&one), ["dense"], "top_k bounds the hits");
    let zero = find(&*store, "t1", "a1", "zx81", 0, None)
        .await
        .expect("text index");
    assert!(zero.is_empty(), "top_k 0 finds nothing");
}

/// Filters apply inside the text search: with many matches, a filter matching a few of them
/// still returns all of those.
pub async fn text_search_filters_return_k(store: Arc<dyn VectorStore>) {
    if unsupported(&*store).await {
        return;
    }
    let (t, a) = (tenant("t1"), agent("a1"));
    let records: Vec<VectorRecord> = (0..40u64)
        .map(|i| {
            // The filtered few are the least relevant: a post-filter of the top hits would
            // miss them.
            let text = if i % 10 == 7 {
                format!("refund requested once for order {i} with many other words here")
            } else {
                format!("refund refund refund {i}")
            };
            let tag = if i % 10 == 7 { "rare" } else { "common" };
            texted(&format!("r{i:02}"), &format!("d{i}"), i, &text, tag)
        })
        .collect();
    store.upsert(&t, &a, &records).await.expect("upsert");
    let hits = find(&*store, "t1", "a1", "refund", 3, Some(("tag", "rare")))
        .await
        .expect("text index");
    assert_eq!(
        sorted(&hits),
        ["r07", "r17", "r27"],
        "a filtered text search returns k when k match"
    );
    let hits = find(&*store, "t1", "a1", "refund", 10, Some(("tag", "rare")))
        .await
        .expect("text index");
    assert_eq!(sorted(&hits), ["r07", "r17", "r27", "r37"], "every match");
    let hits = find(&*store, "t1", "a1", "refund", 10, Some(("tag", "absent")))
        .await
        .expect("text index");
    assert!(hits.is_empty(), "a filter nothing matches finds nothing");
}

/// Another tenant's or agent's records are never found, even when they are the only match.
pub async fn text_search_isolation(store: Arc<dyn VectorStore>) {
    if unsupported(&*store).await {
        return;
    }
    let secret = texted(
        "s1",
        "secret",
        1,
        "merger codename bluefalcon closes friday",
        "x",
    );
    store
        .upsert(&tenant("t2"), &agent("a1"), std::slice::from_ref(&secret))
        .await
        .expect("upsert t2");
    store
        .upsert(&tenant("t1"), &agent("a2"), std::slice::from_ref(&secret))
        .await
        .expect("upsert other agent");
    let mine = texted(
        "m1",
        "mine",
        2,
        "the weekly status of the support queue",
        "x",
    );
    store
        .upsert(&tenant("t1"), &agent("a1"), std::slice::from_ref(&mine))
        .await
        .expect("upsert t1");
    let hits = find(&*store, "t1", "a1", "bluefalcon merger", 10, None)
        .await
        .expect("text index");
    assert!(
        hits.is_empty(),
        "another tenant's or agent's text is never found: {hits:?}"
    );
    let theirs = find(&*store, "t2", "a1", "bluefalcon", 10, None)
        .await
        .expect("text index");
    assert_eq!(ids(&theirs), ["s1"], "the owner finds it");
}

/// Deleted records, replaced documents' old chunks and deleted documents are not found; the
/// new text is.
pub async fn text_search_forgets(store: Arc<dyn VectorStore>) {
    if unsupported(&*store).await {
        return;
    }
    let (t, a) = (tenant("t1"), agent("a1"));
    store
        .upsert(
            &t,
            &a,
            &[
                texted("loose", "d0", 1, "obsolete pricing sheet", "x"),
                texted("kept", "d0", 2, "current pricing sheet", "x"),
            ],
        )
        .await
        .expect("upsert");
    store
        .delete(&t, &a, &["loose".to_string()])
        .await
        .expect("delete");
    let hits = find(&*store, "t1", "a1", "obsolete", 10, None)
        .await
        .expect("text index");
    assert!(hits.is_empty(), "a deleted record is not found: {hits:?}");
    // Upsert replaces the text of the same id.
    store
        .upsert(
            &t,
            &a,
            &[texted("kept", "d0", 2, "revised tariff sheet", "x")],
        )
        .await
        .expect("upsert again");
    assert!(
        find(&*store, "t1", "a1", "pricing", 10, None)
            .await
            .expect("text index")
            .is_empty(),
        "an upsert replaces the record's text"
    );

    let entry = |hash: &str| DocumentEntry {
        id: "manual".into(),
        title: None,
        content_hash: hash.into(),
        chunks: 1,
        metadata: BTreeMap::new(),
    };
    store
        .replace_document(
            &t,
            &a,
            &entry("h1"),
            &[texted("manual#0", "manual", 3, "press the red lever", "x")],
        )
        .await
        .expect("replace v1");
    store
        .replace_document(
            &t,
            &a,
            &entry("h2"),
            &[texted("manual#0b", "manual", 4, "turn the blue valve", "x")],
        )
        .await
        .expect("replace v2");
    assert!(
        find(&*store, "t1", "a1", "lever", 10, None)
            .await
            .expect("text index")
            .is_empty(),
        "a replaced document's old chunks are not found"
    );
    let hits = find(&*store, "t1", "a1", "valve", 10, None)
        .await
        .expect("text index");
    assert_eq!(ids(&hits), ["manual#0b"], "the new chunks are");
    store
        .delete_document(&t, &a, "manual")
        .await
        .expect("delete document");
    assert!(
        find(&*store, "t1", "a1", "valve", 10, None)
            .await
            .expect("text index")
            .is_empty(),
        "a deleted document's chunks are not found"
    );
}

/// Equal relevance is ordered by id; query-language syntax and stop words are plain input.
pub async fn text_search_ties_and_syntax(store: Arc<dyn VectorStore>) {
    if unsupported(&*store).await {
        return;
    }
    let (t, a) = (tenant("t1"), agent("a1"));
    let records: Vec<VectorRecord> = ["e", "b", "d", "a", "c"]
        .iter()
        .enumerate()
        .map(|(i, id)| texted(id, "d", i as u64, "identical warranty clause", "x"))
        .collect();
    store.upsert(&t, &a, &records).await.expect("upsert");
    let hits = find(&*store, "t1", "a1", "warranty", 3, None)
        .await
        .expect("text index");
    assert_eq!(ids(&hits), ["a", "b", "c"], "ties are ordered by id");
    for query in [
        "",
        "   ",
        "\"",
        "warranty\" OR \"",
        "warranty AND NOT (clause) NEAR/2 * : ^ - + ' \\",
        "'; DROP TABLE rag_vectors; --",
        "the of and",
        "w\u{0}rranty",
        "garantía 保証 🚀",
    ] {
        let hits = find(&*store, "t1", "a1", query, 10, None)
            .await
            .expect("text index");
        assert!(
            hits.len() <= 5,
            "a query is plain words, never an error: {query:?}"
        );
    }
    let hits = find(&*store, "t1", "a1", "warranty\" OR \"", 10, None)
        .await
        .expect("text index");
    assert_eq!(hits.len(), 5, "the word in a query full of syntax is found");
}
