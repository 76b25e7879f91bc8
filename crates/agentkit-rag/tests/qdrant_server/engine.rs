//! The in-memory collections behind the test server, with Qdrant's semantics for the requests
//! `QdrantStore` sends: collections with one vector config and payload indexes, points keyed by
//! id (integers before UUIDs, UUIDs by value, as Qdrant orders them), upserts that overwrite,
//! deletes, counts, scrolls and nearest queries, all with Qdrant's filter semantics
//! ([`super::filter`]).
//!
//! Anything the store does not send (other conditions, matches, query kinds, selectors) is
//! refused with `Unimplemented` rather than guessed at.

use std::collections::{BTreeMap, HashMap, HashSet};

use qdrant_client::qdrant::point_id::PointIdOptions;
use qdrant_client::qdrant::points_selector::PointsSelectorOneOf;
use qdrant_client::qdrant::vectors::VectorsOptions;
use qdrant_client::qdrant::vectors_config::Config;
use qdrant_client::qdrant::{
    CollectionConfig, CollectionInfo, CollectionParams, CollectionStatus, CreateCollection,
    CreateFieldIndexCollection, DeletePoints, DenseVector, Distance, Filter, OptimizerStatus,
    PayloadSchemaInfo, PointId, QueryPoints, RetrievedPoint, ScoredPoint, ScrollPoints,
    UpsertPoints, Value, VectorOutput, VectorParamsMap, VectorsConfig, VectorsOutput,
    WithPayloadSelector, WithVectorsSelector, query, vector_input, vector_output, vectors_output,
    with_payload_selector, with_vectors_selector,
};
use tonic::Status;

use super::filter::{check_filter, matches, value_at};

/// A point id in Qdrant's order: integers first, then UUIDs by their 128-bit value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Key {
    /// An integer id.
    Num(u64),
    /// A UUID.
    Uuid(u128),
}

impl Key {
    /// Parses an id as Qdrant does (UUIDs hyphenated or not, any case).
    pub fn parse(id: Option<&PointId>) -> Result<Self, Status> {
        match id.and_then(|p| p.point_id_options.as_ref()) {
            Some(PointIdOptions::Num(n)) => Ok(Key::Num(*n)),
            Some(PointIdOptions::Uuid(s)) => {
                let hex: String = s
                    .trim_start_matches("urn:uuid:")
                    .trim_matches(|c| c == '{' || c == '}')
                    .chars()
                    .filter(|c| *c != '-')
                    .collect();
                if hex.len() != 32 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
                    return Err(Status::invalid_argument(format!(
                        "Unable to parse UUID: {s}"
                    )));
                }
                u128::from_str_radix(&hex, 16)
                    .map(Key::Uuid)
                    .map_err(|_| Status::invalid_argument(format!("Unable to parse UUID: {s}")))
            }
            None => Err(Status::invalid_argument("Wrong input: a point has no id")),
        }
    }

    /// The id as Qdrant returns it (UUIDs hyphenated, lower case).
    pub fn to_point_id(self) -> PointId {
        let options = match self {
            Key::Num(n) => PointIdOptions::Num(n),
            Key::Uuid(u) => {
                let h = format!("{u:032x}");
                PointIdOptions::Uuid(format!(
                    "{}-{}-{}-{}-{}",
                    &h[..8],
                    &h[8..12],
                    &h[12..16],
                    &h[16..20],
                    &h[20..]
                ))
            }
        };
        PointId {
            point_id_options: Some(options),
        }
    }
}

struct Point {
    vector: Vec<f32>,
    payload: HashMap<String, Value>,
}

struct Collection {
    vectors: VectorsConfig,
    payload_schema: HashMap<String, PayloadSchemaInfo>,
    points: BTreeMap<Key, Point>,
    operations: u64,
}

