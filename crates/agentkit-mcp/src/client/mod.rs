//! [`McpClient`]: one MCP server's tools as governed agentkit tools.

mod connection;
mod oauth;
mod tool;

pub use oauth::{Authorizer, RedirectAuthorizer};

use std::collections::HashMap;
use std::sync::{Arc, Weak};

use agentkit_core::tool::Tool;
use agentkit_core::{Error, Result};
use agentkit_tools::http::OutboundPolicy;
use rmcp::model::{ProtocolVersion, ServerNotification, SubscriptionFilter};
use rmcp::{Peer, RoleClient};
use tokio::sync::{Mutex, mpsc, watch};

use crate::config::McpServerConfig;
use crate::error::McpError;
use connection::{Notifier, OAuthSession, Service};
use tool::Definition;

/// A connection to one MCP server whose tools are agentkit tools.
///
/// [`McpClient::tools`] gives them as `Arc<dyn Tool>`, named `namespace.tool`, ready for a
/// `ToolRegistry` or an agent's tool list: every call goes through the agent's one governed
/// executor (allow-list, argument validation against the server's schema, policy with its
/// RBAC, budgets and approvals, idempotency, metering, audit) like any tool.
///
/// - **Untrusted server.** The side-effect class and idempotency come from the host's
///   [`McpServerConfig`] (default: external, not idempotent), never from the server's
///   annotations, which reach the policy as [hints](agentkit_core::tool::ToolHints) only.
/// - **Pinned definitions.** A registered tool is pinned to the definition it was registered
///   with: when the server changes a tool's description, schema or annotations (or removes
///   it), calls through the old registration are refused until the host registers the new
///   one. Tool-list changes (the server's `list_changed` notifications) refresh
///   [`McpClient::tools`] and wake [`McpClient::changes`]; a new tool reaches an agent only
///   through the host's allow-list.
/// - **Failures.** Calls are bounded by the configured timeout (a late call is cancelled on
///   the server); a server that dies mid-call gives a typed `Unavailable` error (idempotent
///   tools with a retry policy retry, and the next call reconnects); malformed JSON-RPC gives
///   `MalformedResponse`.
///
/// ```no_run
/// # async fn demo() -> Result<(), agentkit_mcp::McpError> {
/// use agentkit_mcp::{McpClient, McpServerConfig};
///
/// let crm = McpClient::connect(McpServerConfig::stdio("crm", "crm-mcp-server", ["--stdio"])).await?;
/// for tool in crm.tools() {
///     println!("{}", tool.spec().name); // crm.search_contacts, ...
/// }
/// crm.close().await;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct McpClient {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for McpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpClient")
            .field("server", &self.inner.config.namespace)
            .field("tools", &self.tool_names())
            .finish_non_exhaustive()
    }
}

/// Options for [`McpClient::builder`].
pub struct McpClientBuilder {
    config: McpServerConfig,
    outbound: OutboundPolicy,
    skip_invalid_tools: bool,
    authorizer: Option<Arc<dyn Authorizer>>,
}

impl std::fmt::Debug for McpClientBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpClientBuilder")
            .field("config", &self.config)
            .field("outbound", &self.outbound)
            .field("skip_invalid_tools", &self.skip_invalid_tools)
            .field("authorizer", &self.authorizer.is_some())
            .finish()
    }
}

impl McpClientBuilder {
    /// How the user consents when a server configured with OAuth
    /// ([`McpServerConfig::with_oauth`]) asks for authorization.
    pub fn authorizer(mut self, authorizer: Arc<dyn Authorizer>) -> Self {
        self.authorizer = Some(authorizer);
        self
    }

    /// Where an HTTP server may be (default: public addresses only, as for HTTP tools). A
    /// server on the host's own network needs its network allowed here.
    pub fn outbound(mut self, policy: OutboundPolicy) -> Self {
        self.outbound = policy;
        self
    }

