//! Control operations of an app connection: request queues (create, attach, close) and URL
//! prefixes (add, remove), each decided from the caller's kernel identity, the URL ACLs, the
//! queue's owner and ACL, and the per-user quotas (docs/security.md).
//!
//! As in HTTP.sys, a queue's creator controls it: only a process of the owner's uid adds URLs
//! to a named queue; processes that attach (allowed by the queue ACL) receive from it and
//! nothing more. Named queues live in their owner's namespace ([`QueueName`]).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use httpq_core::UrlPrefix;
use httpq_core::acl::{Caller, check_register};
use httpq_core::queue::QueueName;
use httpq_server::QueueHandle;
use httpq_wire::control::{
    ControlRequest, ControlResponse, ErrorCode as CtlError, RequestQueueMode,
};
use serde_json::json;

use crate::queue::{AppConn, IpcQueue};
use crate::{Daemon, admin, identity, lock};

/// The longest retention a named queue may ask for: one hour. Retention bridges a restart;
/// anything longer holds ports and requests for a process that is not coming back.
pub(crate) const MAX_RETENTION_SECS: u64 = 3600;

/// The longest URL prefix a process may register, in bytes.
pub(crate) const MAX_PREFIX_LEN: usize = 2048;

/// The most entries a queue ACL may have.
pub(crate) const MAX_QUEUE_ACL: usize = 64;

/// A named queue's key: its owner's uid and its name within the owner's namespace.
pub(crate) type NamedKey = (u32, String);

/// A named request queue.
pub(crate) struct Named {
    pub(crate) queue: IpcQueue,
    handle: QueueHandle,
    pub(crate) owner_uid: u32,
    /// `owner/name`, for messages and `show servicestate`.
    pub(crate) display: String,
    pub(crate) retention: Duration,
    pub(crate) prefixes: Vec<UrlPrefix>,
    /// Who besides the owner (and root) may attach: uids and gids from the creator's ACL.
    acl_uids: Vec<u32>,
    acl_gids: Vec<u32>,
    /// Bumped on every attach, so an expiry scheduled before it knows it is stale.
    epoch: u64,
}

/// A queue this connection receives from.
struct OwnedQueue {
    queue: IpcQueue,
    handle: QueueHandle,
    named: Option<NamedKey>,
    /// The prefixes of an anonymous queue (a named queue's live in [`Named`]).
    prefixes: Vec<UrlPrefix>,
}

/// What one app connection created or attached to, for cleanup when it goes away.
#[derive(Default)]
pub(crate) struct Owned {
    queues: HashMap<u64, OwnedQueue>,
}

impl Owned {
    /// The queues this connection receives from.
    pub(crate) fn queues(&self) -> impl Iterator<Item = &IpcQueue> {
        self.queues.values().map(|q| &q.queue)
    }
}

fn error(code: CtlError, message: String) -> ControlResponse {
    ControlResponse::Error { code, message }
}

