//! The support organisation's integrations as agent tools: ticket routing, refunds, goodwill
//! credits and account closure. Each one records what it did, per tenant, in an [`Effects`]
//! log (what the helpdesk and the payment system would show), so a demo or a test can check
//! that an action happened — exactly once — or never.

use std::sync::{Arc, Mutex};

use agentkit::tool::{FnTool, SideEffect, Tool, ToolSpec};
use serde_json::{Value, json};

/// What the integrations did, in order: `(tenant, tool, arguments)`.
#[derive(Debug, Clone, Default)]
pub struct Effects(Arc<Mutex<Vec<(String, String, Value)>>>);

impl Effects {
    /// An empty log.
    pub fn new() -> Self {
        Self::default()
    }

    fn push(&self, tenant: &str, tool: &str, arguments: Value) {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push((tenant.to_string(), tool.to_string(), arguments));
    }

    /// The arguments of every call of `tool` that ran for `tenant`, in order.
    pub fn of(&self, tenant: &str, tool: &str) -> Vec<Value> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .filter(|(t, name, _)| t == tenant && name == tool)
            .map(|(_, _, args)| args.clone())
            .collect()
    }
}

fn strings(required: &[&str]) -> Value {
    let properties: serde_json::Map<String, Value> = required
        .iter()
        .map(|name| {
            (
                (*name).to_string(),
                json!({"type": "string", "minLength": 1}),
            )
        })
        .collect();
    json!({
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": false,
    })
}

fn integration(spec: ToolSpec, effects: &Effects, answer: fn(&Value) -> Value) -> Arc<dyn Tool> {
    let effects = effects.clone();
    let name = spec.name.clone();
    Arc::new(FnTool::new(spec, move |ctx, args| {
        let (effects, name) = (effects.clone(), name.clone());
        async move {
            let out = answer(&args);
            effects.push(ctx.scope.tenant.as_str(), &name, args);
            Ok(out)
        }
    }))
}

/// The four tools: `tickets.route`, `billing.refund`, `billing.goodwill_credit`,
/// `account.close`.
pub fn all(effects: &Effects) -> Vec<Arc<dyn Tool>> {
    let amount = json!({"type": "string", "pattern": "^[0-9]+(\\.[0-9]{2})?$"});
    let mut refund = strings(&["order", "amount_usd"]);
    refund["properties"]["amount_usd"] = amount.clone();
    let mut credit = strings(&["customer", "amount_usd"]);
    credit["properties"]["amount_usd"] = amount;
    vec![
        integration(
            ToolSpec::new(
                "tickets.route",
                "Routes a ticket to a queue (billing, accounts or general).",
                strings(&["ticket", "queue"]),
            )
            .with_side_effect(SideEffect::Write),
            effects,
            |a| json!({"ticket": a["ticket"], "queue": a["queue"], "status": "routed"}),
        ),
        integration(
            ToolSpec::new(
                "billing.refund",
                "Refunds an order (amount in USD).",
                refund,
            )
            .with_side_effect(SideEffect::External),
            effects,
            |a| {
                json!({
                    "refund_id": format!("rf-{}", a["order"].as_str().unwrap_or("?")),
                    "amount_usd": a["amount_usd"],
                })
            },
        ),
        integration(
            ToolSpec::new(
                "billing.goodwill_credit",
                "Adds a goodwill credit to a customer's account (amount in USD).",
                credit,
            )
            .with_side_effect(SideEffect::External),
            effects,
            |a| json!({"customer": a["customer"], "credited_usd": a["amount_usd"]}),
        ),
        integration(
            ToolSpec::new(
                "account.close",
                "Closes a customer's account and deletes their data.",
                strings(&["customer"]),
            )
            .with_side_effect(SideEffect::External),
            effects,
            |a| json!({"customer": a["customer"], "closed": true}),
        ),
    ]
}
