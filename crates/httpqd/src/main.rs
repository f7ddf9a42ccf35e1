//! `httpqd`: the httpq listener service (daemon mode).
//!
//! It owns the listening sockets and the HTTP engine; app processes connect to its control
//! socket, create request queues, register URL prefixes (checked against URL ACLs by their
//! kernel-reported identity) and receive requests as `httpq-wire` frames.
//!
//! ```text
//! httpqd [--state-dir DIR] [--socket PATH]
//! ```
//!
//! This is the first slice of daemon mode: anonymous queues, many processes each with their
//! own prefixes on one port, URL ACL checks, request and response bodies streamed as frames.
//! Named queues (attach, retention, redelivery), the admin CLI and systemd readiness are the
//! next steps (docs/decisions/0003-daemon-mode-plan.md).

mod admin;
mod certs;
mod identity;
mod queue;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use httpq_core::UrlPrefix;
use httpq_core::acl::{Caller, check_register};
use httpq_core::options::Options;
use httpq_server::ipc::{FrameReader, FrameWriter, ReadError};
use httpq_server::{Engine, QueueHandle};
use httpq_wire::control::{
    ControlRequest, ControlResponse, ErrorCode as CtlError, RequestQueueMode,
};
use httpq_wire::{Frame, HelloAck, PROTOCOL_VERSION, Role, StreamId};
use serde_json::json;
use tokio::net::{UnixListener, UnixStream};

use crate::queue::{AppConn, IpcQueue};

struct Daemon {
    engine: Engine,
    acls: Mutex<Vec<httpq_core::acl::UrlAcl>>,
    next_id: AtomicU64,
    /// The configuration registry and its file; changed only by admin commands.
    state: tokio::sync::Mutex<(httpq_state::Store, httpq_state::Config)>,
    /// Who may run admin commands besides root: this process's user and this group.
    own_uid: u32,
    admin_gid: Option<u32>,
    /// The state directory (configuration, certificate store, `ccs/`).
    state_dir: PathBuf,
    /// Connected app processes, for `show servicestate`.
    apps: Mutex<HashMap<u64, admin::AppInfo>>,
    /// Named request queues: shared by every process that attaches, and kept for their
    /// retention period after the last one leaves.
    named: tokio::sync::Mutex<HashMap<String, Named>>,
    /// Every request queue, named or anonymous, for `show servicestate`.
    queues: Mutex<std::collections::BTreeMap<u64, admin::QueueRecord>>,
}

/// A named request queue.
pub(crate) struct Named {
    pub(crate) queue: IpcQueue,
    handle: QueueHandle,
    pub(crate) owner_uid: u32,
    pub(crate) retention: Duration,
    pub(crate) prefixes: Vec<UrlPrefix>,
    /// Who besides the owner (and root) may attach: uids and gids from the creator's ACL.
    acl_uids: Vec<u32>,
    acl_gids: Vec<u32>,
    /// Bumped on every attach, so an expiry scheduled before it knows it is stale.
    epoch: u64,
}

struct Args {
    state_dir: PathBuf,
    socket: PathBuf,
    admin_group: Option<String>,
    workers: Option<usize>,
    alt_svc: bool,
}

fn default_paths() -> (PathBuf, PathBuf) {
    (
        httpq_server::ipc::default_state_dir(),
        httpq_server::ipc::default_socket(),
    )
}