/// Runs one control request of an app connection.
pub(crate) async fn control(
    daemon: &Arc<Daemon>,
    app: &Arc<AppConn>,
    caller: &Caller,
    owned: &mut Owned,
    req: ControlRequest,
) -> ControlResponse {
    match req {
        ControlRequest::CreateQueue {
            name,
            mode,
            max_accepts,
            retention_secs,
            request_queue_limit,
            http503_verbosity,
            acl,
        } => {
            let settings = Settings {
                retention_secs,
                request_queue_limit,
                http503_verbosity,
                acl,
            };
            let created = create_queue(daemon, app, caller, owned, name, mode, settings).await;
            match created {
                Ok((id, created, attached_now)) => {
                    // Credits come with an attachment, not with a repeated request for one.
                    if let Some(n) = max_accepts.filter(|_| attached_now) {
                        app.add_credits(n);
                    }
                    ControlResponse::Ok {
                        result: json!({ "queue": id, "created": created }),
                    }
                }
                Err((code, message)) => error(code, message),
            }
        }
        ControlRequest::AddUrl { queue, prefix } => {
            match add_url(daemon, app, caller, owned, queue, &prefix).await {
                Ok(result) => ControlResponse::Ok { result },
                Err((code, message)) => error(code, message),
            }
        }
        ControlRequest::RemoveUrl { queue, prefix } => {
            match remove_url(daemon, app, caller, owned, queue, &prefix).await {
                Ok(()) => ControlResponse::Ok { result: json!({}) },
                Err((code, message)) => error(code, message),
            }
        }
        ControlRequest::CloseQueue { queue } => match owned.queues.remove(&queue) {
            Some(q) => {
                release_queue(daemon, app.id, caller, q).await;
                ControlResponse::Ok { result: json!({}) }
            }
            None => error(
                CtlError::NotFound,
                format!("no queue {queue} on this connection"),
            ),
        },
        ControlRequest::Admin { command, .. } => error(
            CtlError::AccessDenied,
            format!(
                "admin command {:?} needs an admin connection",
                command.chars().take(64).collect::<String>()
            ),
        ),
        _ => error(CtlError::InvalidParameter, "unknown operation".to_owned()),
    }
}

/// The creator's settings of a new queue.
struct Settings {
    retention_secs: Option<u64>,
    request_queue_limit: Option<u32>,
    http503_verbosity: Option<httpq_wire::control::Http503Verbosity>,
    acl: Vec<String>,
}

type Outcome<T> = Result<T, (CtlError, String)>;

fn invalid(message: String) -> (CtlError, String) {
    (CtlError::InvalidParameter, message)
}