impl Collection {
    /// Size and distance of the unnamed vector (the only layout this server stores points in).
    fn unnamed(&self) -> Result<(usize, Distance), Status> {
        match &self.vectors.config {
            Some(Config::Params(p)) => Ok((
                usize::try_from(p.size).unwrap_or(usize::MAX),
                Distance::try_from(p.distance).unwrap_or(Distance::UnknownDistance),
            )),
            _ => Err(Status::unimplemented(
                "the test server stores points of unnamed-vector collections only",
            )),
        }
    }

    fn next_operation(&mut self) -> u64 {
        self.operations += 1;
        self.operations
    }
}

/// Every collection of the server.
#[derive(Default)]
pub struct Db {
    collections: HashMap<String, Collection>,
}

fn not_found(name: &str) -> Status {
    Status::not_found(format!("Not found: Collection `{name}` doesn't exist!"))
}

fn dimension_error(expected: usize, got: usize) -> Status {
    Status::invalid_argument(format!(
        "Wrong input: Vector dimension error: expected dim: {expected}, got {got}"
    ))
}

/// Scales a vector to unit length (Qdrant stores and queries cosine collections normalised; a
/// zero vector stays zero).
fn normalised(mut v: Vec<f32>) -> Vec<f32> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > f32::EPSILON {
        v.iter_mut().for_each(|x| *x /= norm);
    }
    v
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

impl Db {
    fn get(&self, name: &str) -> Result<&Collection, Status> {
        self.collections.get(name).ok_or_else(|| not_found(name))
    }

    fn get_mut(&mut self, name: &str) -> Result<&mut Collection, Status> {
        self.collections
            .get_mut(name)
            .ok_or_else(|| not_found(name))
    }

    /// Whether a collection exists.
    pub fn exists(&self, name: &str) -> bool {
        self.collections.contains_key(name)
    }

    /// Creates a collection; an existing name is refused the way Qdrant refuses it (a bad
    /// request: `InvalidArgument`, "already exists").
    pub fn create(&mut self, request: CreateCollection) -> Result<(), Status> {
        let name = request.collection_name;
        if name.is_empty() {
            return Err(Status::invalid_argument(
                "Validation error in body: [collection_name: must not be empty]",
            ));
        }
        if self.exists(&name) {
            return Err(Status::invalid_argument(format!(
                "Wrong input: Collection `{name}` already exists!"
            )));
        }
        let check = |size: u64, distance: i32| -> Result<(), Status> {
            if size == 0 {
                return Err(Status::invalid_argument(
                    "Validation error in body: [vectors_config.size: must be 1 or larger]",
                ));
            }
            match Distance::try_from(distance) {
                Ok(Distance::UnknownDistance) | Err(_) => Err(Status::invalid_argument(
                    "Validation error in body: [vectors_config.distance: unknown distance]",
                )),
                Ok(_) => Ok(()),
            }
        };
        let vectors = match request.vectors_config {
            Some(VectorsConfig {
                config: Some(Config::Params(p)),
            }) => {
                check(p.size, p.distance)?;
                VectorsConfig {
                    config: Some(Config::Params(p)),
                }
            }
            Some(VectorsConfig {
                config: Some(Config::ParamsMap(map)),
            }) => {
                for p in map.map.values() {
                    check(p.size, p.distance)?;
                }
                VectorsConfig {
                    config: Some(Config::ParamsMap(map)),
                }
            }
            // No dense vectors at all (a sparse-only collection): an empty map.
            _ => VectorsConfig {
                config: Some(Config::ParamsMap(VectorParamsMap::default())),
            },
        };
        self.collections.insert(
            name,
            Collection {
                vectors,
                payload_schema: HashMap::new(),
                points: BTreeMap::new(),
                operations: 0,
            },
        );
        Ok(())
    }