fn parse_args() -> Result<Args, String> {
    let (mut state_dir, mut socket) = default_paths();
    let mut admin_group = None;
    let mut workers = None;
    let mut alt_svc = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--state-dir" => {
                state_dir = args.next().ok_or("--state-dir needs a directory")?.into();
            }
            "--socket" => socket = args.next().ok_or("--socket needs a path")?.into(),
            "--workers" => {
                let n = args.next().ok_or("--workers needs a number")?;
                workers = Some(n.parse::<usize>().ok().filter(|n| *n > 0).ok_or(format!(
                    "--workers {n}: expected a number of threads, at least 1"
                ))?);
            }
            "--alt-svc" => alt_svc = true,
            "--admin-group" => {
                admin_group = Some(args.next().ok_or("--admin-group needs a group name")?);
            }
            "--help" | "-h" => {
                return Err("usage: httpqd [--state-dir DIR] [--socket PATH] [--admin-group GROUP] [--workers N] [--alt-svc]\n\
                     Runs the httpq listener: apps reach it through the socket (HTTPQ_SOCKET)."
                    .to_owned());
            }
            other => return Err(format!("unknown argument {other:?}; see httpqd --help")),
        }
    }
    Ok(Args {
        state_dir,
        socket,
        admin_group,
        workers,
        alt_svc,
    })
}

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    // The listener shares the machine with the apps it serves: by default it takes half the
    // cores (at least one). Cross-thread wake-ups are its main cost on small machines
    // (bench/results: one worker on 2 cores serves ~25% more than two).
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let workers = args.workers.unwrap_or((cores / 2).max(1));
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("httpqd: cannot start the runtime: {e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = runtime.block_on(run(args)) {
        eprintln!("httpqd: {e}");
        std::process::exit(1);
    }
}

async fn run(args: Args) -> Result<(), String> {
    let (store, config) = httpq_state::Store::open(&args.state_dir).map_err(|e| e.to_string())?;
    let admin_gid = match &args.admin_group {
        None => None,
        Some(name) => Some(
            identity::group_id(name)
                .ok_or_else(|| format!("--admin-group {name}: no such group in /etc/group"))?,
        ),
    };
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let mut options = Options::with_cores(cores);
    // The registry's iplisten list and global timers (netsh http add iplisten/timeout).
    options.iplisten = config.iplisten.clone();
    // Alt-Svc: h3 on HTTPS responses (HTTP.sys's EnableAltSvc), off unless asked for.
    options.alt_svc = args.alt_svc;
    if let Some(secs) = config.timeouts.idle_connection {
        options.timeouts.idle_connection = Duration::from_secs(u64::from(secs));
    }
    if let Some(secs) = config.timeouts.header_wait {
        options.timeouts.header_wait = Duration::from_secs(u64::from(secs));
    }
    let engine = Engine::new(options).map_err(|e| e.to_string())?;
    let daemon = Arc::new(Daemon {
        engine,
        acls: Mutex::new(config.acls()),
        next_id: AtomicU64::new(1),
        state: tokio::sync::Mutex::new((store, config)),
        own_uid: httpq_server::ipc::own_uid().unwrap_or(0),
        admin_gid,
        state_dir: args.state_dir.clone(),
        apps: Mutex::new(HashMap::new()),
        named: tokio::sync::Mutex::new(HashMap::new()),
        queues: Mutex::new(std::collections::BTreeMap::new()),
    });
    // The SSL bindings in force from the start (a binding whose certificate is missing is
    // logged and left out; the others apply).
    {
        let state = daemon.state.lock().await;
        certs::apply(&daemon, &state.1);
    }
    // Signal handlers first: a SIGTERM right after READY=1 must already drain gracefully.
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| e.to_string())?;
    let mut interrupt = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .map_err(|e| e.to_string())?;
    let listener = bind_socket(&args.socket)?;
    tracing::info!(socket = %args.socket.display(), state = %args.state_dir.display(), "httpqd is ready");
    println!("httpqd: listening on {}", args.socket.display());
    notify_systemd("READY=1");
    loop {
        tokio::select! {
            r = listener.accept() => match r {
                Ok((stream, _)) => {
                    let d = daemon.clone();
                    tokio::spawn(async move { serve_app(d, stream).await });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accept on the control socket failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            },
            _ = term.recv() => break,
            _ = interrupt.recv() => break,
        }
    }
    tracing::info!("shutting down");
    notify_systemd("STOPPING=1");
    daemon.engine.shutdown(Duration::from_secs(30)).await;
    let _ = std::fs::remove_file(&args.socket);
    Ok(())
}

/// Tells systemd (`Type=notify`) about our state, when run under it.
fn notify_systemd(state: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let Ok(sock) = std::os::unix::net::UnixDatagram::unbound() else {
        return;
    };
    let sent = if let Some(abstract_name) = path.to_str().and_then(|p| p.strip_prefix('@')) {
        use std::os::linux::net::SocketAddrExt;
        std::os::unix::net::SocketAddr::from_abstract_name(abstract_name.as_bytes())
            .and_then(|addr| sock.send_to_addr(state.as_bytes(), &addr))
    } else {
        sock.send_to(state.as_bytes(), &path)
    };
    if let Err(e) = sent {
        tracing::warn!(error = %e, "could not notify systemd");
    }
}

