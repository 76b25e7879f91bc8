//! A client of the host's router (`tower::ServiceExt::oneshot`): requests as a caller would
//! send them, replies with status, content type and body.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

/// One reply.
#[derive(Debug)]
pub struct Reply {
    /// The status.
    pub status: StatusCode,
    /// The content type (empty when none).
    pub content_type: String,
    /// The `Set-Cookie` header, if any.
    pub set_cookie: Option<String>,
    /// The body as text.
    pub text: String,
}

impl Reply {
    /// The body as JSON (panics with the body when it is not).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {} {}", self.status, self.text))
    }

    /// Asserts the status, showing the body when it differs; returns the JSON body (or `null`
    /// for a body that is not JSON).
    pub fn expect(&self, status: StatusCode) -> Value {
        assert_eq!(self.status, status, "{}", self.text);
        serde_json::from_str(&self.text).unwrap_or(Value::Null)
    }
}

/// How a request authenticates.
#[derive(Debug, Clone, Copy)]
pub enum Auth<'a> {
    /// No credentials.
    None,
    /// `Authorization: Bearer <key>`.
    Bearer(&'a str),
    /// The reviewer page's cookie.
    Cookie(&'a str),
}

/// Sends `method path` with an optional JSON body.
pub async fn send(
    router: &Router,
    method: &str,
    path: &str,
    auth: Auth<'_>,
    body: Option<&Value>,
) -> Reply {
    let mut r = Request::builder().method(method).uri(path);
    match auth {
        Auth::None => {}
        Auth::Bearer(key) => r = r.header(header::AUTHORIZATION, format!("Bearer {key}")),
        Auth::Cookie(key) => {
            r = r.header(
                header::COOKIE,
                format!("{}={key}", agentkit_example_host::KEY_COOKIE),
            )
        }
    }
    let request = match body {
        Some(b) => r
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(b.to_string())),
        None => r.body(Body::empty()),
    }
    .unwrap();
    call(router, request).await
}

/// Sends a form (`application/x-www-form-urlencoded`) with an optional key cookie.
pub async fn form(router: &Router, path: &str, cookie_key: Option<&str>, body: &str) -> Reply {
    let mut r =
        Request::post(path).header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    if let Some(key) = cookie_key {
        r = r.header(
            header::COOKIE,
            format!("{}={key}", agentkit_example_host::KEY_COOKIE),
        );
    }
    call(router, r.body(Body::from(body.to_string())).unwrap()).await
}

async fn call(router: &Router, request: Request<Body>) -> Reply {
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let header_text = |name| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let content_type = header_text(header::CONTENT_TYPE).unwrap_or_default();
    let set_cookie = header_text(header::SET_COOKIE);
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    Reply {
        status,
        content_type,
        set_cookie,
        text: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

/// `GET path` with a key.
pub async fn get(router: &Router, path: &str, key: &str) -> Reply {
    send(router, "GET", path, Auth::Bearer(key), None).await
}

/// `POST path` with a key and a JSON body.
pub async fn post(router: &Router, path: &str, key: &str, body: Value) -> Reply {
    send(router, "POST", path, Auth::Bearer(key), Some(&body)).await
}