    /// What `GetCollectionInfo` reports: status, vectors config, payload schema, point count.
    pub fn info(&self, name: &str) -> Result<CollectionInfo, Status> {
        let c = self.get(name)?;
        let payload_schema = c
            .payload_schema
            .iter()
            .map(|(field, info)| {
                let points = c
                    .points
                    .values()
                    .filter(|p| value_at(&p.payload, field).is_some())
                    .count() as u64;
                (
                    field.clone(),
                    PayloadSchemaInfo {
                        points: Some(points),
                        ..info.clone()
                    },
                )
            })
            .collect();
        Ok(CollectionInfo {
            status: CollectionStatus::Green as i32,
            optimizer_status: Some(OptimizerStatus {
                ok: true,
                error: String::new(),
            }),
            segments_count: 1,
            config: Some(CollectionConfig {
                params: Some(CollectionParams {
                    shard_number: 1,
                    vectors_config: Some(c.vectors.clone()),
                    replication_factor: Some(1),
                    write_consistency_factor: Some(1),
                    ..CollectionParams::default()
                }),
                ..CollectionConfig::default()
            }),
            payload_schema,
            points_count: Some(c.points.len() as u64),
            indexed_vectors_count: Some(0),
            ..CollectionInfo::default()
        })
    }

    /// Creates (or replaces) a payload index; the schema type follows the field type.
    pub fn create_index(&mut self, request: CreateFieldIndexCollection) -> Result<u64, Status> {
        let c = self.get_mut(&request.collection_name)?;
        if request.field_name.is_empty() {
            return Err(Status::invalid_argument(
                "Validation error in body: [field_name: must not be empty]",
            ));
        }
        let Some(field_type) = request.field_type else {
            return Err(Status::unimplemented(
                "the test server needs the field type of an index",
            ));
        };
        c.payload_schema.insert(
            request.field_name,
            PayloadSchemaInfo {
                // `FieldType` starts at Keyword = 0, `PayloadSchemaType` at Keyword = 1.
                data_type: field_type + 1,
                params: request.field_index_params,
                points: None,
            },
        );
        Ok(c.next_operation())
    }

    /// Inserts or overwrites points by id (payload and vector replaced whole). The batch is
    /// checked before anything is written: one vector of the wrong length refuses it all.
    pub fn upsert(&mut self, request: UpsertPoints) -> Result<u64, Status> {
        let c = self.get_mut(&request.collection_name)?;
        if request.update_filter.is_some() {
            return Err(Status::unimplemented(
                "conditional upserts are not supported by the test server",
            ));
        }
        let (size, distance) = c.unnamed()?;
        let mut batch = Vec::with_capacity(request.points.len());
        for point in request.points {
            let key = Key::parse(point.id.as_ref())?;
            let vector = match point.vectors.and_then(|v| v.vectors_options) {
                Some(VectorsOptions::Vector(v)) => v
                    .try_into_dense()
                    .map_err(|e| Status::invalid_argument(format!("Wrong input: {e}")))?,
                Some(VectorsOptions::Vectors(named)) => {
                    let name = named.vectors.keys().next().cloned().unwrap_or_default();
                    return Err(Status::invalid_argument(format!(
                        "Wrong input: Not existing vector name error: {name}"
                    )));
                }
                None => {
                    return Err(Status::invalid_argument(
                        "Wrong input: a point has no vector",
                    ));
                }
            };
            if vector.len() != size {
                return Err(dimension_error(size, vector.len()));
            }
            let vector = if distance == Distance::Cosine {
                normalised(vector)
            } else {
                vector
            };
            batch.push((
                key,
                Point {
                    vector,
                    payload: point.payload,
                },
            ));
        }
        c.points.extend(batch);
        Ok(c.next_operation())
    }