/// Binds the control socket: directory 0755, socket 0666 (every local user may connect; each
/// operation is then authorised from the peer's kernel credentials). A stale socket file left
/// by a crash is replaced; a live one means another httpqd is running.
fn bind_socket(path: &std::path::Path) -> Result<UnixListener, String> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    if let Some(dir) = path.parent() {
        if !dir.exists() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
    }
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(format!(
                "another httpqd already listens on {}; stop it or use --socket",
                path.display()
            ));
        }
        std::fs::remove_file(path)
            .map_err(|e| format!("cannot replace {}: {e}", path.display()))?;
    }
    let listener = UnixListener::bind(path)
        .map_err(|e| format!("cannot listen on {}: {e}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666))
        .map_err(|e| format!("cannot set permissions on {}: {e}", path.display()))?;
    Ok(listener)
}

/// What one app connection created, for cleanup when it goes away.
#[derive(Default)]
struct Owned {
    /// Queue id → (queue, engine handle, name if named).
    queues: HashMap<u64, (IpcQueue, QueueHandle, Option<String>)>,
    /// Prefixes of this connection's anonymous queues (a named queue's belong to the queue).
    prefixes: Vec<UrlPrefix>,
}

async fn serve_app(daemon: Arc<Daemon>, stream: UnixStream) {
    let (caller, pid) = match identity::caller(&stream) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "a control connection has no peer credentials; closing it");
            return;
        }
    };
    let (rd, wr) = stream.into_split();
    let mut reader = FrameReader::new(rd);
    let writer = FrameWriter::spawn(wr);

    // Handshake: HELLO first, nothing else.
    let hello = match reader.next().await {
        Ok(Frame::Hello(h)) => h,
        Ok(_) | Err(_) => {
            writer.send(goaway(
                httpq_wire::ErrorCode::PROTOCOL_ERROR,
                "the first frame must be HELLO",
            ));
            return;
        }
    };
    let Some(version) = hello.negotiate(PROTOCOL_VERSION, PROTOCOL_VERSION) else {
        writer.send(goaway(
            httpq_wire::ErrorCode::VERSION_MISMATCH,
            &format!("this listener speaks protocol version {PROTOCOL_VERSION}"),
        ));
        return;
    };
    if hello.role == Role::Admin {
        writer.send(Frame::HelloAck(HelloAck {
            version,
            max_frame_size: httpq_wire::DEFAULT_MAX_FRAME_SIZE,
            features: 0,
            server: format!("httpqd/{}", env!("CARGO_PKG_VERSION")),
        }));
        admin::serve(&daemon, &caller, reader, writer).await;
        return;
    }
    let max_frame = hello
        .max_frame_size
        .min(httpq_wire::DEFAULT_MAX_FRAME_SIZE * 4);
    writer.send(Frame::HelloAck(HelloAck {
        version,
        max_frame_size: max_frame,
        features: 0,
        server: format!("httpqd/{}", env!("CARGO_PKG_VERSION")),
    }));
    reader.set_max_frame_size(max_frame);
    let conn_id = daemon.next_id.fetch_add(1, Ordering::Relaxed);
    let app = AppConn::new(conn_id, writer.clone(), max_frame);
    tracing::info!(pid = ?pid, user = %caller.user, uid = caller.uid, "app connected");
    lock(&daemon.apps).insert(
        conn_id,
        admin::AppInfo {
            pid,
            user: caller.user.clone(),
            uid: caller.uid,
            prefixes: Vec::new(),
        },
    );

    let mut owned = Owned::default();
    let end = loop {
        let frame = match reader.next().await {
            Ok(f) => f,
            Err(e) => break e,
        };
        match frame {
            Frame::Control(c) if !c.is_response => {
                let response = match c.request() {
                    Ok(req) => control(&daemon, &app, &caller, &mut owned, req).await,
                    Err(e) => ControlResponse::Error {
                        code: CtlError::InvalidParameter,
                        message: e.to_string(),
                    },
                };
                writer.send(Frame::control_response(c.op_id, &response));
            }
            Frame::Credit(c) if c.stream.is_connection() => {
                app.add_credits(c.increment);
                for (q, _, _) in owned.queues.values() {
                    q.wake_n(c.increment as usize);
                }
            }
            Frame::ResponseHead(h) => app.on_response_head(h),
            Frame::Credit(c) => app.on_credit(c.stream, c.increment),
            Frame::ResponseBody(d) => {
                app.on_response_data(d.stream, http_body::Frame::data(d.data), d.end_stream);
            }
            Frame::ResponseTrailers(t) => {
                let map = httpq_wire::header_map(t.headers);
                app.on_response_data(t.stream, http_body::Frame::trailers(map), true);
            }
            Frame::Reset(r) => app.on_reset(
                r.stream,
                r.code.0,
                &format!("the app reset the request: {}", r.reason),
            ),
            Frame::Ping(p) if !p.ack => {
                writer.send(Frame::Ping(httpq_wire::Ping {
                    payload: p.payload,
                    ack: true,
                }));
            }
            Frame::Goaway(_) => break ReadError::Closed,
            // Frames this version does not act on yet are accepted and ignored.
            _ => {}
        }
    };
    match end {
        ReadError::Closed => tracing::info!(pid = ?pid, "app disconnected"),
        e => {
            tracing::warn!(pid = ?pid, error = %e, "closing the connection of a misbehaving app");
            writer.send(goaway(
                httpq_wire::ErrorCode::PROTOCOL_ERROR,
                &e.to_string(),
            ));
        }
    }
    // The app is gone: its prefixes and queues go with it, its in-flight requests fail.
    lock(&daemon.apps).remove(&conn_id);
    for p in &owned.prefixes {
        let _ = daemon.engine.remove_prefix(p).await;
    }
    for (q, _, name) in owned.queues.values() {
        let remaining = q.detach(app.id);
        match name {
            Some(name) if remaining == 0 => expire_later(daemon.clone(), name.clone()).await,
            Some(_) => {}
            None => {
                q.close();
                lock(&daemon.queues).remove(&q.id);
            }
        }
    }
    app.fail_all();
}

