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

/// Installs the span exporter and the profile the flags ask for, if any; spans are flushed and
/// the profile finished when the returned guard is dropped.
pub fn install_tracing(args: &TrainArgs) -> Result<Option<Tracing>, CliError> {
    let level = match args.trace_level {
        TraceLevel::Info => Level::INFO,
        TraceLevel::Debug => Level::DEBUG,
        TraceLevel::Trace => Level::TRACE,
    };
    let export = trace_export(args);
    if export.is_none() && args.profile.is_none() {
        return Ok(None);
    }
    if let Some(path) = &args.profile {
        check_profile_path(path)?;
    }
    Tracing::install(export.as_ref(), level, args.profile.as_deref())
        .map(Some)
        .map_err(|e| CliError::Config { path: "--otlp-endpoint".into(), problem: e.to_string() })
}

/// A profile is written where the run can create a file: its folder must exist.
fn check_profile_path(path: &std::path::Path) -> Result<(), CliError> {
    let folder = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
    if folder.is_dir() {
        return Ok(());
    }
    Err(CliError::Config {
        path: "--profile".into(),
        problem: format!("folder {} does not exist; create it or write the profile elsewhere", folder.display()),
    })
}

/// Where `--otlp-endpoint` / `--trace-stdout` send spans, if anywhere.
fn trace_export(args: &TrainArgs) -> Option<Export> {
    match (&args.otlp_endpoint, args.trace_stdout) {
        (Some(endpoint), _) => Some(Export::Otlp { endpoint: endpoint.clone() }),
        (None, true) => Some(Export::Stdout),
        (None, false) => None,
    }
}
