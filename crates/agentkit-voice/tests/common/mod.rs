//! What the integration tests share (`mod common;`): waiting on streams without hanging, the
//! sessions and agents the transport and session tests run, and the pieces of the fake vendor
//! servers the provider tests speak to (a WebSocket server recording each handshake, a
//! refused handshake, HTTP read and written by hand, one address serving both APIs).
//!
//! Each test binary uses only part of this.
#![allow(dead_code)]
// The handshake callback's error type is tungstenite's (`http::Response`).
#![allow(clippy::result_large_err)]

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use agentkit_core::Result;
use agentkit_core::agent::Agent;
use agentkit_core::model::LlmProvider;
use agentkit_core::policy::AllowListPolicy;
use agentkit_core::store::StateStore;
use agentkit_core::testkit::{ScriptedModel, ScriptedResponse};
use agentkit_core::tool::{FnTool, SideEffect, ToolSpec};
use agentkit_voice::testkit::{ScriptedStt, ScriptedTts};
use agentkit_voice::{EndpointingConfig, VoiceConfig, VoiceSession};
use futures::SinkExt;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http;

// Waiting.

pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Runs `f`, failing the test instead of hanging.
pub async fn within<F: Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(20), f)
        .await
        .expect("the test hung")
}

/// The event `next` (a provider stream's `next()`) yields within `wait`, not an error.
pub async fn next_within<T>(wait: Duration, next: impl Future<Output = Option<Result<T>>>) -> T {
    tokio::time::timeout(wait, next)
        .await
        .expect("events in time")
        .expect("an event")
        .expect("no error")
}

/// The event `next` (a provider stream's `next()`) yields, which must not be an error.
pub async fn next_event<T>(next: impl Future<Output = Option<Result<T>>>) -> T {
    next.await.expect("an event").expect("not an error")
}

/// The event `next` (a provider stream's `next()`) yields, which must be an error.
pub async fn next_error<T: std::fmt::Debug>(
    next: impl Future<Output = Option<Result<T>>>,
) -> agentkit_core::Error {
    match next.await.expect("an event") {
        Err(e) => e,
        Ok(event) => panic!("expected an error, got {event:?}"),
    }
}

/// Samples as little-endian PCM16 bytes.
pub fn le_bytes(samples: &[i16]) -> Vec<u8> {
    samples.iter().flat_map(|s| s.to_le_bytes()).collect()
}

// Agents and sessions.

/// An agent `id` of the shop, answering with `model`.
pub fn agent(id: &str, model: Arc<dyn LlmProvider>, store: Arc<dyn StateStore>) -> Agent {
    Agent::builder()
        .id(id)
        .system_prompt("You answer the phone for an online shop.")
        .model(model, "m")
        .store(store)
        .build()
        .expect("agent")
}

/// An agent `id` whose model refunds order 427 with `orders.refund`, a tool that needs a
/// human's approval.
pub fn approval_agent(id: &str, store: Arc<dyn StateStore>) -> Agent {
    let refund = FnTool::new(
        ToolSpec::new(
            "orders.refund",
            "Refunds an order",
            json!({"type": "object", "properties": {"order": {"type": "string"}}, "required": ["order"]}),
        )
        .with_side_effect(SideEffect::External),
        |_ctx, _args| async move { Ok(json!({"refunded": true})) },
    );
    let model = ScriptedModel::new([ScriptedResponse::tool_call(
        "orders.refund",
        json!({"order": "427"}),
    )]);
    Agent::builder()
        .id(id)
        .system_prompt("You answer the phone.")
        .model(Arc::new(model), "m")
        .tool(Arc::new(refund))
        .store(store)
        .policy(
            AllowListPolicy::new(["orders.*"])
                .require_approval_for(["orders.refund"])
                .into_arc(),
        )
        .build()
        .expect("agent")
}

/// A session of tenant `acme` for `call`, its turns ending after 400 ms of silence (2 s for
/// an unfinished sentence).
pub fn voice_session(agent: Agent, stt: ScriptedStt, tts: ScriptedTts, call: &str) -> VoiceSession {
    let mut config = VoiceConfig::default();
    config.endpointing = EndpointingConfig::new(ms(400), ms(2000));
    VoiceSession::new(agent, Arc::new(stt), Arc::new(tts), "acme", call)
        .expect("session")
        .with_config(config)
}

// Fake vendor servers.

pub type Ws = WebSocketStream<TcpStream>;

/// What the client's handshake asked for.
#[derive(Debug, Clone)]
pub struct Handshake {
    pub path: String,
    pub query: HashMap<String, String>,
    /// Header names lowercase.
    pub headers: HashMap<String, String>,
}

impl Handshake {
    pub fn of(request: &Request) -> Self {
        let query = request
            .uri()
            .query()
            .unwrap_or_default()
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let headers = request
            .headers()
            .iter()
            .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
            .collect();
        Self {
            path: request.uri().path().to_owned(),
            query,
            headers,
        }
    }

    /// A query parameter.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query.get(name).map(String::as_str)
    }

    /// A header (`name` lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
}

