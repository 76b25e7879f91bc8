//! Qdrant's filter semantics, for the conditions `QdrantStore` builds: `must`, `must_not`,
//! `should` and `min_should` over keyword matches (`Match::Keyword`, `Match::Keywords`: any) on
//! string and list-of-string payload values, `has_id` and nested filters. Other conditions are
//! refused up front ([`check_filter`]) rather than guessed at.

use std::collections::HashMap;

use qdrant_client::qdrant::condition::ConditionOneOf;
use qdrant_client::qdrant::r#match::MatchValue;
use qdrant_client::qdrant::value::Kind;
use qdrant_client::qdrant::{Condition, Filter, Value};
use tonic::Status;

use super::engine::Key;

/// The value at a payload path (`a.b` goes into objects).
pub fn value_at<'a>(payload: &'a HashMap<String, Value>, path: &str) -> Option<&'a Value> {
    let mut parts = path.split('.');
    let mut value = payload.get(parts.next()?)?;
    for part in parts {
        match value.kind.as_ref()? {
            Kind::StructValue(s) => value = s.fields.get(part)?,
            _ => return None,
        }
    }
    Some(value)
}

/// Refuses, before any point is looked at, the conditions this server does not evaluate.
pub fn check_filter(filter: &Filter) -> Result<(), Status> {
    let min_should = filter.min_should.iter().flat_map(|m| &m.conditions);
    for condition in filter
        .must
        .iter()
        .chain(&filter.should)
        .chain(&filter.must_not)
        .chain(min_should)
    {
        match &condition.condition_one_of {
            Some(ConditionOneOf::Field(f)) => {
                let only_match = f.range.is_none()
                    && f.geo_bounding_box.is_none()
                    && f.geo_radius.is_none()
                    && f.values_count.is_none()
                    && f.geo_polygon.is_none()
                    && f.datetime_range.is_none()
                    && f.is_empty.is_none()
                    && f.is_null.is_none();
                let keyword = matches!(
                    f.r#match.as_ref().and_then(|m| m.match_value.as_ref()),
                    Some(MatchValue::Keyword(_) | MatchValue::Keywords(_))
                );
                if !only_match || !keyword {
                    return Err(Status::unimplemented(format!(
                        "the test server evaluates keyword matches only (field `{}`)",
                        f.key
                    )));
                }
            }
            Some(ConditionOneOf::Filter(inner)) => check_filter(inner)?,
            Some(ConditionOneOf::HasId(has)) => {
                for id in &has.has_id {
                    Key::parse(Some(id))?;
                }
            }
            _ => {
                return Err(Status::unimplemented(
                    "the test server evaluates field, has_id and nested filter conditions only",
                ));
            }
        }
    }
    Ok(())
}

/// Whether a keyword matches a payload value: the string itself, or any string of a list.
fn keyword_matches(value: &Value, keyword: &str) -> bool {
    match &value.kind {
        Some(Kind::StringValue(s)) => s == keyword,
        Some(Kind::ListValue(list)) => list
            .values
            .iter()
            .any(|v| matches!(&v.kind, Some(Kind::StringValue(s)) if s == keyword)),
        _ => false,
    }
}

fn condition_matches(condition: &Condition, key: Key, payload: &HashMap<String, Value>) -> bool {
    match &condition.condition_one_of {
        Some(ConditionOneOf::Field(f)) => {
            let Some(value) = value_at(payload, &f.key) else {
                return false;
            };
            match f.r#match.as_ref().and_then(|m| m.match_value.as_ref()) {
                Some(MatchValue::Keyword(k)) => keyword_matches(value, k),
                Some(MatchValue::Keywords(any)) => {
                    any.strings.iter().any(|k| keyword_matches(value, k))
                }
                _ => false,
            }
        }
        Some(ConditionOneOf::Filter(inner)) => matches(inner, key, payload),
        Some(ConditionOneOf::HasId(has)) => has
            .has_id
            .iter()
            .any(|id| Key::parse(Some(id)).is_ok_and(|k| k == key)),
        _ => false,
    }
}

/// Qdrant's filter semantics: every `must`, no `must_not`, at least one `should` when there
/// are any, and at least `min_count` of `min_should`. A filter checked by [`check_filter`].
pub fn matches(filter: &Filter, key: Key, payload: &HashMap<String, Value>) -> bool {
    let hit = |c: &Condition| condition_matches(c, key, payload);
    filter.must.iter().all(hit)
        && !filter.must_not.iter().any(hit)
        && (filter.should.is_empty() || filter.should.iter().any(hit))
        && filter
            .min_should
            .as_ref()
            .is_none_or(|m| m.conditions.iter().filter(|c| hit(c)).count() as u64 >= m.min_count)
}
