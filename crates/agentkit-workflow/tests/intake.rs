//! The intake normalisers through the public API: each source's realistic input, its
//! deduplication id, and typed errors (never a panic) for malformed, forged or replayed input.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use agentkit_core::id::TenantId;
use agentkit_workflow::intake::{
    ApiIntake, DbChangeIntake, EmailIntake, Intake, IntakeError, SignatureError, Source,
    WebhookIntake, WebhookRequest, WorkerIntake, signature_header,
};
use agentkit_workflow::{Delivery, InMemoryWorkflowStore, Workflows};
use chrono::{DateTime, TimeZone, Utc};
use proptest::prelude::*;
use serde_json::json;

const SECRET: &[u8] = b"whsec_astralis_forms_2025";

fn tenant() -> TenantId {
    TenantId::new("astralis").unwrap()
}

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 3, 14, 9, 30, 0).unwrap()
}

/// A real-world shaped message: encoded-word subject, multipart/alternative with a
/// quoted-printable plain part and an HTML part, a base64 PDF attachment.
const SUPPORT_EMAIL: &str = "Return-Path: <dana.whitfield@northwind.example>\r
Received: from mx.northwind.example (mx.northwind.example [203.0.113.7])\r
\tby inbound.astralis.example with ESMTPS id 4Tq2Lk0x9Rz1\r
\tfor <support@astralis.example>; Fri, 14 Mar 2025 09:12:04 +0000\r
From: =?UTF-8?Q?Dana_Whitfield?= <dana.whitfield@northwind.example>\r
To: AstralisOps Support <support@astralis.example>\r
Cc: ops@northwind.example\r
Subject: =?UTF-8?Q?URGENT:_booking_page_returns_500_=E2=80=93_clients_can=27t_book?=\r
Date: Fri, 14 Mar 2025 09:12:00 +0000\r
Message-ID: <CAH7x9Q2-urgent-500@mail.northwind.example>\r
MIME-Version: 1.0\r
Content-Type: multipart/mixed; boundary=\"outer-7f3a\"\r
\r
--outer-7f3a\r
Content-Type: multipart/alternative; boundary=\"alt-19c2\"\r
\r
--alt-19c2\r
Content-Type: text/plain; charset=UTF-8\r
Content-Transfer-Encoding: quoted-printable\r
\r
Hi team,\r
\r
Since 08:50 our booking page returns HTTP 500 =E2=80=93 none of our clients ca=\r
n book. This is urgent, we have 40 appointments today.\r
\r
Dana\r
--alt-19c2\r
Content-Type: text/html; charset=UTF-8\r
\r
<p>Hi team,</p><p>Since 08:50 our booking page returns HTTP 500.</p>\r
--alt-19c2--\r
\r
--outer-7f3a\r
Content-Type: application/pdf; name=\"error-report.pdf\"\r
Content-Disposition: attachment; filename=\"error-report.pdf\"\r
Content-Transfer-Encoding: base64\r
\r
JVBERi0xLjQKJcfsj6IKMSAwIG9iago8PC9UeXBlL0NhdGFsb2c+PgplbmRvYmoKJSVFT0YK\r
--outer-7f3a--\r
";

