//! The append-only usage ledger and the hash-chained audit trail.

use super::support::*;

/// Usage: batches are all-or-nothing, duplicate ids (stored or within the batch) are a
/// `Conflict`, listing is in time order and filters by time, agent, kind and run.
pub async fn usage_append_only(store: &dyn UsageStore) {
    let t = fresh_tenant();
    let t0 = now();
    let s = Duration::seconds;
    let (a1, a2) = (
        AgentId::from_static("support"),
        AgentId::from_static("sales"),
    );
    let (r1, r2) = (RunId::generate(), RunId::generate());
    let e0 = usage_event(&t, &a1, UsageKind::InputTokens, 100, Some(&r1), t0);
    let e1 = usage_event(&t, &a1, UsageKind::OutputTokens, 20, Some(&r1), t0 + s(1));
    let e2 = usage_event(&t, &a2, UsageKind::ToolCall, 1, Some(&r2), t0 + s(2));
    let e3 = usage_event(&t, &a2, UsageKind::InputTokens, 50, None, t0 + s(3));
    let mut e4 = usage_event(&t, &a1, UsageKind::InputTokens, 10, Some(&r2), t0 + s(4));
    e4.resource = Some("test-model".into());
    e4.cost = Some(Usd::from_nanos(1_234));
    e4.price_version = Some("2025-01".into());

    assert!(
        ok(store.list_usage(&t, &UsageQuery::all()).await, "list_usage").is_empty(),
        "a new tenant has no usage"
    );
    ok(store.append_usage(&t, &[]).await, "append_usage(empty)");
    ok(
        store.append_usage(&t, &[e2.clone(), e0.clone()]).await,
        "append_usage",
    );
    ok(
        store
            .append_usage(&t, &[e4.clone(), e1.clone(), e3.clone()])
            .await,
        "append_usage",
    );
    let all = ok(store.list_usage(&t, &UsageQuery::all()).await, "list_usage");
    let expected = vec![e0.clone(), e1.clone(), e2.clone(), e3.clone(), e4.clone()];
    assert_eq!(
        all, expected,
        "usage events round-trip, listed in time order"
    );

    // A batch with an existing id writes nothing.
    let fresh = usage_event(&t, &a1, UsageKind::ToolCall, 1, None, t0 + s(5));
    expect_err(
        store.append_usage(&t, &[fresh.clone(), e0.clone()]).await,
        ErrorKind::Conflict,
        "append_usage with an id that exists",
    );
    // A batch with a duplicate inside writes nothing.
    let dup = usage_event(&t, &a1, UsageKind::ToolCall, 1, None, t0 + s(6));
    expect_err(
        store.append_usage(&t, &[dup.clone(), dup.clone()]).await,
        ErrorKind::Conflict,
        "append_usage with the same id twice in one batch",
    );
    assert_eq!(
        ids(&ok(
            store.list_usage(&t, &UsageQuery::all()).await,
            "list_usage"
        )),
        ids(&expected),
        "a refused batch must write nothing"
    );
    ok(
        store.append_usage(&t, std::slice::from_ref(&fresh)).await,
        "append_usage(fresh) after the refused batch",
    );

    let cases: Vec<(&str, UsageQuery, Vec<&UsageEvent>)> = vec![
        (
            "all",
            UsageQuery::all(),
            vec![&e0, &e1, &e2, &e3, &e4, &fresh],
        ),
        (
            "between(t0+1s, t0+3s)",
            UsageQuery::all().between(t0 + s(1), t0 + s(3)),
            vec![&e1, &e2],
        ),
        (
            "between(t0+10s, t0+20s)",
            UsageQuery::all().between(t0 + s(10), t0 + s(20)),
            vec![],
        ),
        (
            "agent(support)",
            UsageQuery::all().agent(a1.clone()),
            vec![&e0, &e1, &e4, &fresh],
        ),
        (
            "kind(input_tokens)",
            UsageQuery::all().kind(UsageKind::InputTokens),
            vec![&e0, &e3, &e4],
        ),
        ("run(r2)", UsageQuery::all().run(r2.clone()), vec![&e2, &e4]),
        (
            "agent(support).kind(input_tokens)",
            UsageQuery::all()
                .agent(a1.clone())
                .kind(UsageKind::InputTokens),
            vec![&e0, &e4],
        ),
        (
            "run(r1).between(t0+1s, t0+10s)",
            UsageQuery::all()
                .run(r1.clone())
                .between(t0 + s(1), t0 + s(10)),
            vec![&e1],
        ),
    ];
    for (name, query, want) in cases {
        let got = ok(store.list_usage(&t, &query).await, "list_usage");
        let want: Vec<UsageEvent> = want.into_iter().cloned().collect();
        assert_eq!(ids(&got), ids(&want), "usage query {name}");
        assert_eq!(got, want, "usage query {name}: events must round-trip");
    }
}