    /// Registers the server's valid tools and leaves out (with a warning, and listed in
    /// [`McpClient::rejected_tools`]) those whose name or schema is invalid. Default: such a
    /// tool fails the connection with [`McpError::InvalidTool`].
    pub fn skip_invalid_tools(mut self, skip: bool) -> Self {
        self.skip_invalid_tools = skip;
        self
    }

    /// Connects, negotiates the protocol and lists the server's tools.
    pub async fn connect(self) -> Result<McpClient, McpError> {
        self.config.validate()?;
        let (version, _) = watch::channel(0);
        let inner = Arc::new(Inner {
            config: self.config,
            outbound: self.outbound,
            skip_invalid: self.skip_invalid_tools,
            auth: OAuthSession {
                authorizer: self.authorizer,
                client: std::sync::Mutex::new(None),
            },
            service: Mutex::new(None),
            catalog: std::sync::RwLock::new(Arc::new(Catalog::default())),
            version,
            closed: std::sync::atomic::AtomicBool::new(false),
        });
        inner.reconnect().await?;
        Ok(McpClient { inner })
    }
}

impl McpClient {
    /// Connects to `config`'s server with the default options (see [`McpClient::builder`]).
    pub async fn connect(config: McpServerConfig) -> Result<Self, McpError> {
        Self::builder(config).connect().await
    }

    /// A builder, for the outbound policy and the handling of invalid tools.
    pub fn builder(config: McpServerConfig) -> McpClientBuilder {
        McpClientBuilder {
            config,
            outbound: OutboundPolicy::new(),
            skip_invalid_tools: false,
            authorizer: None,
        }
    }

    /// The server's namespace.
    pub fn namespace(&self) -> &str {
        &self.inner.config.namespace
    }

    /// The server's tools as agentkit tools (`namespace.name`), sorted by name. Each call
    /// makes new tool values over the same connection; give one agent (or registry) one set, as
    /// a per-tenant rate limit in an override counts per set.
    pub fn tools(&self) -> Vec<Arc<dyn Tool>> {
        let catalog = self.inner.catalog();
        let mut tools: Vec<Arc<dyn Tool>> = catalog
            .definitions
            .values()
            .filter_map(|d| tool::build(&self.inner, d).ok().map(tool::into_dyn))
            .collect();
        tools.sort_by(|a, b| a.spec().name.cmp(&b.spec().name));
        tools
    }

    /// The names of [`McpClient::tools`].
    pub fn tool_names(&self) -> Vec<String> {
        let catalog = self.inner.catalog();
        let mut names: Vec<String> = catalog
            .definitions
            .keys()
            .map(|n| tool::agentkit_name(&self.inner.config.namespace, n))
            .collect();
        names.sort();
        names
    }

    /// Tools the server lists that could not be registered (with
    /// [`McpClientBuilder::skip_invalid_tools`]), with why.
    pub fn rejected_tools(&self) -> Vec<McpError> {
        self.inner
            .catalog()
            .rejected
            .iter()
            .map(|(tool, reason)| McpError::InvalidTool {
                server: self.inner.config.namespace.clone(),
                tool: tool.clone(),
                reason: reason.clone(),
            })
            .collect()
    }

    /// The protocol version in use (`2026-07-28`, or `2025-11-25` with an older server).
    pub async fn protocol_version(&self) -> Option<String> {
        let peer = self.inner.peer().await.ok()?;
        peer.peer_info().map(|i| i.protocol_version.to_string())
    }

    /// The server's name and version, as it gave them.
    pub async fn server_info(&self) -> Option<(String, String)> {
        let peer = self.inner.peer().await.ok()?;
        peer.peer_info()
            .and_then(|i| i.server_info.clone())
            .map(|s| (s.name, s.version))
    }

