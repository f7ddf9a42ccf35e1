//! The stderr log set-up of httpq's programs (httpqd, the examples), in one place: the filter
//! from `HTTPQ_LOG`, else `RUST_LOG`, else `info`; colours only when stderr is a terminal, so a
//! log file or the journal never gets escape codes.

/// Installs the global tracing subscriber as described in the module docs.
///
/// # Panics
/// A global subscriber is already installed.
pub fn init() {
    use std::io::IsTerminal;
    let filter = std::env::var("HTTPQ_LOG")
        .ok()
        .and_then(|f| tracing_subscriber::EnvFilter::try_new(f).ok())
        .or_else(|| tracing_subscriber::EnvFilter::try_from_default_env().ok())
        .unwrap_or_else(|| "info".into());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
}
