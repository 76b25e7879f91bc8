//! [`StepStore::commit_step`]: a whole step is written, or nothing of it.

use super::support::*;
use crate::store::{Step, StepMessages};

/// Everything a step can write, for a run that does not exist yet in a new session.
fn full_step(tenant: &TenantId) -> (Step, SessionRecord, RunRecord) {
    let session = new_session(tenant);
    let run = new_run(tenant, &session);
    let scope = scope_of(&run);
    let mut finished = run.clone();
    finished.status = RunStatus::Completed;
    finished.version = run.version + 1;
    finished.reply = Some("done".into());
    let key = key_of(format!("{}:0:0", run.id));
    let step = Step {
        session: Some(session.clone()),
        new_run: Some(run.clone()),
        run_update: Some((finished, run.version)),
        messages: Some(StepMessages::new(
            &scope,
            vec![Message::user("question"), Message::assistant("answer")],
        )),
        executions: vec![new_tool_execution(
            &run,
            &key,
            ToolExecutionStatus::Succeeded,
        )],
        approvals: vec![new_approval(
            &run,
            "crm.delete",
            json!({"id": 7}),
            Priority::Medium,
        )],
        usage: vec![
            usage_event(
                tenant,
                &run.agent,
                UsageKind::InputTokens,
                12,
                Some(&run.id),
                now(),
            ),
            usage_event(
                tenant,
                &run.agent,
                UsageKind::ToolCall,
                1,
                Some(&run.id),
                now(),
            ),
        ],
        audit: vec![
            NewAuditEntry::scoped(&scope, "tool.call", "agent:support", "crm.update"),
            NewAuditEntry::scoped(&scope, "policy.decision", "agent:support", "crm.delete"),
        ],
    };
    (step, session, run)
}

/// What a tenant holds, to compare before and after a refused step.
#[derive(Debug, PartialEq)]
struct Snapshot {
    messages: Vec<u64>,
    usage: Vec<String>,
    audit: Vec<u64>,
    run: Option<(RunStatus, u64)>,
    executions: Vec<(String, ToolExecutionStatus)>,
    approvals: Vec<String>,
}

async fn snapshot(store: &dyn StateStore, tenant: &TenantId, run: &RunRecord) -> Snapshot {
    let messages = ok(
        store
            .load_messages(tenant, &run.session, MessageWindow::All)
            .await,
        "load_messages",
    );
    let usage = ok(
        store.list_usage(tenant, &UsageQuery::default()).await,
        "list_usage",
    );
    let audit = ok(
        store.list_audit(tenant, &AuditQuery::default()).await,
        "list_audit",
    );
    let stored_run = ok(store.get_run(tenant, &run.id).await, "get_run");
    let executions = ok(
        store.list_tool_executions(tenant, &run.id).await,
        "list_tool_executions",
    );
    let approvals = ok(
        store.list_pending_approvals(tenant).await,
        "list_pending_approvals",
    );
    Snapshot {
        messages: seqs(&messages),
        usage: ids(&usage),
        audit: audit.iter().map(|e| e.seq).collect(),
        run: stored_run.map(|r| (r.status, r.version)),
        executions: executions
            .into_iter()
            .map(|e| (e.idempotency_key.to_string(), e.status))
            .collect(),
        approvals: approvals.into_iter().map(|a| a.id.to_string()).collect(),
    }
}

