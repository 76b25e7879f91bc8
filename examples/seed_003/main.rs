//! Seed 003, the AstralisOps orchestration agent, end to end and offline: an urgent support
//! email (handled alone, and once even when delivered twice), a signed booking webhook (a
//! calendar event with reminders), a forged webhook (refused), a new partnership intake from a
//! database trigger (a person approves it), a failed worker job the model is unsure about
//! (rejected, nothing runs), an API request a reviewer turns down, an email while the LLM is
//! down (keyword rules decide) and one the LLM is unsure about (keyword rules propose, a person
//! must confirm); then the decision log.
//!
//! The LLM is scripted (offline); everything else is agentkit as a host runs it: SQLite by
//! default, Postgres when `AGENTKIT_DATABASE_URL` is set; thresholds from
//! `AGENT_AUTO_EXECUTE_THRESHOLD` / `AGENT_REQUIRE_APPROVAL_THRESHOLD`. See `scenario.rs` for
//! the design.
//!
//! ```sh
//! cargo run --example seed_003 --features workflow,policy,sqlite,postgres
//! ```

#[path = "../common/backend.rs"]
mod backend;
mod scenario;

use std::sync::Arc;

use agentkit::error::Error;
use agentkit::id::TenantId;
use agentkit::testkit::{ScriptedModel, ScriptedResponse};
use agentkit::workflow::intake::{
    ApiIntake, DbChangeIntake, EmailIntake, WebhookIntake, WebhookRequest, WorkerIntake,
    signature_header,
};
use chrono::{Duration, Utc};
use scenario::{
    Action, ActionOutcome, Config, Decision, DecisionRecord, DecisionStatus, Ops, Orchestrator,
    Processed, Setup,
};
use serde_json::{Value, json};

const SECRET: &[u8] = b"whsec_northwind_forms_2025";

fn decision(
    intent: &str,
    confidence: f64,
    reasoning: &str,
    actions: Vec<Action>,
) -> ScriptedResponse {
    ScriptedResponse::text(
        Decision {
            intent: intent.into(),
            confidence,
            reasoning: reasoning.into(),
            actions,
            requires_approval: false,
        }
        .to_json(),
    )
}