async fn create_queue(
    daemon: &Arc<Daemon>,
    app: &Arc<AppConn>,
    caller: &Caller,
    owned: &mut Owned,
    name: Option<String>,
    mode: RequestQueueMode,
    s: Settings,
) -> Outcome<(u64, bool, bool)> {
    // The creator's settings (HTTP.sys: properties set on the queue by its creator; processes
    // that attach later do not change them).
    let defaults = daemon.engine.options();
    let limit = s
        .request_queue_limit
        .unwrap_or(defaults.request_queue_limit);
    if !(1..=0x7FFF_FFFF).contains(&limit) {
        return Err(invalid(format!(
            "request_queue_limit {limit}: expected 1 to 2147483647 (HTTP.sys's range)"
        )));
    }
    let retention_secs = s.retention_secs.unwrap_or(0);
    if retention_secs > MAX_RETENTION_SECS {
        return Err(invalid(format!(
            "retention_secs {retention_secs}: a queue may be retained at most {MAX_RETENTION_SECS} s after its last process leaves; ask for less (HTTPQ_QUEUE_RETENTION)"
        )));
    }
    let retention = Duration::from_secs(retention_secs);
    let admission = httpq_core::queue::QueueAdmission {
        limit,
        verbosity: match s.http503_verbosity {
            None => defaults.http503_verbosity,
            Some(httpq_wire::control::Http503Verbosity::Limited) => {
                httpq_core::queue::Http503Verbosity::Limited
            }
            Some(httpq_wire::control::Http503Verbosity::Full) => {
                httpq_core::queue::Http503Verbosity::Full
            }
            Some(_) => httpq_core::queue::Http503Verbosity::Basic,
        },
    };
    if !s.acl.is_empty() && name.is_none() {
        return Err(invalid(
            "a queue ACL only makes sense for a named queue (nobody can attach to an anonymous one); set request_queue_name too".to_owned(),
        ));
    }
    if s.acl.len() > MAX_QUEUE_ACL {
        return Err(invalid(format!(
            "a queue ACL may have at most {MAX_QUEUE_ACL} entries (use a group:NAME entry for many users); this one has {}",
            s.acl.len()
        )));
    }
    let (acl_uids, acl_gids) = resolve_queue_acl(&s.acl).map_err(invalid)?;
    let record =
        |id: u64, name: Option<String>, q: &IpcQueue, handle: &QueueHandle| admin::QueueRecord {
            id,
            name,
            owner_uid: caller.uid,
            owner: caller.user.clone(),
            queue: q.clone(),
            handle: handle.clone(),
            retention,
            prefixes: Vec::new(),
            acl: s.acl.clone(),
        };
    let new_queue = |name: Option<String>| {
        let id = daemon.next_id.fetch_add(1, Ordering::Relaxed);
        let q = IpcQueue::new(id);
        q.attach(app.clone());
        let handle = daemon
            .engine
            .create_queue_with(name.clone(), Arc::new(q.clone()), admission);
        lock(&daemon.queues).insert(id, record(id, name, &q, &handle));
        (id, q, handle)
    };
    let Some(name) = name else {
        daemon
            .usage
            .take_queue(caller)
            .map_err(|m| (CtlError::Busy, m))?;
        let (id, queue, handle) = new_queue(None);
        owned.queues.insert(
            id,
            OwnedQueue {
                queue,
                handle,
                named: None,
                prefixes: Vec::new(),
            },
        );
        return Ok((id, true, true));
    };
    let parsed: QueueName = name.parse().map_err(invalid)?;
    // The namespace: an unqualified name is the caller's own; `owner/name` is owner's.
    let owner_uid = match parsed.owner() {
        None => caller.uid,
        Some(owner) => identity::user_id(owner).ok_or_else(|| {
            (
                CtlError::NotFound,
                format!("request queue {name:?}: there is no user {owner:?} on this machine"),
            )
        })?,
    };
    let owner_name = identity::user_name(owner_uid);
    let qname = format!("{owner_name}/{}", parsed.name());
    let key: NamedKey = (owner_uid, parsed.name().to_owned());
    let mut named = daemon.named.lock().await;
    if let Some(n) = named.get_mut(&key) {
        if mode == RequestQueueMode::Create {
            return Err((
                CtlError::AlreadyExists,
                format!(
                    "request queue \"{qname}\" already exists; attach to it with mode attach or create_or_attach"
                ),
            ));
        }
        let allowed = caller.uid == n.owner_uid
            || caller.is_root()
            || n.acl_uids.contains(&caller.uid)
            || caller.gids.iter().any(|g| n.acl_gids.contains(g));
        if !allowed {
            return Err((
                CtlError::AccessDenied,
                format!(
                    "request queue \"{qname}\" belongs to {owner_name} (uid {}); user {} (uid {}) is neither its creator, root, nor in its queue ACL (the creator can add user:{} with HTTPQ_REQUEST_QUEUE_ACL)",
                    n.owner_uid, caller.user, caller.uid, caller.user
                ),
            ));
        }
        if n.queue.has_receiver(app.id) {
            // Attached already on this connection: nothing more to do.
            return Ok((n.queue.id, false, false));
        }
        n.epoch += 1;
        n.queue.attach(app.clone());
        if caller.uid != n.owner_uid {
            tracing::info!(queue = %qname, user = %caller.user, uid = caller.uid, "a process of another user attached (queue ACL); it receives but cannot add URLs");
        }
        owned.queues.insert(
            n.queue.id,
            OwnedQueue {
                queue: n.queue.clone(),
                handle: n.handle.clone(),
                named: Some(key),
                prefixes: Vec::new(),
            },
        );
        return Ok((n.queue.id, false, true));
    }
    if mode == RequestQueueMode::Attach {
        return Err((
            CtlError::NotFound,
            format!(
                "there is no request queue \"{qname}\"; create it with mode create or create_or_attach{}",
                if parsed.owner().is_none() {
                    " (an unqualified name means your own queue; write OWNER/NAME for another user's)"
                } else {
                    ""
                }
            ),
        ));
    }
    if owner_uid != caller.uid {
        return Err((
            CtlError::AccessDenied,
            format!(
                "user {} (uid {}) may not create request queue \"{qname}\": queues are created in their creator's namespace (ask for \"{}\", or attach to {owner_name}'s with mode attach)",
                caller.user,
                caller.uid,
                parsed.name()
            ),
        ));
    }
    daemon
        .usage
        .take_queue(caller)
        .map_err(|m| (CtlError::Busy, m))?;
    let (id, queue, handle) = new_queue(Some(qname.clone()));
    named.insert(
        key.clone(),
        Named {
            queue: queue.clone(),
            handle: handle.clone(),
            owner_uid,
            display: qname,
            retention,
            prefixes: Vec::new(),
            acl_uids,
            acl_gids,
            epoch: 0,
        },
    );
    owned.queues.insert(
        id,
        OwnedQueue {
            queue,
            handle,
            named: Some(key),
            prefixes: Vec::new(),
        },
    );
    Ok((id, true, true))
}

