//! Admin connections (the `httpq` CLI): URL ACLs and the service state, netsh-style.
//!
//! Only root, the user running `httpqd`, or members of `--admin-group` may connect as admin;
//! every change is written to the configuration registry (temp, fsync, rename, fsync dir)
//! before it is acknowledged.

use httpq_core::UrlPrefix;
use httpq_core::acl::Caller;
use httpq_server::ipc::{FrameReader, FrameWriter};
use httpq_state::{StoredPrincipal, UrlAclEntry};
use httpq_wire::Frame;
use httpq_wire::control::{ControlRequest, ControlResponse, ErrorCode};
use serde_json::{Value, json};
use std::collections::BTreeMap;

use crate::{Daemon, identity, lock};

/// A connected app process, as `show servicestate` lists it.
#[derive(Debug, Clone)]
pub(crate) struct AppInfo {
    pub(crate) pid: Option<i32>,
    pub(crate) user: String,
    pub(crate) uid: u32,
    pub(crate) prefixes: Vec<String>,
}

/// A request queue, as `show servicestate` lists it.
pub(crate) struct QueueRecord {
    pub(crate) id: u64,
    pub(crate) name: Option<String>,
    pub(crate) owner_uid: u32,
    pub(crate) owner: String,
    pub(crate) queue: crate::queue::IpcQueue,
    pub(crate) handle: httpq_server::QueueHandle,
    pub(crate) retention: std::time::Duration,
    pub(crate) prefixes: Vec<String>,
    pub(crate) acl: Vec<String>,
}

/// How many bytes of queues and processes one `show servicestate` reply carries before it
/// says where the next page starts (`more`). A page holds at least one item; the largest a
/// quota-bound user can make (a queue with every prefix they may register, 256 of at most
/// 2 KiB) stays far below the admin connection's frame size. Root, exempt from the quotas,
/// could put more prefixes on one queue than one frame carries.
const SERVICE_STATE_PAGE: usize = 256 * 1024;

/// The most an admin connection's frames may carry (negotiated in HELLO).
pub(crate) const ADMIN_MAX_FRAME: u32 = 4 << 20;

/// `show servicestate`: every request queue with its owner, processes, prefixes, counts and
/// limits (`view=requestq`, the default), or every process with what it registered
/// (`view=session`). The JSON always holds both lists; `view` and `verbose` shape the text.
///
/// The lists are paged so that the reply always fits a frame however many queues there are:
/// queues (by id) from `queues_from`, then processes (by connection id) from
/// `processes_from`; `more` holds the arguments of the next page, or is null on the last.
fn service_state(
    daemon: &Daemon,
    listening: Vec<String>,
    queues_from: u64,
    processes_from: u64,
) -> Value {
    let apps = lock(&daemon.apps).clone();
    let process = |id: &u64| {
        apps.get(id).map_or_else(
            || json!({ "connection": id }),
            |a| json!({ "pid": a.pid, "user": a.user, "uid": a.uid }),
        )
    };
    let size = |v: &Value| serde_json::to_vec(v).map_or(0, |b| b.len());
    let mut budget = SERVICE_STATE_PAGE;
    let mut more = Value::Null;
    let mut queues = Vec::new();
    for r in lock(&daemon.queues).range(queues_from..).map(|(_, r)| r) {
        let admission = r.handle.admission();
        let item = json!({
            "id": r.id,
            "name": r.name,
            "owner": { "uid": r.owner_uid, "user": r.owner },
            "processes": r.queue.receiver_ids().iter().map(process).collect::<Vec<_>>(),
            "prefixes": r.prefixes,
            "queued": r.handle.depth(),
            "active": r.queue.active(),
            "limit": admission.limit,
            "http503_verbosity": admission.verbosity.to_string(),
            "retention_secs": r.retention.as_secs(),
            "acl": r.acl,
        });
        let n = size(&item);
        if n > budget && !queues.is_empty() {
            more = json!({ "queues_from": r.id, "processes_from": processes_from });
            break;
        }
        budget = budget.saturating_sub(n);
        queues.push(item);
    }
    let mut processes = Vec::new();
    if more.is_null() {
        let mut ids: Vec<&u64> = apps.keys().filter(|id| **id >= processes_from).collect();
        ids.sort_unstable();
        for id in ids {
            let a = &apps[id];
            let item = json!({ "connection": id, "pid": a.pid, "user": a.user, "uid": a.uid, "prefixes": a.prefixes });
            let n = size(&item);
            if n > budget && !(queues.is_empty() && processes.is_empty()) {
                more = json!({ "queues_from": u64::MAX, "processes_from": id });
                break;
            }
            budget = budget.saturating_sub(n);
            processes.push(item);
        }
    }
    json!({
        "queues": queues,
        "processes": processes,
        "listening": listening,
        "connections": daemon.engine.connections(),
        "more": more,
    })
}

