//! Where log lines go and how they look: stderr, as text for people or as
//! JSON lines for log shippers (`--log-format json`), filtered by
//! `--log-level`, else `RINGKV_LOG`, else `RUST_LOG`, else `info` — each in
//! tracing-subscriber's `EnvFilter` syntax (`debug`,
//! `info,ringkv_server::transport=debug`).

use clap::{Args, ValueEnum};
use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use tracing_subscriber::EnvFilter;

/// The environment variable naming the log filter.
pub const ENV: &str = "RINGKV_LOG";

/// Set once JSON logging is installed: the process's last words then go
/// out as a JSON line too, so a log shipper parses every line.
static JSON: AtomicBool = AtomicBool::new(false);

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// One line per event for people: time, level, target, message.
    #[default]
    Text,
    /// One JSON object per line: `timestamp`, `level`, `target`,
    /// `fields.message` and the event's other fields.
    Json,
}

/// The logging flags of `ringkv node`.
#[derive(Args, Clone, Debug, Default)]
pub struct LogArgs {
    /// How log lines look on stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Which events to log, in EnvFilter syntax (`warn`,
    /// `info,ringkv_server::transport=debug`); overrides $RINGKV_LOG.
    #[arg(long, value_name = "LEVEL")]
    pub log_level: Option<String>,
}

/// Install the subscriber for the whole process; an unreadable filter is
/// an error that names where it came from.
pub fn init(args: &LogArgs) -> Result<(), String> {
    let filter = filter(args)?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let installed = match args.log_format {
        LogFormat::Json => {
            JSON.store(true, Ordering::Relaxed);
            builder.json().try_init()
        }
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
    };
    installed.map_err(|e| format!("cannot set up logging: {e}"))
}

/// Report the error that ends the process, in the log's format.
pub fn fatal(message: &str) {
    if JSON.load(Ordering::Relaxed) {
        tracing::error!(fatal = true, "{message}");
    } else {
        eprintln!("error: {message}");
    }
}

/// The flag's filter, else the environment's, else `info`.
fn filter(args: &LogArgs) -> Result<EnvFilter, String> {
    let (source, directives) = match &args.log_level {
        Some(level) => ("--log-level", level.clone()),
        None => match std::env::var(ENV) {
            Ok(value) => (ENV, value),
            // RUST_LOG as before RINGKV_LOG existed; a bad one is ignored.
            Err(_) => {
                return Ok(EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
            }
        },
    };
    EnvFilter::try_new(&directives)
        .map_err(|e| format!("{source} {directives:?} is not a log filter (e.g. info, debug, warn,ringkv_server=debug): {e}"))
}