async fn add_url(
    daemon: &Arc<Daemon>,
    app: &Arc<AppConn>,
    caller: &Caller,
    owned: &mut Owned,
    queue: u64,
    prefix: &str,
) -> Outcome<serde_json::Value> {
    let Some(oq) = owned.queues.get_mut(&queue) else {
        return Err((
            CtlError::NotFound,
            format!("no queue {queue} on this connection"),
        ));
    };
    let parsed = parse_prefix(prefix)?;
    let ok = |url_context: u64, bound: &UrlPrefix| json!({ "url_context": url_context, "prefix": bound.to_string() });
    // A named queue's lock is held from the owner check to the record of the new prefix, so
    // the queue cannot expire in between and leave a registered prefix recorded nowhere.
    let mut named_guard = match &oq.named {
        Some(_) => Some(daemon.named.lock().await),
        None => None,
    };
    if let (Some(key), Some(named)) = (&oq.named, named_guard.as_mut()) {
        let Some(n) = named.get(key) else {
            return Err((CtlError::NotFound, "the request queue is gone".to_owned()));
        };
        // A process attaching to a named queue registers the prefixes the queue already has:
        // that is not a conflict (HTTP.sys tolerates it the same way).
        if let Some(existing) = n.prefixes.iter().find(|p| **p == parsed) {
            return Ok(ok(oq.queue.add_context(&existing.to_string()), existing));
        }
        // Only the queue's controller configures it: a process that attached under the
        // queue ACL must not put its own reservations into someone else's queue.
        if caller.uid != n.owner_uid {
            tracing::warn!(prefix = %parsed, queue = %n.display, user = %caller.user, uid = caller.uid, "refused: an attached process may not add URLs to another user's queue");
            return Err((
                CtlError::AccessDenied,
                format!(
                    "request queue \"{}\" belongs to uid {}: a process that attaches to it receives its requests but cannot add URLs to it (as HTTP.sys, only its creator configures it); register {parsed} on a queue of your own",
                    n.display, n.owner_uid
                ),
            ));
        }
    }
    let acls = lock(&daemon.acls).clone();
    if let Err(denied) = check_register(&parsed, caller, &acls) {
        tracing::warn!(prefix = %parsed, user = %caller.user, uid = caller.uid, "registration refused by URL ACL");
        return Err((CtlError::AccessDenied, denied.to_string()));
    }
    // Counted before the sockets are opened (and given back if that fails), so concurrent
    // registrations of one user cannot all pass at the limit.
    let asked_port = parsed.port();
    daemon
        .usage
        .take_prefix(caller, asked_port)
        .map_err(|m| (CtlError::Busy, m))?;
    let bound = match daemon.engine.add_prefix(parsed, &oq.handle).await {
        Ok(bound) => bound,
        Err(e) => {
            daemon.usage.release_prefix(caller.uid, asked_port);
            return Err(match e {
                httpq_server::EngineError::AlreadyRegistered { prefix, owner } => (
                    CtlError::AlreadyExists,
                    format!("url prefix \"{prefix}\" is already registered by {owner}"),
                ),
                e => invalid(e.to_string()),
            });
        }
    };
    daemon
        .usage
        .move_prefix(caller.uid, asked_port, bound.port());
    let url_context = oq.queue.add_context(&bound.to_string());
    match (&oq.named, named_guard.as_mut()) {
        (Some(key), Some(named)) => match named.get_mut(key) {
            Some(n) => n.prefixes.push(bound.clone()),
            None => {
                // Cannot happen while the lock is held; undo rather than leak.
                let _ = daemon.engine.remove_prefix(&bound).await;
                daemon.usage.release_prefix(caller.uid, bound.port());
                return Err((CtlError::NotFound, "the request queue is gone".to_owned()));
            }
        },
        _ => oq.prefixes.push(bound.clone()),
    }
    drop(named_guard);
    if let Some(info) = lock(&daemon.apps).get_mut(&app.id) {
        info.prefixes.push(bound.to_string());
    }
    if let Some(r) = lock(&daemon.queues).get_mut(&oq.queue.id) {
        r.prefixes.push(bound.to_string());
    }
    Ok(ok(url_context, &bound))
}