#[test]
fn an_email_is_normalised_with_its_message_id_decoded_headers_body_and_attachments() {
    let intake = EmailIntake::new()
        .normalise(&tenant(), SUPPORT_EMAIL.as_bytes(), now())
        .unwrap();
    assert_eq!(intake.source, Source::Email);
    assert_eq!(intake.kind, "email_received");
    assert_eq!(
        intake.delivery_id,
        "CAH7x9Q2-urgent-500@mail.northwind.example"
    );
    assert_eq!(
        intake.key().as_str(),
        "email:CAH7x9Q2-urgent-500@mail.northwind.example"
    );
    assert_eq!(intake.tenant, tenant());
    assert_eq!(intake.received_at, now());
    let subject = "URGENT: booking page returns 500 – clients can't book";
    assert_eq!(intake.data["subject"], subject);
    assert_eq!(
        intake.data["from"],
        json!({"name": "Dana Whitfield", "address": "dana.whitfield@northwind.example"})
    );
    assert_eq!(intake.data["to"][0]["address"], "support@astralis.example");
    assert_eq!(intake.data["cc"][0]["address"], "ops@northwind.example");
    assert_eq!(intake.data["date"], "2025-03-14T09:12:00Z");
    let body = intake.data["body"].as_str().unwrap();
    assert!(
        body.contains("none of our clients can book"),
        "soft line break joined, quoted-printable decoded: {body}"
    );
    assert_eq!(
        intake.data["attachments"],
        json!([{"name": "error-report.pdf", "contentType": "application/pdf", "size": 54}])
    );
    assert_eq!(intake.metadata["from"], "dana.whitfield@northwind.example");
    assert!(
        intake.text.starts_with(
            "Email received\nFrom: Dana Whitfield <dana.whitfield@northwind.example>\n"
        )
    );
    assert!(intake.text.contains(&format!("Subject: {subject}\n")));
    assert!(
        intake
            .text
            .contains("Attachments: error-report.pdf (application/pdf, 54 bytes)")
    );
    assert!(intake.text.contains("This is urgent"));
}

#[test]
fn an_email_without_message_id_is_keyed_by_its_bytes_and_html_only_bodies_become_text() {
    let raw = "From: bookings@calendly.example\r\nTo: ops@astralis.example\r\nSubject: New booking\r\n\
               Auto-Submitted: auto-generated\r\nContent-Type: text/html; charset=utf-8\r\n\r\n\
               <html><body><h1>New booking</h1><p>Friday <b>15:00</b> with Ada</p></body></html>\r\n";
    let a = EmailIntake::new()
        .normalise(&tenant(), raw.as_bytes(), now())
        .unwrap();
    let b = EmailIntake::new()
        .normalise(&tenant(), raw.as_bytes(), now())
        .unwrap();
    assert!(a.delivery_id.starts_with("sha256:"), "{}", a.delivery_id);
    assert_eq!(a.key(), b.key(), "a redelivered message has the same key");
    let other = raw.replace("Ada", "Grace");
    let c = EmailIntake::new()
        .normalise(&tenant(), other.as_bytes(), now())
        .unwrap();
    assert_ne!(a.key(), c.key());
    let body = a.data["body"].as_str().unwrap();
    assert!(body.contains("Friday") && body.contains("15:00") && !body.contains("<b>"));
    assert_eq!(a.metadata["auto_submitted"], "auto-generated");
}

#[test]
fn malformed_emails_are_typed_errors() {
    let e = EmailIntake::new();
    assert!(matches!(
        e.normalise(&tenant(), b"", now()),
        Err(IntakeError::Malformed { .. })
    ));
    assert!(matches!(
        e.normalise(&tenant(), b"   \r\n ", now()),
        Err(IntakeError::Malformed { .. })
    ));
    assert!(matches!(
        e.normalise(&tenant(), b"Subject: no sender\r\n\r\nhello", now()),
        Err(IntakeError::MissingField { field, .. }) if field == "From"
    ));
    assert!(matches!(
        e.normalise(
            &tenant(),
            b"From: \r\nSubject: empty sender\r\n\r\nhi",
            now()
        ),
        Err(IntakeError::MissingField { .. })
    ));
    assert!(matches!(
        EmailIntake::new()
            .max_bytes(100)
            .normalise(&tenant(), SUPPORT_EMAIL.as_bytes(), now()),
        Err(IntakeError::TooLarge { limit: 100, .. })
    ));
    let err: agentkit_core::Error = e
        .normalise(&tenant(), b"Subject: x\r\n\r\ny", now())
        .unwrap_err()
        .into();
    assert_eq!(err.kind(), agentkit_core::error::ErrorKind::InvalidInput);
}

fn booking_body() -> Vec<u8> {
    serde_json::to_vec(&json!({
        "event": "booking.created",
        "id": "bk_2025_0314_0042",
        "booking": {
            "date": "2025-03-18", "time": "15:00", "durationMinutes": 30,
            "guest": {"name": "Ada Lovelace", "email": "ada@analytical.example"},
            "purpose": "Onboarding call"
        }
    }))
    .unwrap()
}

