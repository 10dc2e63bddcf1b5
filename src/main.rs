//! The `imgedge` binary: `imgedge [serve]` serves until SIGTERM or Ctrl-C; `imgedge sweep`
//! removes orphaned objects; `sign`, `url`, `user` and `presets` are the owner's tools
//! ([`imgedge::cli`]).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use imgedge::{cli, telemetry, App, Config};

const USAGE: &str = "usage: imgedge [serve] [--config PATH]
       imgedge sweep [--dry-run] [--grace-secs N] [--config PATH]
       imgedge healthcheck [--config PATH]";

/// What the command line asks for.
enum Command {
    Help,
    Serve,
    Healthcheck,
    Sweep { dry_run: bool, grace: Duration },
    Tool(cli::Tool),
}

fn main() -> ExitCode {
    imgedge::allocator::tune();
    let (command, config_path) = match parse_args(std::env::args().skip(1)) {
        Ok(parsed) => parsed,
        Err(message) => {
            eprintln!("imgedge: {message}\n{USAGE}\n{}", cli::USAGE);
            return ExitCode::from(2);
        }
    };
    if matches!(command, Command::Help) {
        println!("{USAGE}\n{}", cli::USAGE);
        return ExitCode::SUCCESS;
    }
    let config = match Config::load(config_path) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("imgedge: invalid configuration: {e}");
            return ExitCode::from(2);
        }
    };
    if matches!(command, Command::Healthcheck) {
        return healthcheck(config.server.port);
    }
    if !matches!(command, Command::Tool(_)) {
        telemetry::init(&config.log);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("the tokio runtime starts");
    runtime.block_on(async move {
        match command {
            Command::Help | Command::Healthcheck => ExitCode::SUCCESS,
            Command::Tool(tool) => {
                let stdin = || std::io::stdin().lines().next().and_then(Result::ok).unwrap_or_default();
                match cli::run(tool, &config, |name| std::env::var(name).ok(), stdin).await {
                    Ok(out) => {
                        if !out.is_empty() {
                            println!("{out}");
                        }
                        ExitCode::SUCCESS
                    }
                    Err(cli::ToolError::Usage(message)) => {
                        eprintln!("imgedge: {message}");
                        ExitCode::from(2)
                    }
                    Err(cli::ToolError::Backend(message)) => {
                        eprintln!("imgedge: {message}");
                        ExitCode::FAILURE
                    }
                }
            }
            Command::Serve => match App::build(config).await {
                Ok(app) => {
                    imgedge::allocator::release_free_pages(imgedge::allocator::TRIM_PERIOD);
                    app.run(telemetry::shutdown_signal()).await;
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    tracing::error!(error = %chain(&e), "start-up failed");
                    ExitCode::FAILURE
                }
            },
            Command::Sweep { dry_run, grace } => match imgedge::app::sweep(&config, grace, dry_run).await {
                Ok(report) => {
                    println!(
                        "scanned {} objects: {} orphaned, {} deleted, {} younger than the grace period kept, \
                         {} claimed by an upload meanwhile; {} empty folders removed; {} expired claims \
                         forgotten{}",
                        report.scanned,
                        report.orphans,
                        report.deleted,
                        report.recent,
                        report.claimed,
                        report.folders,
                        report.claims,
                        if dry_run { " (dry run)" } else { "" }
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    tracing::error!(error = %chain(&*e), "sweep failed");
                    ExitCode::FAILURE
                }
            },
        }
    })
}

fn parse_args(args: impl Iterator<Item = String>) -> Result<(Command, Option<PathBuf>), String> {
    let mut args: Vec<String> = args.collect();
    // `--config PATH` goes with every command; the tools parse the rest themselves.
    let mut config = None;
    if let Some(at) = args.iter().position(|a| a == "--config" || a == "-c") {
        let path = args.get(at + 1).ok_or("--config needs a path")?.clone();
        config = Some(PathBuf::from(path));
        args.drain(at..at + 2);
    }
    if let Some(tool) = cli::parse(args.first().map_or("", String::as_str), args.get(1..).unwrap_or_default())? {
        return Ok((Command::Tool(tool), config));
    }
    let mut args = args.into_iter();
    let mut command = Command::Serve;
    let mut sweep = false;
    let (mut dry_run, mut grace) = (false, Duration::from_secs(3600));
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "serve" => {}
            "sweep" => sweep = true,
            "healthcheck" => command = Command::Healthcheck,
            "--dry-run" => dry_run = true,
            "--grace-secs" => {
                let value = args.next().ok_or("--grace-secs needs a number")?;
                grace =
                    Duration::from_secs(value.parse().map_err(|_| format!("--grace-secs: `{value}` is not a number"))?);
            }
            "--help" | "-h" | "help" => return Ok((Command::Help, None)),
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    if sweep {
        command = Command::Sweep { dry_run, grace };
    }
    Ok((command, config))
}

/// An error and its causes, `outer: inner: …`.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

/// `GET /healthz` on the local port; exit 0 on a 200. For container health checks without curl.
fn healthcheck(port: u16) -> ExitCode {
    use std::io::{Read, Write};
    let check = || -> std::io::Result<bool> {
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        let mut stream = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
        stream.set_read_timeout(Some(Duration::from_secs(2)))?;
        stream.write_all(b"GET /healthz HTTP/1.0\r\nHost: localhost\r\n\r\n")?;
        let mut head = [0u8; 12];
        stream.read_exact(&mut head)?;
        Ok(head.starts_with(b"HTTP/1.") && &head[9..12] == b"200")
    };
    match check() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("imgedge healthcheck: {e}");
            ExitCode::FAILURE
        }
    }
}