/// Whether `caller` may administer the listener: root, the user running httpqd, or a member
/// of `--admin-group` (by the groups SO_PEERGROUPS reported for the socket).
///
/// # Errors
/// The refusal, naming the user and who may administer.
pub(crate) fn authorize(daemon: &Daemon, caller: &Caller) -> Result<(), String> {
    let admin = caller.is_root()
        || caller.uid == daemon.own_uid
        || daemon.admin_gid.is_some_and(|g| caller.gids.contains(&g));
    if admin {
        return Ok(());
    }
    Err(format!(
        "user {} (uid {}) may not administer httpq: run as root, as the user running httpqd, or as a member of httpqd's --admin-group",
        caller.user, caller.uid
    ))
}

/// Runs the admin commands of a connection [`authorize`] accepted.
pub(crate) async fn serve(
    daemon: &Daemon,
    caller: &Caller,
    mut reader: FrameReader,
    writer: FrameWriter,
) {
    loop {
        // A client disconnected for not reading stops being read too.
        let frame = tokio::select! {
            r = reader.next() => match r {
                Ok(f) => f,
                Err(_) => return,
            },
            () = writer.closed() => return,
        };
        let Frame::Control(c) = frame else { continue };
        if c.is_response {
            continue;
        }
        let response = match c.request() {
            Ok(ControlRequest::Admin { command, args }) => {
                match run(daemon, caller, &command, &args).await {
                    Ok(result) => ControlResponse::Ok { result },
                    Err((code, message)) => ControlResponse::Error { code, message },
                }
            }
            Ok(_) => ControlResponse::Error {
                code: ErrorCode::InvalidParameter,
                message: "an admin connection only runs admin commands".to_owned(),
            },
            Err(e) => ControlResponse::Error {
                code: ErrorCode::InvalidParameter,
                message: e.to_string(),
            },
        };
        // A client that does not read its answers is disconnected at the writer's bound.
        if !writer.send(Frame::control_response(c.op_id, &response)) {
            return;
        }
    }
}

type Outcome = Result<Value, (ErrorCode, String)>;

fn invalid(message: impl Into<String>) -> (ErrorCode, String) {
    (ErrorCode::InvalidParameter, message.into())
}

fn yes_no(
    args: &BTreeMap<String, String>,
    key: &str,
    default: bool,
) -> Result<bool, (ErrorCode, String)> {
    match args.get(key).map(|v| v.to_ascii_lowercase()) {
        None => Ok(default),
        Some(v) if v == "yes" => Ok(true),
        Some(v) if v == "no" => Ok(false),
        Some(v) => Err(invalid(format!("{key}={v}: expected yes or no"))),
    }
}

fn acl_json(e: &UrlAclEntry) -> Value {
    let (kind, id, name) = match &e.principal {
        StoredPrincipal::User { uid, name } => ("user", *uid, name.clone()),
        StoredPrincipal::Group { gid, name } => ("group", *gid, name.clone()),
    };
    json!({ "url": e.url, kind: name, "id": id, "listen": e.listen, "delegate": e.delegate })
}

