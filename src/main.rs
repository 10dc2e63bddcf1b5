//! The `imgedge` binary: load config, start tracing, serve until SIGTERM or Ctrl-C.

use std::process::ExitCode;

use imgedge::{telemetry, App, Config};

fn main() -> ExitCode {
    let config = match Config::load_from_args(std::env::args().skip(1)) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("imgedge: invalid configuration: {e}");
            return ExitCode::from(2);
        }
    };
    telemetry::init(&config.log);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("the tokio runtime starts");
    runtime.block_on(async move {
        let app = match App::build(config).await {
            Ok(app) => app,
            Err(e) => {
                tracing::error!(error = %e, "start-up failed");
                return ExitCode::FAILURE;
            }
        };
        app.run(telemetry::shutdown_signal()).await;
        ExitCode::SUCCESS
    })
}
