//! Telemetry: the host's metrics (through the OpenTelemetry API: a no-op until a provider is
//! installed) and, with feature `otel`, the OTLP pipeline for agentkit's spans and these
//! metrics.
//!
//! agentkit's spans follow the OpenTelemetry GenAI semantic conventions: `agent.turn`
//! (`gen_ai.operation.name = invoke_agent`, `gen_ai.agent.id`), `model.call` (`chat`,
//! `gen_ai.system`, `gen_ai.request.model`, `gen_ai.response.model`, `gen_ai.usage.input_tokens`,
//! `gen_ai.usage.output_tokens`) and `tool.call` (`execute_tool`, `gen_ai.tool.name`,
//! `gen_ai.tool.call.id`). No span carries arguments, outputs, prompts or keys.

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Gauge, Meter};

/// The host's instruments.
#[derive(Clone)]
pub struct Metrics {
    turns: Counter<u64>,
    tool_calls: Counter<u64>,
    denials: Counter<u64>,
    approvals_pending: Gauge<u64>,
    cost: Counter<f64>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// Instruments on the global meter provider (install one first to export them).
    pub fn global() -> Self {
        Self::new(&opentelemetry::global::meter("agentkit-host"))
    }

    /// Instruments on `meter`.
    pub fn new(meter: &Meter) -> Self {
        Self {
            turns: meter
                .u64_counter("agentkit.turns")
                .with_description("Agent runs and resumes")
                .build(),
            tool_calls: meter
                .u64_counter("agentkit.tool_calls")
                .with_description("Tool calls that ran")
                .build(),
            denials: meter
                .u64_counter("agentkit.tool_denials")
                .with_description("Tool calls refused or denied")
                .build(),
            approvals_pending: meter
                .u64_gauge("agentkit.approvals_pending")
                .with_description("Approval requests waiting, per tenant")
                .build(),
            cost: meter
                .f64_counter("agentkit.cost")
                .with_unit("USD")
                .with_description("Priced usage")
                .build(),
        }
    }

    /// One finished run (or resume) of `agent` for `tenant`: its calls, refusals and cost.
    pub fn record_run(&self, tenant: &str, agent: &str, calls: u64, denied: u64, cost_usd: f64) {
        let attrs = [
            KeyValue::new("tenant", tenant.to_string()),
            KeyValue::new("gen_ai.agent.id", agent.to_string()),
        ];
        self.turns.add(1, &attrs);
        self.tool_calls.add(calls, &attrs);
        self.denials.add(denied, &attrs);
        if cost_usd > 0.0 {
            self.cost.add(cost_usd, &attrs);
        }
    }

    /// The number of requests waiting for `tenant`.
    pub fn approvals_pending(&self, tenant: &str, pending: u64) {
        self.approvals_pending
            .record(pending, &[KeyValue::new("tenant", tenant.to_string())]);
    }
}

/// The OTLP pipeline (feature `otel`): spans from `tracing` and the metrics, exported over
/// OTLP/HTTP to `endpoint` (`OTEL_EXPORTER_OTLP_ENDPOINT`, e.g. `http://127.0.0.1:4318`).
#[cfg(feature = "otel")]
pub mod otlp {
    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry_otlp::WithExportConfig;
    use opentelemetry_sdk::metrics::SdkMeterProvider;
    use opentelemetry_sdk::trace::SdkTracerProvider;

    /// The installed providers; shut them down (flushing) on exit.
    #[derive(Debug)]
    pub struct Pipeline {
        /// Spans.
        pub tracer: SdkTracerProvider,
        /// Metrics.
        pub meter: SdkMeterProvider,
    }

    impl Pipeline {
        /// Flushes and stops both providers.
        pub fn shutdown(self) {
            let _ = self.tracer.shutdown();
            let _ = self.meter.shutdown();
        }
    }

    /// Builds the exporters for `endpoint`, installs the meter provider globally, and returns
    /// the `tracing` layer to add to the subscriber.
    pub fn install<S>(
        endpoint: &str,
    ) -> Result<
        (
            Pipeline,
            tracing_opentelemetry::OpenTelemetryLayer<S, opentelemetry_sdk::trace::Tracer>,
        ),
        Box<dyn std::error::Error>,
    >
    where
        S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    {
        let base = endpoint.trim_end_matches('/');
        let spans = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_endpoint(format!("{base}/v1/traces"))
            .build()?;
        let tracer = SdkTracerProvider::builder()
            .with_batch_exporter(spans)
            .with_resource(resource())
            .build();
        let metrics = opentelemetry_otlp::MetricExporter::builder()
            .with_http()
            .with_endpoint(format!("{base}/v1/metrics"))
            .build()?;
        let meter = SdkMeterProvider::builder()
            .with_periodic_exporter(metrics)
            .with_resource(resource())
            .build();
        opentelemetry::global::set_meter_provider(meter.clone());
        let layer = tracing_opentelemetry::layer().with_tracer(tracer.tracer("agentkit-host"));
        Ok((Pipeline { tracer, meter }, layer))
    }

    fn resource() -> opentelemetry_sdk::Resource {
        opentelemetry_sdk::Resource::builder()
            .with_service_name("agentkit-host")
            .build()
    }
}
