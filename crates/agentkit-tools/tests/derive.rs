//! `#[derive(Tool)]` and `#[tool]`: generated schemas, metadata and calls.
#![allow(missing_docs, clippy::unwrap_used)]

use std::time::Duration;

use agentkit_core::id::IdempotencyKey;
use agentkit_tools::{RateLimit, SideEffect, Tool, ToolContext, tool};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;

fn ctx() -> ToolContext {
    ToolContext::new(
        agentkit_core::testkit::scope("acme", "sales", "s1", "r1"),
        "call_1",
        IdempotencyKey::from_static("r1:1:0"),
    )
}

/// Creates a lead in the CRM.
///
/// Use it once per new contact.
#[derive(Debug, Deserialize, JsonSchema, Tool)]
#[serde(deny_unknown_fields)]
#[tool(
    name = "crm.create_lead",
    handler = create_lead,
    side_effect = "write",
    idempotent,
    retries = 2,
    timeout_ms = 5000,
    rate_limit = "60/min",
    redact = ["email"],
    output_schema
)]
pub struct CreateLead {
    /// The lead's full name.
    pub name: String,
    /// Their email address.
    pub email: String,
    /// Expected deal size in dollars.
    #[serde(default)]
    #[schemars(range(min = 0, max = 1000000))]
    pub budget: Option<u32>,
    /// Where the lead came from.
    pub source: Source,
}

/// A lead source.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// The website form.
    Website,
    /// A referral.
    Referral,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct Lead {
    /// The new lead's id.
    pub id: u64,
    pub name: String,
}

async fn create_lead(_ctx: ToolContext, args: CreateLead) -> agentkit_core::Result<Lead> {
    Ok(Lead {
        id: 42,
        name: args.name,
    })
}

#[test]
fn the_schema_of_a_derived_struct_is_what_the_model_sees() {
    let tool = CreateLeadTool::new();
    let spec = tool.spec();
    assert_eq!(spec.name, "crm.create_lead");
    assert_eq!(
        spec.description,
        "Creates a lead in the CRM.\n\nUse it once per new contact."
    );
    assert_eq!(spec.side_effect, SideEffect::Write);
    assert_eq!(spec.redact, ["email"]);
    assert_eq!(
        spec.parameters,
        json!({
            "type": "object",
            "properties": {
                "name": {"type": "string", "description": "The lead's full name."},
                "email": {"type": "string", "description": "Their email address."},
                "budget": {
                    "type": ["integer", "null"],
                    "format": "uint32",
                    "minimum": 0,
                    "maximum": 1000000,
                    "default": null,
                    "description": "Expected deal size in dollars."
                },
                "source": {"$ref": "#/$defs/Source", "description": "Where the lead came from."}
            },
            "required": ["name", "email", "source"],
            "additionalProperties": false,
            "$defs": {
                "Source": {
                    "description": "A lead source.",
                    "oneOf": [
                        {"type": "string", "const": "website", "description": "The website form."},
                        {"type": "string", "const": "referral", "description": "A referral."}
                    ]
                }
            }
        })
    );
    assert_eq!(
        spec.output_schema,
        Some(json!({
            "type": "object",
            "properties": {
                "id": {"type": "integer", "format": "uint64", "minimum": 0, "description": "The new lead's id."},
                "name": {"type": "string"}
            },
            "required": ["id", "name"]
        }))
    );
}

#[test]
fn the_attribute_becomes_metadata() {
    let meta = CreateLeadTool::metadata();
    assert!(meta.idempotent);
    assert_eq!(meta.timeout, Some(Duration::from_secs(5)));
    assert_eq!(meta.retry.unwrap().max_retries, 2);
    assert_eq!(meta.rate_limit, Some(RateLimit::per_minute(60)));
    meta.validate().unwrap();
}

#[tokio::test]
async fn a_derived_tool_calls_its_handler() {
    let tool = CreateLeadTool::new();
    let out = tool
        .call(
            ctx(),
            json!({"name": "Ada", "email": "ada@example.com", "source": "website"}),
        )
        .await
        .unwrap();
    assert_eq!(out, json!({"id": 42, "name": "Ada"}));
    // Called directly (without the agent's schema check), bad arguments still fail cleanly,
    // naming the field.
    let err = tool
        .call(
            ctx(),
            json!({"name": "Ada", "email": 7, "source": "website"}),
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("email"), "{err}");
}

