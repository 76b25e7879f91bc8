//! The seed 003 tests' inputs and setup: scripted decisions, realistic emails, API
//! requests, an orchestrator per database.
#![allow(dead_code)]

use std::sync::Arc;

use agentkit::error::Error;
use agentkit::id::TenantId;
use agentkit::store::AuditQuery;
use agentkit::testkit::{ScriptedModel, ScriptedResponse};
use agentkit::workflow::intake::{ApiIntake, EmailIntake, Intake};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::scenario::{Action, Decision, DecisionRecord, Ops, Orchestrator, Processed, Setup};
use crate::support::Db;

pub const SECRET: &[u8] = b"whsec_northwind_forms_2025";

pub fn tenant() -> TenantId {
    TenantId::new("northwind-studio").unwrap()
}

pub fn now() -> DateTime<Utc> {
    Utc::now()
}

/// The scripted LLM's answer.
pub fn answer(intent: &str, confidence: f64, actions: Vec<Action>) -> ScriptedResponse {
    ScriptedResponse::text(
        Decision {
            intent: intent.into(),
            confidence,
            reasoning: format!("{intent} at {confidence}"),
            actions,
            requires_approval: false,
        }
        .to_json(),
    )
}

pub fn assign(reference: &str, pipeline: &str) -> Action {
    Action::new(
        "ASSIGN_PIPELINE",
        json!({"reference": reference, "pipeline": pipeline, "priority": 3}),
    )
}

pub fn notify(reference: &str, to: &str) -> Action {
    Action::new(
        "SEND_NOTIFICATION",
        json!({"reference": reference, "to": to, "template": "new_intake"}),
    )
}

pub fn trigger(reference: &str) -> Action {
    Action::new(
        "TRIGGER_AUTOMATION",
        json!({"reference": reference, "workflow": "intake_assigned"}),
    )
}

pub fn outage() -> ScriptedResponse {
    ScriptedResponse::error(|| Error::Unavailable {
        message: "api.anthropic.com: 529 overloaded".into(),
        source: None,
    })
}

pub struct Env {
    pub orch: Orchestrator,
    pub llm: ScriptedModel,
    pub ops: Ops,
}

pub fn env_with(db: &Db, llm: ScriptedModel, adjust: impl FnOnce(&mut Setup)) -> Env {
    let ops = Ops::default();
    let mut setup = Setup::new(db.state(), tenant(), Arc::new(llm.clone()), ops.clone());
    adjust(&mut setup);
    Env {
        orch: Orchestrator::new(setup).unwrap(),
        llm,
        ops,
    }
}

pub fn env(db: &Db, script: Vec<ScriptedResponse>) -> Env {
    env_with(db, ScriptedModel::new(script).with_name("claude"), |_| {})
}

/// A realistic inbound message (received headers, a quoted-printable plain part and an HTML
/// alternative).
pub fn raw_email(message_id: &str, from: &str, subject: &str, body: &str) -> String {
    format!(
        "Return-Path: <{from}>\r
Received: from mail-qk1-f170.google.example (mail-qk1-f170.google.example [209.85.222.170])\r
\tby mx.northwind-studio.example (Postfix) with ESMTPS id 4TvL2k1Wq9z9\r
\tfor <hello@northwind-studio.example>; Mon, 17 Mar 2025 08:55:03 +0000 (UTC)\r
From: {from}\r
To: Northwind Studio <hello@northwind-studio.example>\r
Subject: {subject}\r
Date: Mon, 17 Mar 2025 08:55:00 +0000\r
Message-ID: <{message_id}>\r
MIME-Version: 1.0\r
Content-Type: multipart/alternative; boundary=\"b1_5f2c\"\r
\r
--b1_5f2c\r
Content-Type: text/plain; charset=UTF-8\r
Content-Transfer-Encoding: quoted-printable\r
\r
{body}\r
\r
Best regards =E2=80=94 sent from my phone\r
--b1_5f2c\r
Content-Type: text/html; charset=UTF-8\r
\r
<p>{body}</p>\r
--b1_5f2c--\r
"
    )
}

pub fn email(message_id: &str, subject: &str, body: &str) -> Intake {
    let raw = raw_email(
        message_id,
        "Dana Whitfield <dana@acme.example>",
        subject,
        body,
    );
    EmailIntake::new()
        .normalise(&tenant(), raw.as_bytes(), now())
        .unwrap()
}

pub fn api(key: &str, content: &str) -> Intake {
    let body = serde_json::to_vec(&json!({"type": "intake_created", "content": content})).unwrap();
    ApiIntake::new()
        .normalise(&tenant(), &body, Some(key), now())
        .unwrap()
}

pub fn decided(p: Processed) -> DecisionRecord {
    match p {
        Processed::Decided(r) => r,
        other => panic!("expected a fresh decision, got {other:?}"),
    }
}

pub async fn act_audit(orch: &Orchestrator, db: &Db, r: &DecisionRecord, kind: &str) -> Vec<Value> {
    db.state()
        .list_audit(
            orch.tenant(),
            &AuditQuery::all().kind(kind).run(r.act_run.clone()),
        )
        .await
        .unwrap()
        .into_iter()
        .map(|e| json!({"action": e.entry.action, "decision": e.entry.decision, "reason": e.entry.reason}))
        .collect()
}
