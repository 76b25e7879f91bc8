//! Connection loss: a private PostgreSQL server is stopped (immediate shutdown, i.e. a crash)
//! and started again under write load. While it is down writes fail with retryable errors; the
//! same `PostgresStore` works again once it is back; no write that returned `Ok` is lost,
//! nothing is half-written — in particular every turn step (`commit_step`: two messages, two
//! usage events and an audit entry) is either whole or absent after the restart — message
//! sequence numbers have no gaps and the audit chains verify.
//!
//! Needs the PostgreSQL server binaries (`pg_config --bindir`, or `/usr/lib/postgresql/*/bin`).
//! `initdb` refuses to run as root, so as root the server runs as the `postgres` OS user
//! (`runuser`). Like every test of this crate it runs only when `AGENTKIT_TEST_POSTGRES_URL` is
//! set; a missing prerequisite skips it, except with `CI=true`, where it fails.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use agentkit_core::id::{AgentId, SessionId, TenantId};
use agentkit_core::message::Message;
use agentkit_core::store::{
    AuditEntry, AuditQuery, AuditStore, MessageWindow, NewAuditEntry, SessionRecord, SessionStore,
    Step, StepMessages, StepStore, UsageEvent, UsageKind, UsageQuery, UsageStore,
    verify_audit_chain,
};
use agentkit_core::{Error, ErrorKind};
use agentkit_store_postgres::PostgresStore;
use chrono::SubsecRound;
use common::TestDb;

const TEST: &str = "fault::survives_a_server_crash_and_restart_under_load";

// ---------------------------------------------------------------------------------------------
// A private server
// ---------------------------------------------------------------------------------------------

/// A PostgreSQL server of this test only, in a temporary directory, on a free port. Dropping it
/// stops the server (and removes the directory), also when the test fails.
struct PrivateServer {
    bindir: PathBuf,
    /// Run the binaries as the `postgres` OS user (we are root).
    as_postgres: bool,
    data: PathBuf,
    log: PathBuf,
    port: u16,
    // Last: removed after the server is stopped.
    dir: tempfile::TempDir,
}

fn command_output(program: &str, args: &[&str]) -> Result<Output, String> {
    Command::new(program)
        .args(args)
        .output()
        .map_err(|e| format!("cannot run {program}: {e}"))
}

fn stdout_of(program: &str, args: &[&str]) -> Option<String> {
    let out = command_output(program, args).ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// The directory with `initdb`, `pg_ctl` and `postgres`.
fn find_bindir() -> Option<PathBuf> {
    let has_tools = |dir: &Path| {
        ["initdb", "pg_ctl", "postgres"]
            .iter()
            .all(|b| dir.join(b).is_file())
    };
    if let Some(dir) = stdout_of("pg_config", &["--bindir"]).map(PathBuf::from)
        && has_tools(&dir)
    {
        return Some(dir);
    }
    // Debian/Ubuntu keep server binaries out of PATH; take the highest major version.
    let mut candidates: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse::<u32>().ok()?;
            Some((version, e.path().join("bin")))
        })
        .filter(|(_, dir)| has_tools(dir))
        .collect();
    candidates.sort();
    candidates.pop().map(|(_, dir)| dir)
}

fn free_port() -> Result<u16, String> {
    let listener =
        TcpListener::bind("127.0.0.1:0").map_err(|e| format!("cannot find a free port: {e}"))?;
    let port = listener
        .local_addr()
        .map_err(|e| format!("cannot find a free port: {e}"))?
        .port();
    drop(listener);
    Ok(port)
}