/// A full step commits every part, in order, and reports what it appended.
pub async fn steps_commit_whole(store: &dyn StateStore) {
    let tenant = fresh_tenant();
    let (step, session, run) = full_step(&tenant);
    let approval = step.approvals[0].id.clone();
    let receipt = ok(store.commit_step(&tenant, step).await, "commit_step");
    assert!(receipt.session_created, "the step created its session");
    assert_eq!(receipt.last_seq, Some(2), "two messages appended");
    assert_eq!(
        receipt.last_audit_seq,
        Some(2),
        "two audit entries appended"
    );

    let stored = ok(store.get_session(&tenant, &session.id).await, "get_session");
    assert_eq!(stored.map(|s| s.agent), Some(session.agent.clone()));
    let snap = snapshot(store, &tenant, &run).await;
    assert_eq!(snap.messages, vec![1, 2]);
    assert_eq!(snap.usage.len(), 2);
    assert_eq!(snap.audit, vec![1, 2]);
    assert_eq!(
        snap.run,
        Some((RunStatus::Completed, run.version + 1)),
        "the run update applies on top of the run the step inserted"
    );
    assert_eq!(snap.executions.len(), 1);
    assert_eq!(snap.approvals, vec![approval.to_string()]);
    let chain = ok(
        store.list_audit(&tenant, &AuditQuery::default()).await,
        "list_audit",
    );
    assert_eq!(
        verify_audit_chain(&chain),
        Ok(()),
        "the step's entries chain"
    );

    // A later step in the same session continues it; an existing session of the same agent is
    // accepted and not created again.
    let scope = scope_of(&run);
    let mut next_run = new_run(&tenant, &session);
    next_run.id = RunId::generate();
    let receipt = ok(
        store
            .commit_step(
                &tenant,
                Step {
                    session: Some(session.clone()),
                    new_run: Some(next_run),
                    messages: Some(StepMessages::new(&scope, vec![Message::user("again")])),
                    ..Step::default()
                },
            )
            .await,
        "a second step in the session",
    );
    assert!(!receipt.session_created);
    assert_eq!(receipt.last_seq, Some(3));
    assert_eq!(receipt.last_audit_seq, None);
    assert_eq!(
        ok(
            store.commit_step(&tenant, Step::default()).await,
            "an empty step"
        ),
        crate::store::StepReceipt::default()
    );
}

/// A step with one failing part writes nothing: each failure below is in a different part, and
/// every other part of the step would succeed on its own.
pub async fn steps_are_atomic(store: &dyn StateStore) {
    let tenant = fresh_tenant();
    // A committed step to fail against.
    let (first, session, run) = full_step(&tenant);
    let taken_usage = first.usage[0].clone();
    let done_execution = first.executions[0].clone();
    ok(store.commit_step(&tenant, first).await, "the first step");
    let current = run.version + 1;
    let scope = scope_of(&run);

    // A step that is valid as long as `spoil` does not break it.
    let next = || {
        let mut update = run.clone();
        update.status = RunStatus::Failed;
        update.version = current + 1;
        let key = key_of(format!("{}:1:0", run.id));
        Step {
            session: Some(session.clone()),
            new_run: None,
            run_update: Some((update, current)),
            messages: Some(StepMessages::new(&scope, vec![Message::assistant("more")])),
            executions: vec![new_tool_execution(&run, &key, ToolExecutionStatus::Failed)],
            approvals: vec![new_approval(
                &run,
                "crm.delete",
                json!({"id": 8}),
                Priority::High,
            )],
            usage: vec![usage_event(
                &tenant,
                &run.agent,
                UsageKind::OutputTokens,
                5,
                Some(&run.id),
                now(),
            )],
            audit: vec![NewAuditEntry::scoped(
                &scope,
                "tool.call",
                "agent:support",
                "crm.update",
            )],
        }
    };
    let before = snapshot(store, &tenant, &run).await;

    let other_tenant = fresh_tenant();
    type Spoil = Box<dyn Fn(&mut Step) + Send + Sync>;
    let cases: Vec<(&str, ErrorKind, Spoil)> = vec![
        (
            "a usage id that exists (the last part but the audit)",
            ErrorKind::Conflict,
            Box::new(move |s: &mut Step| s.usage.push(taken_usage.clone())),
        ),
        (
            "a stale run version",
            ErrorKind::Conflict,
            Box::new(|s: &mut Step| {
                if let Some((_, expected)) = &mut s.run_update {
                    *expected = 0;
                }
            }),
        ),
        (
            "a succeeded execution written again",
            ErrorKind::Conflict,
            Box::new(move |s: &mut Step| s.executions.push(done_execution.clone())),
        ),
        (
            "the session of another agent",
            ErrorKind::PermissionDenied,
            Box::new(|s: &mut Step| {
                if let Some(session) = &mut s.session {
                    session.agent = AgentId::from_static("someone-else");
                }
            }),
        ),
        (
            "an approval for a run that does not exist",
            ErrorKind::NotFound,
            Box::new(|s: &mut Step| {
                let mut a = s.approvals[0].clone();
                a.id = ApprovalId::generate();
                a.run = RunId::generate();
                s.approvals.push(a);
            }),
        ),
        (
            "a run inserted twice",
            ErrorKind::Conflict,
            Box::new(|s: &mut Step| {
                let mut again = new_run(&s.usage[0].tenant, &new_session(&s.usage[0].tenant));
                if let Some((update, _)) = &s.run_update {
                    again.id = update.id.clone();
                    again.session = update.session.clone();
                }
                s.new_run = Some(again);
                s.run_update = None;
            }),
        ),
        (
            "an audit entry of another tenant",
            ErrorKind::InvalidInput,
            Box::new(move |s: &mut Step| {
                s.audit.push(NewAuditEntry::new(
                    other_tenant.clone(),
                    "tool.call",
                    "agent:support",
                    "crm.update",
                ));
            }),
        ),
    ];
    for (what, kind, spoil) in cases {
        let mut step = next();
        spoil(&mut step);
        expect_err(store.commit_step(&tenant, step).await, kind, what);
        assert_eq!(
            snapshot(store, &tenant, &run).await,
            before,
            "a step refused for {what} wrote part of itself"
        );
    }
    // The unspoiled step still commits: the refusals came from the spoiled parts.
    ok(store.commit_step(&tenant, next()).await, "the valid step");
    let after = snapshot(store, &tenant, &run).await;
    assert_eq!(after.messages.len(), before.messages.len() + 1);
    assert_eq!(after.run, Some((RunStatus::Failed, current + 1)));
}

