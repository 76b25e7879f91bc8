//! Audit entries, the hash chain and its verification, audit queries.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::records::{ApprovalRequest, now};
use crate::SharedJson;
use crate::id::{AgentId, RunId, SessionId, TenantId};
use crate::redact::CanonicalHasher;
use crate::scope::Scope;

/// An audit entry before the store chains it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewAuditEntry {
    /// Owner.
    pub tenant: TenantId,
    /// What happened (`policy.decision`, `tool.execution`, `approval.decided`, `run.completed`).
    pub kind: String,
    /// Who acted (`agent:support`, `user:alice`).
    pub actor: String,
    /// On what (tool name or `resource:action`).
    pub action: String,
    /// The decision or outcome (`allow`, `deny`, `approved`, `succeeded`...).
    pub decision: Option<String>,
    /// Why.
    pub reason: Option<String>,
    /// The agent involved.
    pub agent: Option<AgentId>,
    /// The session.
    pub session: Option<SessionId>,
    /// The run.
    pub run: Option<RunId>,
    /// Redacted input (shared with the tool's execution record for a `tool.call` entry).
    pub input: SharedJson,
    /// Redacted output (shared with the tool's execution record for a `tool.call` entry).
    pub output: SharedJson,
    /// When.
    pub at: DateTime<Utc>,
}

impl NewAuditEntry {
    /// An entry now for `scope` (tenant, agent, session and run set) with no input/output.
    pub fn scoped(
        scope: &Scope,
        kind: impl Into<String>,
        actor: impl Into<String>,
        action: impl Into<String>,
    ) -> Self {
        let mut e = Self::new(scope.tenant.clone(), kind, actor, action);
        e.agent = Some(scope.agent.clone());
        e.session = Some(scope.session.clone());
        e.run = Some(scope.run.clone());
        e
    }

    /// An entry now with no input/output, not tied to an agent or run.
    pub fn new(
        tenant: TenantId,
        kind: impl Into<String>,
        actor: impl Into<String>,
        action: impl Into<String>,
    ) -> Self {
        Self {
            tenant,
            kind: kind.into(),
            actor: actor.into(),
            action: action.into(),
            decision: None,
            reason: None,
            agent: None,
            session: None,
            run: None,
            input: SharedJson::null(),
            output: SharedJson::null(),
            at: now(),
        }
    }

    /// Chains the entry after `prev_hash` as number `seq` (what a store does atomically). The
    /// time is truncated to microseconds first, so the hash covers exactly what any backend
    /// stores and returns.
    pub fn chain(mut self, seq: u64, prev_hash: String) -> AuditEntry {
        use chrono::SubsecRound;
        self.at = self.at.trunc_subsecs(6);
        let mut entry = AuditEntry {
            seq,
            entry: self,
            prev_hash,
            hash: String::new(),
        };
        entry.hash = entry.compute_hash();
        entry
    }
}

/// The hash that starts every tenant's chain.
pub const AUDIT_GENESIS_HASH: &str =
    "0000000000000000000000000000000000000000000000000000000000000000";

impl NewAuditEntry {
    /// The `approval.decided` entry for a decided request, which every backend's
    /// [`super::ApprovalStore::decide_approval`] appends in the same atomic step as the
    /// decision (actor `user:{reviewer}`, or `system:{reviewer}` for an automatic decision).
    pub fn approval_decided(request: &ApprovalRequest) -> Self {
        let scope = Scope::new(
            request.tenant.clone(),
            request.agent.clone(),
            request.session.clone(),
            request.run.clone(),
        );
        let reviewer = request.reviewer.as_deref().unwrap_or("unknown");
        let actor = if request.decided_automatically {
            format!("system:{reviewer}")
        } else {
            format!("user:{reviewer}")
        };
        let mut entry = Self::scoped(&scope, "approval.decided", actor, request.call.name.clone());
        entry.decision = Some(request.status.as_str().into());
        entry.reason.clone_from(&request.comment);
        entry.input = serde_json::json!({
            "approval": request.id,
            "arguments_hash": request.arguments_hash,
            "edited": request.edited_arguments.is_some(),
            "automatic": request.decided_automatically,
        })
        .into();
        entry
    }
}

