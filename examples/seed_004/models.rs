//! The agents' models: the hosted LLM (offline here, a scripted stand-in that is having an
//! outage) behind agentkit's resilience layers — retries with backoff, a circuit breaker shared
//! by every agent drawing on the same account — falling back to a deterministic rule-based
//! model per agent, so the support organisation keeps answering while the LLM is down.

use std::sync::Arc;
use std::time::Duration;

use agentkit::Error;
use agentkit::model::LlmProvider;
use agentkit::resilience::{CircuitBreaker, ProviderExt, RetryPolicy};
use agentkit::rules::{Rule, RuleBasedModel};
use agentkit::testkit::{ScriptedModel, ScriptedResponse};
use serde_json::json;

/// The hosted model's provider name (what `answered_by` shows when it answers).
pub const HOSTED: &str = "hosted-llm";

/// Consecutive failures that open the circuit.
pub const TRIP_AFTER: u32 = 3;

/// Attempts per model call (the first and two retries).
pub const ATTEMPTS: usize = 3;

fn overloaded() -> ScriptedResponse {
    ScriptedResponse::error(|| Error::Server {
        status: Some(503),
        message: "the hosted model is overloaded".into(),
    })
}

/// The hosted LLM in a lasting outage: every call fails with a retryable 503.
pub fn hosted_down() -> Arc<ScriptedModel> {
    Arc::new(ScriptedModel::repeating([overloaded()]).with_name(HOSTED))
}

/// The hosted LLM failing its next `failures` calls, then answering what is pushed onto it
/// ([`ScriptedModel::push`]).
#[allow(dead_code)] // the acceptance test's outage that ends
pub fn hosted_flaky(failures: usize) -> Arc<ScriptedModel> {
    Arc::new(ScriptedModel::new((0..failures).map(|_| overloaded())).with_name(HOSTED))
}

/// The breaker guarding the hosted LLM: open after [`TRIP_AFTER`] consecutive failures, for
/// `cool_down`; then one trial call decides whether it closes again.
pub fn breaker(cool_down: Duration) -> CircuitBreaker {
    CircuitBreaker::consecutive_failures(TRIP_AFTER, cool_down)
}

/// `hosted` behind the breaker and [`ATTEMPTS`] attempts with exponential backoff, falling
/// back to `fallback` when it still fails (or the breaker is open).
pub fn resilient(
    hosted: Arc<dyn LlmProvider>,
    breaker: &CircuitBreaker,
    fallback: RuleBasedModel,
) -> Arc<dyn LlmProvider> {
    let retry = RetryPolicy::attempts(ATTEMPTS)
        .with_delays(Duration::from_millis(5), Duration::from_millis(20))
        .without_jitter();
    hosted
        .with_circuit_breaker(breaker.clone())
        .with_retry(retry)
        .with_fallback([Arc::new(fallback) as Arc<dyn LlmProvider>])
}

/// The support agent's offline rules: refunds, goodwill credits and account closures become
/// tool calls (which the policy sends to a person); damaged parcels and passwords get answers.
pub fn support_rules() -> agentkit::Result<RuleBasedModel> {
    Ok(RuleBasedModel::new(
        "Thanks for reaching out. A member of our team will get back to you shortly.",
    )
    .rule(
        Rule::regex(r"refund \$(\d+(?:\.\d{2})?) for order #?(\d+)")?
            .tool_call("billing.refund", json!({"order": "$2", "amount_usd": "$1"})),
    )
    .rule(
        Rule::regex(r"goodwill credit of \$(\d+(?:\.\d{2})?) for customer ([a-z0-9-]+)")?
            .tool_call(
                "billing.goodwill_credit",
                json!({"customer": "$2", "amount_usd": "$1"}),
            ),
    )
    .rule(
        Rule::regex(r"close (?:the |my )?account ([a-z0-9-]+)")?
            .tool_call("account.close", json!({"customer": "$1"})),
    )
    .rule(Rule::keywords(["damaged", "broken"]).reply(
        "I'm sorry your order arrived damaged. I've passed your case to our billing team; \
         you'll hear from us within one business day.",
    ))
    .rule(Rule::keywords(["password", "log in"]).reply(
        "You can reset your password from the sign-in page: choose 'Forgot password' and follow \
         the link we email you.",
    ))
    .rule(Rule::after_tool("billing.refund").reply("Your refund has been issued."))
    .rule(Rule::after_tool("billing.goodwill_credit").reply("A goodwill credit was added."))
    .rule(Rule::after_tool("account.close").reply("Your account has been closed."))
    .after_tools("We could not do that for you: {results}"))
}

/// The triage agent's offline rules: each ticket is routed to billing, accounts or general.
pub fn triage_rules() -> agentkit::Result<RuleBasedModel> {
    let route = |queue: &str| json!({"ticket": "$1", "queue": queue});
    Ok(
        RuleBasedModel::new("Please start the message with the ticket number (T-123).")
            .rule(
                Rule::regex(r"ticket (T-\d+):.*\b(charged|refund|invoice|payment)")?
                    .tool_call("tickets.route", route("billing")),
            )
            .rule(
                Rule::regex(r"ticket (T-\d+):.*\b(password|log ?in|locked)")?
                    .tool_call("tickets.route", route("accounts")),
            )
            .rule(Rule::regex(r"ticket (T-\d+):")?.tool_call("tickets.route", route("general")))
            .after_tools("Triage: {results}"),
    )
}