/// Parses a prefix from a peer, refusing over-long ones before anything quotes them.
fn parse_prefix(prefix: &str) -> Outcome<UrlPrefix> {
    if prefix.len() > MAX_PREFIX_LEN {
        return Err(invalid(format!(
            "a URL prefix may be at most {MAX_PREFIX_LEN} bytes; this one has {}",
            prefix.len()
        )));
    }
    UrlPrefix::parse(prefix).map_err(|e| invalid(e.to_string()))
}

async fn remove_url(
    daemon: &Arc<Daemon>,
    app: &Arc<AppConn>,
    caller: &Caller,
    owned: &mut Owned,
    queue: u64,
    prefix: &str,
) -> Outcome<()> {
    let parsed = parse_prefix(prefix)?;
    let not_yours = || {
        (
            CtlError::NotFound,
            format!("this app did not register {parsed} on queue {queue}"),
        )
    };
    let Some(oq) = owned.queues.get_mut(&queue) else {
        return Err((
            CtlError::NotFound,
            format!("no queue {queue} on this connection"),
        ));
    };
    // The registered prefix (equal to the one asked for, case aside) is what is removed and
    // what every record names.
    let (removed, charged_uid) = match &oq.named {
        None => {
            let i = oq
                .prefixes
                .iter()
                .position(|p| *p == parsed)
                .ok_or_else(not_yours)?;
            (oq.prefixes.remove(i), caller.uid)
        }
        Some(key) => {
            let mut named = daemon.named.lock().await;
            let n = named.get_mut(key).ok_or_else(not_yours)?;
            if caller.uid != n.owner_uid {
                return Err((
                    CtlError::AccessDenied,
                    format!(
                        "request queue \"{}\" belongs to uid {}: only its creator removes its URLs",
                        n.display, n.owner_uid
                    ),
                ));
            }
            let i = n
                .prefixes
                .iter()
                .position(|p| *p == parsed)
                .ok_or_else(not_yours)?;
            (n.prefixes.remove(i), n.owner_uid)
        }
    };
    let _ = daemon.engine.remove_prefix(&removed).await;
    daemon.usage.release_prefix(charged_uid, removed.port());
    let text = removed.to_string();
    oq.queue.remove_context(&text);
    forget_prefixes(daemon, app.id, oq.queue.id, std::slice::from_ref(&text));
    Ok(())
}

/// Removes `prefixes` from what `show servicestate` lists for the connection and the queue.
fn forget_prefixes(daemon: &Daemon, app_id: u64, queue_id: u64, prefixes: &[String]) {
    if let Some(info) = lock(&daemon.apps).get_mut(&app_id) {
        info.prefixes.retain(|x| !prefixes.contains(x));
    }
    if let Some(r) = lock(&daemon.queues).get_mut(&queue_id) {
        r.prefixes.retain(|x| !prefixes.contains(x));
    }
}

