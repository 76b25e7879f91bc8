//! Run with: `cargo run --example quickstart`
//!
//! Scenario A of the CRM seed, offline: a marketing agent checks the ad account balance, drafts
//! a campaign, and the campaign creation waits for a human's approval. After the approval a
//! *new* agent over the same store resumes the run.
//!
//! The model is a real provider when one is configured — `OPENAI_API_KEY` (model from
//! `OPENAI_MODEL`, default `gpt-4o-mini`), `ANTHROPIC_API_KEY` (`ANTHROPIC_MODEL`, default
//! `claude-3-5-haiku-latest`) or `OLLAMA_URL` (`OLLAMA_MODEL`, default `llama3.1`) — and the
//! deterministic rule-based model otherwise, so by default this needs no network and no key.
//!
//! State is kept in SQLite, the embedded default: the file named by `AGENTKIT_DB`, or
//! `examples/quickstart.db` next to this example. Every run starts a new session in it.

use std::sync::Arc;

use agentkit::agent::decide_approval;
use agentkit::prelude::*;
use agentkit::providers::{KeyRef, ProviderConfig, ProviderKind, build_provider};
use agentkit::rules::{Rule, RuleBasedModel};
use agentkit::store::{AuditQuery, MessageWindow, UsageQuery, verify_audit_chain};
use agentkit_store_sqlite::SqliteStore;
use serde_json::json;

fn tools() -> Vec<Arc<dyn Tool>> {
    let balance = FnTool::new(
        ToolSpec::new(
            "budget.get_balance",
            "Returns the ad account balance in USD",
            json!({"type": "object", "properties": {}}),
        ),
        |_ctx, _args| async { Ok(json!({"balance_usd": 320.0})) },
    );
    let campaign = FnTool::new(
        ToolSpec::new(
            "marketing.create_campaign_draft",
            "Creates an ad campaign draft",
            json!({
                "type": "object",
                "properties": {
                    "name": {"type": "string", "minLength": 1},
                    "budget": {"type": "number", "minimum": 1, "maximum": 50}
                },
                "required": ["name", "budget"],
                "additionalProperties": false
            }),
        )
        .with_side_effect(SideEffect::External),
        |ctx, args| async move {
            Ok(json!({
                "campaign_id": "cmp_001",
                "status": "draft",
                "name": args["name"],
                "daily_budget_usd": args["budget"],
                "idempotency_key": ctx.idempotency_key.as_str(),
            }))
        },
    );
    vec![Arc::new(balance), Arc::new(campaign)]
}

/// The configured provider, or the rule-based model; and a line saying which.
fn choose_model() -> Result<(Arc<dyn LlmProvider>, String, String)> {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
    let real = |kind, model: String, key: Option<&str>, url: Option<String>| -> Result<_> {
        let mut config = ProviderConfig::new(kind, model.clone());
        if let Some(k) = key {
            config = config.with_api_key(KeyRef::Env(k.into()));
        }
        if let Some(u) = url {
            config = config.with_base_url(u);
        }
        Ok((build_provider(&config)?, model))
    };
    let (provider, model, label) = if env("OPENAI_API_KEY").is_some() {
        let (p, m) = real(
            ProviderKind::OpenAi,
            env("OPENAI_MODEL").unwrap_or("gpt-4o-mini".into()),
            Some("OPENAI_API_KEY"),
            None,
        )?;
        (p, m.clone(), format!("OpenAI {m} (OPENAI_API_KEY is set)"))
    } else if env("ANTHROPIC_API_KEY").is_some() {
        let (p, m) = real(
            ProviderKind::Anthropic,
            env("ANTHROPIC_MODEL").unwrap_or("claude-3-5-haiku-latest".into()),
            Some("ANTHROPIC_API_KEY"),
            None,
        )?;
        (
            p,
            m.clone(),
            format!("Anthropic {m} (ANTHROPIC_API_KEY is set)"),
        )
    } else if let Some(url) = env("OLLAMA_URL") {
        let (p, m) = real(
            ProviderKind::Ollama,
            env("OLLAMA_MODEL").unwrap_or("llama3.1".into()),
            None,
            Some(url.clone()),
        )?;
        (
            p,
            m.clone(),
            format!("Ollama {m} at {url} (OLLAMA_URL is set)"),
        )
    } else {
        let rules = RuleBasedModel::new("I can run ad campaigns for you: tell me what to sell.")
            .rule(Rule::keywords(["sell", "campaign", "ads"]).tool_call("budget.get_balance", json!({})))
            .rule(Rule::after_tool("budget.get_balance").tool_call(
                "marketing.create_campaign_draft",
                json!({"name": "Spicy Chips", "budget": 50}),
            ))
            .rule(Rule::after_tool("marketing.create_campaign_draft").reply(
                "Draft \"Spicy Chips\" created with a $50/day budget (campaign cmp_001). Please review it before launch.",
            ));
        let p: Arc<dyn LlmProvider> = Arc::new(rules);
        (p, "rules-v1".to_string(), "the rule-based model (offline; set OPENAI_API_KEY, ANTHROPIC_API_KEY or OLLAMA_URL for a real one)".to_string())
    };
    Ok((provider, model, label))
}