impl PrivateServer {
    /// Creates and starts the server. `Err` says why it cannot be done here (a skip reason).
    fn start_new() -> Result<PrivateServer, String> {
        let bindir = find_bindir().ok_or(
            "no PostgreSQL server binaries (pg_config --bindir, /usr/lib/postgresql/*/bin)",
        )?;
        let as_root = stdout_of("id", &["-u"]).as_deref() == Some("0");
        let dir = tempfile::Builder::new()
            .prefix("agentkit-pg-fault-")
            .tempdir()
            .map_err(|e| format!("cannot create a temporary directory: {e}"))?;
        if as_root {
            // initdb refuses to run as root: hand the directory to the `postgres` OS user.
            let id =
                |flag| stdout_of("id", &[flag, "postgres"]).and_then(|s| s.parse::<u32>().ok());
            let (Some(uid), Some(gid)) = (id("-u"), id("-g")) else {
                return Err(
                    "running as root and there is no `postgres` OS user to run initdb as".into(),
                );
            };
            if stdout_of("runuser", &["--help"]).is_none() {
                return Err("running as root and `runuser` is not available".into());
            }
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid))
                .map_err(|e| format!("cannot chown the temporary directory to postgres: {e}"))?;
        }
        let server = PrivateServer {
            bindir,
            as_postgres: as_root,
            data: dir.path().join("data"),
            log: dir.path().join("server.log"),
            port: free_port()?,
            dir,
        };
        let data = server.data.to_string_lossy().into_owned();
        server.run(
            "initdb",
            &[
                "-D",
                &data,
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ],
        )?;
        server.start()?;
        Ok(server)
    }

    /// Runs one of the server binaries (as `postgres` when we are root).
    fn run(&self, binary: &str, args: &[&str]) -> Result<Output, String> {
        let path = self.bindir.join(binary).to_string_lossy().into_owned();
        let out = if self.as_postgres {
            let mut full = vec!["-u", "postgres", "--", path.as_str()];
            full.extend_from_slice(args);
            command_output("runuser", &full)?
        } else {
            command_output(&path, args)?
        };
        if !out.status.success() {
            return Err(format!(
                "{binary} {args:?} failed ({}): {}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(out)
    }

    fn start(&self) -> Result<(), String> {
        // An immediate shutdown kills the server processes, not the machine: what was written
        // to the OS survives, so fsync adds nothing to this test but time.
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=40",
            self.port,
            self.dir.path().display()
        );
        self.run(
            "pg_ctl",
            &[
                "-D",
                &self.data.to_string_lossy(),
                "-l",
                &self.log.to_string_lossy(),
                "-o",
                &options,
                "-w",
                "-t",
                "60",
                "start",
            ],
        )
        .map(drop)
    }

    /// Immediate shutdown: every server process exits at once, without a checkpoint, like a
    /// crash; the next start recovers from the WAL.
    fn crash(&self) -> Result<(), String> {
        self.run(
            "pg_ctl",
            &[
                "-D",
                &self.data.to_string_lossy(),
                "-m",
                "immediate",
                "-w",
                "stop",
            ],
        )
        .map(drop)
    }

    fn admin_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

impl Drop for PrivateServer {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- private server log (tail) ---\n{}", self.log_tail());
        }
        // Stopped already (or never started) is fine.
        let _ = self.crash();
    }
}

// ---------------------------------------------------------------------------------------------
// The load
// ---------------------------------------------------------------------------------------------

const UP: u8 = 0;
const DOWN: u8 = 1;
const BACK: u8 = 2;

#[derive(Default)]
struct WriterLog {
    tenant: Option<TenantId>,
    session: Option<SessionId>,
    /// Accepted message batches: (write number, returned last seq).
    messages: Vec<(usize, u64)>,
    /// Accepted usage batches: the event ids.
    usage: Vec<Vec<String>>,
    /// Accepted audit entries as returned.
    audit: Vec<AuditEntry>,
    /// Accepted steps: the write number.
    steps: Vec<usize>,
    /// Failed writes: (phase when it started, phase when it ended, kind, retryable, text).
    errors: Vec<(u8, u8, ErrorKind, bool, String)>,
    /// Accepted writes that started after the restart.
    ok_after_restart: usize,
}