/// This connection stops receiving from `q`: an anonymous queue goes at once with its
/// prefixes; a named one is kept for its retention once its last process left.
async fn release_queue(daemon: &Arc<Daemon>, app_id: u64, caller: &Caller, q: OwnedQueue) {
    match q.named {
        Some(key) => {
            // Detached under the lock that attach takes, so the epoch read here is the one an
            // expiry must still find.
            let named = daemon.named.lock().await;
            let remaining = q.queue.detach(app_id);
            let epoch = named.get(&key).map(|n| n.epoch);
            drop(named);
            if remaining == 0 {
                if let Some(epoch) = epoch {
                    expire_later(daemon.clone(), key, epoch).await;
                }
            }
        }
        None => {
            q.queue.detach(app_id);
            let texts: Vec<String> = q.prefixes.iter().map(ToString::to_string).collect();
            for p in &q.prefixes {
                let _ = daemon.engine.remove_prefix(p).await;
                daemon.usage.release_prefix(caller.uid, p.port());
            }
            forget_prefixes(daemon, app_id, q.queue.id, &texts);
            q.queue.close();
            lock(&daemon.queues).remove(&q.queue.id);
            daemon.usage.release_queue(caller.uid);
        }
    }
}

/// The connection is gone: every queue it received from is released.
pub(crate) async fn release_all(daemon: &Arc<Daemon>, app_id: u64, caller: &Caller, owned: Owned) {
    for (_, q) in owned.queues {
        release_queue(daemon, app_id, caller, q).await;
    }
}

/// The last process left a named queue (at `epoch`): keep it (prefixes registered, requests
/// waiting) for its retention period, then remove it unless a process attached meanwhile.
async fn expire_later(daemon: Arc<Daemon>, key: NamedKey, epoch: u64) {
    let (retention, qname): (Duration, String) = match daemon.named.lock().await.get(&key) {
        Some(n) => (n.retention, n.display.clone()),
        None => return,
    };
    if !retention.is_zero() {
        tracing::info!(queue = %qname, retention_secs = retention.as_secs(), "the last process left; keeping the queue for its retention period");
    }
    tokio::spawn(async move {
        tokio::time::sleep(retention).await;
        let mut named = daemon.named.lock().await;
        let stale = named
            .get(&key)
            .is_none_or(|n| n.epoch != epoch || !n.queue.receiver_ids().is_empty());
        if stale {
            return;
        }
        if let Some(n) = named.remove(&key) {
            drop(named);
            lock(&daemon.queues).remove(&n.queue.id);
            for p in &n.prefixes {
                let _ = daemon.engine.remove_prefix(p).await;
                daemon.usage.release_prefix(n.owner_uid, p.port());
            }
            n.queue.close();
            daemon.usage.release_queue(n.owner_uid);
            tracing::info!(queue = %n.display, "request queue removed");
        }
    });
}

/// Resolves `user:NAME` / `group:NAME` entries to uids and gids.
fn resolve_queue_acl(entries: &[String]) -> Result<(Vec<u32>, Vec<u32>), String> {
    let (mut uids, mut gids) = (Vec::new(), Vec::new());
    for entry in entries {
        match entry.parse::<httpq_core::queue::QueueAclEntry>()? {
            httpq_core::queue::QueueAclEntry::User(n) => {
                uids.push(identity::user_id(&n).ok_or_else(|| {
                    format!("queue ACL entry {entry:?}: there is no user {n:?} on this machine")
                })?)
            }
            httpq_core::queue::QueueAclEntry::Group(n) => {
                gids.push(identity::group_id(&n).ok_or_else(|| {
                    format!("queue ACL entry {entry:?}: there is no group {n:?} on this machine")
                })?)
            }
        }
    }
    Ok((uids, gids))
}