/// The last process left a named queue: keep it (prefixes registered, requests waiting) for
/// its retention period, then remove it unless a process attached meanwhile.
async fn expire_later(daemon: Arc<Daemon>, name: String) {
    let (retention, epoch) = match daemon.named.lock().await.get(&name) {
        Some(n) => (n.retention, n.epoch),
        None => return,
    };
    if !retention.is_zero() {
        tracing::info!(queue = %name, retention_secs = retention.as_secs(), "the last process left; keeping the queue for its retention period");
    }
    tokio::spawn(async move {
        tokio::time::sleep(retention).await;
        let mut named = daemon.named.lock().await;
        let stale = named.get(&name).is_none_or(|n| n.epoch != epoch);
        if stale {
            return;
        }
        if let Some(n) = named.remove(&name) {
            drop(named);
            lock(&daemon.queues).remove(&n.queue.id);
            for p in &n.prefixes {
                let _ = daemon.engine.remove_prefix(p).await;
            }
            n.queue.close();
            tracing::info!(queue = %name, "request queue removed");
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

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn goaway(code: httpq_wire::ErrorCode, reason: &str) -> Frame {
    Frame::Goaway(httpq_wire::Goaway {
        last_stream: StreamId(0),
        code,
        reason: reason.to_owned(),
    })
}

async fn control(
    daemon: &Daemon,
    app: &Arc<AppConn>,
    caller: &Caller,
    owned: &mut Owned,
    req: ControlRequest,
) -> ControlResponse {
    let error = |code, message: String| ControlResponse::Error { code, message };
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
            // The creator's settings (HTTP.sys: properties set on the queue by its creator;
            // processes that attach later do not change them).
            let defaults = daemon.engine.options();
            let limit = request_queue_limit.unwrap_or(defaults.request_queue_limit);
            if !(1..=0x7FFF_FFFF).contains(&limit) {
                return error(
                    CtlError::InvalidParameter,
                    format!(
                        "request_queue_limit {limit}: expected 1 to 2147483647 (HTTP.sys's range)"
                    ),
                );
            }
            let admission = httpq_core::queue::QueueAdmission {
                limit,
                verbosity: match http503_verbosity {
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
            if !acl.is_empty() && name.is_none() {
                return error(
                    CtlError::InvalidParameter,
                    "a queue ACL only makes sense for a named queue (nobody can attach to an anonymous one); set request_queue_name too".to_owned(),
                );
            }
            let (acl_uids, acl_gids) = match resolve_queue_acl(&acl) {
                Ok(ids) => ids,
                Err(why) => return error(CtlError::InvalidParameter, why),
            };
            let record = |id: u64, name: Option<String>, q: &IpcQueue, handle: &QueueHandle| {
                admin::QueueRecord {
                    id,
                    name,
                    owner_uid: caller.uid,
                    owner: caller.user.clone(),
                    queue: q.clone(),
                    handle: handle.clone(),
                    retention: Duration::from_secs(retention_secs.unwrap_or(0)),
                    prefixes: Vec::new(),
                    acl: acl.clone(),
                }
            };
            let (id, created) = match name {
                None => {
                    let id = daemon.next_id.fetch_add(1, Ordering::Relaxed);
                    let q = IpcQueue::new(id);
                    q.attach(app.clone());
                    let handle =
                        daemon
                            .engine
                            .create_queue_with(None, Arc::new(q.clone()), admission);
                    lock(&daemon.queues).insert(id, record(id, None, &q, &handle));
                    owned.queues.insert(id, (q, handle, None));
                    (id, true)
                }
                Some(name) => {
                    if name.is_empty() || name.len() > 260 {
                        return error(
                            CtlError::InvalidParameter,
                            "a request queue name must be 1 to 260 characters".to_owned(),
                        );
                    }
                    let mut named = daemon.named.lock().await;
                    if let Some(n) = named.get_mut(&name) {
                        if mode == RequestQueueMode::Create {
                            return error(
                                CtlError::AlreadyExists,
                                format!(
                                    "request queue \"{name}\" already exists; attach to it with mode attach or create_or_attach"
                                ),
                            );
                        }
                        let allowed = caller.uid == n.owner_uid
                            || caller.is_root()
                            || n.acl_uids.contains(&caller.uid)
                            || caller.gids.iter().any(|g| n.acl_gids.contains(g));
                        if !allowed {
                            return error(
                                CtlError::AccessDenied,
                                format!(
                                    "request queue \"{name}\" belongs to uid {}; user {} (uid {}) is neither its creator, root, nor in its queue ACL (the creator can add user:{} with HTTPQ_REQUEST_QUEUE_ACL)",
                                    n.owner_uid, caller.user, caller.uid, caller.user
                                ),
                            );
                        }
                        n.epoch += 1;
                        n.queue.attach(app.clone());
                        owned.queues.insert(
                            n.queue.id,
                            (n.queue.clone(), n.handle.clone(), Some(name.clone())),
                        );
                        (n.queue.id, false)
                    } else {
                        if mode == RequestQueueMode::Attach {
                            return error(
                                CtlError::NotFound,
                                format!(
                                    "there is no request queue named \"{name}\"; create it with mode create or create_or_attach"
                                ),
                            );
                        }
                        let id = daemon.next_id.fetch_add(1, Ordering::Relaxed);
                        let q = IpcQueue::new(id);
                        q.attach(app.clone());
                        let handle = daemon.engine.create_queue_with(
                            Some(name.clone()),
                            Arc::new(q.clone()),
                            admission,
                        );
                        lock(&daemon.queues)
                            .insert(id, record(id, Some(name.clone()), &q, &handle));
                        named.insert(
                            name.clone(),
                            Named {
                                queue: q.clone(),
                                handle: handle.clone(),
                                owner_uid: caller.uid,
                                retention: Duration::from_secs(retention_secs.unwrap_or(0)),
                                prefixes: Vec::new(),
                                acl_uids,
                                acl_gids,
                                epoch: 0,
                            },
                        );
                        owned.queues.insert(id, (q, handle, Some(name)));
                        (id, true)
                    }
                }
            };
            if let Some(n) = max_accepts {
                app.add_credits(n);
            }
            ControlResponse::Ok {
                result: json!({ "queue": id, "created": created }),
            }
        }
        ControlRequest::AddUrl { queue, prefix } => {
            let Some((q, handle, name)) = owned.queues.get(&queue) else {
                return error(
                    CtlError::NotFound,
                    format!("no queue {queue} on this connection"),
                );
            };
            let parsed = match UrlPrefix::parse(&prefix) {
                Ok(p) => p,
                Err(e) => return error(CtlError::InvalidParameter, e.to_string()),
            };
            // A process attaching to a named queue registers the prefixes the queue already
            // has: that is not a conflict (HTTP.sys tolerates it the same way).
            if let Some(name) = name {
                let named = daemon.named.lock().await;
                if named
                    .get(name)
                    .is_some_and(|n| n.prefixes.contains(&parsed))
                {
                    let url_context = q.add_context(&parsed.to_string());
                    return ControlResponse::Ok {
                        result: json!({ "url_context": url_context, "prefix": parsed.to_string() }),
                    };
                }
            }
            let acls = lock(&daemon.acls).clone();
            if let Err(denied) = check_register(&parsed, caller, &acls) {
                tracing::warn!(prefix = %parsed, user = %caller.user, uid = caller.uid, "registration refused by URL ACL");
                return error(CtlError::AccessDenied, denied.to_string());
            }
            match daemon.engine.add_prefix(parsed, handle).await {
                Ok(bound) => {
                    let url_context = q.add_context(&bound.to_string());
                    match name {
                        Some(name) => {
                            if let Some(n) = daemon.named.lock().await.get_mut(name) {
                                n.prefixes.push(bound.clone());
                            }
                        }
                        None => owned.prefixes.push(bound.clone()),
                    }
                    if let Some(info) = lock(&daemon.apps).get_mut(&app.id) {
                        info.prefixes.push(bound.to_string());
                    }
                    if let Some(r) = lock(&daemon.queues).get_mut(&q.id) {
                        r.prefixes.push(bound.to_string());
                    }
                    ControlResponse::Ok {
                        result: json!({ "url_context": url_context, "prefix": bound.to_string() }),
                    }
                }
                Err(httpq_server::EngineError::AlreadyRegistered { prefix, owner }) => error(
                    CtlError::AlreadyExists,
                    format!("url prefix \"{prefix}\" is already registered by {owner}"),
                ),
                Err(e) => error(CtlError::InvalidParameter, e.to_string()),
            }
        }
        ControlRequest::RemoveUrl { prefix, .. } => {
            let Ok(parsed) = UrlPrefix::parse(&prefix) else {
                return error(CtlError::InvalidParameter, format!("bad prefix {prefix:?}"));
            };
            let Some(i) = owned.prefixes.iter().position(|p| *p == parsed) else {
                return error(
                    CtlError::NotFound,
                    format!("this app did not register {prefix}"),
                );
            };
            let p = owned.prefixes.remove(i);
            let _ = daemon.engine.remove_prefix(&p).await;
            if let Some(info) = lock(&daemon.apps).get_mut(&app.id) {
                info.prefixes.retain(|x| *x != p.to_string());
            }
            for r in lock(&daemon.queues).values_mut() {
                if owned.queues.contains_key(&r.id) {
                    r.prefixes.retain(|x| *x != p.to_string());
                }
            }
            ControlResponse::Ok { result: json!({}) }
        }
        ControlRequest::CloseQueue { queue } => match owned.queues.remove(&queue) {
            Some((q, _, _)) => {
                q.detach(app.id);
                ControlResponse::Ok { result: json!({}) }
            }
            None => error(
                CtlError::NotFound,
                format!("no queue {queue} on this connection"),
            ),
        },
        ControlRequest::Admin { command, .. } => error(
            CtlError::AccessDenied,
            format!("admin command {command:?} needs an admin connection"),
        ),
        _ => error(CtlError::InvalidParameter, "unknown operation".to_owned()),
    }
}
