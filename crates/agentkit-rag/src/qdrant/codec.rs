//! How records and document entries are laid out as Qdrant points: point ids, payloads,
//! filters.
//!
//! Every point carries `tenant`, `agent` and `kind` (`chunk` or `document`) as keyword payload
//! fields, and the caller's id in `id`; its Qdrant id is derived from all four, so the same chunk
//! or document id in two tenants (or agents) is two points.
//!
//! - A chunk: `document_id`, `text`, `source` (an object: `document_id`, `title`, `page`,
//!   `offset`, `length`, `section`, the absent ones left out), `metadata` (an object of strings),
//!   `metadata_pairs` (each pair as the JSON array `["key","value"]`, the keyword that metadata
//!   filters match, whatever characters the key holds), and `generation` when
//!   `replace_document` wrote it.
//! - A document entry: `title`, `content_hash`, `chunks`, `metadata`, `generation` and `state`
//!   (`pending` while a replacement or deletion is under way, `ready` once it is done), with a
//!   placeholder vector (the first unit vector) that no search returns (searches match
//!   `kind = chunk`).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use agentkit_core::id::{AgentId, TenantId};
use agentkit_core::retrieval::{DocumentEntry, ScoredChunk, SourceRef, VectorRecord};
use agentkit_core::{Error, Result};
use qdrant_client::qdrant::condition::ConditionOneOf;
use qdrant_client::qdrant::r#match::MatchValue;
use qdrant_client::qdrant::point_id::PointIdOptions;
use qdrant_client::qdrant::value::Kind;
use qdrant_client::qdrant::{
    Condition, FieldCondition, Filter, ListValue, Match, PointId, PointStruct, RepeatedStrings,
    Struct, Value, Vectors,
};
use sha2::{Digest, Sha256};

/// The payload key of the tenant (keyword, indexed with `is_tenant`).
pub(crate) const TENANT: &str = "tenant";
/// The payload key of the agent (keyword, indexed).
pub(crate) const AGENT: &str = "agent";
/// `chunk` or `document`.
pub(crate) const KIND: &str = "kind";
/// The caller's chunk or document id.
pub(crate) const ID: &str = "id";
/// A chunk's document.
pub(crate) const DOCUMENT_ID: &str = "document_id";
/// Which `replace_document` call wrote a chunk or entry.
pub(crate) const GENERATION: &str = "generation";
/// A chunk's metadata pairs, as keywords.
pub(crate) const PAIRS: &str = "metadata_pairs";
const TEXT: &str = "text";
const SOURCE: &str = "source";
const METADATA: &str = "metadata";
const TITLE: &str = "title";
const CONTENT_HASH: &str = "content_hash";
const CHUNKS: &str = "chunks";
const STATE: &str = "state";

/// `kind` of a chunk point.
pub(crate) const CHUNK: &str = "chunk";
/// `kind` of a document entry point.
pub(crate) const DOCUMENT: &str = "document";

/// The keyword payload indexes every collection gets: `(field, is_tenant)`.
pub(crate) const KEYWORD_INDEXES: [(&str, bool); 7] = [
    (TENANT, true),
    (AGENT, false),
    (KIND, false),
    (ID, false),
    (DOCUMENT_ID, false),
    (GENERATION, false),
    (PAIRS, false),
];

/// Where a document entry is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    /// A replacement or deletion started and has not finished (or was interrupted).
    Pending,
    /// Its chunks are the ones the entry describes.
    Ready,
}

impl State {
    fn as_str(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Ready => "ready",
        }
    }
}

/// The 16 bytes a point id is made of: SHA-256 of the length-prefixed parts.
pub(crate) fn digest(kind: &str, tenant: &TenantId, agent: &AgentId, id: &str) -> [u8; 16] {
    let mut hasher = Sha256::new();
    for part in [
        "agentkit-qdrant/1",
        kind,
        tenant.as_str(),
        agent.as_str(),
        id,
    ] {
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part.as_bytes());
    }
    let full = hasher.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&full[..16]);
    bytes
}

/// The Qdrant id of a point: a name-based UUID (version 8, SHA-256) of kind, tenant, agent and
/// id.
pub(crate) fn point_id(kind: &str, tenant: &TenantId, agent: &AgentId, id: &str) -> PointId {
    let mut b = digest(kind, tenant, agent, id);
    b[6] = (b[6] & 0x0f) | 0x80;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex = hex::encode(b);
    let uuid = format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    );
    PointId {
        point_id_options: Some(PointIdOptions::Uuid(uuid)),
    }
}