/// A chained audit entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Position in the tenant's chain, from 1.
    pub seq: u64,
    /// The content.
    #[serde(flatten)]
    pub entry: NewAuditEntry,
    /// The previous entry's hash ([`AUDIT_GENESIS_HASH`] for the first).
    pub prev_hash: String,
    /// SHA-256 over `seq`, `prev_hash` and the content.
    pub hash: String,
}

impl AuditEntry {
    /// Recomputes this entry's hash from its content.
    ///
    /// The hash is [`hash_json`](crate::redact::hash_json) of `{"seq": .., "prev_hash": .., "entry": <the content as
    /// JSON>}`: SHA-256 over its canonical JSON (keys sorted). The bytes are streamed into the
    /// hasher in that exact form instead of building the JSON value first, so hashes are the
    /// same as hashing the value (and stay comparable across backends and versions).
    pub fn compute_hash(&self) -> String {
        // Destructured without `..`: a new field must be added to the hash (in key order).
        let NewAuditEntry {
            tenant,
            kind,
            actor,
            action,
            decision,
            reason,
            agent,
            session,
            run,
            input,
            output,
            at,
        } = &self.entry;
        let mut h = CanonicalHasher::new();
        h.raw(b"{\"entry\":{\"action\":");
        h.str(action);
        h.raw(b",\"actor\":");
        h.str(actor);
        h.raw(b",\"agent\":");
        h.opt_str(agent.as_ref().map(AgentId::as_str));
        h.raw(b",\"at\":");
        h.serialized(at);
        h.raw(b",\"decision\":");
        h.opt_str(decision.as_deref());
        h.raw(b",\"input\":");
        h.value(input);
        h.raw(b",\"kind\":");
        h.str(kind);
        h.raw(b",\"output\":");
        h.value(output);
        h.raw(b",\"reason\":");
        h.opt_str(reason.as_deref());
        h.raw(b",\"run\":");
        h.opt_str(run.as_ref().map(RunId::as_str));
        h.raw(b",\"session\":");
        h.opt_str(session.as_ref().map(SessionId::as_str));
        h.raw(b",\"tenant\":");
        h.str(tenant.as_str());
        h.raw(b"},\"prev_hash\":");
        h.str(&self.prev_hash);
        h.raw(b",\"seq\":");
        h.serialized(&self.seq);
        h.raw(b"}");
        h.finish()
    }
}

/// Checks a tenant's chain from its first entry: sequence numbers without gaps, each entry's hash
/// matching its content, each `prev_hash` matching the previous entry. Returns the sequence
/// number of the first bad entry.
pub fn verify_audit_chain(entries: &[AuditEntry]) -> std::result::Result<(), u64> {
    let mut prev = AUDIT_GENESIS_HASH.to_string();
    for (i, e) in entries.iter().enumerate() {
        let expected_seq = i as u64 + 1;
        if e.seq != expected_seq || e.prev_hash != prev || e.hash != e.compute_hash() {
            return Err(expected_seq);
        }
        prev.clone_from(&e.hash);
    }
    Ok(())
}

/// Filters for [`super::AuditStore::list_audit`].
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct AuditQuery {
    /// Inclusive lower time bound.
    pub from: Option<DateTime<Utc>>,
    /// Exclusive upper time bound.
    pub to: Option<DateTime<Utc>>,
    /// Only this agent.
    pub agent: Option<AgentId>,
    /// Only this kind.
    pub kind: Option<String>,
    /// Only this run.
    pub run: Option<RunId>,
    /// Only this action (a tool name or `resource:action`).
    pub action: Option<String>,
    /// Only entries after this sequence number (for paging: the last `seq` of a page).
    pub after: Option<u64>,
    /// At most this many entries (the first ones in sequence order).
    pub limit: Option<usize>,
}

impl AuditQuery {
    /// Matches everything.
    pub fn all() -> Self {
        Self::default()
    }

