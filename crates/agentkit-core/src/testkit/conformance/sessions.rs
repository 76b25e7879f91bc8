//! Sessions and messages.

use super::support::*;

/// Sessions: create returns `true` once and `false` (changing nothing) afterwards; get returns
/// what was created; unknown ids give `None`.
pub async fn sessions_round_trip(store: &dyn SessionStore) {
    let t = fresh_tenant();
    let s = new_session(&t);
    assert_eq!(
        ok(store.get_session(&t, &s.id).await, "get_session"),
        None,
        "a session that was never created must not exist"
    );
    assert!(
        ok(store.create_session(&s.tenant, &s).await, "create_session"),
        "create_session of a new session must return true"
    );
    assert_eq!(
        ok(store.get_session(&t, &s.id).await, "get_session"),
        Some(s.clone()),
        "get_session must return the session as created"
    );

    let mut again = s.clone();
    again.agent = AgentId::from_static("someone-else");
    again.metadata.insert("channel".into(), "sms".into());
    assert!(
        !ok(
            store.create_session(&again.tenant, &again).await,
            "create_session (again)"
        ),
        "create_session of an existing session must return false"
    );
    assert_eq!(
        ok(store.get_session(&t, &s.id).await, "get_session"),
        Some(s.clone()),
        "create_session of an existing session must not change it"
    );

    let other = new_session(&t);
    assert!(ok(
        store.create_session(&other.tenant, &other).await,
        "create_session (second)"
    ));
    assert_eq!(
        ok(store.get_session(&t, &other.id).await, "get_session"),
        Some(other),
        "a second session must be stored separately"
    );
    assert_eq!(
        ok(store.get_session(&t, &s.id).await, "get_session"),
        Some(s),
        "a second session must not change the first"
    );
}

/// Messages: sequence numbers from 1 without gaps across appends, the `All`, `Last(n)` and
/// `After(seq)` windows, atomic concurrent appends and `NotFound` for unknown sessions.
pub async fn messages_append_and_window(store: &dyn SessionStore) {
    let t = fresh_tenant();
    let s = new_session(&t);
    ok(store.create_session(&s.tenant, &s).await, "create_session");
    assert_eq!(
        ok(
            store.load_messages(&t, &s.id, MessageWindow::All).await,
            "load_messages"
        ),
        Vec::new(),
        "a new session has no messages"
    );

    let run = RunId::generate();
    let first = [
        Message::user("m1"),
        Message::assistant("m2"),
        Message::user("m3"),
    ];
    assert_eq!(
        ok(
            store.append_messages(&t, &s.id, Some(&run), &first).await,
            "append_messages"
        ),
        3,
        "append_messages returns the sequence number of the last message appended"
    );
    let second = [Message::assistant("m4"), Message::user("m5")];
    assert_eq!(
        ok(
            store.append_messages(&t, &s.id, None, &second).await,
            "append_messages"
        ),
        5,
        "sequence numbers continue across appends"
    );

    let all = ok(
        store.load_messages(&t, &s.id, MessageWindow::All).await,
        "load_messages(All)",
    );
    assert_eq!(
        seqs(&all),
        vec![1, 2, 3, 4, 5],
        "All: sequence order from 1"
    );
    assert_eq!(texts(&all), vec!["m1", "m2", "m3", "m4", "m5"]);
    let expected: Vec<Message> = first.iter().chain(second.iter()).cloned().collect();
    assert_eq!(
        all.iter().map(|m| m.message.clone()).collect::<Vec<_>>(),
        expected,
        "messages must round-trip unchanged"
    );
    assert!(
        all[..3].iter().all(|m| m.run.as_ref() == Some(&run)),
        "messages appended with a run must carry it"
    );
    assert!(
        all[3..].iter().all(|m| m.run.is_none()),
        "messages appended without a run must have none"
    );

    let windows: [(MessageWindow, Vec<u64>); 9] = [
        (MessageWindow::Last(0), vec![]),
        (MessageWindow::Last(2), vec![4, 5]),
        (MessageWindow::Last(5), vec![1, 2, 3, 4, 5]),
        (MessageWindow::Last(100), vec![1, 2, 3, 4, 5]),
        (MessageWindow::After(0), vec![1, 2, 3, 4, 5]),
        (MessageWindow::After(3), vec![4, 5]),
        (MessageWindow::After(4), vec![5]),
        (MessageWindow::After(5), vec![]),
        (MessageWindow::After(99), vec![]),
    ];
    for (window, want) in windows {
        let got = ok(
            store.load_messages(&t, &s.id, window).await,
            &format!("load_messages({window:?})"),
        );
        assert_eq!(seqs(&got), want, "window {window:?}");
        let expected: Vec<StoredMessage> = all
            .iter()
            .filter(|m| want.contains(&m.seq))
            .cloned()
            .collect();
        assert_eq!(
            got, expected,
            "window {window:?} must return the stored messages"
        );
    }

    // Concurrent appends: each batch is atomic (contiguous) and no number is used twice.
    let batches: Vec<Vec<Message>> = (0..10)
        .map(|i| {
            vec![
                Message::user(format!("c{i}-a")),
                Message::assistant(format!("c{i}-b")),
            ]
        })
        .collect();
    let results = join_all(
        batches
            .iter()
            .map(|b| store.append_messages(&t, &s.id, None, b)),
    )
    .await;
    let lasts: Vec<u64> = results
        .into_iter()
        .map(|r| ok(r, "concurrent append_messages"))
        .collect();
    let mut sorted = lasts.clone();
    sorted.sort_unstable();
    assert_eq!(
        sorted,
        (1..=10).map(|i| 5 + 2 * i).collect::<Vec<u64>>(),
        "concurrent batches of two must end at distinct, consecutive positions"
    );
    let all = ok(
        store.load_messages(&t, &s.id, MessageWindow::All).await,
        "load_messages(All)",
    );
    assert_eq!(
        seqs(&all),
        (1..=25).collect::<Vec<u64>>(),
        "sequence numbers must have no gaps after concurrent appends"
    );
    for (i, last) in lasts.iter().enumerate() {
        let at = usize::try_from(*last).unwrap_or(usize::MAX);
        assert_eq!(
            texts(&all[at - 2..at]),
            vec![format!("c{i}-a"), format!("c{i}-b")],
            "batch {i} must be stored contiguously, ending at its returned sequence number"
        );
    }

    expect_err(
        store
            .append_messages(&t, &SessionId::generate(), None, &[Message::user("x")])
            .await,
        ErrorKind::NotFound,
        "append_messages to a session that does not exist",
    );
}