/// A generation marker unique to one `replace_document` call.
pub(crate) fn new_generation() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "{nanos:x}-{:x}-{:x}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// `key` equals the keyword `value`.
pub(crate) fn keyword(key: &str, value: &str) -> Condition {
    field(key, MatchValue::Keyword(value.to_string()))
}

/// `key` equals one of `values`.
pub(crate) fn any_keyword(key: &str, values: Vec<String>) -> Condition {
    field(
        key,
        MatchValue::Keywords(RepeatedStrings { strings: values }),
    )
}

fn field(key: &str, value: MatchValue) -> Condition {
    Condition {
        condition_one_of: Some(ConditionOneOf::Field(FieldCondition {
            key: key.to_string(),
            r#match: Some(Match {
                match_value: Some(value),
            }),
            ..FieldCondition::default()
        })),
    }
}

/// The conditions every request carries: this tenant, this agent, this kind of point.
pub(crate) fn scope(tenant: &TenantId, agent: &AgentId, kind: &str) -> Vec<Condition> {
    vec![
        keyword(TENANT, tenant.as_str()),
        keyword(AGENT, agent.as_str()),
        keyword(KIND, kind),
    ]
}

/// A filter of `must` and `must_not` conditions.
pub(crate) fn filter(must: Vec<Condition>, must_not: Vec<Condition>) -> Filter {
    Filter {
        must,
        must_not,
        ..Filter::default()
    }
}

/// The keyword a metadata pair is matched by: the JSON array `["key","value"]`.
pub(crate) fn pair(key: &str, value: &str) -> String {
    serde_json::Value::from(vec![key, value]).to_string()
}

fn string(s: &str) -> Value {
    Value {
        kind: Some(Kind::StringValue(s.to_string())),
    }
}

fn integer(i: i64) -> Value {
    Value {
        kind: Some(Kind::IntegerValue(i)),
    }
}

fn object(fields: HashMap<String, Value>) -> Value {
    Value {
        kind: Some(Kind::StructValue(Struct { fields })),
    }
}

fn strings_object(map: &BTreeMap<String, String>) -> Value {
    object(map.iter().map(|(k, v)| (k.clone(), string(v))).collect())
}

fn to_i64(n: u64, what: &str) -> Result<i64> {
    i64::try_from(n).map_err(|_| {
        Error::InvalidInput(format!(
            "{what} ({n}) does not fit Qdrant's 64-bit signed integers"
        ))
    })
}

fn base(tenant: &TenantId, agent: &AgentId, kind: &str, id: &str) -> HashMap<String, Value> {
    HashMap::from([
        (TENANT.to_string(), string(tenant.as_str())),
        (AGENT.to_string(), string(agent.as_str())),
        (KIND.to_string(), string(kind)),
        (ID.to_string(), string(id)),
    ])
}

/// A chunk as a point (the record must have been checked).
pub(crate) fn chunk_point(
    tenant: &TenantId,
    agent: &AgentId,
    record: &VectorRecord,
    generation: Option<&str>,
) -> Result<PointStruct> {
    let mut payload = base(tenant, agent, CHUNK, &record.id);
    let s = &record.source;
    let mut source = HashMap::from([(DOCUMENT_ID.to_string(), string(&s.document_id))]);
    if let Some(title) = &s.title {
        source.insert(TITLE.into(), string(title));
    }
    if let Some(page) = s.page {
        source.insert("page".into(), integer(i64::from(page)));
    }
    if let Some(offset) = s.offset {
        source.insert(
            "offset".into(),
            integer(to_i64(offset, "a chunk's offset")?),
        );
    }
    if let Some(length) = s.length {
        source.insert(
            "length".into(),
            integer(to_i64(length, "a chunk's length")?),
        );
    }
    if let Some(section) = &s.section {
        source.insert("section".into(), string(section));
    }
    let pairs = record
        .metadata
        .iter()
        .map(|(k, v)| string(&pair(k, v)))
        .collect();
    payload.extend([
        (DOCUMENT_ID.to_string(), string(&s.document_id)),
        (TEXT.to_string(), string(&record.text)),
        (SOURCE.to_string(), object(source)),
        (METADATA.to_string(), strings_object(&record.metadata)),
        (
            PAIRS.to_string(),
            Value {
                kind: Some(Kind::ListValue(ListValue { values: pairs })),
            },
        ),
    ]);
    if let Some(generation) = generation {
        payload.insert(GENERATION.into(), string(generation));
    }
    Ok(PointStruct {
        id: Some(point_id(CHUNK, tenant, agent, &record.id)),
        payload,
        vectors: Some(Vectors::from(record.vector.clone())),
    })
}

