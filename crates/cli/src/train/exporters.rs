//! What a run exports while it trains, besides its files: Prometheus metrics
//! (`--metrics-addr`) and OpenTelemetry traces (`--otlp-endpoint`, `--trace-stdout`).

use super::args::{TraceLevel, TrainArgs};
use crate::error::CliError;
use morphogen_metrics::MetricsObserver;
use morphogen_telemetry::{Export, Level, Tracing};

/// The registry training feeds, served on `--metrics-addr` when given.
pub fn serve_metrics(args: &TrainArgs) -> Result<MetricsObserver, CliError> {
    let metrics = MetricsObserver::default();
    if let Some(addr) = args.metrics_addr {
        let server = morphogen_metrics::serve(addr, metrics.clone()).map_err(|e| CliError::Config {
            path: "--metrics-addr".into(),
            problem: format!("cannot listen on {addr}: {e}"),
        })?;
        eprintln!("metrics: http://{}/metrics", server.local_addr());
    }
    Ok(metrics)
}

/// Installs the span exporter the flags ask for, if any; spans are flushed when the returned
/// guard is dropped.
pub fn install_tracing(args: &TrainArgs) -> Result<Option<Tracing>, CliError> {
    let level = match args.trace_level {
        TraceLevel::Info => Level::INFO,
        TraceLevel::Debug => Level::DEBUG,
        TraceLevel::Trace => Level::TRACE,
    };
    trace_export(args)
        .map(|export| {
            morphogen_telemetry::install(&export, level)
                .map_err(|e| CliError::Config { path: "--otlp-endpoint".into(), problem: e.to_string() })
        })
        .transpose()
}

/// Where `--otlp-endpoint` / `--trace-stdout` send spans, if anywhere.
fn trace_export(args: &TrainArgs) -> Option<Export> {
    match (&args.otlp_endpoint, args.trace_stdout) {
        (Some(endpoint), _) => Some(Export::Otlp { endpoint: endpoint.clone() }),
        (None, true) => Some(Export::Stdout),
        (None, false) => None,
    }
}