/// Audit: sequence numbers from 1, each entry chained to the previous one, under concurrency
/// too (one chain per tenant); listing filters by kind, agent, run and time.
pub async fn audit_chain(store: &dyn AuditStore) {
    let t = fresh_tenant();
    let t0 = now();
    let run = RunId::generate();
    let agent = AgentId::from_static("support");
    let mut prev = AUDIT_GENESIS_HASH.to_string();
    let mut sequential = Vec::new();
    for i in 1..=5u64 {
        let mut entry =
            NewAuditEntry::new(t.clone(), "policy.decision", "agent:support", "crm.update");
        entry.at = t0 + Duration::seconds(i64::try_from(i).unwrap_or(i64::MAX));
        entry.decision = Some("allow".into());
        entry.input = json!({"i": i}).into();
        if i % 2 == 1 {
            entry.run = Some(run.clone());
        } else {
            entry.kind = "tool.execution".into();
            entry.agent = Some(agent.clone());
        }
        let chained = ok(store.append_audit(&t, entry.clone()).await, "append_audit");
        assert_eq!(chained.seq, i, "sequence numbers start at 1 without gaps");
        assert_eq!(
            chained.prev_hash, prev,
            "entry {i} must chain to the previous one"
        );
        assert_eq!(chained.hash, chained.compute_hash(), "entry {i} hash");
        assert_eq!(chained.entry, entry, "entry {i} content");
        prev.clone_from(&chained.hash);
        sequential.push(chained);
    }

    let concurrent: Vec<NewAuditEntry> = (0..50)
        .map(|i| {
            let mut e = NewAuditEntry::new(t.clone(), "run.completed", "agent:support", "run");
            e.at = t0 + Duration::seconds(100);
            e.output = json!({"n": i}).into();
            e
        })
        .collect();
    let results = join_all(
        concurrent
            .iter()
            .map(|e| store.append_audit(&e.tenant, e.clone())),
    )
    .await;
    let appended: Vec<AuditEntry> = results
        .into_iter()
        .map(|r| ok(r, "concurrent append_audit"))
        .collect();
    let assigned: BTreeSet<u64> = appended.iter().map(|e| e.seq).collect();
    assert_eq!(
        assigned,
        (6..=55).collect::<BTreeSet<u64>>(),
        "50 concurrent appends must get the distinct sequence numbers 6..=55"
    );

    let all = ok(store.list_audit(&t, &AuditQuery::all()).await, "list_audit");
    assert_eq!(
        all.iter().map(|e| e.seq).collect::<Vec<_>>(),
        (1..=55).collect::<Vec<u64>>(),
        "list_audit returns the whole chain in sequence order"
    );
    assert_eq!(
        verify_audit_chain(&all),
        Ok(()),
        "the chain must verify after concurrent appends"
    );
    assert_eq!(
        &all[..5],
        sequential.as_slice(),
        "listed entries equal the appended ones"
    );
    for e in &appended {
        let seq = usize::try_from(e.seq).unwrap_or(usize::MAX);
        assert_eq!(
            &all[seq - 1],
            e,
            "entry {} as returned by append_audit",
            e.seq
        );
    }

    let seqs_of = |entries: Vec<AuditEntry>| entries.iter().map(|e| e.seq).collect::<Vec<_>>();
    let kind = ok(
        store
            .list_audit(&t, &AuditQuery::all().kind("tool.execution"))
            .await,
        "list_audit(kind)",
    );
    assert_eq!(seqs_of(kind), vec![2, 4], "audit query by kind");
    let by_run = ok(
        store
            .list_audit(&t, &AuditQuery::all().run(run.clone()))
            .await,
        "list_audit(run)",
    );
    assert_eq!(seqs_of(by_run), vec![1, 3, 5], "audit query by run");
    let by_agent = ok(
        store
            .list_audit(&t, &AuditQuery::all().agent(agent.clone()))
            .await,
        "list_audit(agent)",
    );
    assert_eq!(seqs_of(by_agent), vec![2, 4], "audit query by agent");
    let by_action = ok(
        store
            .list_audit(&t, &AuditQuery::all().action("crm.update"))
            .await,
        "list_audit(action)",
    );
    assert_eq!(
        seqs_of(by_action),
        vec![1, 2, 3, 4, 5],
        "audit query by action"
    );
    let page = ok(
        store
            .list_audit(&t, &AuditQuery::all().action("run").limit(3))
            .await,
        "list_audit(action, limit)",
    );
    assert_eq!(
        seqs_of(page),
        vec![6, 7, 8],
        "a page: the first matches in order"
    );
    let next = ok(
        store
            .list_audit(&t, &AuditQuery::all().action("run").after(8).limit(3))
            .await,
        "list_audit(after, limit)",
    );
    assert_eq!(seqs_of(next), vec![9, 10, 11], "the next page after seq 8");
    let tail = ok(
        store.list_audit(&t, &AuditQuery::all().after(53)).await,
        "list_audit(after)",
    );
    assert_eq!(
        seqs_of(tail),
        vec![54, 55],
        "entries after a sequence number"
    );
    let none = ok(
        store.list_audit(&t, &AuditQuery::all().limit(0)).await,
        "list_audit(limit 0)",
    );
    assert!(none.is_empty(), "a limit of 0 returns nothing");
    let window = ok(
        store
            .list_audit(
                &t,
                &AuditQuery::all().between(t0 + Duration::seconds(2), t0 + Duration::seconds(4)),
            )
            .await,
        "list_audit(between)",
    );
    assert_eq!(
        seqs_of(window),
        vec![2, 3],
        "audit query by time [from, to)"
    );
    let completed = ok(
        store
            .list_audit(&t, &AuditQuery::all().kind("run.completed"))
            .await,
        "list_audit(kind)",
    );
    assert_eq!(
        completed.len(),
        50,
        "audit query by kind (concurrent entries)"
    );

    // Every tenant has a chain of its own.
    let other = fresh_tenant();
    let first = ok(
        store
            .append_audit(
                &other,
                NewAuditEntry::new(other.clone(), "k", "user:bob", "x"),
            )
            .await,
        "append_audit (other tenant)",
    );
    assert_eq!(
        (first.seq, first.prev_hash.as_str()),
        (1, AUDIT_GENESIS_HASH),
        "a tenant's chain starts at 1 from the genesis hash"
    );
    assert_eq!(
        ok(store.list_audit(&t, &AuditQuery::all()).await, "list_audit").len(),
        55,
        "another tenant's entries are not in this chain"
    );
}

/// An entry created with a nanosecond timestamp (as `Utc::now()` gives) still verifies after the
/// store's round trip: the chain hashes the time at the precision the store keeps.
pub async fn audit_chain_with_nanosecond_times(store: &dyn AuditStore) {
    let t = fresh_tenant();
    for i in 0..3u32 {
        let mut e = NewAuditEntry::new(t.clone(), "test", "agent:a", format!("act{i}"));
        e.at = Utc::now() + chrono::Duration::nanoseconds(i64::from(i) * 1_001 + 123);
        ok(
            store.append_audit(&t, e).await,
            "append an entry with a nanosecond time",
        );
    }
    let listed = ok(store.list_audit(&t, &AuditQuery::all()).await, "list audit");
    assert_eq!(listed.len(), 3);
    assert_eq!(
        verify_audit_chain(&listed),
        Ok(()),
        "a chain written with nanosecond times must verify after the round trip"
    );
}