fn signed<'a>(body: &'a [u8], at: DateTime<Utc>) -> WebhookRequest<'a> {
    WebhookRequest::new(body)
        .header("Content-Type", "application/json")
        .header(
            "X-Signature",
            signature_header(SECRET, at.timestamp(), body),
        )
}

#[test]
fn a_signed_booking_webhook_is_normalised_and_deduplicated_by_its_delivery() {
    let hooks = WebhookIntake::new(SECRET).unwrap();
    let body = booking_body();
    let intake = hooks
        .normalise(&tenant(), &signed(&body, now()), now())
        .unwrap();
    assert_eq!(intake.source, Source::Webhook);
    assert_eq!(intake.kind, "booking_created");
    assert_eq!(intake.delivery_id, "bk_2025_0314_0042");
    assert_eq!(intake.key().as_str(), "webhook:bk_2025_0314_0042");
    assert_eq!(
        intake.data["booking"]["guest"]["email"],
        "ada@analytical.example"
    );
    assert!(intake.text.starts_with("Webhook booking_created\n"));
    assert!(intake.text.contains("booking.date: 2025-03-18\n"));
    assert!(
        intake
            .text
            .contains("booking.guest.email: ada@analytical.example\n")
    );
    assert_eq!(intake.metadata["content_type"], "application/json");

    // Headers win over the body; without either the body's hash is the delivery id.
    let with_headers = signed(&body, now())
        .header("X-Delivery-Id", "dlv-77")
        .header("X-Event-Type", "Form:Submitted");
    let i = hooks.normalise(&tenant(), &with_headers, now()).unwrap();
    assert_eq!(
        (i.kind.as_str(), i.delivery_id.as_str()),
        ("form_submitted", "dlv-77")
    );
    let anonymous = br#"{"form":"contact","fields":{"message":"hello"}}"#;
    let i1 = hooks
        .normalise(&tenant(), &signed(anonymous, now()), now())
        .unwrap();
    let i2 = hooks
        .normalise(
            &tenant(),
            &signed(anonymous, now() + chrono::Duration::seconds(30)),
            now() + chrono::Duration::seconds(30),
        )
        .unwrap();
    assert_eq!(i1.kind, "webhook_received");
    assert!(i1.delivery_id.starts_with("sha256:"));
    assert_eq!(
        i1.key(),
        i2.key(),
        "a retry (new signature, same body) dedupes"
    );
}

