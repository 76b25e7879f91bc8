//! An in-process Qdrant for tests: qdrant-client's generated tonic services (`Collections`,
//! `Points`) on an in-memory database, speaking Qdrant's real gRPC wire format on
//! `127.0.0.1:<free port>`, so `QdrantStore` is tested through the very client it ships with.
//!
//! It serves exactly the RPCs the store sends, with Qdrant's documented semantics (see
//! [`engine`]); every other RPC answers `Unimplemented`. Two test controls, through
//! [`TestServer::control`]:
//!
//! - **isolation guard** (always on): a `scroll`, `count`, `query` or `delete` whose filter has
//!   no `must` keyword condition on both `tenant` and `agent` is refused with
//!   `InvalidArgument`, so a store that forgets its scope anywhere fails every test;
//! - **fault injection and a call log**: [`Control::fail_nth`], [`Control::fail_next`] and
//!   [`Control::down_from`] make RPCs fail with `Unavailable` before they touch the data, and
//!   [`Control::calls`] lists the RPCs received, in order.
//!
//! qdrant-client resends a `Points` RPC once when it fails with `Unavailable` (after
//! reconnecting); `Collections` RPCs are not resent. A single failure of a `Points` RPC is
//! therefore invisible to the store: [`Control::down_from`] (an outage until
//! [`Control::heal`]) is what interrupts it.

mod engine;
mod filter;
mod services;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use qdrant_client::qdrant::collections_server::CollectionsServer;
use qdrant_client::qdrant::points_server::PointsServer;
use tokio::sync::oneshot;
use tonic::Status;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;

#[derive(Default)]
struct ControlState {
    /// Every RPC received, in order (including failed and unimplemented ones).
    calls: Vec<&'static str>,
    /// The RPCs failed by a fault, in order.
    failures: Vec<&'static str>,
    /// Ordinals (1-based, over `calls`) of the RPCs to fail once.
    fail_at: BTreeSet<usize>,
    /// From this ordinal on, every RPC fails (until healed).
    down_from: Option<usize>,
    /// The next RPC of each of these names fails (once per entry).
    fail_kind: Vec<String>,
    /// Queries received with `params.exact = true`.
    exact_queries: usize,
}

/// Fault injection and the call log of one [`TestServer`]. Cheap to clone.
#[derive(Clone, Default)]
pub struct Control {
    state: Arc<Mutex<ControlState>>,
}

impl Control {
    fn lock(&self) -> MutexGuard<'_, ControlState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records an RPC and fails it with `Unavailable` if a fault says so (before it does
    /// anything).
    fn enter(&self, rpc: &'static str) -> Result<(), Status> {
        let mut s = self.lock();
        s.calls.push(rpc);
        let ordinal = s.calls.len();
        let mut fail = s.fail_at.remove(&ordinal) || s.down_from.is_some_and(|d| ordinal >= d);
        if let Some(i) = s.fail_kind.iter().position(|k| k == rpc) {
            s.fail_kind.remove(i);
            fail = true;
        }
        if fail {
            s.failures.push(rpc);
            return Err(Status::unavailable(format!(
                "injected fault: `{rpc}` (call {ordinal})"
            )));
        }
        Ok(())
    }

    fn note_exact_query(&self) {
        self.lock().exact_queries += 1;
    }

    /// The `n`th RPC from now (1 = the next one) fails once.
    pub fn fail_nth(&self, n: usize) {
        let mut s = self.lock();
        let ordinal = s.calls.len() + n.max(1);
        s.fail_at.insert(ordinal);
    }

    /// The next RPC named `rpc` (as in [`Control::calls`]) fails once.
    pub fn fail_next(&self, rpc: &str) {
        self.lock().fail_kind.push(rpc.to_string());
    }

    /// The server is down from the `n`th RPC from now (1 = the next one) until
    /// [`Control::heal`]: every RPC fails.
    pub fn down_from(&self, n: usize) {
        let mut s = self.lock();
        s.down_from = Some(s.calls.len() + n.max(1));
    }

    /// Removes every pending fault.
    pub fn heal(&self) {
        let mut s = self.lock();
        s.fail_at.clear();
        s.down_from = None;
        s.fail_kind.clear();
    }

    /// The RPCs received since the start (or [`Control::clear_calls`]), in order: names as
    /// `collection_exists`, `collection_info`, `create_collection`, `create_field_index`,
    /// `upsert`, `delete`, `count`, `scroll`, `query`, and `collections.<rpc>` /
    /// `points.<rpc>` for the unimplemented ones.
    pub fn calls(&self) -> Vec<&'static str> {
        self.lock().calls.clone()
    }

    /// The RPCs a fault failed, in order.
    pub fn failures(&self) -> Vec<&'static str> {
        self.lock().failures.clone()
    }

    /// Forgets the calls and failures recorded so far (pending faults count from here).
    pub fn clear_calls(&self) {
        let mut s = self.lock();
        let seen = s.calls.len();
        s.fail_at = s.fail_at.iter().map(|o| o - seen).collect();
        s.down_from = s.down_from.map(|d| d.saturating_sub(seen).max(1));
        s.calls.clear();
        s.failures.clear();
    }

    /// How many queries asked for an exact search.
    pub fn exact_queries(&self) -> usize {
        self.lock().exact_queries
    }
}

/// A running in-process Qdrant. Stops when dropped.
pub struct TestServer {
    addr: SocketAddr,
    control: Control,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl TestServer {
    /// Starts a server on `127.0.0.1` and a free port (inside a Tokio runtime).
    pub async fn start() -> Self {
        let incoming =
            TcpIncoming::bind(SocketAddr::from(([127, 0, 0, 1], 0))).expect("bind a local port");
        let addr = incoming.local_addr().expect("the bound address");
        let control = Control::default();
        let service = services::Service::new(control.clone());
        let (shutdown, stopped) = oneshot::channel::<()>();
        let serve = Server::builder()
            .add_service(CollectionsServer::new(service.clone()))
            .add_service(PointsServer::new(service))
            .serve_with_incoming_shutdown(incoming, async {
                let _ = stopped.await;
            });
        let task = tokio::spawn(async move {
            serve.await.expect("the test server runs");
        });
        Self {
            addr,
            control,
            shutdown: Some(shutdown),
            task: Some(task),
        }
    }

    /// Its gRPC URL, `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Its fault injection and call log.
    pub fn control(&self) -> &Control {
        &self.control
    }

    /// Stops serving (gracefully, up to 5 s) and waits until the listener is closed: new
    /// connections are refused from then on.
    pub async fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(mut task) = self.task.take() {
            // Graceful: open connections get a GOAWAY and close once idle.
            if tokio::time::timeout(Duration::from_secs(5), &mut task)
                .await
                .is_err()
            {
                task.abort();
                let _ = task.await;
            }
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}