fn email(id: &str, from: &str, subject: &str, body: &str) -> String {
    format!(
        "From: {from}\r\nTo: hello@northwind-studio.example\r\nSubject: {subject}\r\n\
         Date: Mon, 17 Mar 2025 08:55:00 +0000\r\nMessage-ID: <{id}>\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n"
    )
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let db = backend::Db::from_env("seed003").await?;
    let tenant = TenantId::new("northwind-studio")?;
    let config = Config::from_env()?;
    let slot = (Utc::now() + Duration::days(7))
        .date_naive()
        .and_hms_opt(15, 0, 0)
        .map(|t| t.and_utc())
        .ok_or("no slot")?;
    let urgent_ref = "email:CAH7-urgent-500@mail.acme.example";
    let booking_ref = "webhook:bk_7781";
    let llm = ScriptedModel::new([
        decision("SUPPORT_REQUEST", 0.93, "Booking page down for a client: urgent support.", vec![
            Action::new("ASSIGN_PIPELINE", json!({"reference": urgent_ref, "pipeline": "Support Requests", "priority": 5})),
            Action::new("SEND_NOTIFICATION", json!({"reference": urgent_ref, "to": "OPERATOR", "template": "urgent_intake"})),
            Action::new("TRIGGER_AUTOMATION", json!({"reference": urgent_ref, "workflow": "intake_assigned"})),
        ]),
        decision("SCHEDULING_REQUEST", 0.91, "A complete booking in working hours, no conflict.", vec![
            Action::new("CREATE_EVENT", json!({"reference": booking_ref, "title": "Onboarding call: Ada Lovelace",
                "start": slot.to_rfc3339(), "durationMinutes": 30,
                "attendees": ["ada@analytical.example", "leo@northwind-studio.example"]})),
            Action::new("SEND_NOTIFICATION", json!({"reference": booking_ref, "to": "ada@analytical.example", "template": "booking_confirmation"})),
            Action::new("SEND_NOTIFICATION", json!({"reference": booking_ref, "to": "PM", "template": "new_booking"})),
        ]),
        decision("PARTNERSHIP", 0.72, "Reseller proposal: General Intake, an admin should look.", vec![
            Action::new("ASSIGN_PIPELINE", json!({"reference": "db:intake_request:insert:id=ir_481:tx90211", "pipeline": "General Intake", "priority": 2})),
            Action::new("SEND_NOTIFICATION", json!({"reference": "db:intake_request:insert:id=ir_481:tx90211", "to": "ADMIN", "template": "partnership"})),
        ]),
        decision("JOB_FAILURE", 0.31, "A sync job failed; unclear whether a retry helps.", vec![
            Action::new("TRIGGER_AUTOMATION", json!({"reference": "worker:1710408000000-0", "workflow": "calendar_resync"})),
        ]),
        decision("SALES_INQUIRY", 0.7, "Looks like a sales lead, but it came through the API without context.", vec![
            Action::new("ASSIGN_PIPELINE", json!({"reference": "api:req-8812", "pipeline": "Sales Inquiries", "priority": 3})),
        ]),
        ScriptedResponse::error(|| Error::Unavailable { message: "api.anthropic.com: 529 overloaded".into(), source: None }),
        decision("GENERAL", 0.4, "Hard to tell what they want.", vec![]),
    ])
    .with_name("claude");
    let ops = Ops::default();
    ops.book(slot - Duration::hours(5), 60, "Team retro")?;
    let orch = Orchestrator::new(Setup {
        config,
        ..Setup::new(db.state(), tenant.clone(), Arc::new(llm), ops.clone())
    })?;
    let c = orch.config();
    println!(
        "AstralisOps orchestration agent for {} ({} database)",
        c.org,
        db.name()
    );
    println!(
        "It acts alone at confidence ≥ {:.2}, asks a person at ≥ {:.2}, does nothing below; at most {} actions a minute.\n",
        c.auto_execute_threshold, c.require_approval_threshold, c.max_actions_per_minute
    );

    let now = Utc::now();
    let show = |what: &str, p: &Processed| match p {
        Processed::Decided(r) => println!("{what}\n{}", describe(r)),
        Processed::Duplicate(r) => println!(
            "{what}\n  already handled as {} ({}): nothing new happened\n",
            r.id,
            r.status.as_str()
        ),
        Processed::InFlight { key } => {
            println!("{what}\n  {key} is being handled by another delivery\n")
        }
    };

    // 1-2. An urgent support email, delivered twice.
    let raw = email(
        "CAH7-urgent-500@mail.acme.example",
        "Dana Whitfield <dana@acme.example>",
        "URGENT: our booking page returns 500",
        "Since 08:50 none of our clients can book. We have 40 appointments today.",
    );
    let urgent = EmailIntake::new().normalise(&tenant, raw.as_bytes(), now)?;
    show(
        "1. Email from Dana: \"URGENT: our booking page returns 500\"",
        &orch.process(&urgent).await?,
    );
    show(
        "2. The mail webhook retries the same email",
        &orch.process(&urgent).await?,
    );

    // 3-4. A signed booking webhook; a forged one.
    let body = serde_json::to_vec(&json!({"event": "booking.created", "id": "bk_7781",
        "booking": {"date": slot.date_naive().to_string(), "time": "15:00", "durationMinutes": 30,
                    "guest": {"name": "Ada Lovelace", "email": "ada@analytical.example"},
                    "purpose": "Onboarding call"}}))?;
    let hooks = WebhookIntake::new(SECRET)?;
    let signed = WebhookRequest::new(&body).header(
        "X-Signature",
        signature_header(SECRET, now.timestamp(), &body),
    );
    let booking = hooks.normalise(&tenant, &signed, now)?;
    show(
        "3. Booking form (signed webhook): Ada books an onboarding call",
        &orch.process(&booking).await?,
    );
    let forged = WebhookRequest::new(&body).header(
        "X-Signature",
        signature_header(b"guessed-secret-123456", now.timestamp(), &body),
    );
    match hooks.normalise(&tenant, &forged, now) {
        Ok(_) => println!("4. A forged booking webhook was accepted (it should not be)\n"),
        Err(e) => println!("4. A forged booking webhook\n  refused before anything read it: {e}\n"),
    }

    // 5. A database trigger: a new intake request (a partnership), approved by Maria.
    let change = json!({"table": "intake_request", "op": "INSERT", "txid": 90211,
        "new": {"id": "ir_481", "title": "Reseller partnership for the Nordics", "source": "FORM",
                "description": "We resell studio software in 4 countries and would like to partner."}});
    let partnership =
        DbChangeIntake::new().normalise(&tenant, &serde_json::to_vec(&change)?, now)?;
    let p = orch.process(&partnership).await?;
    show(
        "5. Database trigger: new intake request \"Reseller partnership for the Nordics\"",
        &p,
    );
    let key = partnership.key().to_string();
    let r = orch
        .review_decision(&key, true, "maria@northwind-studio.example", "")
        .await?;
    println!("  Maria approves on the review page →\n{}", describe(&r));

    // 6. A worker event the model is unsure about; no keyword rule matches.
    let job = json!({"queue": "calendar-sync", "jobId": "sync-9", "status": "failed", "attemptsMade": 3,
                     "failedReason": "quota exceeded for the calendar API", "eventId": "1710408000000-0"});
    let failed = WorkerIntake::new().normalise(&tenant, &serde_json::to_vec(&job)?, now)?;
    show(
        "6. Worker event: calendar sync job failed 3 times",
        &orch.process(&failed).await?,
    );

    // 7. An API request, turned down by Tom.
    let api = ApiIntake::new().normalise(&tenant,
        br#"{"type":"intake_created","content":"Contact: Grace, grace@cobol.example, wants to talk","data":{"channel":"partner-portal"}}"#,
        Some("req-8812"), now)?;
    show(
        "7. API request from the partner portal",
        &orch.process(&api).await?,
    );
    let r = orch
        .review_decision(
            api.key().as_str(),
            false,
            "tom@northwind-studio.example",
            "Spam from the portal, not a lead",
        )
        .await?;
    println!("  Tom rejects it on the review page →\n{}", describe(&r));

    // 8. The LLM is down: the keyword rules decide.
    let raw = email(
        "inv-2291@globex.example",
        "Hank Scorpio <hank@globex.example>",
        "Question about invoice #2291",
        "We were charged twice for March. Can you check the invoice?",
    );
    let billing = EmailIntake::new().normalise(&tenant, raw.as_bytes(), now)?;
    show(
        "8. Email while the LLM is down (529 overloaded)",
        &orch.process(&billing).await?,
    );

    // 9. The LLM is unsure; the keyword rules propose, a person must confirm.
    let raw = email(
        "maybe-77@initech.example",
        "Peter Gibbons <peter@initech.example>",
        "Hello",
        "Could someone show us a demo sometime? Not sure who to ask.",
    );
    let vague = EmailIntake::new().normalise(&tenant, raw.as_bytes(), now)?;
    let v = orch.process(&vague).await?;
    show("9. A vague email the LLM is unsure about", &v);
    if let Some(r) = v.record() {
        for id in r.awaiting() {
            if let Some(item) = orch
                .queue()
                .pending(&tenant)
                .await?
                .into_iter()
                .find(|i| &i.request.id == id)
            {
                println!(
                    "  in the review queue: {} for {} (assigned to {})",
                    item.request.call.name,
                    r.id,
                    item.assignee.as_deref().unwrap_or("nobody")
                );
            }
        }
        println!();
    }

    println!("Decision log:");
    println!(
        "  {:<10} {:<24} {:<19} {:>5}  {:<36} status",
        "source", "type", "intent", "conf", "decided by"
    );
    for r in orch.decisions().await? {
        println!(
            "  {:<10} {:<24} {:<19} {:>5.2}  {:<36} {}",
            r.input_source.as_str(),
            r.input_type,
            r.intent(),
            r.confidence,
            r.decided_by.describe(),
            r.status.as_str()
        );
    }
    let keys: std::collections::BTreeSet<String> =
        ops.effects().into_iter().map(|e| e.key).collect();
    println!(
        "\nWhat happened in AstralisOps ({} effects under {} distinct idempotency keys):",
        ops.count(),
        keys.len()
    );
    for e in ops.effects() {
        println!("  - {}", effect_text(&e.tool, &e.params, &e.output));
    }
    db.cleanup().await;
    Ok(())
}