#[test]
fn forged_tampered_replayed_and_unsigned_webhooks_are_refused() {
    let hooks = WebhookIntake::new(SECRET).unwrap();
    let body = booking_body();
    let sig = |r| match r {
        Err(IntakeError::Signature(e)) => e,
        other => panic!("expected a signature error, got {other:?}"),
    };
    // Signed with another secret.
    let forged = WebhookRequest::new(&body).header(
        "X-Signature",
        signature_header(b"not-the-real-secret!!", now().timestamp(), &body),
    );
    assert_eq!(
        sig(hooks.normalise(&tenant(), &forged, now())),
        SignatureError::Mismatch
    );
    // The body changed after signing (one byte).
    let header = signature_header(SECRET, now().timestamp(), &body);
    let mut tampered = body.clone();
    let at = tampered.iter().position(|b| *b == b'5').unwrap();
    tampered[at] = b'6';
    let r = WebhookRequest::new(&tampered).header("X-Signature", header.clone());
    assert_eq!(
        sig(hooks.normalise(&tenant(), &r, now())),
        SignatureError::Mismatch
    );
    // The timestamp changed (the signature covers it).
    let moved = header.replace(
        &format!("t={}", now().timestamp()),
        &format!("t={}", now().timestamp() + 1),
    );
    let r = WebhookRequest::new(&body).header("X-Signature", moved);
    assert_eq!(
        sig(hooks.normalise(&tenant(), &r, now())),
        SignatureError::Mismatch
    );
    // A replay: a genuine delivery, 10 minutes later.
    let later = now() + chrono::Duration::minutes(10);
    assert!(matches!(
        sig(hooks.normalise(&tenant(), &signed(&body, now()), later)),
        SignatureError::Expired {
            age_secs: 600,
            tolerance_secs: 300
        }
    ));
    // ... accepted by a receiver tolerating 15 minutes.
    let lenient = WebhookIntake::new(SECRET)
        .unwrap()
        .tolerance(Duration::from_secs(900));
    assert!(
        lenient
            .normalise(&tenant(), &signed(&body, now()), later)
            .is_ok()
    );
    // Signed in the future.
    assert!(matches!(
        sig(hooks.normalise(&tenant(), &signed(&body, later), now())),
        SignatureError::Ahead {
            ahead_secs: 600,
            ..
        }
    ));
    // No header; malformed headers.
    assert!(matches!(
        sig(hooks.normalise(&tenant(), &WebhookRequest::new(&body), now())),
        SignatureError::Missing { .. }
    ));
    for bad in [
        "",
        "garbage",
        "v1=abc",
        &format!("t={}", now().timestamp()),
        &format!("t=soon,v1={}", "0".repeat(64)),
        &format!("t={},v1=zz", now().timestamp()),
        &format!("t={},v1={}", now().timestamp(), "ab".repeat(8)),
        &"x".repeat(5000),
    ] {
        let r = WebhookRequest::new(&body).header("X-Signature", bad);
        assert!(
            matches!(
                sig(hooks.normalise(&tenant(), &r, now())),
                SignatureError::Malformed(_)
            ),
            "{bad:?}"
        );
    }
    // Too large is refused before anything else; a good signature over non-JSON is malformed.
    let small = WebhookIntake::new(SECRET).unwrap().max_bytes(10);
    assert!(matches!(
        small.normalise(&tenant(), &signed(&body, now()), now()),
        Err(IntakeError::TooLarge { .. })
    ));
    for not_object in [&b"[1,2]"[..], b"not json", b"\"text\""] {
        assert!(matches!(
            hooks.normalise(&tenant(), &signed(not_object, now()), now()),
            Err(IntakeError::Malformed { .. })
        ));
    }
    // Errors map to the core's kinds (a bad signature is unauthenticated).
    let err: agentkit_core::Error = hooks
        .normalise(&tenant(), &forged, now())
        .unwrap_err()
        .into();
    assert_eq!(err.kind(), agentkit_core::error::ErrorKind::Unauthenticated);
    // Short secrets are a configuration error.
    assert!(matches!(
        WebhookIntake::new(b"short"),
        Err(IntakeError::InvalidConfig(_))
    ));
}

#[test]
fn rotated_secrets_and_several_signatures_verify() {
    let body = booking_body();
    let old = b"whsec_old_secret_rotating_out";
    let rotating = WebhookIntake::new(SECRET)
        .unwrap()
        .also_accept(old)
        .unwrap();
    let by_old = WebhookRequest::new(&body).header(
        "x-signature",
        signature_header(old, now().timestamp(), &body),
    );
    assert!(rotating.normalise(&tenant(), &by_old, now()).is_ok());
    assert!(
        WebhookIntake::new(SECRET)
            .unwrap()
            .normalise(&tenant(), &by_old, now())
            .is_err()
    );
    // A sender signing with both secrets sends two v1 values.
    let t = now().timestamp();
    let both = format!(
        "{},v1={}",
        signature_header(b"whsec_unknown_to_receiver", t, &body),
        signature_header(SECRET, t, &body)
            .split_once("v1=")
            .unwrap()
            .1
    );
    let r = WebhookRequest::new(&body).header("X-Signature", both);
    assert!(
        WebhookIntake::new(SECRET)
            .unwrap()
            .normalise(&tenant(), &r, now())
            .is_ok()
    );
    let custom = WebhookIntake::new(SECRET)
        .unwrap()
        .signature_header("X-Astralis-Signature");
    let r = WebhookRequest::new(&body)
        .header("X-Astralis-Signature", signature_header(SECRET, t, &body));
    assert!(custom.normalise(&tenant(), &r, now()).is_ok());
    assert!(
        !format!("{custom:?}").contains("whsec"),
        "Debug hides secrets"
    );
}