/// Looks up a lead by id.
#[tool(name = "crm.lookup_lead", rate_limit = "10/s")]
pub async fn lookup_lead(
    ctx: ToolContext,
    /// The lead's id.
    lead_id: u64,
    /// Include the activity history.
    #[serde(default)]
    history: bool,
) -> agentkit_core::Result<serde_json::Value> {
    Ok(json!({"lead_id": lead_id, "history": history, "tenant": ctx.scope.tenant}))
}

#[tokio::test]
async fn a_tool_function_gets_a_schema_from_its_parameters() {
    let tool = LookupLeadTool::new();
    let spec = tool.spec();
    assert_eq!(spec.description, "Looks up a lead by id.");
    assert_eq!(spec.side_effect, SideEffect::Read);
    assert_eq!(
        spec.parameters,
        json!({
            "type": "object",
            "properties": {
                "lead_id": {"type": "integer", "format": "uint64", "minimum": 0, "description": "The lead's id."},
                "history": {"type": "boolean", "default": false, "description": "Include the activity history."}
            },
            "required": ["lead_id"],
            "additionalProperties": false
        })
    );
    let out = tool.call(ctx(), json!({"lead_id": 7})).await.unwrap();
    assert_eq!(
        out,
        json!({"lead_id": 7, "history": false, "tenant": "acme"})
    );
    // The function itself is still there to call and test.
    let direct = lookup_lead(ctx(), 8, true).await.unwrap();
    assert_eq!(direct["lead_id"], 8);
    // So are the generated arguments.
    let _ = LookupLeadArgs {
        lead_id: 1,
        history: false,
    };
}

/// Arguments of a campaign.
#[derive(Deserialize, JsonSchema)]
pub struct CampaignArgs {
    /// Campaign name.
    pub name: String,
}

#[derive(Serialize, JsonSchema)]
pub struct Campaign {
    pub id: String,
}

/// Creates a campaign draft.
#[tool(
    name = "marketing.create_campaign",
    side_effect = "external",
    output_schema
)]
async fn create_campaign(args: CampaignArgs) -> agentkit_core::Result<Campaign> {
    Ok(Campaign {
        id: format!("c-{}", args.name.len()),
    })
}

#[tokio::test]
async fn a_tool_function_can_take_one_arguments_struct_and_no_context() {
    let tool = CreateCampaignTool::new();
    assert_eq!(tool.spec().parameters["required"], json!(["name"]));
    assert_eq!(
        tool.spec().output_schema.as_ref().unwrap()["required"],
        json!(["id"])
    );
    let out = tool.call(ctx(), json!({"name": "spring"})).await.unwrap();
    assert_eq!(out, json!({"id": "c-6"}));
}

mod through_a_facade {
    // What a crate using the `agentkit` facade writes: the path to agentkit-tools is given.
    pub use agentkit_tools as tools;

    /// Echoes.
    #[derive(serde::Deserialize, schemars::JsonSchema, agentkit_tools::Tool)]
    #[tool(name = "util.echo", handler = echo, crate = "self::tools")]
    pub struct Echo {
        /// Text.
        pub text: String,
    }

    async fn echo(_ctx: super::ToolContext, e: Echo) -> agentkit_core::Result<String> {
        Ok(e.text)
    }

    /// Shouts.
    #[agentkit_tools::tool(name = "util.shout", crate = "crate::through_a_facade::tools")]
    pub async fn shout(text: String) -> agentkit_core::Result<String> {
        Ok(text.to_uppercase())
    }
}

#[tokio::test]
async fn the_crate_path_can_be_given() {
    use through_a_facade::{EchoTool, ShoutTool};
    let out = EchoTool::new()
        .call(ctx(), json!({"text": "hi"}))
        .await
        .unwrap();
    assert_eq!(out, json!("hi"));
    let out = ShoutTool::new()
        .call(ctx(), json!({"text": "hi"}))
        .await
        .unwrap();
    assert_eq!(out, json!("HI"));
}
