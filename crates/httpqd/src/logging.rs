//! W3C access logs, as HTTP.sys's logging properties set them and `netsh`-style commands
//! manage them: `httpq add logging dir=PATH [queue=OWNER/NAME] [rollover=daily]
//! [localtime=yes] [fields=date,time,...]`, `httpq delete logging [queue=...]`,
//! `httpq show logging`. Entries are stored in the configuration registry and apply at once;
//! the listener-wide (centralized) log takes every exchange, and while there is one, queue
//! logs are not written (HTTP.sys: centralized logging replaces per-group logging).

use std::collections::BTreeMap;
use std::path::PathBuf;

use httpq_core::logging::{AccessLogOptions, LogFields, LogRollover};
use httpq_state::LoggingEntry;
use httpq_wire::control::ErrorCode;
use serde_json::{Value, json};

use crate::Daemon;
use crate::admin::{AdminOutcome, commit, invalid_arg as invalid};

/// HTTP.sys's longest log directory, in bytes.
const MAX_DIR: usize = 424;

/// At most 80 characters of a caller's value, for an error message.
fn quote(v: &str) -> String {
    format!("{:?}", v.chars().take(80).collect::<String>())
}

/// Starts the access logs `config` lists (at start-up). A log that cannot be started is
/// reported and left out; the rest run.
pub(crate) fn apply(daemon: &Daemon, config: &httpq_state::Config) {
    for entry in &config.logging {
        let started = entry.to_options().and_then(|o| {
            daemon
                .engine
                .set_access_log(entry.queue.as_deref(), Some(&o))
                .map_err(|e| e.to_string())
        });
        if let Err(e) = started {
            tracing::error!(dir = %entry.dir.display(), queue = ?entry.queue, error = %e, "access log left out: fix it with httpq delete logging and httpq add logging");
        }
    }
}

fn entry_json(e: &LoggingEntry) -> Value {
    json!({
        "queue": e.queue.as_deref().unwrap_or("(all: centralized)"),
        "dir": e.dir.display().to_string(),
        "rollover": e.rollover,
        "localtime": if e.local_time { "yes" } else { "no" },
        "fields": e.fields,
    })
}

/// The `queue=` argument: `owner/name` (a named queue, qualified as servicestate shows it).
fn queue_arg(args: &BTreeMap<String, String>) -> Result<Option<String>, (ErrorCode, String)> {
    match args.get("queue") {
        None => Ok(None),
        Some(q) => {
            let parsed: httpq_core::queue::QueueName = q.parse().map_err(invalid)?;
            if parsed.owner().is_none() {
                return Err(invalid(format!(
                    "queue={q}: name the queue with its owner, as httpq show servicestate does (OWNER/NAME)"
                )));
            }
            Ok(Some(q.clone()))
        }
    }
}

fn parse_options(args: &BTreeMap<String, String>) -> Result<AccessLogOptions, (ErrorCode, String)> {
    let dir = args
        .get("dir")
        .ok_or_else(|| invalid("add logging needs dir=ABSOLUTE-PATH"))?;
    let path = PathBuf::from(dir);
    if !path.is_absolute() || dir.len() > MAX_DIR || dir.chars().any(char::is_control) {
        return Err(invalid(format!(
            "dir={}: expected an absolute path of at most {MAX_DIR} bytes",
            quote(dir)
        )));
    }
    let rollover: LogRollover = match args.get("rollover") {
        None => LogRollover::Daily,
        Some(r) => r
            .parse()
            .map_err(|e: httpq_core::logging::InvalidRollover| invalid(e.to_string()))?,
    };
    let local_time = match args.get("localtime").map(String::as_str) {
        None | Some("no") => false,
        Some("yes") => true,
        Some(v) => {
            return Err(invalid(format!(
                "localtime={}: expected yes or no",
                quote(v)
            )));
        }
    };
    let fields: LogFields = match args.get("fields") {
        None => LogFields::default(),
        Some(f) => f
            .parse()
            .map_err(|e: httpq_core::logging::UnknownLogField| invalid(e.to_string()))?,
    };
    Ok(AccessLogOptions {
        dir: path,
        rollover,
        local_time,
        fields,
    })
}

/// Runs a logging command; `None` if `command` is not one.
pub(crate) async fn run(
    daemon: &Daemon,
    command: &str,
    args: &BTreeMap<String, String>,
) -> Option<AdminOutcome> {
    Some(match command {
        "add logging" => add(daemon, args).await,
        "delete logging" => delete(daemon, args).await,
        "show logging" => {
            let state = daemon.state.lock().await;
            let list: Vec<Value> = state.1.logging.iter().map(entry_json).collect();
            Ok(json!({ "logging": list }))
        }
        _ => return None,
    })
}

async fn add(daemon: &Daemon, args: &BTreeMap<String, String>) -> AdminOutcome {
    let queue = queue_arg(args)?;
    let options = parse_options(args)?;
    let entry = LoggingEntry::from_options(queue.clone(), &options);
    let scope = queue.clone();
    // Refuse a second entry for the same scope before touching anything.
    {
        let state = daemon.state.lock().await;
        if state.1.logging.iter().any(|e| e.queue == scope) {
            return Err((
                ErrorCode::AlreadyExists,
                format!(
                    "{} already has an access log; delete it first (httpq delete logging{})",
                    scope.as_deref().unwrap_or("the listener"),
                    scope
                        .as_deref()
                        .map(|q| format!(" queue={q}"))
                        .unwrap_or_default()
                ),
            ));
        }
    }
    // Start the log first: a directory it cannot write is refused, and nothing is stored.
    daemon
        .engine
        .set_access_log(queue.as_deref(), Some(&options))
        .map_err(|e| (ErrorCode::InvalidParameter, e.to_string()))?;
    let stored = entry.clone();
    let committed = commit(daemon, move |c| {
        if c.logging.iter().any(|e| e.queue == stored.queue) {
            return Err((
                ErrorCode::AlreadyExists,
                "an access log for this scope was added meanwhile".to_owned(),
            ));
        }
        c.logging.push(stored);
        Ok(())
    })
    .await;
    if let Err(e) = committed {
        // Not stored: not running either.
        let _ = daemon.engine.set_access_log(queue.as_deref(), None);
        return Err(e);
    }
    tracing::info!(dir = %options.dir.display(), queue = ?queue, rollover = %options.rollover, "access log added");
    Ok(entry_json(&entry))
}

async fn delete(daemon: &Daemon, args: &BTreeMap<String, String>) -> AdminOutcome {
    let queue = queue_arg(args)?;
    let scope = queue.clone();
    commit(daemon, move |c| {
        let before = c.logging.len();
        c.logging.retain(|e| e.queue != scope);
        if c.logging.len() == before {
            return Err((
                ErrorCode::NotFound,
                format!(
                    "{} has no access log (httpq show logging lists them)",
                    scope.as_deref().unwrap_or("the listener")
                ),
            ));
        }
        Ok(())
    })
    .await?;
    // Lines already queued are written before the log stops.
    daemon.engine.flush_logs();
    let _ = daemon.engine.set_access_log(queue.as_deref(), None);
    Ok(json!({ "deleted": queue.as_deref().unwrap_or("(all: centralized)") }))
}