    /// A counter bumped whenever the server's tool list changed (and was re-read): wait on it
    /// to re-register tools.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.inner.version.subscribe()
    }

    /// Re-reads the server's tool list now (the client also does on every `list_changed`
    /// notification).
    pub async fn refresh(&self) -> Result<(), McpError> {
        let peer = self.inner.peer().await?;
        self.inner.refresh(&peer).await
    }

    /// Closes the connection: a child process gets its stdin closed, then SIGTERM, then
    /// SIGKILL, and is reaped. Later calls fail with [`McpError::Closed`].
    pub async fn close(&self) {
        self.inner
            .closed
            .store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(mut service) = self.inner.service.lock().await.take() {
            let _ = service.close().await;
        }
    }
}

/// The tool definitions last read from the server, by MCP name.
#[derive(Debug, Default)]
pub(crate) struct Catalog {
    definitions: HashMap<String, Definition>,
    rejected: Vec<(String, String)>,
}

pub(crate) struct Inner {
    pub(crate) config: McpServerConfig,
    outbound: OutboundPolicy,
    skip_invalid: bool,
    auth: OAuthSession,
    service: Mutex<Option<Service>>,
    catalog: std::sync::RwLock<Arc<Catalog>>,
    version: watch::Sender<u64>,
    closed: std::sync::atomic::AtomicBool,
}