    /// Deletes the points a filter matches, or the listed ids.
    pub fn delete(&mut self, request: DeletePoints) -> Result<u64, Status> {
        let c = self.get_mut(&request.collection_name)?;
        match request.points.and_then(|p| p.points_selector_one_of) {
            Some(PointsSelectorOneOf::Filter(filter)) => {
                check_filter(&filter)?;
                c.points
                    .retain(|key, p| !matches(&filter, *key, &p.payload));
            }
            Some(PointsSelectorOneOf::Points(list)) => {
                for id in &list.ids {
                    let key = Key::parse(Some(id))?;
                    c.points.remove(&key);
                }
            }
            None => {
                return Err(Status::invalid_argument(
                    "Wrong input: a delete needs a points selector",
                ));
            }
        }
        Ok(c.next_operation())
    }

    /// How many points match a filter (always exact).
    pub fn count(&self, name: &str, filter: Option<&Filter>) -> Result<u64, Status> {
        let c = self.get(name)?;
        if let Some(f) = filter {
            check_filter(f)?;
        }
        Ok(c.points
            .iter()
            .filter(|(key, p)| filter.is_none_or(|f| matches(f, **key, &p.payload)))
            .count() as u64)
    }

    /// One page of matching points in id order, from `offset` (inclusive); the next page's
    /// first id when there is one.
    pub fn scroll(
        &self,
        request: &ScrollPoints,
    ) -> Result<(Vec<RetrievedPoint>, Option<PointId>), Status> {
        let c = self.get(&request.collection_name)?;
        if request.order_by.is_some() {
            return Err(Status::unimplemented(
                "ordered scrolls are not supported by the test server",
            ));
        }
        if let Some(f) = &request.filter {
            check_filter(f)?;
        }
        let start = match &request.offset {
            Some(id) => Key::parse(Some(id))?,
            None => Key::Num(0),
        };
        let limit = request.limit.unwrap_or(10) as usize;
        let (with_payload, with_vectors) = (
            payload_selector(request.with_payload.as_ref(), true),
            vectors_selector(request.with_vectors.as_ref())?,
        );
        let mut page: Vec<_> = c
            .points
            .range(start..)
            .filter(|(key, p)| {
                request
                    .filter
                    .as_ref()
                    .is_none_or(|f| matches(f, **key, &p.payload))
            })
            .take(limit.saturating_add(1))
            .collect();
        let next = if page.len() > limit {
            page.pop().map(|(key, _)| key.to_point_id())
        } else {
            None
        };
        let points = page
            .into_iter()
            .map(|(key, p)| RetrievedPoint {
                id: Some(key.to_point_id()),
                payload: with_payload.apply(&p.payload),
                vectors: with_vectors.then(|| vectors_output(&p.vector)),
                ..RetrievedPoint::default()
            })
            .collect();
        Ok((points, next))
    }

