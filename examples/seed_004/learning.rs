//! The reviewers' desk and the feedback loop: a decision goes through the approval queue
//! (exactly once, checked against the reviewer pool and any escalation role), and a person's
//! approval — as proposed or edited — becomes a golden path: the customer's request with the
//! action a person approved, stored beside the tenant's knowledge so that later similar
//! requests retrieve it.

use agentkit::id::{ApprovalId, TenantId};
use agentkit::message::Message;
use agentkit::policy_engine::approvals::ApprovalQueue;
use agentkit::rag::{GoldenPath, GoldenPaths};
use agentkit::store::{ApprovalDecision, ApprovalRequest, MessageWindow, StateStore};
use agentkit::{Error, Result};
use std::sync::Arc;

/// What a decision produced.
#[derive(Debug, Clone)]
pub struct Decided {
    /// The decided request.
    pub request: ApprovalRequest,
    /// The golden path learned from it (a person's approval only).
    pub learned: Option<GoldenPath>,
}

/// Reviewers decide here; approvals are learned as golden paths.
#[derive(Clone)]
pub struct Desk {
    state: Arc<dyn StateStore>,
    queue: ApprovalQueue,
    golden: GoldenPaths,
}

impl std::fmt::Debug for Desk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Desk")
            .field("queue", &self.queue)
            .finish_non_exhaustive()
    }
}

impl Desk {
    /// A desk over the store, the queue and the golden paths.
    pub fn new(state: Arc<dyn StateStore>, queue: ApprovalQueue, golden: GoldenPaths) -> Self {
        Self {
            state,
            queue,
            golden,
        }
    }

    /// Decides `id` through the queue, then records a person's approval as a golden path of the
    /// agent that asked (the request it learns from is the customer message that started the
    /// run). Rejections and automatic decisions (expiry) teach nothing.
    pub async fn decide(
        &self,
        tenant: &TenantId,
        id: &ApprovalId,
        decision: &ApprovalDecision,
    ) -> Result<Decided> {
        let request = self.queue.decide(tenant, id, decision).await?;
        let asked = self.customer_request(&request).await?;
        let learned = GoldenPath::from_approval(asked, &request, decision);
        if let Some(path) = &learned {
            self.golden.record(tenant, &request.agent, path).await?;
        }
        Ok(Decided { request, learned })
    }

    /// The user message that started the request's run.
    async fn customer_request(&self, request: &ApprovalRequest) -> Result<String> {
        self.state
            .load_messages(&request.tenant, &request.session, MessageWindow::All)
            .await?
            .into_iter()
            .filter(|m| m.run.as_ref() == Some(&request.run))
            .find_map(|m| match m.message {
                Message::User { content, .. } => Some(content),
                _ => None,
            })
            .ok_or_else(|| {
                Error::NotFound(format!(
                    "the customer message of run {} (approval {})",
                    request.run, request.id
                ))
            })
    }
}