/// Windows never start with tool results whose assistant call lies before the window.
pub async fn window_never_orphans_tool_results(store: &dyn SessionStore) {
    let t = fresh_tenant();
    let s = new_session(&t);
    ok(store.create_session(&s.tenant, &s).await, "create_session");
    let call = |id: &str, name: &str| ToolCall::new(id, name, json!({"order": 7}));
    let turn1 = [
        Message::user("where is order 7?"),
        Message::Assistant {
            content: String::new(),
            tool_calls: vec![call("c1", "orders.get"), call("c2", "orders.track")],
        },
        Message::tool_result("c1", "orders.get", "{\"id\":7}"),
        Message::tool_error("c2", "orders.track", "carrier unavailable"),
        Message::assistant("Order 7 ships tomorrow."),
    ];
    let turn2 = [
        Message::user("thanks, cancel it"),
        Message::Assistant {
            content: "Cancelling.".into(),
            tool_calls: vec![call("c3", "orders.cancel")],
        },
        Message::tool_result("c3", "orders.cancel", "cancelled"),
    ];
    ok(
        store.append_messages(&t, &s.id, None, &turn1).await,
        "append_messages",
    );
    ok(
        store.append_messages(&t, &s.id, None, &turn2).await,
        "append_messages",
    );
    let all = ok(
        store.load_messages(&t, &s.id, MessageWindow::All).await,
        "load_messages(All)",
    );
    assert_eq!(seqs(&all), (1..=8).collect::<Vec<u64>>());

    // The tail of `all` starting at `start`, minus leading tool results.
    let trimmed = |start: usize| -> Vec<StoredMessage> {
        all[start.min(all.len())..]
            .iter()
            .skip_while(|m| m.message.is_tool_result())
            .cloned()
            .collect()
    };
    for n in 0..=10usize {
        let window = MessageWindow::Last(n);
        let got = ok(
            store.load_messages(&t, &s.id, window).await,
            &format!("load_messages({window:?})"),
        );
        assert!(
            got.first().is_none_or(|m| !m.message.is_tool_result()),
            "{window:?} starts with an orphaned tool result: {:?}",
            seqs(&got)
        );
        assert_eq!(
            got,
            trimmed(all.len().saturating_sub(n)),
            "{window:?} must be the last {n} messages minus orphaned tool results at its front"
        );
    }
    for after in 0..=9u64 {
        let window = MessageWindow::After(after);
        let got = ok(
            store.load_messages(&t, &s.id, window).await,
            &format!("load_messages({window:?})"),
        );
        assert!(
            got.first().is_none_or(|m| !m.message.is_tool_result()),
            "{window:?} starts with an orphaned tool result: {:?}",
            seqs(&got)
        );
        assert_eq!(
            got,
            trimmed(usize::try_from(after).unwrap_or(usize::MAX)),
            "{window:?} must be the messages after {after} minus orphaned tool results at its front"
        );
    }
    // The boundary cases spelled out.
    let last = |n| {
        let (t, id) = (t.clone(), s.id.clone());
        async move {
            seqs(&ok(
                store.load_messages(&t, &id, MessageWindow::Last(n)).await,
                "load_messages",
            ))
        }
    };
    assert_eq!(
        last(6).await,
        vec![5, 6, 7, 8],
        "Last(6) cuts both tool results"
    );
    assert_eq!(
        last(5).await,
        vec![5, 6, 7, 8],
        "Last(5) cuts the second tool result"
    );
    assert_eq!(
        last(7).await,
        (2..=8).collect::<Vec<u64>>(),
        "Last(7) keeps the call"
    );
    assert_eq!(
        last(2).await,
        vec![7, 8],
        "Last(2) keeps the call and its result"
    );
    assert_eq!(
        last(1).await,
        Vec::<u64>::new(),
        "Last(1) is only an orphan"
    );
}