async fn run(
    daemon: &Daemon,
    caller: &Caller,
    command: &str,
    args: &BTreeMap<String, String>,
) -> Outcome {
    match command {
        "add urlacl" => {
            let url = args
                .get("url")
                .ok_or_else(|| invalid("add urlacl needs url=URL"))?;
            let prefix = UrlPrefix::parse(url).map_err(|e| invalid(e.to_string()))?;
            let mut entry = match (args.get("user"), args.get("group")) {
                (Some(user), None) => {
                    let uid = identity::user_id(user).ok_or_else(|| {
                        invalid(format!("user={user}: no such user in /etc/passwd"))
                    })?;
                    UrlAclEntry::user(url, uid, user).map_err(|e| invalid(e.to_string()))?
                }
                (None, Some(group)) => {
                    let gid = identity::group_id(group).ok_or_else(|| {
                        invalid(format!("group={group}: no such group in /etc/group"))
                    })?;
                    UrlAclEntry::group(url, gid, group).map_err(|e| invalid(e.to_string()))?
                }
                _ => {
                    return Err(invalid(
                        "add urlacl needs exactly one of user=NAME or group=NAME",
                    ));
                }
            };
            entry.listen = yes_no(args, "listen", true)?;
            entry.delegate = yes_no(args, "delegate", false)?;
            commit(daemon, |c| {
                c.add_url_acl(entry.clone())
                    .map_err(|e| (ErrorCode::AlreadyExists, e.to_string()))
            })
            .await?;
            tracing::info!(url = %entry.url, by = %caller.user, "URL ACL added");
            let mut result = acl_json(&entry);
            if prefix.is_top_level_wildcard() {
                result["warning"] = json!(
                    "a top-level wildcard reservation lets its holder answer for every host name on this port; prefer explicit host names"
                );
            }
            Ok(result)
        }
        "delete urlacl" => {
            let url = args
                .get("url")
                .ok_or_else(|| invalid("delete urlacl needs url=URL"))?;
            let mut removed = None;
            commit(daemon, |c| {
                removed = Some(
                    c.delete_url_acl(url)
                        .map_err(|e| (ErrorCode::NotFound, e.to_string()))?,
                );
                Ok(())
            })
            .await?;
            let Some(removed) = removed else {
                return Err((ErrorCode::Internal, "the entry vanished".to_owned()));
            };
            tracing::info!(url = %removed.url, by = %caller.user, "URL ACL deleted");
            Ok(acl_json(&removed))
        }
        "show urlacl" => {
            let state = daemon.state.lock().await;
            let filter = args
                .get("url")
                .map(|u| UrlPrefix::parse(u).map_err(|e| invalid(e.to_string())))
                .transpose()?;
            let list: Vec<Value> = state
                .1
                .url_acls
                .iter()
                .filter(|e| {
                    filter
                        .as_ref()
                        .is_none_or(|f| UrlPrefix::parse(&e.url).is_ok_and(|p| p == *f))
                })
                .map(acl_json)
                .collect();
            Ok(json!({ "urlacls": list }))
        }
        "add iplisten" | "delete iplisten" => {
            let ip: std::net::IpAddr = args
                .get("ipaddress")
                .ok_or_else(|| invalid(format!("{command} needs ipaddress=IP")))?
                .parse()
                .map_err(|_| {
                    invalid("ipaddress=: expected an IPv4 or IPv6 address, without a port")
                })?;
            let adding = command == "add iplisten";
            commit(daemon, |c| {
                if adding {
                    c.add_iplisten(ip)
                        .map_err(|e| (ErrorCode::AlreadyExists, e.to_string()))
                } else {
                    c.delete_iplisten(ip)
                        .map_err(|e| (ErrorCode::NotFound, e.to_string()))
                }
            })
            .await?;
            tracing::info!(%ip, by = %caller.user, "{command}");
            Ok(json!({ "ipaddress": ip.to_string(), "applies": "when httpqd next starts" }))
        }
        "show iplisten" => {
            let state = daemon.state.lock().await;
            let list: Vec<String> = state.1.iplisten.iter().map(ToString::to_string).collect();
            Ok(json!({ "iplisten": list }))
        }
        "add timeout" | "delete timeout" => {
            let kind = args
                .get("timeouttype")
                .map(|t| t.to_ascii_lowercase())
                .ok_or_else(|| {
                    invalid(format!(
                        "{command} needs timeouttype=idleconnectiontimeout|headerwaittimeout"
                    ))
                })?;
            let value = if command == "add timeout" {
                let raw = args
                    .get("value")
                    .ok_or_else(|| invalid("add timeout needs value=SECONDS"))?;
                let parsed = match raw.strip_prefix("0x") {
                    Some(hex) => u16::from_str_radix(hex, 16).ok(),
                    None => raw.parse::<u16>().ok(),
                };
                Some(parsed.filter(|v| *v > 0).ok_or_else(|| {
                    invalid(format!(
                        "value={raw}: expected seconds, 1 to 65535 (decimal or 0x hex)"
                    ))
                })?)
            } else {
                None
            };
            commit(daemon, |c| {
                match kind.as_str() {
                    "idleconnectiontimeout" => c.timeouts.idle_connection = value,
                    "headerwaittimeout" => c.timeouts.header_wait = value,
                    other => {
                        return Err(invalid(format!(
                            "timeouttype={other}: expected idleconnectiontimeout or headerwaittimeout"
                        )));
                    }
                }
                Ok(())
            })
            .await?;
            Ok(json!({ "timeouttype": kind, "value": value, "applies": "when httpqd next starts" }))
        }
        "show timeout" => {
            let state = daemon.state.lock().await;
            Ok(json!({
                "idleconnectiontimeout": state.1.timeouts.idle_connection,
                "headerwaittimeout": state.1.timeouts.header_wait,
            }))
        }
        "flush logbuffer" => {
            let dropped = daemon.engine.flush_logs();
            Ok(json!({ "flushed": true, "dropped": dropped }))
        }
        "show servicestate" => {
            if let Some(view) = args.get("view") {
                if !matches!(view.as_str(), "session" | "requestq") {
                    return Err(invalid(format!(
                        "view={view}: expected session or requestq"
                    )));
                }
            }
            if let Some(v) = args.get("verbose") {
                if !matches!(v.as_str(), "yes" | "no") {
                    return Err(invalid(format!("verbose={v}: expected yes or no")));
                }
            }
            let from = |key: &str| -> Result<u64, (ErrorCode, String)> {
                args.get(key).map_or(Ok(0), |v| {
                    v.parse()
                        .map_err(|_| invalid(format!("{key}={v:?}: expected a number")))
                })
            };
            let (queues_from, processes_from) = (from("queues_from")?, from("processes_from")?);
            let listening: Vec<String> = daemon
                .engine
                .local_addrs()
                .await
                .iter()
                .map(ToString::to_string)
                .collect();
            Ok(service_state(
                daemon,
                listening,
                queues_from,
                processes_from,
            ))
        }
        other => match crate::certs::run(daemon, other, args).await {
            Some(outcome) => outcome,
            None => match crate::logging::run(daemon, other, args).await {
                Some(outcome) => outcome,
                None => Err(invalid(format!(
                    "unknown command {:?}; known: add/delete/show urlacl, add/delete/show iplisten, add/delete/show timeout, add/delete/show cert, add/update/delete/show sslcert, add/delete/show logging, show servicestate, flush logbuffer",
                    other.chars().take(80).collect::<String>()
                ))),
            },
        },
    }
}

/// Applies `change` to a copy of the configuration, writes it durably, then makes it current:
/// a refused change or a failed write leaves everything as it was.
pub(crate) async fn commit(
    daemon: &Daemon,
    change: impl FnOnce(&mut httpq_state::Config) -> Result<(), (ErrorCode, String)>,
) -> Result<(), (ErrorCode, String)> {
    let mut state = daemon.state.lock().await;
    let mut next = state.1.clone();
    change(&mut next)?;
    state
        .0
        .commit(&next)
        .map_err(|e| (ErrorCode::Internal, e.to_string()))?;
    *lock(&daemon.acls) = next.acls();
    // SSL bindings apply to the next handshake, without a restart.
    crate::certs::apply(daemon, &next);
    state.1 = next;
    Ok(())
}

pub(crate) type AdminOutcome = Outcome;

pub(crate) fn invalid_arg(message: impl Into<String>) -> (ErrorCode, String) {
    invalid(message)
}
