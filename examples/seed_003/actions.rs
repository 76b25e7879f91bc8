//! The action executors (the seed's PipelineAssigner, CalendarManager, NotificationDispatcher
//! and AutomationTrigger) as governed tools over an in-process stand-in for AstralisOps'
//! services: what each did is kept with the idempotency key it ran under, so a test can prove
//! every effect happened once.

use std::sync::{Arc, Mutex};

use agentkit::error::{Error, Result};
use agentkit::tool::{FnTool, SideEffect, Tool, ToolContext, ToolSpec};
use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};

use super::decision::{PIPELINES, TEAM};

/// One effect on AstralisOps' services.
#[derive(Debug, Clone, PartialEq)]
pub struct Effect {
    /// The tool.
    pub tool: String,
    /// The idempotency key it ran under.
    pub key: String,
    /// Its arguments.
    pub params: Value,
    /// What it returned.
    pub output: Value,
}

#[derive(Debug, Default)]
struct State {
    effects: Vec<Effect>,
    /// Calendar: (start, end, title).
    calendar: Vec<(DateTime<Utc>, DateTime<Utc>, String)>,
}

/// The services' state, shared by the tools (cheap to clone).
#[derive(Debug, Clone, Default)]
pub struct Ops(Arc<Mutex<State>>);

impl Ops {
    fn lock(&self) -> Result<std::sync::MutexGuard<'_, State>> {
        self.0
            .lock()
            .map_err(|_| Error::Internal("ops state lock poisoned".into()))
    }

    /// Every effect, in the order they happened.
    pub fn effects(&self) -> Vec<Effect> {
        self.lock().map(|s| s.effects.clone()).unwrap_or_default()
    }

    /// How many effects happened.
    pub fn count(&self) -> usize {
        self.lock().map(|s| s.effects.len()).unwrap_or_default()
    }

    /// The effects of one tool.
    pub fn of(&self, tool: &str) -> Vec<Effect> {
        self.effects()
            .into_iter()
            .filter(|e| e.tool == tool)
            .collect()
    }

    /// The effects whose arguments name `reference`.
    pub fn for_reference(&self, reference: &str) -> Vec<Effect> {
        self.effects()
            .into_iter()
            .filter(|e| e.params["reference"] == reference)
            .collect()
    }

    /// Puts an event in the calendar (something booked elsewhere).
    pub fn book(&self, start: DateTime<Utc>, minutes: i64, title: &str) -> Result<()> {
        self.lock()?
            .calendar
            .push((start, start + Duration::minutes(minutes), title.to_owned()));
        Ok(())
    }

    fn record(
        &self,
        ctx: &ToolContext,
        tool: &str,
        params: &Value,
        output: Value,
    ) -> Result<Value> {
        self.lock()?.effects.push(Effect {
            tool: tool.to_owned(),
            key: ctx.idempotency_key.to_string(),
            params: params.clone(),
            output: output.clone(),
        });
        Ok(output)
    }

    /// The team member of `role` with the fewest assignments so far (load balancing).
    fn least_loaded(&self, role: &str) -> Result<&'static str> {
        let s = self.lock()?;
        TEAM.iter()
            .filter(|m| m.role == role)
            .min_by_key(|m| {
                s.effects
                    .iter()
                    .filter(|e| e.tool == "pipeline.assign" && e.output["assignee"] == m.email)
                    .count()
            })
            .map(|m| m.email)
            .ok_or_else(|| Error::NotExecuted(format!("nobody holds the role {role}")))
    }
}

fn tool(ops: &Ops, spec: ToolSpec, run: fn(&Ops, &Value) -> Result<Value>) -> Arc<dyn Tool> {
    let ops = ops.clone();
    let name = spec.name.clone();
    Arc::new(FnTool::new(
        spec.with_side_effect(SideEffect::External),
        move |ctx, params| {
            let ops = ops.clone();
            let name = name.clone();
            async move {
                let output = run(&ops, &params)?;
                ops.record(&ctx, &name, &params, output)
            }
        },
    ))
}

