//! A reviewer in a real browser: headless Chromium (Debian's `chromium` and `chromium-driver`,
//! which `.ci/run` installs) driven over WebDriver opens the reviewer's page, signs in, approves
//! one request and rejects another; the approved run resumed and its tool ran exactly once,
//! the rejected one never ran. A screenshot is saved and its path printed. Skips locally with a
//! printed reason when Chromium is missing; fails under `CI=true`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use agentkit_example_host::router;
use axum::body::Body;
use axum::http::{Request, header};
use fantoccini::{ClientBuilder, Locator};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

fn browser() -> Option<(PathBuf, PathBuf)> {
    let chromium = PathBuf::from("/usr/bin/chromium");
    let driver = PathBuf::from("/usr/bin/chromedriver");
    if chromium.exists() && driver.exists() {
        return Some((chromium, driver));
    }
    let reason = "Chromium is not installed (apt-get install chromium chromium-driver; \
                  bash .ci/run installs them)";
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "CI=true: {reason}"
    );
    eprintln!("skipping: {reason}");
    None
}

async fn api(router: &axum::Router, method: &str, path: &str, key: &str, body: Value) -> Value {
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header(header::AUTHORIZATION, format!("Bearer {key}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(if method == "GET" {
            Body::empty()
        } else {
            Body::from(body.to_string())
        })
        .unwrap();
    let response = router.clone().oneshot(request).await.unwrap();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    if path == "/v1/audit" {
        return Value::Array(
            String::from_utf8_lossy(&bytes)
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect(),
        );
    }
    serde_json::from_slice(&bytes).unwrap()
}

/// Waits until the element at `css` shows `needle` (a form post reloads the page: an element
/// of the old page goes stale, so it is looked up again each time).
async fn wait_text(c: &fantoccini::Client, css: &str, needle: &str) -> String {
    let mut last = String::new();
    for _ in 0..100 {
        if let Ok(element) = c.find(Locator::Css(css)).await
            && let Ok(text) = element.text().await
        {
            if text.contains(needle) {
                return text;
            }
            last = text;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("`{css}` never showed `{needle}` (last: `{last}`)");
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reviewer_approves_one_request_and_rejects_another_in_chromium() {
    let Some((chromium, driver)) = browser() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let app = common::app(&dir).await;
    let key = common::tenant(&app, "acme").await;
    let router = router(app);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let served = router.clone();
    tokio::spawn(async move { axum::serve(listener, served).await.unwrap() });

    // Two runs wait for approval.
    let mut ids = Vec::new();
    for session in ["s1", "s2"] {
        let chat = api(
            &router,
            "POST",
            &format!("/v1/sessions/{session}/messages"),
            &key,
            json!({"message": "Sell Spicy Chips"}),
        )
        .await;
        assert_eq!(chat["status"], "suspended", "{chat}");
        ids.push(chat["approvals"][0]["id"].as_str().unwrap().to_string());
    }

    let port = free_port();
    let mut chromedriver = tokio::process::Command::new(&driver)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let webdriver = format!("http://127.0.0.1:{port}");
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": chromium,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1280,1024"]
        }),
    );
    let mut client = None;
    for _ in 0..50 {
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        match ClientBuilder::new(connector)
            .capabilities(caps.clone())
            .connect(&webdriver)
            .await
        {
            Ok(c) => {
                client = Some(c);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
    let c = client.expect("chromedriver did not start");

    c.goto(&format!("{base}/review")).await.unwrap();
    c.find(Locator::Css("#key"))
        .await
        .unwrap()
        .send_keys(&key)
        .await
        .unwrap();
    c.find(Locator::Css("#sign-in"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    for id in &ids {
        c.wait()
            .for_element(Locator::Css(&format!("#approval-{id}")))
            .await
            .unwrap();
    }
    let page = c.source().await.unwrap();
    assert!(page.contains("[REDACTED]") && !page.contains("ads@acme.example"));
    let shots = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target"))
        .join("screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let pending = shots.join("review-page-pending.png");
    std::fs::write(&pending, c.screenshot().await.unwrap()).unwrap();
    println!("screenshot: {}", pending.display());

    // Approve the first.
    let row = c
        .find(Locator::Css(&format!("#approval-{}", ids[0])))
        .await
        .unwrap();
    row.find(Locator::Css("button.approve"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_text(&c, "#message", "approved; the run is completed").await;

    // Reject the second, with a reason.
    let row = c
        .find(Locator::Css(&format!("#approval-{}", ids[1])))
        .await
        .unwrap();
    row.find(Locator::Css("input[name=comment]"))
        .await
        .unwrap()
        .send_keys("not this week")
        .await
        .unwrap();
    row.find(Locator::Css("button.reject"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_text(&c, "#message", "rejected").await;
    c.wait().for_element(Locator::Css("#empty")).await.unwrap();

    let png = c.screenshot().await.unwrap();
    let path = shots.join("review-page-decided.png");
    std::fs::write(&path, png).unwrap();
    println!("screenshot: {}", path.display());
    c.close().await.unwrap();
    let _ = chromedriver.kill().await;

    // The approved run's tool ran exactly once; the rejected one never.
    let audit = api(&router, "GET", "/v1/audit", &key, json!(null)).await;
    let ran: Vec<&Value> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "tool.call" && e["action"] == "marketing.create_campaign_draft")
        .collect();
    assert_eq!(ran.len(), 1, "{audit}");
    let decided: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "approval.decided")
        .filter_map(|e| e["decision"].as_str())
        .collect();
    assert_eq!(decided, ["approved", "rejected"]);
}