/// A decision in a product person's words.
fn describe(r: &DecisionRecord) -> String {
    let mut out = format!(
        "  decided {} ({:.2}) by {}",
        r.intent(),
        r.confidence,
        r.decided_by.describe()
    );
    if r.effective_confidence < r.confidence {
        out.push_str(&format!(
            "; needs a person (treated as {:.2})",
            r.effective_confidence
        ));
    }
    out.push('\n');
    match r.status {
        DecisionStatus::Executed => {
            out.push_str(&format!("  EXECUTED: {} action(s) ran\n", r.executed()))
        }
        DecisionStatus::RequiresApproval => out.push_str(&format!(
            "  REQUIRES_APPROVAL: {} action(s) wait for a reviewer, nothing ran yet\n",
            r.awaiting().len()
        )),
        DecisionStatus::Rejected => out.push_str(&format!(
            "  REJECTED: nothing ran ({})\n",
            r.error_message.as_deref().unwrap_or("rejected")
        )),
        DecisionStatus::Failed => out.push_str(&format!(
            "  FAILED: {}\n",
            r.error_message.as_deref().unwrap_or("failed")
        )),
        DecisionStatus::Pending => out.push_str("  PENDING\n"),
    }
    for a in &r.actions {
        if let ActionOutcome::Executed(output) = &a.outcome {
            out.push_str(&format!(
                "    ✓ {}\n",
                effect_text(&a.tool, &a.params, output)
            ));
        }
    }
    out
}

fn effect_text(tool: &str, p: &Value, o: &Value) -> String {
    let s = |v: &Value| v.as_str().map_or_else(|| v.to_string(), str::to_owned);
    match tool {
        "pipeline.assign" => format!(
            "{} → {} (priority {}), owner {}",
            s(&p["reference"]),
            s(&o["pipeline"]),
            o["priority"],
            s(&o["assignee"])
        ),
        "calendar.create_event" => format!(
            "booked \"{}\" {} – {}, reminders {} minutes before",
            s(&o["title"]),
            s(&o["start"]),
            s(&o["end"]),
            o["remindersMinutesBefore"]
        ),
        "notify.send" => {
            let to: Vec<String> = o["deliveredTo"]
                .as_array()
                .map(|a| a.iter().map(s).collect())
                .unwrap_or_default();
            format!("notified {} ({})", to.join(", "), s(&o["template"]))
        }
        "automation.trigger" => format!("started n8n workflow {}", s(&o["workflow"])),
        other => format!("{other} {p}"),
    }
}