fn agent(store: Arc<dyn StateStore>, provider: Arc<dyn LlmProvider>, model: &str) -> Result<Agent> {
    Agent::builder()
        .id("marketing")
        .system_prompt(
            "You are a marketing agent. Check the ad account balance before creating a campaign \
             draft, and stay within a $50/day budget. Call the tools; do not ask questions.",
        )
        .model(provider, model)
        .tools(tools())
        .store(store)
        .policy(
            AllowListPolicy::new(["budget.*", "marketing.*"])
                .require_approval_for(["marketing.create_campaign_draft"])
                .into_arc(),
        )
        .build()
}

#[tokio::main]
async fn main() -> Result<()> {
    let path = std::env::var("AGENTKIT_DB")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/examples/quickstart.db").into());
    let sqlite = SqliteStore::open(&path).await.map_err(Error::from)?;
    let store: Arc<dyn StateStore> = Arc::new(sqlite);
    let tenant = TenantId::from_static("acme");
    let session = SessionId::generate();
    let (provider, model, label) = choose_model()?;
    println!("agentkit quickstart — model: {label}; store: SQLite at {path}\n");

    // 1. The user asks; the agent checks the balance and proposes a campaign.
    let outcome = agent(store.clone(), provider.clone(), &model)?
        .run(RunRequest::new(
            tenant.clone(),
            session.clone(),
            "Sell Spicy Chips",
        ))
        .await?;
    let finished = match &outcome {
        RunOutcome::Suspended(suspension) => {
            let approval = &suspension.approvals[0];
            println!("== approval required ==");
            println!(
                "  {} wants {} with {}\n  reason: {}\n  run {} is suspended; nothing has been created yet\n",
                approval.agent,
                approval.call.name,
                approval.call.arguments,
                approval.reason,
                approval.run
            );

            // 2. A human approves (from the host's approval endpoint, maybe days later).
            decide_approval(
                &*store,
                &tenant,
                &approval.id,
                &ApprovalDecision::approve("alice@acme"),
            )
            .await?;
            println!("== alice@acme approved ==\n");

            // 3. A new agent over the same store resumes exactly where the run stopped.
            let resumed = agent(store.clone(), provider.clone(), &model)?
                .resume(tenant.clone(), &approval.run)
                .await?;
            let again = agent(store.clone(), provider.clone(), &model)?
                .resume(tenant.clone(), &approval.run)
                .await?;
            println!(
                "a second resume does nothing: {}\n",
                matches!(again, RunOutcome::AlreadyResumed { .. })
            );
            resumed
        }
        _ => {
            println!(
                "(the model answered without proposing a campaign, so nothing needed approval)\n"
            );
            outcome.clone()
        }
    };

    println!("== conversation ==");
    for m in store
        .load_messages(&tenant, &session, MessageWindow::All)
        .await?
    {
        match &m.message {
            Message::Assistant {
                content,
                tool_calls,
            } if !tool_calls.is_empty() => {
                for c in tool_calls {
                    println!("  assistant → {}({})", c.name, c.arguments);
                }
                if !content.is_empty() {
                    println!("  assistant: {content}");
                }
            }
            Message::Tool {
                name,
                content,
                is_error,
                ..
            } => {
                println!(
                    "  tool {name}{}: {content}",
                    if *is_error { " (error)" } else { "" }
                )
            }
            other => println!("  {}: {}", role(other), other.text()),
        }
    }

    let report = finished
        .report()
        .ok_or_else(|| Error::Internal("the resumed run did not complete".into()))?;
    println!("\n== usage (run {}) ==", report.run);
    println!(
        "  {} model calls, {} input tokens, {} output tokens",
        report.turns, report.usage.input_tokens, report.usage.output_tokens
    );
    for e in store
        .list_usage(&tenant, &UsageQuery::all().run(report.run.clone()))
        .await?
    {
        println!(
            "  {:<14} {:>5}  {}",
            e.kind.as_str(),
            e.quantity,
            e.resource.as_deref().unwrap_or("")
        );
    }

    println!("\n== audit trail (this run) ==");
    let audit = store.list_audit(&tenant, &AuditQuery::all()).await?;
    for e in audit
        .iter()
        .filter(|e| e.entry.run.as_ref() == Some(&report.run))
    {
        println!(
            "  #{} {:<16} {:<22} {:<32} {} {}",
            e.seq,
            e.entry.kind,
            e.entry.actor,
            e.entry.action,
            e.entry.decision.as_deref().unwrap_or("-"),
            e.entry.reason.as_deref().unwrap_or("")
        );
    }
    match verify_audit_chain(&audit) {
        Ok(()) => println!(
            "  hash chain verified ({} entries in the tenant's chain)",
            audit.len()
        ),
        Err(seq) => println!("  hash chain BROKEN at entry {seq}"),
    }
    Ok(())
}

fn role(m: &Message) -> &'static str {
    match m {
        Message::System { .. } => "system",
        Message::User { .. } => "user",
        Message::Assistant { .. } => "assistant",
        Message::Tool { .. } => "tool",
    }
}
