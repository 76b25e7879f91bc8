//! OAuth 2.1 for Streamable HTTP servers, through rmcp's `auth`: the [`Authorizer`] that gets
//! the user's consent, and the flow run when a server answers `401` with a challenge.

use async_trait::async_trait;
use rmcp::transport::auth::{AuthError, AuthorizationRequest, OAuthState};
use rmcp::transport::{AuthClient, AuthorizationManager};

use crate::config::McpOAuthConfig;
use crate::error::McpError;

/// Gets a user's consent for an MCP client: takes them to the authorization server's URL (opens
/// a browser, sends a link in a chat, ...) and returns the URL the authorization server
/// redirected them back to, which carries the authorization `code` and `state`. A host's
/// callback endpoint usually completes a future this method awaits.
#[async_trait]
pub trait Authorizer: Send + Sync + 'static {
    /// The redirect URL after the user approved (or an error, e.g. the user declined).
    async fn authorize(&self, authorization_url: &str) -> Result<String, McpError>;
}

/// An [`Authorizer`] for authorization servers that approve without a person — test
/// servers, pre-consented machine clients: it requests the authorization URL without following
/// redirects and returns the `Location` the server redirected to.
#[derive(Debug, Clone, Default)]
pub struct RedirectAuthorizer {
    http: reqwest::Client,
}

impl RedirectAuthorizer {
    /// An authorizer over a client that does not follow redirects.
    pub fn new() -> Self {
        Self {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap_or_default(),
        }
    }
}

#[async_trait]
impl Authorizer for RedirectAuthorizer {
    async fn authorize(&self, authorization_url: &str) -> Result<String, McpError> {
        let failed = |reason: String| McpError::Handshake {
            server: "oauth".into(),
            reason,
        };
        let response = self
            .http
            .get(authorization_url)
            .send()
            .await
            .map_err(|e| failed(format!("authorization request: {e}")))?;
        response
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .ok_or_else(|| {
                failed(format!(
                    "the authorization server answered {} without a redirect",
                    response.status()
                ))
            })
    }
}

fn auth_error(server: &str, e: AuthError) -> McpError {
    McpError::Handshake {
        server: server.to_string(),
        reason: format!("OAuth: {e}"),
    }
}

/// Runs the authorization-code flow for the server at `url`: discovery (from `challenge`, the
/// `WWW-Authenticate` value of its `401`), registration, the user's consent through
/// `authorizer`, the code exchange. Metadata requests go through rmcp's own address-filtered
/// client (refusing private addresses unless `allow_private`); MCP requests then carry the
/// token through `http`.
pub(crate) async fn authorize(
    server: &str,
    url: &str,
    config: &McpOAuthConfig,
    challenge: Option<&str>,
    authorizer: &dyn Authorizer,
    allow_private: bool,
    http: reqwest::Client,
) -> Result<AuthClient<reqwest::Client>, McpError> {
    let err = |e| auth_error(server, e);
    let manager = if allow_private {
        AuthorizationManager::new_allowing_private_addresses(url).await
    } else {
        AuthorizationManager::new(url).await
    }
    .map_err(err)?;
    let mut state = OAuthState::Unauthorized(manager);
    let mut request = AuthorizationRequest::new(config.redirect_uri.clone())
        .with_client_name(config.client_name.as_deref().unwrap_or("agentkit"));
    if !config.scopes.is_empty() {
        request = request.with_scopes(config.scopes.iter().cloned());
    }
    if let Some(id) = &config.client_id {
        request = request.with_preregistered_client(id.clone());
        if let Some(env) = &config.client_secret_env {
            let secret = std::env::var(env).map_err(|_| McpError::Config {
                server: server.to_string(),
                reason: format!("the OAuth client secret variable `{env}` is not set"),
            })?;
            request = request.with_client_secret(secret);
        }
    }
    if let Some(metadata_url) = &config.client_metadata_url {
        request = request.with_client_metadata_url(metadata_url.clone());
    }
    if let Some(challenge) = challenge {
        request = request.with_challenge(challenge.to_string());
    }
    state.start_authorization(request).await.map_err(err)?;
    let authorization_url = state.get_authorization_url().await.map_err(err)?;
    let redirect = authorizer.authorize(&authorization_url).await?;
    state.handle_callback_url(&redirect).await.map_err(err)?;
    let manager = state
        .into_authorization_manager()
        .ok_or_else(|| McpError::Handshake {
            server: server.to_string(),
            reason: "OAuth: no token after the code exchange".into(),
        })?;
    Ok(AuthClient::new(http, manager))
}