impl Inner {
    fn catalog(&self) -> Arc<Catalog> {
        self.catalog
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The live peer, reconnecting first when the connection was lost (a server that died).
    pub(crate) async fn peer(self: &Arc<Self>) -> Result<Peer<RoleClient>, McpError> {
        {
            let service = self.service.lock().await;
            if let Some(s) = service.as_ref().filter(|s| live(s)) {
                return Ok(s.peer().clone());
            }
        }
        self.reconnect().await
    }

    /// Opens a new connection (unless the client was closed), lists the tools, and starts
    /// listening for tool-list changes.
    async fn reconnect(self: &Arc<Self>) -> Result<Peer<RoleClient>, McpError> {
        let mut slot = self.service.lock().await;
        if self.closed.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(McpError::Closed {
                server: self.config.namespace.clone(),
                context: "the client was closed".into(),
            });
        }
        if let Some(s) = slot.as_ref().filter(|s| live(s)) {
            return Ok(s.peer().clone());
        }
        if slot.is_some() {
            tracing::warn!(server = %self.config.namespace, "MCP connection lost; reconnecting");
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let service = connection::open(
            &self.config,
            &self.outbound,
            &self.auth,
            Notifier {
                tools_changed: tx.clone(),
            },
        )
        .await?;
        let peer = service.peer().clone();
        *slot = Some(service);
        drop(slot);
        self.refresh(&peer).await?;
        self.watch_tool_list(&peer, tx, rx).await;
        Ok(peer)
    }

    /// Whether the server is configured for OAuth.
    pub(crate) fn oauth_configured(&self) -> bool {
        self.auth.configured(&self.config)
    }

    /// Answers a challenge met mid-connection (a `403` asking for more scope, a revoked token):
    /// authorizes again with it and reconnects with the new token.
    pub(crate) async fn reauthorize(
        self: &Arc<Self>,
        challenge: &str,
    ) -> Result<Peer<RoleClient>, McpError> {
        let mut slot = self.service.lock().await;
        connection::authorize(&self.config, &self.outbound, &self.auth, Some(challenge)).await?;
        let old = slot.take();
        drop(slot);
        if let Some(mut old) = old {
            let _ = old.close().await;
        }
        self.reconnect().await
    }

    /// Re-reads the tool list into the catalog.
    async fn refresh(self: &Arc<Self>, peer: &Peer<RoleClient>) -> Result<(), McpError> {
        let server = &self.config.namespace;
        let listed = tokio::time::timeout(self.config.timeout, peer.list_all_tools())
            .await
            .map_err(|_| McpError::Timeout {
                server: server.clone(),
                method: "tools/list",
                after: self.config.timeout,
            })?
            .map_err(|e| match e {
                rmcp::ServiceError::TransportClosed => McpError::Closed {
                    server: server.clone(),
                    context: "during tools/list".into(),
                },
                other => McpError::Protocol {
                    server: server.clone(),
                    method: "tools/list",
                    reason: other.to_string(),
                },
            })?;
        let mut catalog = Catalog::default();
        for t in listed {
            let name = t.name.to_string();
            let definition = Definition { tool: Arc::new(t) };
            match tool::build(self, &definition) {
                Ok(_) => {
                    if catalog
                        .definitions
                        .insert(name.clone(), definition)
                        .is_some()
                    {
                        return Err(McpError::Protocol {
                            server: server.clone(),
                            method: "tools/list",
                            reason: format!("two tools are named `{name}`"),
                        });
                    }
                }
                Err(e) if self.skip_invalid => {
                    tracing::warn!(server = %server, tool = %name, error = %e, "MCP tool left out");
                    let reason = match e {
                        McpError::InvalidTool { reason, .. } => reason,
                        other => other.to_string(),
                    };
                    catalog.rejected.push((name, reason));
                }
                Err(e) => return Err(e),
            }
        }
        *self
            .catalog
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(catalog);
        self.version.send_modify(|v| *v += 1);
        Ok(())
    }

    /// Re-reads the tool list on every `list_changed` notification: delivered to the handler
    /// on a 2025-11-25 connection, and through a `subscriptions/listen` stream on 2026-07-28.
    async fn watch_tool_list(
        self: &Arc<Self>,
        peer: &Peer<RoleClient>,
        tx: mpsc::UnboundedSender<()>,
        mut rx: mpsc::UnboundedReceiver<()>,
    ) {
        let server = &self.config.namespace;
        let weak: Weak<Inner> = Arc::downgrade(self);
        let modern_with_changes = peer.peer_info().is_some_and(|i| {
            i.protocol_version == ProtocolVersion::V_2026_07_28
                && i.capabilities.tools.as_ref().and_then(|t| t.list_changed) == Some(true)
        });
        if modern_with_changes {
            // Subscribed before `connect` returns, so no change after it is missed.
            let filter = SubscriptionFilter::builder().tools_list_changed().build();
            match tokio::time::timeout(self.config.timeout, peer.listen(filter)).await {
                Ok(Ok(mut subscription)) => {
                    tokio::spawn(async move {
                        while let Ok(Some(n)) = subscription.next().await {
                            if matches!(n, ServerNotification::ToolListChangedNotification(_))
                                && tx.send(()).is_err()
                            {
                                break;
                            }
                        }
                    });
                }
                Ok(Err(e)) => {
                    tracing::warn!(server = %server, error = %e,
                        "the MCP server refused a tool-list subscription; changes are seen on refresh only");
                }
                Err(_) => {
                    tracing::warn!(server = %server,
                        "the MCP server did not acknowledge a tool-list subscription in time");
                }
            }
        }
        let peer = peer.clone();
        tokio::spawn(async move {
            while rx.recv().await.is_some() {
                let Some(inner) = weak.upgrade() else { break };
                if let Err(e) = inner.refresh(&peer).await {
                    tracing::warn!(server = %inner.config.namespace, error = %e,
                        "could not re-read the MCP tool list");
                }
            }
        });
    }

    /// Refuses a call through a registration whose definition the server changed or removed.
    pub(crate) fn check_pinned(&self, pinned: &Definition) -> Result<()> {
        let name = &pinned.tool.name;
        let full = tool::agentkit_name(&self.config.namespace, name);
        match self.catalog().definitions.get(name.as_ref()) {
            Some(current) if pinned.same_as(&current.tool) => Ok(()),
            Some(_) => Err(Error::NotExecuted(format!(
                "tool `{full}` changed on its MCP server since it was registered (description, \
                 schema or annotations); the host must review and register it again"
            ))),
            None => Err(Error::NotExecuted(format!(
                "tool `{full}` is no longer offered by its MCP server"
            ))),
        }
    }
}

/// Whether a connection can still carry requests (its loop runs and its transport is open).
fn live(service: &Service) -> bool {
    !service.is_closed() && !service.peer().is_transport_closed()
}