/// A document entry as a point, with the placeholder vector.
pub(crate) fn entry_point(
    tenant: &TenantId,
    agent: &AgentId,
    dimensions: usize,
    entry: &DocumentEntry,
    generation: &str,
    state: State,
) -> Result<PointStruct> {
    let mut payload = base(tenant, agent, DOCUMENT, &entry.id);
    if let Some(title) = &entry.title {
        payload.insert(TITLE.into(), string(title));
    }
    payload.extend([
        (CONTENT_HASH.to_string(), string(&entry.content_hash)),
        (
            CHUNKS.to_string(),
            integer(to_i64(entry.chunks as u64, "a document's chunk count")?),
        ),
        (METADATA.to_string(), strings_object(&entry.metadata)),
        (GENERATION.to_string(), string(generation)),
        (STATE.to_string(), string(state.as_str())),
    ]);
    let mut placeholder = vec![0.0f32; dimensions];
    if let Some(first) = placeholder.first_mut() {
        *first = 1.0;
    }
    Ok(PointStruct {
        id: Some(point_id(DOCUMENT, tenant, agent, &entry.id)),
        payload,
        vectors: Some(Vectors::from(placeholder)),
    })
}

fn malformed(what: &str) -> Error {
    Error::MalformedResponse(format!("qdrant: a point's payload has no valid {what}"))
}

fn get_str<'a>(payload: &'a HashMap<String, Value>, key: &str) -> Option<&'a str> {
    match payload.get(key)?.kind.as_ref()? {
        Kind::StringValue(s) => Some(s),
        _ => None,
    }
}

fn require_str<'a>(payload: &'a HashMap<String, Value>, key: &str) -> Result<&'a str> {
    get_str(payload, key).ok_or_else(|| malformed(&format!("`{key}`")))
}

fn get_int(payload: &HashMap<String, Value>, key: &str) -> Result<Option<i64>> {
    match payload.get(key).and_then(|v| v.kind.as_ref()) {
        None | Some(Kind::NullValue(_)) => Ok(None),
        Some(Kind::IntegerValue(i)) => Ok(Some(*i)),
        Some(_) => Err(malformed(&format!("`{key}` (an integer)"))),
    }
}

fn get_object<'a>(
    payload: &'a HashMap<String, Value>,
    key: &str,
) -> Result<Option<&'a HashMap<String, Value>>> {
    match payload.get(key).and_then(|v| v.kind.as_ref()) {
        None | Some(Kind::NullValue(_)) => Ok(None),
        Some(Kind::StructValue(s)) => Ok(Some(&s.fields)),
        Some(_) => Err(malformed(&format!("`{key}` (an object)"))),
    }
}

fn strings_map(payload: &HashMap<String, Value>, key: &str) -> Result<BTreeMap<String, String>> {
    let Some(fields) = get_object(payload, key)? else {
        return Ok(BTreeMap::new());
    };
    fields
        .iter()
        .map(|(k, v)| match &v.kind {
            Some(Kind::StringValue(s)) => Ok((k.clone(), s.clone())),
            _ => Err(malformed(&format!("`{key}.{k}` (a string)"))),
        })
        .collect()
}

fn unsigned<T: TryFrom<i64>>(value: Option<i64>, what: &str) -> Result<Option<T>> {
    value
        .map(|v| T::try_from(v).map_err(|_| malformed(what)))
        .transpose()
}

/// The caller's id of a point.
pub(crate) fn id_of(payload: &HashMap<String, Value>) -> Result<&str> {
    require_str(payload, ID)
}

/// A search hit from a chunk point's payload.
pub(crate) fn chunk_from(payload: &HashMap<String, Value>, score: f32) -> Result<ScoredChunk> {
    let source = match get_object(payload, SOURCE)? {
        Some(s) => SourceRef {
            document_id: require_str(s, DOCUMENT_ID)?.to_string(),
            title: get_str(s, TITLE).map(str::to_string),
            page: unsigned(get_int(s, "page")?, "`source.page`")?,
            offset: unsigned(get_int(s, "offset")?, "`source.offset`")?,
            length: unsigned(get_int(s, "length")?, "`source.length`")?,
            section: get_str(s, "section").map(str::to_string),
        },
        None => return Err(malformed("`source`")),
    };
    Ok(ScoredChunk {
        id: id_of(payload)?.to_string(),
        score,
        text: require_str(payload, TEXT)?.to_string(),
        source,
        metadata: strings_map(payload, METADATA)?,
    })
}