    /// The nearest matching points to a dense vector: cosine (the dot product of normalised
    /// vectors) or dot, best first, `score_threshold` and `limit` applied. Equal scores come
    /// back in *descending* point-id order: Qdrant leaves the order of ties unspecified, and
    /// this one is unrelated to the caller's ids, so a client that needs ties by id has to
    /// order them itself.
    pub fn query(&self, request: &QueryPoints) -> Result<Vec<ScoredPoint>, Status> {
        let c = self.get(&request.collection_name)?;
        if !request.prefetch.is_empty() || request.lookup_from.is_some() {
            return Err(Status::unimplemented(
                "prefetch and lookup_from are not supported by the test server",
            ));
        }
        if request.using.as_deref().is_some_and(|u| !u.is_empty()) {
            return Err(Status::invalid_argument(format!(
                "Wrong input: Not existing vector name error: {}",
                request.using.as_deref().unwrap_or_default()
            )));
        }
        let vector = match request.query.as_ref().and_then(|q| q.variant.as_ref()) {
            Some(query::Variant::Nearest(input)) => match &input.variant {
                Some(vector_input::Variant::Dense(DenseVector { data })) => data.clone(),
                _ => {
                    return Err(Status::unimplemented(
                        "the test server answers nearest queries with a dense vector only",
                    ));
                }
            },
            _ => {
                return Err(Status::unimplemented(
                    "the test server answers nearest queries only",
                ));
            }
        };
        let (size, distance) = c.unnamed()?;
        if vector.len() != size {
            return Err(dimension_error(size, vector.len()));
        }
        let vector = match distance {
            Distance::Cosine => normalised(vector),
            Distance::Dot => vector,
            _ => {
                return Err(Status::unimplemented(
                    "the test server scores cosine and dot collections only",
                ));
            }
        };
        if let Some(f) = &request.filter {
            check_filter(f)?;
        }
        let (with_payload, with_vectors) = (
            payload_selector(request.with_payload.as_ref(), false),
            vectors_selector(request.with_vectors.as_ref())?,
        );
        let mut scored: Vec<(f32, Key, &Point)> = c
            .points
            .iter()
            .filter(|(key, p)| {
                request
                    .filter
                    .as_ref()
                    .is_none_or(|f| matches(f, **key, &p.payload))
            })
            .map(|(key, p)| (dot(&vector, &p.vector), *key, p))
            .filter(|(score, _, _)| request.score_threshold.is_none_or(|t| *score >= t))
            .collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(b.1.cmp(&a.1)));
        let offset = request.offset.unwrap_or(0) as usize;
        let limit = request.limit.unwrap_or(10) as usize;
        Ok(scored
            .into_iter()
            .skip(offset)
            .take(limit)
            .map(|(score, key, p)| ScoredPoint {
                id: Some(key.to_point_id()),
                payload: with_payload.apply(&p.payload),
                score,
                version: c.operations,
                vectors: with_vectors.then(|| vectors_output(&p.vector)),
                ..ScoredPoint::default()
            })
            .collect())
    }
}

/// Which payload fields a response carries.
enum PayloadSelection {
    None,
    All,
    Include(HashSet<String>),
    Exclude(HashSet<String>),
}

impl PayloadSelection {
    fn apply(&self, payload: &HashMap<String, Value>) -> HashMap<String, Value> {
        let keep = |k: &String| match self {
            PayloadSelection::None => false,
            PayloadSelection::All => true,
            PayloadSelection::Include(f) => f.contains(k),
            PayloadSelection::Exclude(f) => !f.contains(k),
        };
        payload
            .iter()
            .filter(|(k, _)| keep(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

fn payload_selector(selector: Option<&WithPayloadSelector>, default: bool) -> PayloadSelection {
    use with_payload_selector::SelectorOptions;
    match selector.and_then(|s| s.selector_options.as_ref()) {
        None => {
            if default {
                PayloadSelection::All
            } else {
                PayloadSelection::None
            }
        }
        Some(SelectorOptions::Enable(true)) => PayloadSelection::All,
        Some(SelectorOptions::Enable(false)) => PayloadSelection::None,
        Some(SelectorOptions::Include(i)) => {
            PayloadSelection::Include(i.fields.iter().cloned().collect())
        }
        Some(SelectorOptions::Exclude(e)) => {
            PayloadSelection::Exclude(e.fields.iter().cloned().collect())
        }
    }
}

fn vectors_selector(selector: Option<&WithVectorsSelector>) -> Result<bool, Status> {
    use with_vectors_selector::SelectorOptions;
    match selector.and_then(|s| s.selector_options.as_ref()) {
        None => Ok(false),
        Some(SelectorOptions::Enable(on)) => Ok(*on),
        Some(SelectorOptions::Include(_)) => Err(Status::unimplemented(
            "named vector selection is not supported by the test server",
        )),
    }
}

fn vectors_output(vector: &[f32]) -> VectorsOutput {
    VectorsOutput {
        vectors_options: Some(vectors_output::VectorsOptions::Vector(VectorOutput {
            vector: Some(vector_output::Vector::Dense(DenseVector {
                data: vector.to_vec(),
            })),
            ..VectorOutput::default()
        })),
    }
}