/// Concurrent steps and single appends still form one audit chain, with every step's entries
/// consecutive.
pub async fn steps_keep_one_audit_chain(store: &dyn StateStore) {
    let tenant = fresh_tenant();
    let (session, run) = setup_run(store, &tenant).await;
    let scope = scope_of(&run);
    let steps = (0..8).map(|i| {
        let step = Step {
            messages: Some(StepMessages::new(
                &scope,
                vec![Message::user(format!("step {i}"))],
            )),
            audit: (0..3)
                .map(|j| {
                    NewAuditEntry::scoped(&scope, "tool.call", "agent:support", format!("s{i}.{j}"))
                })
                .collect(),
            ..Step::default()
        };
        let tenant = tenant.clone();
        async move { store.commit_step(&tenant, step).await.map(|_| ()) }
    });
    let singles = (0..8).map(|i| {
        let entry =
            NewAuditEntry::scoped(&scope, "policy.decision", "agent:support", format!("a{i}"));
        let tenant = tenant.clone();
        async move { store.append_audit(&tenant, entry).await.map(|_| ()) }
    });
    let (steps, singles) = futures::join!(join_all(steps), join_all(singles));
    for r in steps.into_iter().chain(singles) {
        ok(r, "a concurrent step or append");
    }
    let chain = ok(
        store.list_audit(&tenant, &AuditQuery::default()).await,
        "list_audit",
    );
    assert_eq!(chain.len(), 8 * 3 + 8);
    assert_eq!(
        verify_audit_chain(&chain),
        Ok(()),
        "one chain under concurrency"
    );
    for i in 0..8 {
        let at: Vec<u64> = chain
            .iter()
            .filter(|e| e.entry.action.starts_with(&format!("s{i}.")))
            .map(|e| e.seq)
            .collect();
        assert_eq!(at.len(), 3);
        assert_eq!(
            at[2] - at[0],
            2,
            "step {i}'s entries are consecutive: {at:?}"
        );
    }
    let messages = ok(
        store
            .load_messages(&tenant, &session.id, MessageWindow::All)
            .await,
        "load_messages",
    );
    assert_eq!(seqs(&messages), (1..=8).collect::<Vec<u64>>());
}
