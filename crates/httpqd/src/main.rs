//! `httpqd`: the httpq listener service (daemon mode).
//!
//! It owns the listening sockets and the HTTP engine; app processes connect to its control
//! socket, create request queues, register URL prefixes (checked against URL ACLs by their
//! kernel-reported identity) and receive requests as `httpq-wire` frames.
//!
//! ```text
//! httpqd [--state-dir DIR] [--socket PATH] [--admin-group GROUP] [--workers N] [--alt-svc]
//!        [--max-connections-per-user N] [--max-queues-per-user N]
//!        [--max-prefixes-per-user N] [--max-ports-per-user N]
//!        [--error-log-dir DIR | --no-error-log]
//! ```
//!
//! What one local user may and may not do to another is in docs/security.md.

/// mimalloc: the listener allocates and frees a few kilobytes of request state per request,
/// across threads; glibc serves sizes over 1 KiB from its slow bins. mimalloc v2, whose 10 ms
/// purge delay gives a quiet listener's freed pages back (v3 waits 1 s), built without
/// transparent huge pages, which made an idle HTTP/2 connection's buffers resident whole
/// (decision 0009).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod admin;
mod certs;
mod control;
mod identity;
mod logging;
mod queue;
mod quota;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use httpq_core::options::Options;
use httpq_server::Engine;
use httpq_server::ipc::{FrameReader, FrameWriter, ReadError};
use httpq_wire::control::{ControlResponse, ErrorCode as CtlError};
use httpq_wire::{Frame, HelloAck, PROTOCOL_VERSION, Role, StreamId};
use tokio::net::{UnixListener, UnixStream};

use crate::queue::AppConn;

/// How long a new control connection may take to send HELLO before it is closed.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

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
    named: tokio::sync::Mutex<HashMap<control::NamedKey, control::Named>>,
    /// Every request queue, named or anonymous, for `show servicestate`.
    queues: Mutex<std::collections::BTreeMap<u64, admin::QueueRecord>>,
    /// What each uid holds, against the per-user quotas.
    usage: Arc<quota::Usage>,
}

struct Args {
    state_dir: PathBuf,
    socket: PathBuf,
    admin_group: Option<String>,
    workers: Option<usize>,
    alt_svc: bool,
    quotas: quota::Quotas,
    /// Where the httperr error log goes (`None`: not written).
    error_log: Option<PathBuf>,
    /// Where Prometheus metrics are served (`None`: nowhere).
    metrics: Option<std::net::SocketAddr>,
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
    let mut quotas = quota::Quotas::default();
    let mut error_log: Option<PathBuf> = None;
    let mut no_error_log = false;
    let mut metrics = None;
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
            "--error-log-dir" => {
                error_log = Some(
                    args.next()
                        .ok_or("--error-log-dir needs a directory")?
                        .into(),
                );
            }
            "--no-error-log" => no_error_log = true,
            "--metrics-address" => {
                let v = args
                    .next()
                    .ok_or("--metrics-address needs an address and port, e.g. 127.0.0.1:9180")?;
                metrics = Some(v.parse().map_err(|_| {
                    format!(
                        "--metrics-address {v:?}: expected an address and port, e.g. 127.0.0.1:9180"
                    )
                })?);
            }
            "--max-connections-per-user"
            | "--max-queues-per-user"
            | "--max-prefixes-per-user"
            | "--max-ports-per-user" => {
                let n = args.next().ok_or(format!("{a} needs a number"))?;
                let n = n
                    .parse::<u32>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or(format!("{a} {n}: expected a number, at least 1"))?;
                match a.as_str() {
                    "--max-connections-per-user" => quotas.connections = n,
                    "--max-queues-per-user" => quotas.queues = n,
                    "--max-prefixes-per-user" => quotas.prefixes = n,
                    _ => quotas.ports = n,
                }
            }
            "--admin-group" => {
                admin_group = Some(args.next().ok_or("--admin-group needs a group name")?);
            }
            "--help" | "-h" => {
                let q = quota::Quotas::default();
                return Err(format!(
                    "usage: httpqd [--state-dir DIR] [--socket PATH] [--admin-group GROUP] [--workers N] [--alt-svc]\n\
                     \x20             [--max-connections-per-user N ({})] [--max-queues-per-user N ({})]\n\
                     \x20             [--max-prefixes-per-user N ({})] [--max-ports-per-user N ({})]\n\
                     \x20             [--error-log-dir DIR (STATE-DIR/httperr) | --no-error-log]\n\
                     Runs the httpq listener: apps reach it through the socket (HTTPQ_SOCKET).\n\
                     The per-user limits do not apply to root or to the user running httpqd.",
                    q.connections, q.queues, q.prefixes, q.ports
                ));
            }
            other => return Err(format!("unknown argument {other:?}; see httpqd --help")),
        }
    }
    // HTTP.sys writes its error log by default; so does httpqd, next to its state.
    let error_log = if no_error_log {
        None
    } else {
        Some(error_log.unwrap_or_else(|| state_dir.join("httperr")))
    };
    Ok(Args {
        state_dir,
        socket,
        admin_group,
        workers,
        alt_svc,
        quotas,
        // HTTP.sys writes its error log by default; so does httpqd, next to its state.
        error_log,
        metrics,
    })
}