/// A document entry from its point's payload, with its state. A pending entry is reported with
/// an empty `content_hash` (see [`super::QdrantStore`]).
pub(crate) fn entry_from(payload: &HashMap<String, Value>) -> Result<(DocumentEntry, State)> {
    let state = match get_str(payload, STATE) {
        Some("ready") => State::Ready,
        Some("pending") => State::Pending,
        _ => return Err(malformed("`state`")),
    };
    let content_hash = match state {
        State::Ready => require_str(payload, CONTENT_HASH)?.to_string(),
        State::Pending => String::new(),
    };
    let chunks: Option<usize> = unsigned(get_int(payload, CHUNKS)?, "`chunks`")?;
    let entry = DocumentEntry {
        id: id_of(payload)?.to_string(),
        title: get_str(payload, TITLE).map(str::to_string),
        content_hash,
        chunks: chunks.ok_or_else(|| malformed("`chunks`"))?,
        metadata: strings_map(payload, METADATA)?,
    };
    Ok((entry, state))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn ids() -> (TenantId, AgentId) {
        (
            TenantId::new("acme").unwrap(),
            AgentId::new("support").unwrap(),
        )
    }

    #[test]
    fn point_ids_are_uuids_apart_per_tenant_agent_and_kind() {
        let (t, a) = ids();
        let other = TenantId::new("globex").unwrap();
        let uuid = |p: PointId| match p.point_id_options {
            Some(PointIdOptions::Uuid(u)) => u,
            _ => panic!("not a uuid"),
        };
        let id = uuid(point_id(CHUNK, &t, &a, "x"));
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "8", "version 8");
        assert_eq!(id, uuid(point_id(CHUNK, &t, &a, "x")), "deterministic");
        assert_ne!(id, uuid(point_id(CHUNK, &other, &a, "x")));
        assert_ne!(id, uuid(point_id(DOCUMENT, &t, &a, "x")));
        // Length prefixes: moving a character between parts changes the id.
        let ab = AgentId::new("supportx").unwrap();
        assert_ne!(
            uuid(point_id(CHUNK, &t, &a, "xy")),
            uuid(point_id(CHUNK, &t, &ab, "y"))
        );
    }

    #[test]
    fn records_and_entries_round_trip() {
        let (t, a) = ids();
        let record = VectorRecord {
            id: "faq#0".into(),
            vector: vec![1.0, 0.0],
            text: "Refunds — five days".into(),
            source: SourceRef {
                document_id: "faq".into(),
                title: None,
                page: Some(3),
                offset: Some(120),
                length: Some(40),
                section: Some("A > B".into()),
            },
            metadata: BTreeMap::from([("a.b[0]".to_string(), "\"x\"".to_string())]),
        };
        let point = chunk_point(&t, &a, &record, Some("g1")).unwrap();
        let hit = chunk_from(&point.payload, 0.5).unwrap();
        assert_eq!(
            (hit.id.as_str(), &hit.text, &hit.source, &hit.metadata),
            ("faq#0", &record.text, &record.source, &record.metadata)
        );
        assert_eq!(get_str(&point.payload, GENERATION), Some("g1"));
        let entry = DocumentEntry {
            id: "faq".into(),
            title: Some("FAQ".into()),
            content_hash: "h".into(),
            chunks: 4,
            metadata: BTreeMap::from([("kind".to_string(), "faq".to_string())]),
        };
        let ready = entry_point(&t, &a, 2, &entry, "g1", State::Ready).unwrap();
        assert_eq!(
            entry_from(&ready.payload).unwrap(),
            (entry.clone(), State::Ready)
        );
        let pending = entry_point(&t, &a, 2, &entry, "g1", State::Pending).unwrap();
        let (got, state) = entry_from(&pending.payload).unwrap();
        assert_eq!((got.content_hash.as_str(), state), ("", State::Pending));
        let mut huge = record;
        huge.source.offset = Some(u64::MAX);
        assert!(chunk_point(&t, &a, &huge, None).is_err());
    }

    #[test]
    fn metadata_pairs_are_unambiguous() {
        assert_eq!(pair("tag", "rare"), r#"["tag","rare"]"#);
        assert_ne!(pair("a\",\"b", "c"), pair("a", "b\",\"c"));
    }
}