/// A server for `connections` connections in turn: records each handshake, then runs
/// `script(index, socket)`.
pub async fn serve_many<F, Fut, R>(
    connections: usize,
    script: F,
) -> (String, tokio::task::JoinHandle<Vec<(Handshake, R)>>)
where
    F: Fn(usize, Ws) -> Fut + Send + 'static,
    Fut: Future<Output = R> + Send,
    R: Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("ws://{}", listener.local_addr().expect("addr"));
    let handle = tokio::spawn(async move {
        let mut out = Vec::new();
        for i in 0..connections {
            let (tcp, _) = listener.accept().await.expect("accept");
            let mut seen = None;
            let ws = tokio_tungstenite::accept_hdr_async(tcp, |req: &Request, resp: Response| {
                seen = Some(Handshake::of(req));
                Ok(resp)
            })
            .await
            .expect("handshake");
            let r = script(i, ws).await;
            out.push((seen.expect("handshake seen"), r));
        }
        out
    });
    (base, handle)
}

/// A server for one connection: records the handshake, then runs `script` on the socket.
pub async fn serve<F, Fut, R>(script: F) -> (String, tokio::task::JoinHandle<(Handshake, R)>)
where
    F: FnOnce(Ws) -> Fut + Send + 'static,
    Fut: Future<Output = R> + Send,
    R: Send + 'static,
{
    let script = std::sync::Mutex::new(Some(script));
    let (base, handle) = serve_many(1, move |_, ws| {
        let f = script.lock().expect("lock").take().expect("one connection");
        f(ws)
    })
    .await;
    let handle =
        tokio::spawn(async move { handle.await.expect("server").pop().expect("one connection") });
    (base, handle)
}

/// A handshake refused with `status` and a JSON `body`.
pub fn refusal(status: u16, body: String) -> ErrorResponse {
    http::Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Some(body))
        .expect("response")
}

/// A server refusing the handshake with `status` and a JSON `body`.
pub async fn refuse(status: u16, body: String) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("ws://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.expect("accept");
        let _ = tokio_tungstenite::accept_hdr_async(tcp, move |_: &Request, _: Response| {
            Err(refusal(status, body))
        })
        .await;
    });
    base
}

pub async fn send_json(ws: &mut Ws, value: Value) {
    ws.send(Message::text(value.to_string()))
        .await
        .expect("send");
}

/// An HTTP request read by hand: the request line, headers (names lowercase) and body.
pub struct HttpRequest {
    pub line: String,
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
}

impl HttpRequest {
    /// A header (`name` lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
}

/// The head of the request waiting on `tcp`, lowercase, left unread (so a WebSocket handshake
/// can still read it).
async fn peek_head(tcp: &TcpStream) -> String {
    let mut buf = vec![0u8; 16 * 1024];
    for _ in 0..1000 {
        let n = tcp.peek(&mut buf).await.expect("peek");
        let head = String::from_utf8_lossy(&buf[..n]).to_ascii_lowercase();
        if let Some(end) = head.find("\r\n\r\n") {
            return head[..end].to_owned();
        }
        if n == 0 {
            return String::new();
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    panic!("no complete request head");
}

/// Reads one HTTP/1.1 request with a `content-length` body.
pub async fn read_http(tcp: &mut TcpStream) -> HttpRequest {
    let mut reader = BufReader::new(tcp);
    let mut line = String::new();
    reader.read_line(&mut line).await.expect("request line");
    let mut headers = HashMap::new();
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).await.expect("header");
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        let (name, value) = header.split_once(':').expect("a header line");
        headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_owned());
    }
    let length: usize = headers
        .get("content-length")
        .map_or(0, |v| v.parse().expect("content-length"));
    let mut body = vec![0; length];
    reader.read_exact(&mut body).await.expect("body");
    HttpRequest {
        line: line.trim_end().to_owned(),
        headers,
        body,
    }
}

/// Answers with `status` and `body`, then closes the connection.
pub async fn write_http(tcp: &mut TcpStream, status: u16, content_type: &str, body: &[u8]) {
    let head = format!(
        "HTTP/1.1 {status} X\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    tcp.write_all(head.as_bytes()).await.expect("write");
    tcp.write_all(body).await.expect("write");
    tcp.shutdown().await.expect("shutdown");
}

/// Answers with `status` and a JSON `body`, then closes the connection.
pub async fn write_json(tcp: &mut TcpStream, status: u16, body: &Value) {
    write_http(tcp, status, "application/json", body.to_string().as_bytes()).await;
}

/// A server for both APIs of a vendor on one address, for any number of connections: a
/// WebSocket upgrade goes to `live`, any other request to `batch`. Returns its `http://` base.
pub async fn vendor<L, LF, B, BF>(live: L, batch: B) -> String
where
    L: Fn(TcpStream) -> LF + Send + Sync + 'static,
    LF: Future<Output = ()> + Send,
    B: Fn(TcpStream) -> BF + Send + Sync + 'static,
    BF: Future<Output = ()> + Send,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let (live, batch) = (Arc::new(live), Arc::new(batch));
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (live, batch) = (Arc::clone(&live), Arc::clone(&batch));
            tokio::spawn(async move {
                let head = peek_head(&tcp).await;
                if head.starts_with("get ") && head.contains("upgrade: websocket") {
                    live(tcp).await;
                } else if !head.is_empty() {
                    batch(tcp).await;
                }
            });
        }
    });
    base
}
