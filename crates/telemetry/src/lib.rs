//! OpenTelemetry traces for morphogen runs.
//!
//! The trainer and the engine emit `tracing` spans (run, epoch, step, controller decision, each
//! command, checkpoint save and load, rollback, and each seeded layer's forward work). Without a
//! subscriber they cost one relaxed atomic load each. [`Tracing::install`] turns them into OpenTelemetry
//! spans through `tracing-opentelemetry`, exported over OTLP/HTTP (protobuf) to a collector or
//! printed to stdout; [`subscriber`] does the same for a provider of your own (the tests use the
//! SDK's in-memory exporter). No async runtime: the SDK's batch processor runs on its own
//! thread and [`OtlpClient`] posts over `std::net`.
//!
//! A profile ([`Tracing::install`] with a profile path) writes every span, down to each seeded
//! layer's forward work, as a Chrome trace file that opens in Perfetto (ui.perfetto.dev) or
//! `chrome://tracing`.
#![warn(missing_docs)]

mod client;

pub use client::OtlpClient;
pub use tracing::Level;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use std::time::Duration;
use tracing::level_filters::LevelFilter;
use tracing::Subscriber;
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::Layer;

/// Where spans go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Export {
    /// Printed to stdout by `opentelemetry-stdout`, a batch at a time.
    Stdout,
    /// Posted as OTLP/HTTP protobuf to `<endpoint>/v1/traces` (e.g. `http://127.0.0.1:4318`, a
    /// collector's OTLP/HTTP port). Plain `http://` only: put a local collector in front of a
    /// TLS endpoint.
    Otlp {
        /// The collector's base URL.
        endpoint: String,
    },
}

/// What can go wrong setting traces up.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// The OTLP endpoint is not a plain `http://host:port` URL.
    #[error(
        "OTLP endpoint {endpoint:?}: {problem}; give a collector's OTLP/HTTP base URL such as http://127.0.0.1:4318"
    )]
    Endpoint {
        /// The endpoint given.
        endpoint: String,
        /// What is wrong with it.
        problem: String,
    },
    /// The exporter could not be built.
    #[error("cannot build the OTLP exporter: {0}")]
    Exporter(String),
    /// Another global subscriber is already installed in this process.
    #[error("a global tracing subscriber is already installed")]
    AlreadyInstalled,
}

/// The `service.name` of every span.
const SERVICE: &str = "morphogen";

/// Installed tracing: flushes and shuts the exporter down, and finishes the profile file, when
/// dropped.
pub struct Tracing {
    provider: Option<SdkTracerProvider>,
    profile: Option<tracing_chrome::FlushGuard>,
}

impl std::fmt::Debug for Tracing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tracing").field("provider", &self.provider).field("profile", &self.profile.is_some()).finish()
    }
}

impl Tracing {
    /// Sends every span of this process (the global default subscriber) to `export` at `level`
    /// and above, and morphogen's spans at all levels to a Chrome trace file at `profile`, each
    /// when given, until the returned guard is dropped. The profile leaves out Burn's and
    /// CubeCL's own spans: on a GPU they come by the million (one per kernel launch and memory
    /// reservation), slowing every step and burying the spans the profile is there to show.
    pub fn install(
        export: Option<&Export>,
        level: tracing::Level,
        profile: Option<&std::path::Path>,
    ) -> Result<Tracing, TelemetryError> {
        let provider = export.map(provider).transpose()?;
        let otel = provider.as_ref().map(|p| otel_layer(p, level));
        let (chrome, profile) = match profile {
            Some(path) => {
                let (layer, guard) = tracing_chrome::ChromeLayerBuilder::new().file(path).include_args(true).build();
                (Some(layer.with_filter(filter_fn(is_morphogen))), Some(guard))
            }
            None => (None, None),
        };
        let subscriber = tracing_subscriber::registry().with(otel).with(chrome);
        tracing::subscriber::set_global_default(subscriber).map_err(|_| TelemetryError::AlreadyInstalled)?;
        Ok(Tracing { provider, profile })
    }

    /// The tracer provider (for flushing by hand), when spans are exported.
    pub fn provider(&self) -> Option<&SdkTracerProvider> {
        self.provider.as_ref()
    }
}

impl Drop for Tracing {
    fn drop(&mut self) {
        if let Some(provider) = &self.provider {
            // Export failures were already reported once by the client; nothing more to say.
            let _ = provider.shutdown_with_timeout(Duration::from_secs(5));
        }
        // `profile`, dropped after this, finishes the trace file.
    }
}

/// Whether a span or event comes from one of morphogen's crates.
fn is_morphogen(metadata: &tracing::Metadata<'_>) -> bool {
    metadata.target().starts_with("morphogen")
}

/// The URL spans are posted to: `endpoint` with `/v1/traces` appended (unless it already ends
/// so), checked to be `http://host[:port][/path]`.
pub fn traces_url(endpoint: &str) -> Result<String, TelemetryError> {
    let bad = |problem: &str| TelemetryError::Endpoint { endpoint: endpoint.into(), problem: problem.into() };
    let rest = endpoint.strip_prefix("http://").ok_or_else(|| bad("only http:// is supported"))?;
    let authority = rest.split('/').next().unwrap_or_default();
    if authority.is_empty() {
        return Err(bad("no host"));
    }
    let port = authority.rsplit_once(':').filter(|_| !authority.ends_with(']')).map(|(_, port)| port);
    if port.is_some_and(|port| port.parse::<u16>().is_err()) {
        return Err(bad("the port is not a number from 0 to 65535"));
    }
    let base = endpoint.trim_end_matches('/');
    Ok(if base.ends_with("/v1/traces") { base.to_string() } else { format!("{base}/v1/traces") })
}

/// A tracer provider exporting to `export` in batches from a background thread.
pub fn provider(export: &Export) -> Result<SdkTracerProvider, TelemetryError> {
    let builder = SdkTracerProvider::builder().with_resource(Resource::builder().with_service_name(SERVICE).build());
    Ok(match export {
        Export::Stdout => builder.with_batch_exporter(opentelemetry_stdout::SpanExporter::default()),
        Export::Otlp { endpoint } => {
            let url = traces_url(endpoint)?;
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_http_client(OtlpClient::new(&url))
                .with_endpoint(url)
                .with_timeout(client::TIMEOUT)
                .with_retry_policy(opentelemetry_otlp::RetryPolicy::disabled())
                .build()
                .map_err(|e| TelemetryError::Exporter(e.to_string()))?;
            builder.with_batch_exporter(exporter)
        }
    }
    .build())
}

/// A subscriber that turns spans at `level` and above into OpenTelemetry spans of `provider`.
/// Use it with `tracing::subscriber::with_default` to trace one piece of code.
pub fn subscriber(provider: &SdkTracerProvider, level: tracing::Level) -> impl Subscriber + Send + Sync {
    tracing_subscriber::registry().with(otel_layer(provider, level))
}

/// The layer turning spans at `level` and above into OpenTelemetry spans of `provider`.
fn otel_layer<S>(provider: &SdkTracerProvider, level: tracing::Level) -> impl Layer<S> + Send + Sync
where
    S: Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span> + Send + Sync,
{
    tracing_opentelemetry::layer().with_tracer(provider.tracer(SERVICE)).with_filter(LevelFilter::from_level(level))
}