#[test]
fn database_changes_from_a_postgres_trigger_and_prisma_middleware() {
    let db = DbChangeIntake::new();
    let insert = json!({
        "table": "intake_request", "op": "INSERT", "schema": "public", "txid": 90211,
        "new": {"id": "ir_481", "title": "Website redesign quote", "source": "FORM",
                "description": "We need a new website before June", "status": "NEW"}
    });
    let i = db
        .normalise(&tenant(), &serde_json::to_vec(&insert).unwrap(), now())
        .unwrap();
    assert_eq!(i.source, Source::DbTrigger);
    assert_eq!(i.kind, "intake_request_created");
    assert_eq!(i.delivery_id, "intake_request:insert:id=ir_481:tx90211");
    assert_eq!(i.data["key"], json!({"id": "ir_481"}));
    assert_eq!(i.data["after"]["title"], "Website redesign quote");
    assert_eq!(i.metadata["table"], "intake_request");
    assert!(
        i.text
            .starts_with("Database change: intake_request created (id=ir_481)\n")
    );
    assert!(i.text.contains("row.title: Website redesign quote\n"));

    // Prisma middleware: model + action + before/after; the changed column is named.
    let update = json!({
        "model": "PipelineItem", "action": "update", "key": {"id": 77},
        "before": {"id": 77, "stage": "Qualified", "value": 12000},
        "after": {"id": 77, "stage": "Proposal", "value": 12000}
    });
    let bytes = serde_json::to_vec(&update).unwrap();
    let u = db.normalise(&tenant(), &bytes, now()).unwrap();
    assert_eq!(u.kind, "pipeline_item_updated");
    assert_eq!(u.data["changed"], json!(["stage"]));
    assert!(u.text.contains("changed stage: Qualified → Proposal\n"));
    assert!(u.delivery_id.starts_with("pipeline_item:update:id=77:"));
    assert_eq!(
        db.normalise(&tenant(), &bytes, now()).unwrap().key(),
        u.key(),
        "a re-sent change has the same key"
    );
    let mut later = update.clone();
    later["after"]["stage"] = json!("Won");
    let l = db
        .normalise(&tenant(), &serde_json::to_vec(&later).unwrap(), now())
        .unwrap();
    assert_ne!(l.key(), u.key(), "another change to the same row is new");

    // A delete carries the old row; an explicit change id wins.
    let delete = json!({"table": "booking", "op": "DELETE", "change_id": "chg-5",
                        "old": {"id": 9, "guest": "ada@analytical.example"}});
    let d = db
        .normalise(&tenant(), &serde_json::to_vec(&delete).unwrap(), now())
        .unwrap();
    assert_eq!(
        (d.kind.as_str(), d.delivery_id.as_str()),
        ("booking_deleted", "chg-5")
    );

    for (bad, expect) in [
        (json!({"op": "INSERT", "new": {"id": 1}}), "table"),
        (json!({"table": "t", "new": {"id": 1}}), "op"),
        (
            json!({"table": "t", "op": "TRUNCATE", "new": {"id": 1}}),
            "op",
        ),
        (json!({"table": "t", "op": "INSERT"}), "after"),
        (
            json!({"table": "t", "op": "DELETE", "new": {"id": 1}}),
            "before",
        ),
        (
            json!({"table": "t", "op": "INSERT", "new": {"name": "no id"}}),
            "key",
        ),
        (
            json!({"table": "t", "op": "INSERT", "new": [1, 2]}),
            "after",
        ),
        (
            json!({"table": 5, "op": "INSERT", "new": {"id": 1}}),
            "table",
        ),
    ] {
        let r = db.normalise(&tenant(), &serde_json::to_vec(&bad).unwrap(), now());
        match r {
            Err(IntakeError::MissingField { field, .. })
            | Err(IntakeError::InvalidField { field, .. }) => assert_eq!(field, expect, "{bad}"),
            other => panic!("{bad}: {other:?}"),
        }
    }
}

