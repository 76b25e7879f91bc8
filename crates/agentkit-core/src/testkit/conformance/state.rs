//! Counters and long-term memory.

use super::support::*;

/// Counters: the conditional add is atomic (100 concurrent `+1` with limit 50 apply exactly
/// 50 times), a delta that would pass the limit is refused, releases always apply.
pub async fn counters_atomic(store: &dyn CounterStore) {
    let t = fresh_tenant();
    let key = "tokens:2025-01-01";
    assert_eq!(
        ok(store.counter_get(&t, key).await, "counter_get"),
        0,
        "a missing counter reads 0"
    );

    let results = join_all((0..100).map(|_| store.counter_add(&t, key, 1, Some(50)))).await;
    let outcomes: Vec<_> = results
        .into_iter()
        .map(|r| ok(r, "concurrent counter_add"))
        .collect();
    let applied: BTreeSet<i64> = outcomes
        .iter()
        .filter(|o| o.applied)
        .map(|o| o.value)
        .collect();
    assert_eq!(
        outcomes.iter().filter(|o| o.applied).count(),
        50,
        "exactly 50 of 100 concurrent +1 with limit 50 must apply"
    );
    assert_eq!(
        applied,
        (1..=50).collect::<BTreeSet<i64>>(),
        "applied adds return the distinct values 1..=50"
    );
    assert!(
        outcomes
            .iter()
            .filter(|o| !o.applied)
            .all(|o| o.value == 50),
        "refused adds return the unchanged value 50"
    );
    assert_eq!(ok(store.counter_get(&t, key).await, "counter_get"), 50);

    let refused = ok(
        store.counter_add(&t, key, 10, Some(55)).await,
        "counter_add",
    );
    assert!(
        !refused.applied && refused.value == 50,
        "an add past the limit is refused and changes nothing: {refused:?}"
    );
    let to_limit = ok(store.counter_add(&t, key, 5, Some(55)).await, "counter_add");
    assert!(
        to_limit.applied && to_limit.value == 55,
        "an add up to exactly the limit applies: {to_limit:?}"
    );
    let release = ok(
        store.counter_add(&t, key, -20, Some(50)).await,
        "counter_add",
    );
    assert!(
        release.applied && release.value == 35,
        "a release applies: {release:?}"
    );
    let unlimited = ok(store.counter_add(&t, key, 30, None).await, "counter_add");
    assert!(
        unlimited.applied && unlimited.value == 65,
        "without a limit an add always applies: {unlimited:?}"
    );
    let release_above = ok(
        store.counter_add(&t, key, -5, Some(10)).await,
        "counter_add",
    );
    assert!(
        release_above.applied && release_above.value == 60,
        "a release applies even when the value stays above the limit: {release_above:?}"
    );
    assert_eq!(ok(store.counter_get(&t, key).await, "counter_get"), 60);

    let other_key = "tool_calls:2025-01-01";
    assert_eq!(
        ok(store.counter_get(&t, other_key).await, "counter_get"),
        0,
        "counters are separate by key"
    );
    let first = ok(
        store.counter_add(&t, other_key, 3, Some(2)).await,
        "counter_add",
    );
    assert!(
        !first.applied && first.value == 0,
        "a first add past the limit is refused: {first:?}"
    );
    let release = ok(
        store.counter_add(&t, other_key, -4, None).await,
        "counter_add",
    );
    assert!(
        release.applied && release.value == -4,
        "releases apply even below zero: {release:?}"
    );
}

/// Long-term memory: put/get/overwrite/list (sorted by key)/delete, separate per scope.
pub async fn memory_round_trip(store: &dyn MemoryStore) {
    let t = fresh_tenant();
    let entity = MemoryScope::Entity("lead:42".into());
    let agent = MemoryScope::Agent(AgentId::from_static("support"));
    let tenant = MemoryScope::Tenant;

    assert_eq!(
        ok(store.get_memory(&t, &entity, "a").await, "get_memory"),
        None
    );
    assert!(ok(store.list_memory(&t, &entity).await, "list_memory").is_empty());

    let (va, vb, vc) = (
        json!({"tone": "formal", "n": 1}),
        json!("prefers email"),
        json!([1, 2, 3]),
    );
    for (k, v) in [("b", &vb), ("c", &vc), ("a", &va)] {
        ok(store.put_memory(&t, &entity, k, v).await, "put_memory");
    }
    assert_eq!(
        ok(store.get_memory(&t, &entity, "a").await, "get_memory"),
        Some(va.clone()),
        "a memory must round-trip"
    );
    assert_eq!(
        ok(store.list_memory(&t, &entity).await, "list_memory"),
        vec![
            ("a".to_string(), va.clone()),
            ("b".to_string(), vb.clone()),
            ("c".to_string(), vc.clone()),
        ],
        "list_memory is sorted by key"
    );

    let va2 = json!({"tone": "casual"});
    ok(
        store.put_memory(&t, &entity, "a", &va2).await,
        "put_memory (overwrite)",
    );
    assert_eq!(
        ok(store.get_memory(&t, &entity, "a").await, "get_memory"),
        Some(va2.clone()),
        "put_memory replaces the value"
    );
    assert_eq!(
        ok(store.list_memory(&t, &entity).await, "list_memory").len(),
        3,
        "overwriting does not add a key"
    );

    // Scopes are separate.
    ok(
        store.put_memory(&t, &tenant, "a", &json!(true)).await,
        "put_memory (tenant scope)",
    );
    assert_eq!(
        ok(store.get_memory(&t, &tenant, "a").await, "get_memory"),
        Some(json!(true))
    );
    assert_eq!(
        ok(store.get_memory(&t, &entity, "a").await, "get_memory"),
        Some(va2.clone()),
        "the same key in another scope is a different memory"
    );
    assert!(
        ok(store.list_memory(&t, &agent).await, "list_memory").is_empty(),
        "an unused scope is empty"
    );

    assert!(
        ok(store.delete_memory(&t, &entity, "b").await, "delete_memory"),
        "delete_memory returns true when the key existed"
    );
    assert!(
        !ok(store.delete_memory(&t, &entity, "b").await, "delete_memory"),
        "delete_memory returns false when the key is gone"
    );
    assert!(
        !ok(store.delete_memory(&t, &agent, "a").await, "delete_memory"),
        "delete_memory of a key in an unused scope returns false"
    );
    assert_eq!(
        ok(store.get_memory(&t, &entity, "b").await, "get_memory"),
        None
    );
    assert_eq!(
        ok(store.list_memory(&t, &entity).await, "list_memory"),
        vec![("a".to_string(), va2), ("c".to_string(), vc)],
    );
    assert_eq!(
        ok(store.get_memory(&t, &tenant, "a").await, "get_memory"),
        Some(json!(true)),
        "deleting in one scope leaves the others"
    );
}