/// Writes until `stop`: a turn's two messages, a usage batch of two events, an audit entry, and
/// a step holding all three, in turn, recording what was accepted.
async fn writer(
    store: PostgresStore,
    w: usize,
    phase: Arc<AtomicU8>,
    stop: Arc<AtomicBool>,
    accepted: Arc<AtomicUsize>,
) -> WriterLog {
    let tenant = TenantId::new(format!("fault-{w}-{}", TenantId::generate())).unwrap();
    let session = SessionRecord::new(
        tenant.clone(),
        SessionId::generate(),
        AgentId::from_static("support"),
    );
    assert!(
        store
            .create_session(&session.tenant, &session)
            .await
            .unwrap()
    );
    let mut log = WriterLog {
        tenant: Some(tenant.clone()),
        session: Some(session.id.clone()),
        ..WriterLog::default()
    };
    let mut i = 0usize;
    while !stop.load(Ordering::SeqCst) {
        let started = phase.load(Ordering::SeqCst);
        let result: Result<(), Error> = match i % 4 {
            3 => {
                let label = format!("w{w}-{i}");
                let step = Step {
                    messages: Some(StepMessages {
                        session: session.id.clone(),
                        run: None,
                        messages: vec![
                            Message::user(format!("{label}-a")),
                            Message::assistant(format!("{label}-b")),
                        ],
                    }),
                    usage: (0..2)
                        .map(|k| {
                            let mut e = UsageEvent::new(
                                tenant.clone(),
                                AgentId::from_static("support"),
                                UsageKind::OutputTokens,
                                20 + k,
                            );
                            e.resource = Some(label.clone());
                            e
                        })
                        .collect(),
                    audit: vec![NewAuditEntry::new(
                        tenant.clone(),
                        "fault.step",
                        format!("writer:{w}"),
                        label.clone(),
                    )],
                    ..Step::default()
                };
                store
                    .commit_step(&tenant, step)
                    .await
                    .map(|_| log.steps.push(i))
            }
            0 => {
                let batch = [
                    Message::user(format!("w{w}-{i}-a")),
                    Message::assistant(format!("w{w}-{i}-b")),
                ];
                store
                    .append_messages(&tenant, &session.id, None, &batch)
                    .await
                    .map(|last| log.messages.push((i, last)))
            }
            1 => {
                let events: Vec<UsageEvent> = (0..2)
                    .map(|k| {
                        let mut e = UsageEvent::new(
                            tenant.clone(),
                            AgentId::from_static("support"),
                            UsageKind::InputTokens,
                            10 + k,
                        );
                        e.resource = Some(format!("w{w}-{i}"));
                        e
                    })
                    .collect();
                store.append_usage(&tenant, &events).await.map(|()| {
                    log.usage
                        .push(events.iter().map(|e| e.id.to_string()).collect())
                })
            }
            _ => {
                let entry = NewAuditEntry::new(
                    tenant.clone(),
                    "fault.test",
                    format!("writer:{w}"),
                    format!("w{w}-{i}"),
                );
                store
                    .append_audit(&tenant, entry)
                    .await
                    .map(|e| log.audit.push(e))
            }
        };
        let ended = phase.load(Ordering::SeqCst);
        match result {
            Ok(()) => {
                if started == BACK {
                    log.ok_after_restart += 1;
                }
                accepted.fetch_add(1, Ordering::SeqCst);
            }
            Err(e) => {
                log.errors
                    .push((started, ended, e.kind(), e.is_retryable(), e.to_string()));
                // Do not spin while the server is away.
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        i += 1;
    }
    log
}

async fn wait_for(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// The test
// ---------------------------------------------------------------------------------------------

#[cfg_attr(agentkit_pg_unset, ignore = "AGENTKIT_TEST_POSTGRES_URL is not set")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn survives_a_server_crash_and_restart_under_load() {
    if common::admin_url(TEST).is_none() {
        return;
    }
    let server = match tokio::task::spawn_blocking(PrivateServer::start_new)
        .await
        .unwrap()
    {
        Ok(server) => Arc::new(server),
        Err(reason) => {
            common::skip(
                TEST,
                &format!("cannot run a private PostgreSQL server: {reason}"),
            );
            return;
        }
    };
    let db = TestDb::create(&server.admin_url()).await;
    // A short acquire timeout, so writes fail fast while the server is away.
    let pool = db
        .app_pool_with(
            PostgresStore::pool_options()
                .max_connections(6)
                .acquire_timeout(Duration::from_millis(1_000)),
        )
        .await;
    let store = PostgresStore::from_pool(pool).await.unwrap();
    assert!(store.enforces_row_level_security().await.unwrap());

    let phase = Arc::new(AtomicU8::new(UP));
    let stop = Arc::new(AtomicBool::new(false));
    let accepted = Arc::new(AtomicUsize::new(0));
    let writers: Vec<_> = (0..4)
        .map(|w| {
            tokio::spawn(writer(
                store.clone(),
                w,
                Arc::clone(&phase),
                Arc::clone(&stop),
                Arc::clone(&accepted),
            ))
        })
        .collect();

    // Load, then crash the server in the middle of it.
    wait_for("writes before the crash", Duration::from_secs(60), || {
        accepted.load(Ordering::SeqCst) >= 200
    })
    .await;
    let crash = Arc::clone(&server);
    tokio::task::spawn_blocking(move || crash.crash())
        .await
        .unwrap()
        .unwrap();
    phase.store(DOWN, Ordering::SeqCst);
    let accepted_at_crash = accepted.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(3)).await;

    // Same port, same data directory: crash recovery, then the same store must work again.
    let restart = Arc::clone(&server);
    tokio::task::spawn_blocking(move || restart.start())
        .await
        .unwrap()
        .unwrap();
    phase.store(BACK, Ordering::SeqCst);
    let accepted_at_restart = accepted.load(Ordering::SeqCst);
    wait_for(
        "writes after the restart (the store must recover by itself)",
        Duration::from_secs(60),
        || accepted.load(Ordering::SeqCst) >= accepted_at_restart + 200,
    )
    .await;
    stop.store(true, Ordering::SeqCst);
    let mut logs = Vec::new();
    for w in writers {
        logs.push(w.await.unwrap());
    }

    // While down: failures, all retryable. Overall: every failure retryable.
    let errors: Vec<_> = logs.iter().flat_map(|l| l.errors.iter()).collect();
    let while_down = errors.iter().filter(|e| e.0 == DOWN).count();
    assert!(while_down > 0, "writes while the server is down must fail");
    for (started, ended, kind, retryable, text) in &errors {
        assert!(
            retryable,
            "a write failing because of the crash must be retryable \
             (phase {started}->{ended}, {kind:?}): {text}"
        );
    }
    let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
    for e in &errors {
        *kinds.entry(format!("{:?}", e.2)).or_default() += 1;
    }
    eprintln!(
        "accepted writes: {} ({} before the crash); failed: {} ({} started while down), kinds \
         {kinds:?}",
        accepted.load(Ordering::SeqCst),
        accepted_at_crash,
        errors.len(),
        while_down,
    );
    for e in errors.iter().filter(|e| e.0 != DOWN).take(5) {
        eprintln!("  failure around the crash: {:?} {}", e.2, e.4);
    }

    // Every writer recovered on the same store; nothing accepted was lost.
    for (w, log) in logs.iter().enumerate() {
        assert!(
            log.ok_after_restart > 0,
            "writer {w}: no write succeeded after the restart"
        );
        let tenant = log.tenant.as_ref().unwrap();
        let session = log.session.as_ref().unwrap();

        let messages = store
            .load_messages(tenant, session, MessageWindow::All)
            .await
            .unwrap();
        let seqs: Vec<u64> = messages.iter().map(|m| m.seq).collect();
        assert_eq!(
            seqs,
            (1..=messages.len() as u64).collect::<Vec<_>>(),
            "writer {w}: message sequence numbers must have no gaps"
        );
        for (i, last) in &log.messages {
            let at = usize::try_from(*last).unwrap();
            let texts: Vec<&str> = messages[at - 2..at]
                .iter()
                .map(|m| m.message.text())
                .collect();
            assert_eq!(
                texts,
                vec![format!("w{w}-{i}-a"), format!("w{w}-{i}-b")],
                "writer {w}: accepted batch {i} must be stored at {}..={last}",
                last - 1
            );
        }
        // Nothing half-written: every stored batch is whole (its two messages, adjacent).
        assert!(
            messages.len() % 2 == 0,
            "writer {w}: a batch was half-written"
        );
        for pair in messages.chunks(2) {
            let (a, b) = (pair[0].message.text(), pair[1].message.text());
            assert!(
                a.ends_with("-a") && b.ends_with("-b") && a[..a.len() - 2] == b[..b.len() - 2],
                "writer {w}: half-written batch: {a:?}, {b:?}"
            );
        }
        // The session's counter agrees with the rows: the next append continues the sequence.
        let next = store
            .append_messages(tenant, session, None, &[Message::user("after")])
            .await
            .unwrap();
        assert_eq!(
            next,
            messages.len() as u64 + 1,
            "writer {w}: next sequence number"
        );

        let usage = store.list_usage(tenant, &UsageQuery::all()).await.unwrap();
        let stored: BTreeSet<String> = usage.iter().map(|e| e.id.to_string()).collect();
        for batch in &log.usage {
            for id in batch {
                assert!(
                    stored.contains(id),
                    "writer {w}: accepted usage event {id} lost"
                );
            }
        }
        let mut per_batch: BTreeMap<&str, usize> = BTreeMap::new();
        for e in &usage {
            *per_batch
                .entry(e.resource.as_deref().unwrap_or(""))
                .or_default() += 1;
        }
        assert!(
            per_batch.values().all(|n| *n == 2),
            "writer {w}: a usage batch was half-written: {per_batch:?}"
        );

        let chain = store.list_audit(tenant, &AuditQuery::all()).await.unwrap();
        assert_eq!(
            verify_audit_chain(&chain),
            Ok(()),
            "writer {w}: the audit chain must verify after the crash"
        );
        for entry in &log.audit {
            let at = usize::try_from(entry.seq).unwrap();
            assert_eq!(
                chain.get(at - 1),
                Some(entry),
                "writer {w}: accepted audit entry {} lost or changed",
                entry.seq
            );
        }
        assert!(
            chain
                .iter()
                .all(|e| e.entry.at == e.entry.at.trunc_subsecs(6)),
            "stored audit times are microseconds"
        );
        // Steps: whole or absent, and every accepted one whole.
        let texts: BTreeSet<&str> = messages.iter().map(|m| m.message.text()).collect();
        let stepped: BTreeSet<&str> = chain
            .iter()
            .filter(|e| e.entry.kind == "fault.step")
            .map(|e| e.entry.action.as_str())
            .collect();
        let metered: BTreeSet<&str> = usage
            .iter()
            .filter(|e| e.kind == UsageKind::OutputTokens)
            .filter_map(|e| e.resource.as_deref())
            .collect();
        assert_eq!(
            stepped, metered,
            "writer {w}: steps with an audit entry and steps with usage differ"
        );
        for label in &stepped {
            assert!(
                texts.contains(format!("{label}-a").as_str())
                    && texts.contains(format!("{label}-b").as_str()),
                "writer {w}: step {label} has its audit entry and usage but not its messages"
            );
        }
        let step_messages = messages
            .iter()
            .filter(|m| {
                let t = m.message.text();
                let label = t.get(..t.len().saturating_sub(2)).unwrap_or("");
                metered.contains(label)
            })
            .count();
        assert_eq!(
            step_messages,
            2 * stepped.len(),
            "writer {w}: messages of steps that have neither usage nor audit"
        );
        for i in &log.steps {
            let label = format!("w{w}-{i}");
            assert!(
                stepped.contains(label.as_str()),
                "writer {w}: accepted step {label} lost"
            );
        }
        assert!(!log.steps.is_empty(), "writer {w}: no step was accepted");
    }

    store.pool().close().await;
    // The whole server is thrown away; dropping it stops it and removes its directory.
    db.forget();
    drop(server);
}