#[test]
fn worker_events_from_a_queue() {
    let w = WorkerIntake::new();
    let completed = json!({"queue": "intake-classify", "jobId": 4411, "name": "classify",
                           "status": "completed", "attemptsMade": 1,
                           "returnvalue": {"category": "SUPPORT", "urgency": 4}});
    let i = w
        .normalise(&tenant(), &serde_json::to_vec(&completed).unwrap(), now())
        .unwrap();
    assert_eq!(i.source, Source::Worker);
    assert_eq!(i.kind, "job_completed");
    assert_eq!(i.delivery_id, "intake-classify:4411:completed:1");
    assert_eq!(i.data["result"]["category"], "SUPPORT");
    assert!(
        i.text
            .starts_with("Worker event: job 4411 on queue intake-classify (classify) completed\n")
    );
    assert!(i.text.contains("result.urgency: 4\n"));

    let failed = json!({"queueName": "calendar-sync", "job_id": "sync-9", "event": "failed",
                        "failedReason": "Google Calendar 503", "attempt": 3,
                        "eventId": "1710408000000-0"});
    let f = w
        .normalise(&tenant(), &serde_json::to_vec(&failed).unwrap(), now())
        .unwrap();
    assert_eq!(
        (f.kind.as_str(), f.delivery_id.as_str()),
        ("job_failed", "1710408000000-0")
    );
    assert_eq!(f.data["error"], "Google Calendar 503");
    assert!(f.text.contains("error: Google Calendar 503\n"));

    for (bad, field) in [
        (json!({"jobId": 1, "status": "completed"}), "queue"),
        (json!({"queue": "q", "status": "completed"}), "jobId"),
        (
            json!({"queue": "q", "jobId": 1, "status": "exploded"}),
            "status",
        ),
        (
            json!({"queue": "q", "jobId": 1, "status": "failed", "attempt": -1}),
            "attempt",
        ),
    ] {
        match w.normalise(&tenant(), &serde_json::to_vec(&bad).unwrap(), now()) {
            Err(IntakeError::MissingField { field: f, .. })
            | Err(IntakeError::InvalidField { field: f, .. }) => assert_eq!(f, field, "{bad}"),
            other => panic!("{bad}: {other:?}"),
        }
    }
}

#[test]
fn api_requests_and_host_made_intakes() {
    let api = ApiIntake::new();
    let body = br#"{"type":"reschedule.requested","content":"Move Ada's call to Friday",
                    "data":{"bookingId":"bk_42"},"metadata":{"user":"maria"}}"#;
    let i = api
        .normalise(&tenant(), body, Some("req-8812"), now())
        .unwrap();
    assert_eq!(i.source, Source::Api);
    assert_eq!(
        (i.kind.as_str(), i.delivery_id.as_str()),
        ("reschedule_requested", "req-8812")
    );
    assert_eq!(i.metadata["user"], "maria");
    assert!(
        i.text
            .contains("Move Ada's call to Friday\ndata.bookingId: bk_42\n")
    );
    let no_key = api.normalise(&tenant(), body, None, now()).unwrap();
    assert!(no_key.delivery_id.starts_with("sha256:"));
    for bad in [
        &br#"{"content":"x"}"#[..],
        br#"{"type":3}"#,
        br#"{"type":"x","data":[1]}"#,
    ] {
        assert!(api.normalise(&tenant(), bad, None, now()).is_err());
    }

    // A schedule's reminder, made by the host.
    let reminder = Intake::new(
        Source::Schedule,
        "reminder:due",
        "reminder-bk_42-24h",
        tenant(),
        "Reminder due: Ada's onboarding call tomorrow 15:00",
        json!({"bookingId": "bk_42"}),
        now(),
    )
    .unwrap();
    assert_eq!(reminder.kind, "reminder_due");
    assert_eq!(reminder.key().as_str(), "schedule:reminder-bk_42-24h");
    assert_eq!(
        reminder.run_id("decide").unwrap().as_str(),
        "schedule:reminder-bk_42-24h:decide"
    );
    assert!(Intake::new(Source::Api, "", "x", tenant(), "", json!({}), now()).is_err());
    assert!(Intake::new(Source::Api, "k", " ", tenant(), "", json!({}), now()).is_err());
}