/// Retraction: a run's messages leave every window in one step (`Last(n)` counts only what is
/// returned), a second retraction changes nothing, later messages and other runs are untouched,
/// and an unknown session (or another tenant's) is `NotFound`.
pub async fn messages_retracted_by_run(store: &dyn SessionStore) {
    let t = fresh_tenant();
    let s = new_session(&t);
    ok(store.create_session(&s.tenant, &s).await, "create_session");
    let (failed, kept) = (RunId::generate(), RunId::generate());
    let append = |run: &RunId, texts: &[&str]| {
        let messages: Vec<Message> = texts.iter().map(|m| Message::user(*m)).collect();
        let run = run.clone();
        let (t, id) = (t.clone(), s.id.clone());
        async move {
            ok(
                store.append_messages(&t, &id, Some(&run), &messages).await,
                "append",
            )
        }
    };
    append(&kept, &["k1"]).await;
    append(&failed, &["f1", "f2"]).await;
    append(&kept, &["k2"]).await;
    append(&failed, &["f3"]).await;

    assert_eq!(
        ok(
            store.retract_messages(&t, &s.id, &failed).await,
            "retract_messages"
        ),
        3,
        "retract_messages returns how many messages it retracted"
    );
    let all = ok(
        store.load_messages(&t, &s.id, MessageWindow::All).await,
        "load(All)",
    );
    assert_eq!(
        texts(&all),
        vec!["k1", "k2"],
        "All skips retracted messages"
    );
    assert_eq!(
        seqs(&all),
        vec![1, 4],
        "the others keep their sequence numbers"
    );
    let last = ok(
        store.load_messages(&t, &s.id, MessageWindow::Last(2)).await,
        "load(Last)",
    );
    assert_eq!(
        texts(&last),
        vec!["k1", "k2"],
        "Last(n) counts only returned messages"
    );
    let after = ok(
        store
            .load_messages(&t, &s.id, MessageWindow::After(1))
            .await,
        "load(After)",
    );
    assert_eq!(texts(&after), vec!["k2"], "After skips retracted messages");

    assert_eq!(
        ok(
            store.retract_messages(&t, &s.id, &failed).await,
            "retract_messages (again)"
        ),
        0,
        "a second retraction retracts nothing"
    );
    append(&failed, &["f4"]).await;
    let all = ok(
        store.load_messages(&t, &s.id, MessageWindow::All).await,
        "load(All)",
    );
    assert_eq!(
        texts(&all),
        vec!["k1", "k2", "f4"],
        "messages appended after a retraction are not retracted"
    );
    assert_eq!(
        seqs(&all),
        vec![1, 4, 6],
        "appends continue after the highest sequence number, retracted or not"
    );

    expect_err(
        store
            .retract_messages(&t, &SessionId::from_static("no-such-session"), &failed)
            .await,
        ErrorKind::NotFound,
        "retract_messages on an unknown session",
    );
    expect_err(
        store.retract_messages(&fresh_tenant(), &s.id, &kept).await,
        ErrorKind::NotFound,
        "retract_messages on another tenant's session",
    );
    let all = ok(
        store.load_messages(&t, &s.id, MessageWindow::All).await,
        "load(All)",
    );
    assert_eq!(
        texts(&all),
        vec!["k1", "k2", "f4"],
        "another tenant retracts nothing"
    );
}
