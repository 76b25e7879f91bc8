//! With feature `otel`: a chat through the host exports agentkit's spans with the
//! OpenTelemetry GenAI attributes, and the host's metrics; no key or redacted value in any
//! attribute.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use agentkit_example_host::router;
use axum::body::Body;
use axum::http::{Request, header};
use http_body_util::BodyExt;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry::{Key, Value as OtelValue};
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use tower::ServiceExt;
use tracing_subscriber::layer::SubscriberExt;

fn attr<'a>(span: &'a SpanData, key: &str) -> Option<&'a OtelValue> {
    span.attributes
        .iter()
        .find(|kv| kv.key == Key::from(key.to_string()))
        .map(|kv| &kv.value)
}

fn metric_names(metrics: &[ResourceMetrics]) -> Vec<String> {
    metrics
        .iter()
        .flat_map(|rm| rm.scope_metrics())
        .flat_map(|sm| sm.metrics())
        .map(|m| m.name().to_string())
        .collect()
}

#[tokio::test]
async fn a_chat_exports_genai_spans_and_metrics() {
    let spans = InMemorySpanExporter::default();
    let tracer = SdkTracerProvider::builder()
        .with_simple_exporter(spans.clone())
        .build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(tracer.tracer("test")));
    let _guard = tracing::subscriber::set_default(subscriber);
    let metrics = InMemoryMetricExporter::default();
    let meter = SdkMeterProvider::builder()
        .with_reader(PeriodicReader::builder(metrics.clone()).build())
        .build();
    opentelemetry::global::set_meter_provider(meter.clone());

    let dir = tempfile::tempdir().unwrap();
    let app = common::app(&dir).await;
    let key = common::tenant(&app, "acme").await;
    let response = router(app)
        .oneshot(
            Request::post("/v1/sessions/s1/messages")
                .header(header::AUTHORIZATION, format!("Bearer {key}"))
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(r#"{"message": "Sell Spicy Chips"}"#))
                .unwrap(),
        )
        .await
        .unwrap();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert!(String::from_utf8_lossy(&body).contains("suspended"));

    tracer.force_flush().unwrap();
    let finished = spans.get_finished_spans().unwrap();
    let named = |name: &'static str| finished.iter().find(move |s| s.name == name);
    let model = named("model.call").expect("a model.call span");
    assert_eq!(
        attr(model, "gen_ai.operation.name").unwrap().as_str(),
        "chat"
    );
    assert_eq!(
        attr(model, "gen_ai.request.model").unwrap().as_str(),
        "rules-v1"
    );
    assert!(attr(model, "gen_ai.system").is_some());
    match attr(model, "gen_ai.usage.input_tokens").unwrap() {
        OtelValue::I64(n) => assert!(*n > 0),
        other => panic!("input tokens: {other:?}"),
    }
    assert!(attr(model, "gen_ai.usage.output_tokens").is_some());
    let tool = named("tool.call").expect("a tool.call span");
    assert_eq!(
        attr(tool, "gen_ai.operation.name").unwrap().as_str(),
        "execute_tool"
    );
    assert_eq!(
        attr(tool, "gen_ai.tool.name").unwrap().as_str(),
        "budget.get_balance"
    );
    let turn = named("agent.turn").expect("an agent.turn span");
    assert_eq!(attr(turn, "gen_ai.agent.id").unwrap().as_str(), "marketing");
    for span in &finished {
        for kv in &span.attributes {
            let text = kv.value.as_str();
            assert!(!text.contains(&key), "the API key in {}", span.name);
            assert!(
                !text.contains("ads@acme.example"),
                "a redacted value in {}",
                span.name
            );
        }
    }

    meter.force_flush().unwrap();
    let exported = metrics.get_finished_metrics().unwrap();
    let names = metric_names(&exported);
    assert!(names.contains(&"agentkit.turns".to_string()), "{names:?}");
    assert!(
        names.contains(&"agentkit.tool_calls".to_string()),
        "{names:?}"
    );
}