/// The four action tools over `ops`.
pub fn tools(ops: &Ops) -> Vec<Arc<dyn Tool>> {
    vec![
        tool(
            ops,
            ToolSpec::new(
                "pipeline.assign",
                "Assign an intake to a pipeline (and a team member of the pipeline's role).",
                json!({
                    "type": "object", "additionalProperties": false,
                    "required": ["reference", "pipeline", "priority"],
                    "properties": {
                        "reference": {"type": "string", "minLength": 1},
                        "pipeline": {"enum": PIPELINES},
                        "priority": {"type": "integer", "minimum": 1, "maximum": 5},
                        "assignee": {"type": "string"}
                    }
                }),
            ),
            assign,
        ),
        tool(
            ops,
            ToolSpec::new(
                "calendar.create_event",
                "Create a calendar event (refused when it overlaps another) with reminders.",
                json!({
                    "type": "object", "additionalProperties": false,
                    "required": ["reference", "title", "start", "attendees"],
                    "properties": {
                        "reference": {"type": "string", "minLength": 1},
                        "title": {"type": "string", "minLength": 1},
                        "start": {"type": "string", "format": "date-time"},
                        "durationMinutes": {"type": "integer", "minimum": 5, "maximum": 480},
                        "attendees": {"type": "array", "minItems": 1,
                                      "items": {"type": "string", "format": "email"}},
                        "reminders": {"type": "array", "items": {"type": "integer", "minimum": 1}}
                    }
                }),
            ),
            create_event,
        ),
        tool(
            ops,
            ToolSpec::new(
                "notify.send",
                "Send a notification to a role (every member) or an email address.",
                json!({
                    "type": "object", "additionalProperties": false,
                    "required": ["to", "template", "reference"],
                    "properties": {
                        "to": {"type": "string", "minLength": 1},
                        "template": {"type": "string", "minLength": 1},
                        "reference": {"type": "string", "minLength": 1},
                        "message": {"type": "string"}
                    }
                }),
            ),
            notify,
        ),
        tool(
            ops,
            ToolSpec::new(
                "automation.trigger",
                "Trigger an n8n workflow with a payload.",
                json!({
                    "type": "object", "additionalProperties": false,
                    "required": ["workflow", "reference"],
                    "properties": {
                        "workflow": {"type": "string", "minLength": 1},
                        "reference": {"type": "string", "minLength": 1},
                        "payload": {"type": "object"}
                    }
                }),
            ),
            trigger,
        ),
    ]
}

fn assign(ops: &Ops, p: &Value) -> Result<Value> {
    let pipeline = p["pipeline"].as_str().unwrap_or_default();
    let assignee = match p["assignee"].as_str() {
        Some(a) => a.to_owned(),
        None => {
            let role = match pipeline {
                "Sales Inquiries" => "SALES",
                "Support Requests" => "OPERATOR",
                _ => "ADMIN",
            };
            ops.least_loaded(role)?.to_owned()
        }
    };
    Ok(
        json!({"reference": p["reference"], "pipeline": pipeline, "stage": "New",
              "priority": p["priority"], "assignee": assignee}),
    )
}

fn create_event(ops: &Ops, p: &Value) -> Result<Value> {
    let start = p["start"]
        .as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|d| d.with_timezone(&Utc))
        .ok_or_else(|| Error::NotExecuted("`start` is not an RFC 3339 time".into()))?;
    let minutes = p["durationMinutes"].as_i64().unwrap_or(30);
    let end = start + Duration::minutes(minutes);
    let title = p["title"].as_str().unwrap_or_default();
    let mut s = ops.lock()?;
    if let Some((_, _, other)) = s.calendar.iter().find(|(a, b, _)| *a < end && start < *b) {
        // Nothing was booked: the reservation of this action is released.
        return Err(Error::NotExecuted(format!(
            "the slot {} conflicts with \"{other}\"",
            start.format("%a %d %b %H:%M")
        )));
    }
    s.calendar.push((start, end, title.to_owned()));
    let reminders = p
        .get("reminders")
        .cloned()
        .unwrap_or_else(|| json!([1440, 60]));
    Ok(
        json!({"eventId": format!("evt-{}", s.calendar.len()), "title": title,
              "start": start.to_rfc3339(), "end": end.to_rfc3339(),
              "attendees": p["attendees"], "remindersMinutesBefore": reminders}),
    )
}

fn notify(_ops: &Ops, p: &Value) -> Result<Value> {
    let to = p["to"].as_str().unwrap_or_default();
    let recipients: Vec<&str> = if to.contains('@') {
        vec![to]
    } else {
        TEAM.iter()
            .filter(|m| m.role == to)
            .map(|m| m.email)
            .collect()
    };
    if recipients.is_empty() {
        return Err(Error::NotExecuted(format!("no recipient for `{to}`")));
    }
    Ok(json!({"template": p["template"], "deliveredTo": recipients}))
}

fn trigger(_ops: &Ops, p: &Value) -> Result<Value> {
    Ok(json!({"workflow": p["workflow"], "execution": "started"}))
}