fn main() {
    httpq_server::logs::init();
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
    raise_nofile_limit();
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
    options.error_log_dir = args.error_log.clone();
    options.metrics_address = args.metrics;
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
        usage: Arc::new(quota::Usage::new(
            args.quotas,
            httpq_server::ipc::own_uid().unwrap_or(0),
        )),
    });
    // The SSL bindings in force from the start (a binding whose certificate is missing is
    // logged and left out; the others apply).
    {
        let state = daemon.state.lock().await;
        certs::apply(&daemon, &state.1);
        logging::apply(&daemon, &state.1);
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
    let mut errors = httpq_server::accept_errors::AcceptErrors::new("the control socket");
    loop {
        tokio::select! {
            r = listener.accept() => match r {
                Ok((stream, _)) => {
                    let d = daemon.clone();
                    tokio::spawn(async move { serve_app(d, stream).await });
                }
                Err(e) => errors.failed(&e).await,
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

/// Raises the soft limit on open descriptors to the hard limit: every client connection and
/// listening socket is one, and the default soft limit (1024) is far below what a shared
/// listener needs. The unit file sets the hard limit (`LimitNOFILE`).
fn raise_nofile_limit() {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    if limit.current == limit.maximum {
        return;
    }
    let raised = rustix::process::Rlimit {
        current: limit.maximum,
        maximum: limit.maximum,
    };
    match setrlimit(Resource::Nofile, raised) {
        Ok(()) => tracing::info!(
            from = ?limit.current,
            to = ?limit.maximum,
            "raised the open-descriptor limit to the hard limit"
        ),
        Err(e) => tracing::warn!(error = %e, "cannot raise the open-descriptor limit"),
    }
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
    // The directory must be one apps will trust (they check the same way): another user who
    // can write it could replace the socket with their own.
    let own = httpq_server::ipc::own_uid().unwrap_or(0);
    httpq_server::trust::check_socket_path(path, &[0, own]).map_err(|e| e.to_string())?;
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
    // What is queued to this peer counts against its user's memory budget.
    let writer = FrameWriter::spawn_with_budget(wr, quota::queue_budget(&daemon.usage, caller.uid));
    // Counted from accept, before HELLO, until the socket is really closed (frames may still
    // be flushing after this function returns): one user's connections cannot exhaust the
    // listener's descriptors for the others.
    match daemon.usage.connection(&caller) {
        Ok(slot) => writer.hold_until_closed(slot),
        Err(why) => {
            tracing::warn!(user = %caller.user, uid = caller.uid, pid = ?pid, "control connection refused: per-user quota");
            writer.send(goaway(httpq_wire::ErrorCode::QUOTA_EXCEEDED, &why));
            return;
        }
    }

    // Handshake: HELLO first, nothing else, and soon.
    let hello = match tokio::time::timeout(HELLO_TIMEOUT, reader.next()).await {
        Ok(Ok(Frame::Hello(h))) => h,
        Ok(Ok(_) | Err(_)) => {
            writer.send(goaway(
                httpq_wire::ErrorCode::PROTOCOL_ERROR,
                "the first frame must be HELLO",
            ));
            return;
        }
        Err(_) => {
            writer.send(goaway(
                httpq_wire::ErrorCode::PROTOCOL_ERROR,
                &format!(
                    "no HELLO within {} s of connecting; closing",
                    HELLO_TIMEOUT.as_secs()
                ),
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
    let ack = |max_frame_size| {
        Frame::HelloAck(HelloAck {
            version,
            max_frame_size,
            features: 0,
            server: format!("httpqd/{}", env!("CARGO_PKG_VERSION")),
        })
    };
    if hello.role == Role::Admin {
        // Refused before any acknowledgement: a HELLO_ACK would tell a non-admin it is in.
        if let Err(why) = admin::authorize(&daemon, &caller) {
            writer.send(goaway(httpq_wire::ErrorCode::ACCESS_DENIED, &why));
            return;
        }
        // Large replies (a long servicestate page) travel in frames up to ADMIN_MAX_FRAME;
        // what the client sends stays at the default size.
        writer.send(ack(hello
            .max_frame_size
            .clamp(httpq_wire::DEFAULT_MAX_FRAME_SIZE, admin::ADMIN_MAX_FRAME)));
        admin::serve(&daemon, &caller, reader, writer).await;
        return;
    }
    let max_frame = hello.max_frame_size.clamp(
        httpq_wire::DEFAULT_MAX_FRAME_SIZE,
        httpq_wire::DEFAULT_MAX_FRAME_SIZE * 4,
    );
    writer.send(ack(max_frame));
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

    let mut owned = control::Owned::default();
    // A peer disconnected for not reading stops being read too. One wait for that serves the
    // whole connection (not one per frame), and the read is polled first, without a random
    // draw: tokio's cooperative budget still makes a busy read yield regularly, so a flooding
    // peer meets the check (test: one_user_cannot_grow_the_listeners_memory).
    let closed = writer.closed();
    tokio::pin!(closed);
    let end = loop {
        let frame = tokio::select! {
            biased;
            r = reader.next() => match r {
                Ok(f) => f,
                Err(e) => break e,
            },
            () = &mut closed => break ReadError::Closed,
        };
        // Every frame on a request stream is checked against the stream's rules first.
        if !frame.stream().is_connection() {
            if let Err(e) = app.check(&frame) {
                app.broke_rule(frame.stream(), &e);
                continue;
            }
        }
        match frame {
            Frame::Control(c) if !c.is_response => {
                let response = match c.request() {
                    Ok(req) => control::control(&daemon, &app, &caller, &mut owned, req).await,
                    Err(e) => ControlResponse::Error {
                        code: CtlError::InvalidParameter,
                        message: e.to_string(),
                    },
                };
                // A peer that does not read its answers is disconnected once its unread
                // frames reach the writer's bound (wire spec §13).
                if !writer.send(Frame::control_response(c.op_id, &response)) {
                    break ReadError::Closed;
                }
            }
            Frame::Credit(c) if c.stream.is_connection() => {
                app.add_credits(c.increment);
                for q in owned.queues() {
                    q.wake_n(c.increment as usize);
                }
            }
            Frame::ResponseHead(h) => app.on_response_head(h),
            Frame::Credit(c) => app.on_credit(c.stream, c.increment),
            Frame::ResponseBody(d) => {
                app.on_response_data(d.stream, http_body::Frame::data(d.data), d.end_stream);
            }
            Frame::ResponseTrailers(t) => {
                app.on_response_data(t.stream, http_body::Frame::trailers(t.headers), true);
            }
            Frame::SetLimit(l) => app.on_set_limit(l.stream, l.max_request_body_size),
            Frame::Reset(r) => app.on_reset(
                r.stream,
                r.code.0,
                &format!("the app reset the request: {}", r.reason),
            ),
            Frame::Ping(p)
                if !p.ack
                    && !writer.send(Frame::Ping(httpq_wire::Ping {
                        payload: p.payload,
                        ack: true,
                    })) =>
            {
                break ReadError::Closed;
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
    control::release_all(&daemon, app.id, &caller, owned).await;
    app.fail_all();
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
