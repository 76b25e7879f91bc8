//! Counter batches: [`CounterStore::counter_add_many`] is all or nothing.

use super::support::*;
use crate::store::CounterDelta;

fn delta(key: &str, delta: i64, limit: Option<i64>) -> CounterDelta<'_> {
    CounterDelta { key, delta, limit }
}

async fn values(store: &dyn CounterStore, t: &TenantId, keys: &[&str]) -> Vec<i64> {
    let mut out = Vec::new();
    for k in keys {
        out.push(ok(store.counter_get(t, k).await, "counter_get"));
    }
    out
}

/// Counter batches: a batch applies in order and whole, or not at all. A refused delta (even
/// the last, even on a key an earlier delta of the batch raised) leaves every counter of the
/// batch as it was; 100 concurrent two-key batches under a limit of 50 on one key apply exactly
/// 50 times, on both keys; another tenant's counters are untouched.
pub async fn counter_batches_all_or_nothing(store: &dyn CounterStore) {
    let t = fresh_tenant();
    let other = fresh_tenant();
    let (a, b) = (
        "budget:agent:x:2025-01-01",
        "rate:agent:x:act:2025-01-01T10:00",
    );

    assert_eq!(
        ok(store.counter_add_many(&t, &[]).await, "counter_add_many"),
        None,
        "an empty batch applies"
    );
    let applied = ok(
        store
            .counter_add_many(&t, &[delta(a, 5, Some(10)), delta(b, 1, Some(3))])
            .await,
        "counter_add_many",
    );
    assert_eq!(applied, None, "a batch within its limits applies");
    assert_eq!(values(store, &t, &[a, b]).await, [5, 1]);

    let refused = ok(
        store
            .counter_add_many(&t, &[delta(a, 5, Some(10)), delta(b, 3, Some(3))])
            .await,
        "counter_add_many",
    );
    assert_eq!(refused, Some(1), "the second delta passes its limit");
    assert_eq!(
        values(store, &t, &[a, b]).await,
        [5, 1],
        "a refused batch leaves the deltas before the refused one unapplied"
    );

    let repeated = ok(
        store
            .counter_add_many(
                &t,
                &[
                    delta(b, 1, Some(3)),
                    delta(a, 3, Some(10)),
                    delta(a, 3, Some(10)),
                ],
            )
            .await,
        "counter_add_many",
    );
    assert_eq!(
        repeated,
        Some(2),
        "a key repeated in a batch is checked against what the earlier delta left (5+3+3 > 10)"
    );
    assert_eq!(values(store, &t, &[a, b]).await, [5, 1]);

    let release = ok(
        store
            .counter_add_many(&t, &[delta(a, -5, Some(0)), delta(b, 2, Some(3))])
            .await,
        "counter_add_many",
    );
    assert_eq!(release, None, "a release applies whatever its limit");
    assert_eq!(values(store, &t, &[a, b]).await, [0, 3]);
    assert_eq!(
        values(store, &other, &[a, b]).await,
        [0, 0],
        "batches never touch another tenant's counters"
    );

    let (x, y) = ("quota:tool_calls:2025-01-01", "rate:tier:2025-01-01T10:00");
    let batch = [delta(x, 1, Some(1000)), delta(y, 1, Some(50))];
    let results = join_all((0..100).map(|_| store.counter_add_many(&t, &batch))).await;
    let applied = results
        .into_iter()
        .map(|r| ok(r, "concurrent counter_add_many"))
        .filter(Option::is_none)
        .count();
    assert_eq!(
        applied, 50,
        "exactly 50 of 100 concurrent batches fit a limit of 50"
    );
    assert_eq!(
        values(store, &t, &[x, y]).await,
        [50, 50],
        "a refused batch keeps none of its deltas"
    );
}