#[test]
fn keys_hash_delivery_ids_that_ids_cannot_hold() {
    let mk =
        |id: &str| Intake::new(Source::Webhook, "x", id, tenant(), "", json!({}), now()).unwrap();
    let odd = mk("évènement #42 <a@b>");
    assert!(odd.key().as_str().starts_with("webhook:sha256-"));
    assert_eq!(odd.key(), mk("évènement #42 <a@b>").key());
    assert_ne!(odd.key(), mk("évènement #43 <a@b>").key());
    let long = mk(&"a".repeat(900));
    assert!(long.key().as_str().len() < 100);
    assert!(long.run_id("decide").is_ok());
}

#[tokio::test]
async fn an_intake_is_a_workflow_event_delivered_once() {
    let engine = Workflows::builder(Arc::new(InMemoryWorkflowStore::new())).build();
    let body = booking_body();
    let intake = WebhookIntake::new(SECRET)
        .unwrap()
        .normalise(&tenant(), &signed(&body, now()), now())
        .unwrap();
    let event = intake.to_workflow_event("bk_2025_0314_0042");
    assert_eq!(event.id, "webhook:bk_2025_0314_0042");
    assert_eq!(event.name, "booking_created");
    assert_eq!(event.payload["data"]["booking"]["time"], "15:00");
    assert_eq!(
        engine.send_event(&tenant(), &event).await.unwrap(),
        Delivery::Kept
    );
    assert_eq!(
        engine.send_event(&tenant(), &event).await.unwrap(),
        Delivery::Duplicate,
        "the redelivered webhook is the same event"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn no_input_makes_a_normaliser_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048),
                                         header in ".{0,200}") {
        let t = tenant();
        let _ = EmailIntake::new().normalise(&t, &bytes, now());
        let _ = DbChangeIntake::new().normalise(&t, &bytes, now());
        let _ = WorkerIntake::new().normalise(&t, &bytes, now());
        let _ = ApiIntake::new().normalise(&t, &bytes, Some(&header), now());
        let hooks = WebhookIntake::new(SECRET).unwrap();
        let _ = hooks.normalise(&t, &WebhookRequest::new(&bytes).header("X-Signature", header.clone()), now());
        // Correctly signed arbitrary bytes reach the JSON parser.
        let good = WebhookRequest::new(&bytes)
            .header("X-Signature", signature_header(SECRET, now().timestamp(), &bytes))
            .header("X-Delivery-Id", header.clone())
            .header("X-Event-Type", header.clone());
        let _ = hooks.normalise(&t, &good, now());
    }

    #[test]
    fn arbitrary_json_shapes_give_typed_errors_or_intakes(
        table in "[A-Za-z_]{0,12}", op in "[A-Za-z]{0,8}", id in any::<i64>(),
        status in "[a-z]{0,10}", job in "[a-z0-9]{0,6}",
    ) {
        let t = tenant();
        let change = json!({"table": table, "op": op, "new": {"id": id}, "old": {"id": id}});
        if let Ok(i) = DbChangeIntake::new().normalise(&t, &serde_json::to_vec(&change).unwrap(), now()) {
            prop_assert!(i.kind.ends_with("_created") || i.kind.ends_with("_updated") || i.kind.ends_with("_deleted"));
            prop_assert!(i.run_id("decide").is_ok());
        }
        let event = json!({"queue": "q", "jobId": job, "status": status});
        if let Ok(i) = WorkerIntake::new().normalise(&t, &serde_json::to_vec(&event).unwrap(), now()) {
            prop_assert!(i.kind.starts_with("job_"));
            prop_assert!(i.run_id("decide").is_ok());
        }
    }
}