    /// Restricts to one kind.
    pub fn kind(mut self, kind: impl Into<String>) -> Self {
        self.kind = Some(kind.into());
        self
    }

    /// Restricts to one agent.
    pub fn agent(mut self, agent: AgentId) -> Self {
        self.agent = Some(agent);
        self
    }

    /// Restricts to one run.
    pub fn run(mut self, run: RunId) -> Self {
        self.run = Some(run);
        self
    }

    /// Restricts to one action.
    pub fn action(mut self, action: impl Into<String>) -> Self {
        self.action = Some(action.into());
        self
    }

    /// Only entries after sequence number `seq` (the next page after an entry).
    pub fn after(mut self, seq: u64) -> Self {
        self.after = Some(seq);
        self
    }

    /// At most `n` entries, the first in sequence order (a page; continue with
    /// [`AuditQuery::after`] and the page's last `seq`).
    pub fn limit(mut self, n: usize) -> Self {
        self.limit = Some(n);
        self
    }

    /// Restricts to `[from, to)`.
    pub fn between(mut self, from: DateTime<Utc>, to: DateTime<Utc>) -> Self {
        self.from = Some(from);
        self.to = Some(to);
        self
    }

    /// Whether an entry matches the filters (`limit` is not a filter: the store applies it).
    pub fn matches(&self, e: &AuditEntry) -> bool {
        if self.after.is_some_and(|a| e.seq <= a) {
            return false;
        }
        let e = &e.entry;
        self.from.is_none_or(|f| e.at >= f)
            && self.to.is_none_or(|t| e.at < t)
            && self
                .agent
                .as_ref()
                .is_none_or(|a| e.agent.as_ref() == Some(a))
            && self.kind.as_ref().is_none_or(|k| &e.kind == k)
            && self.run.as_ref().is_none_or(|r| e.run.as_ref() == Some(r))
            && self.action.as_ref().is_none_or(|a| &e.action == a)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::redact::hash_json;

    #[test]
    fn audit_chain_detects_edits_and_removals() {
        let t = TenantId::from_static("t");
        let mut chain = Vec::new();
        let mut prev = AUDIT_GENESIS_HASH.to_string();
        for i in 1..=3u64 {
            let e = NewAuditEntry::new(t.clone(), "k", "agent:a", format!("act{i}"))
                .chain(i, prev.clone());
            prev.clone_from(&e.hash);
            chain.push(e);
        }
        assert_eq!(verify_audit_chain(&chain), Ok(()));
        let mut edited = chain.clone();
        edited[1].entry.reason = Some("changed".into());
        assert_eq!(verify_audit_chain(&edited), Err(2));
        let mut removed = chain.clone();
        removed.remove(1);
        assert_eq!(verify_audit_chain(&removed), Err(2));
    }

    #[test]
    fn audit_hash_is_the_hash_of_the_entry_as_json() {
        let reference = |e: &AuditEntry| {
            hash_json(&serde_json::json!({
                "seq": e.seq,
                "prev_hash": e.prev_hash,
                "entry": serde_json::to_value(&e.entry).unwrap(),
            }))
        };
        let bare = NewAuditEntry::new(TenantId::from_static("t"), "k", "agent:a", "act")
            .chain(1, "p".into());
        assert_eq!(bare.hash, reference(&bare));
        let mut full = NewAuditEntry::new(
            TenantId::from_static("t-1"),
            "tool.call",
            "agent:é",
            "crm.x",
        );
        full.decision = Some("allow".into());
        full.reason = Some("line\nbreak \\ 🦀".into());
        full.agent = Some(AgentId::from_static("a"));
        full.session = Some(SessionId::from_static("s"));
        full.run = Some(RunId::generate());
        full.input =
            serde_json::json!({"z": 1, "a": [true, null, 2.5], "k\"": {"y": "v", "b": -3}}).into();
        full.output = serde_json::json!("text").into();
        let full = full.chain(u64::MAX, AUDIT_GENESIS_HASH.into());
        assert_eq!(full.hash, reference(&full));
    }
}
