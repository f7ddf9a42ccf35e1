//! The httpq engine: listening sockets derived from the registered URL prefixes, HTTP/1.1
//! connections with HTTP.sys's limits and timers, request queues, and the hand-off to the app.
//!
//! The engine is the same in both modes. In embedded mode the `httpq` library creates an
//! [`Engine`] in the app's process and registers one queue whose receiver is the app's
//! `tower::Service`; in daemon mode `httpqd` owns the engine and the receivers are IPC
//! transports to app processes. See `docs/ARCHITECTURE.md` for one request's path.
//!
//! ```no_run
//! # async fn demo(app: std::sync::Arc<dyn httpq_server::AppQueue>) -> Result<(), httpq_server::EngineError> {
//! use httpq_core::options::Options;
//! let engine = httpq_server::Engine::new(Options::with_cores(2))?;
//! let queue = engine.create_queue(None, app);
//! let bound = engine.add_prefix("http://localhost:0/".parse()?, &queue).await?;
//! println!("serving {bound}");
//! engine.shutdown(std::time::Duration::from_secs(5)).await;
//! # Ok(()) }
//! ```

pub mod accept_errors;
mod access_log;
mod app;
mod body;
mod conn;
mod date;
mod exchange;
mod h1out;
mod h1read;
mod h2conn;
mod h2guard;
mod h3conn;
mod httperr;
mod logfile;
pub use httpq_ipc as ipc;
/// The listener<->app transport (the `httpq-ipc` crate), re-exported for the engine's users.
pub use timing::{RequestTiming, TimingKind, monotonic_nanos};
mod listen;
#[cfg(feature = "logs")]
pub mod logs;
mod metrics;
mod pipeline;
mod stream;
mod timing;
mod tls;
pub use httpq_ipc::trust;

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use httpq_core::options::{OptionError, Options};
use httpq_core::queue::QueueAdmission;
use httpq_core::router::{DuplicatePrefix, Router};
use httpq_core::{Scheme, UrlPrefix, UrlPrefixError};
use tokio::sync::{Notify, watch};

pub use app::{
    AppFuture, AppHandle, AppQueue, AppRequest, ConnectionInfo, Disconnect, DisconnectTrigger,
    MatchedPrefix, RequestContext, RequestId, ResetStream, TlsInfo,
};
pub use body::{
    BODY_BUFFER, BodyAlreadyRead, BodyError, BodySender, BoxError, MaxRequestBodySize, RequestBody,
    ResponseBody,
};

/// Errors from configuring the engine. Each message names the problem and the fix.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// An option is out of range.
    #[error(transparent)]
    Option(#[from] OptionError),
    /// The error log (`error_log_dir`) cannot be written.
    #[error("cannot write the error log in {}: {source} (check the directory and its permissions, or set another error_log_dir / HTTPQ_ERROR_LOG_DIR)", dir.display())]
    ErrorLog {
        /// The directory.
        dir: std::path::PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// An access log cannot be written.
    #[error("cannot write the access log in {}: {source} (check the directory and its permissions, or choose another directory)", dir.display())]
    AccessLog {
        /// The directory.
        dir: std::path::PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// The metrics address cannot be served.
    #[error(
        "cannot serve metrics on {addr}: {source} (choose another metrics_address / HTTPQ_METRICS_ADDRESS)"
    )]
    Metrics {
        /// The address.
        addr: SocketAddr,
        /// What failed.
        source: std::io::Error,
    },
    /// A URL prefix does not parse.
    #[error(transparent)]
    Prefix(#[from] UrlPrefixError),
    /// The prefix is already registered.
    #[error(
        "url prefix \"{prefix}\" is already registered by {owner}; remove it there first or pick another prefix"
    )]
    AlreadyRegistered {
        /// The prefix.
        prefix: String,
        /// Who holds it.
        owner: String,
    },
    /// The prefix is not registered.
    #[error("url prefix \"{0}\" is not registered")]
    NotRegistered(String),
    /// An http and an https prefix on the same port.
    #[error(
        "url prefix \"{prefix}\" cannot share its port with \"{other}\": a port serves either http or https; use another port"
    )]
    SchemeConflict {
        /// The prefix refused.
        prefix: String,
        /// The registered prefix with the other scheme.
        other: String,
    },
    /// A listening socket could not be opened.
    #[error("cannot listen on {addr} for url prefix \"{prefix}\": {source}{hint}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The prefix that needed it.
        prefix: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
        /// What to do about it.
        hint: &'static str,
    },
    /// The engine is shutting down.
    #[error("the server is shutting down")]
    ShuttingDown,
}

/// A request queue registered with the engine.
pub(crate) struct Queue {
    name: Option<String>,
    /// The name logs and metrics give it (`-` for an anonymous queue).
    label: Arc<str>,
    admission: QueueAdmission,
    depth: AtomicU32,
    /// Requests handed to the app and not yet answered.
    active: AtomicU32,
    /// Its metrics series, kept once looked up.
    counters: std::sync::OnceLock<Arc<metrics::QueueCounters>>,
    app: Arc<dyn AppQueue>,
}

impl fmt::Debug for Queue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Queue")
            .field("name", &self.name)
            .field("depth", &self.depth.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// A request queue: URL prefixes are added to it, and its receiver takes their requests.
#[derive(Debug, Clone)]
pub struct QueueHandle(Arc<Queue>);

impl QueueHandle {
    /// The queue's name, `None` for an anonymous queue.
    #[must_use]
    pub fn name(&self) -> Option<&str> {
        self.0.name.as_deref()
    }

    /// Requests admitted and not yet received by the app.
    #[must_use]
    pub fn depth(&self) -> u32 {
        self.0.depth.load(Ordering::Relaxed)
    }

    /// The queue's limit and how it answers when full.
    #[must_use]
    pub fn admission(&self) -> QueueAdmission {
        self.0.admission
    }
}

/// What the router maps a prefix to.
#[derive(Debug, Clone)]
pub(crate) struct Registration {
    pub(crate) matched: MatchedPrefix,
    pub(crate) queue: Arc<Queue>,
}

impl fmt::Display for Registration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.queue.name {
            Some(n) => write!(f, "request queue \"{n}\""),
            None => f.write_str("an anonymous request queue in this process"),
        }
    }
}

/// Ports whose prefixes are https (one look per scheme and port, not per prefix).
fn https_ports(router: &Router<Registration>) -> std::collections::HashSet<u16> {
    router
        .endpoints()
        .filter(|(scheme, _)| *scheme == Scheme::Https)
        .map(|(_, port)| port)
        .collect()
}

/// A snapshot of the routes; connections cache it until the generation changes. A change
/// edits the table in place when no connection holds it (registering many prefixes at
/// start-up), and a copy when one does.
#[derive(Debug, Default, Clone)]
pub(crate) struct RouteTable {
    pub(crate) router: Router<Registration>,
    /// Ports whose prefixes are https: connections to them start with a TLS handshake.
    pub(crate) https_ports: std::collections::HashSet<u16>,
}

pub(crate) struct Inner {
    pub(crate) options: Options,
    routes: RwLock<Arc<RouteTable>>,
    pub(crate) route_gen: AtomicU64,
    request_ids: AtomicU64,
    conn_ids: AtomicU64,
    pub(crate) conns: AtomicUsize,
    pub(crate) conns_idle: Notify,
    pub(crate) conn_tasks: Mutex<HashMap<u64, tokio::task::AbortHandle>>,
    pub(crate) shutdown: watch::Sender<bool>,
    /// The SSL certificate bindings handshakes on https ports are served with.
    pub(crate) tls: Arc<httpq_tls::TlsBindings>,
    /// HTTP.sys's error log, when `error_log_dir` is set.
    pub(crate) httperr: Option<httperr::ErrorLog>,
    /// Where each exchange's record goes: the access logs and the metrics.
    pub(crate) observers: Arc<exchange::Observers>,
    /// Serialises prefix changes (routes + listeners change together).
    change: tokio::sync::Mutex<listen::Listeners>,
}

impl Inner {
    pub(crate) fn routes_snapshot(&self) -> Arc<RouteTable> {
        self.routes
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn next_request_id(&self) -> u64 {
        self.request_ids.fetch_add(1, Ordering::Relaxed)
    }

    /// Each queue that has prefixes now: its label, depth and active requests.
    pub(crate) fn queue_gauges(&self) -> Vec<(String, u32, u32)> {
        let table = self.routes_snapshot();
        let mut seen: Vec<*const Queue> = Vec::new();
        let mut out = Vec::new();
        for (_, reg) in table.router.iter() {
            let q = &reg.queue;
            if seen.contains(&Arc::as_ptr(q)) {
                continue;
            }
            seen.push(Arc::as_ptr(q));
            out.push((
                q.label.to_string(),
                q.depth.load(Ordering::Relaxed),
                q.active.load(Ordering::Relaxed),
            ));
        }
        out
    }

    pub(crate) fn next_conn_id(&self) -> u64 {
        self.conn_ids.fetch_add(1, Ordering::Relaxed)
    }

    /// Changes the routes with `change` and publishes them (the next request on each
    /// connection sees the new table). Callers hold `change` (the listeners' lock), so
    /// changes never race each other.
    ///
    /// When nothing else holds the table (start-up), it is edited in place. Otherwise a copy
    /// is changed outside the lock and swapped in: routing (accepts, new streams, a
    /// connection's first request after a change) never waits for a copy of every prefix.
    fn update_routes<R>(&self, change: impl FnOnce(&mut Router<Registration>) -> R) -> R {
        {
            let mut routes = self
                .routes
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(table) = Arc::get_mut(&mut routes) {
                let out = change(&mut table.router);
                table.https_ports = https_ports(&table.router);
                self.route_gen.fetch_add(1, Ordering::AcqRel);
                return out;
            }
        }
        let mut table = RouteTable::clone(&self.routes_snapshot());
        let out = change(&mut table.router);
        table.https_ports = https_ports(&table.router);
        *self
            .routes
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(table);
        self.route_gen.fetch_add(1, Ordering::AcqRel);
        out
    }
}

/// The engine. Cheap to clone; all clones drive the same listeners and queues.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

impl fmt::Debug for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Engine")
            .field("connections", &self.inner.conns.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// An engine with these options and no prefixes yet.
    ///
    /// # Errors
    /// An option out of range.
    pub fn new(options: Options) -> Result<Engine, EngineError> {
        options.validate()?;
        let httperr = options
            .error_log_dir
            .as_ref()
            .map(|dir| {
                httperr::ErrorLog::start(dir, options.error_log_truncate_size).map_err(|source| {
                    EngineError::ErrorLog {
                        dir: dir.clone(),
                        source,
                    }
                })
            })
            .transpose()?;
        let metrics_listener = options
            .metrics_address
            .map(|addr| {
                let runtime =
                    tokio::runtime::Handle::try_current().map_err(|_| EngineError::Metrics {
                        addr,
                        source: std::io::Error::other(
                            "no tokio runtime: create the engine inside one",
                        ),
                    })?;
                let _enter = runtime.enter();
                metrics::bind(addr).map_err(|source| EngineError::Metrics { addr, source })
            })
            .transpose()?;
        let observers = Arc::new(exchange::Observers::new(
            metrics_listener.as_ref().map(|_| metrics::Metrics::new()),
        ));
        if let Some(log) = &options.access_log {
            let started =
                access_log::AccessLog::start(log).map_err(|source| EngineError::AccessLog {
                    dir: log.dir.clone(),
                    source,
                })?;
            observers.set_access_log(None, Some(Arc::new(started)));
        }
        let (shutdown, _) = watch::channel(false);
        let engine = Engine {
            inner: Arc::new(Inner {
                options,
                routes: RwLock::new(Arc::new(RouteTable::default())),
                route_gen: AtomicU64::new(1),
                request_ids: AtomicU64::new(1),
                conn_ids: AtomicU64::new(1),
                conns: AtomicUsize::new(0),
                conns_idle: Notify::new(),
                conn_tasks: Mutex::new(HashMap::new()),
                shutdown,
                tls: Arc::new(httpq_tls::TlsBindings::new()),
                httperr,
                observers,
                change: tokio::sync::Mutex::new(listen::Listeners::default()),
            }),
        };
        if let Some(listener) = metrics_listener {
            if let Ok(addr) = listener.local_addr() {
                tracing::info!(%addr, "serving Prometheus metrics at GET /metrics");
            }
            metrics::start(&engine.inner, listener);
        }
        Ok(engine)
    }

    /// The options in force.
    #[must_use]
    pub fn options(&self) -> &Options {
        &self.inner.options
    }

    /// Writes every log line queued so far, in the error log and every access log, to its
    /// file (`netsh http flush logbuffer`); returns how many lines were dropped since start
    /// because a log's queue was full.
    pub fn flush_logs(&self) -> u64 {
        let mut dropped = self.inner.httperr.as_ref().map_or(0, |log| {
            log.flush();
            log.dropped()
        });
        for (_, log) in self.inner.observers.access_logs() {
            log.flush();
            dropped += log.dropped();
        }
        dropped
    }

    /// Starts (or replaces, or with `None` stops) a W3C access log: the listener-wide
    /// (centralized) one when `queue` is `None`, else the log of the named queue `queue`
    /// (used only while there is no centralized log, as HTTP.sys's centralized logging
    /// replaces per-group logging).
    ///
    /// # Errors
    /// The log's directory cannot be created or written; nothing changed then.
    pub fn set_access_log(
        &self,
        queue: Option<&str>,
        options: Option<&httpq_core::logging::AccessLogOptions>,
    ) -> Result<(), EngineError> {
        let log = options
            .map(|o| {
                access_log::AccessLog::start(o)
                    .map(Arc::new)
                    .map_err(|source| EngineError::AccessLog {
                        dir: o.dir.clone(),
                        source,
                    })
            })
            .transpose()?;
        self.inner.observers.set_access_log(queue, log);
        Ok(())
    }

    /// The access logs being written: `(None, ..)` is the centralized one, `(Some(queue), ..)`
    /// a queue's.
    #[must_use]
    pub fn access_logs(&self) -> Vec<(Option<String>, httpq_core::logging::AccessLogOptions)> {
        self.inner
            .observers
            .access_logs()
            .into_iter()
            .map(|(q, l)| (q, l.options().clone()))
            .collect()
    }

    /// The SSL certificate bindings for https prefixes. Change them at any time
    /// ([`httpq_tls::TlsBindings::replace`], [`httpq_tls::TlsBindings::insert`]): the next
    /// handshake uses the change, established connections keep theirs.
    #[must_use]
    pub fn tls(&self) -> &Arc<httpq_tls::TlsBindings> {
        &self.inner.tls
    }

    /// Creates a request queue whose requests `app` receives, with the engine's queue limit
    /// and 503 verbosity.
    pub fn create_queue(&self, name: Option<String>, app: Arc<dyn AppQueue>) -> QueueHandle {
        let o = &self.inner.options;
        self.create_queue_with(
            name,
            app,
            QueueAdmission {
                limit: o.request_queue_limit,
                verbosity: o.http503_verbosity,
            },
        )
    }

    /// Creates a request queue with its own limit and 503 verbosity (HTTP.sys's per-queue
    /// `HttpServerQueueLengthProperty` and `HttpServer503VerbosityProperty`).
    pub fn create_queue_with(
        &self,
        name: Option<String>,
        app: Arc<dyn AppQueue>,
        admission: QueueAdmission,
    ) -> QueueHandle {
        QueueHandle(Arc::new(Queue {
            label: name.as_deref().unwrap_or("-").into(),
            name,
            admission,
            depth: AtomicU32::new(0),
            active: AtomicU32::new(0),
            counters: std::sync::OnceLock::new(),
            app,
        }))
    }

    /// Registers `prefix` for `queue`, opening listening sockets as needed. Port 0 (http only)
    /// picks a free port; the returned prefix carries the real one.
    ///
    /// # Errors
    /// The prefix is already registered, its port serves the other scheme, or its sockets
    /// cannot be opened. On error
    /// nothing changed.
    pub async fn add_prefix(
        &self,
        prefix: UrlPrefix,
        queue: &QueueHandle,
    ) -> Result<UrlPrefix, EngineError> {
        if *self.inner.shutdown.borrow() {
            return Err(EngineError::ShuttingDown);
        }
        let mut listeners = self.inner.change.lock().await;
        // Shutdown may have closed the listeners while this call waited for the lock.
        if *self.inner.shutdown.borrow() {
            return Err(EngineError::ShuttingDown);
        }
        let current = self.inner.routes_snapshot();
        if let Some(existing) = current.router.get(&prefix) {
            return Err(EngineError::AlreadyRegistered {
                prefix: prefix.to_string(),
                owner: existing.to_string(),
            });
        }
        // A port speaks TLS or it does not: http and https prefixes cannot share one, with
        // one exception so that a reservation-free registration can never block a reserved
        // one (docs/security.md, "Scheme squatting"): `http://localhost:PORT/` above 1024,
        // which anyone may register, never holds a port against https. An https prefix on a
        // port held only by such prefixes turns the port to TLS; those http prefixes stay
        // registered but match nothing until it serves http again (as in HTTP.sys, where an
        // SSL binding makes a port TLS and http prefixes on it receive nothing).
        if prefix.port() != 0 {
            let others: Vec<&UrlPrefix> = current
                .router
                .prefixes()
                .filter(|p| p.port() == prefix.port() && p.scheme() != prefix.scheme())
                .collect();
            let displaced_only_free = prefix.scheme() == Scheme::Https
                && others.iter().all(|p| httpq_core::acl::is_free_localhost(p));
            if let Some(other) = others.first() {
                if !displaced_only_free {
                    return Err(EngineError::SchemeConflict {
                        prefix: prefix.to_string(),
                        other: other.to_string(),
                    });
                }
                for p in &others {
                    tracing::warn!(prefix = %p, by = %prefix, "port turns to https: this reservation-free http prefix receives nothing while https prefixes hold the port");
                }
            }
        }
        let bound = listeners
            .open_for(&self.inner, &current.router, &prefix)
            .await?;
        // Not held past here, so that the table is changed in place when no connection has
        // it.
        drop(current);
        let reg = Registration {
            matched: MatchedPrefix::new(bound.clone()),
            queue: queue.0.clone(),
        };
        // The owner named as text inside: the error leaves the closure small.
        let added = self.inner.update_routes(|router| {
            router
                .add(bound.clone(), reg)
                .map_err(|DuplicatePrefix { prefix, owner }| (prefix, owner.to_string()))
        });
        if let Err((prefix, owner)) = added {
            listeners
                .sync(&self.inner, &self.inner.routes_snapshot().router)
                .await;
            return Err(EngineError::AlreadyRegistered {
                prefix: prefix.to_string(),
                owner,
            });
        }
        tracing::info!(prefix = %bound, queue = ?queue.name(), "url prefix registered");
        Ok(bound)
    }

    /// Unregisters `prefix`; sockets no other prefix needs are closed. Requests already
    /// received finish; new ones for it are answered by whatever else matches (or 400/404).
    ///
    /// # Errors
    /// The prefix is not registered.
    pub async fn remove_prefix(&self, prefix: &UrlPrefix) -> Result<(), EngineError> {
        let mut listeners = self.inner.change.lock().await;
        if self.inner.routes_snapshot().router.get(prefix).is_none() {
            return Err(EngineError::NotRegistered(prefix.to_string()));
        }
        self.inner.update_routes(|router| router.remove(prefix));
        listeners
            .sync(&self.inner, &self.inner.routes_snapshot().router)
            .await;
        tracing::info!(prefix = %prefix, "url prefix removed");
        Ok(())
    }

    /// The registered prefixes (with real ports).
    #[must_use]
    pub fn prefixes(&self) -> Vec<UrlPrefix> {
        self.inner
            .routes_snapshot()
            .router
            .prefixes()
            .cloned()
            .collect()
    }

    /// The addresses the engine listens on.
    pub async fn local_addrs(&self) -> Vec<SocketAddr> {
        self.inner.change.lock().await.addrs()
    }

    /// Open connections.
    #[must_use]
    pub fn connections(&self) -> usize {
        self.inner.conns.load(Ordering::Relaxed)
    }

    /// Graceful shutdown: stop accepting, let in-flight requests finish (their connections
    /// close after the response), close idle connections, and after `deadline` abort whatever
    /// is still running.
    pub async fn shutdown(&self, deadline: Duration) {
        self.inner.shutdown.send_replace(true);
        self.inner.change.lock().await.close_all().await;
        let wait = async {
            loop {
                let idle = self.inner.conns_idle.notified();
                if self.inner.conns.load(Ordering::Acquire) == 0 {
                    return;
                }
                idle.await;
            }
        };
        if tokio::time::timeout(deadline, wait).await.is_err() {
            let tasks: Vec<_> = self
                .inner
                .conn_tasks
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .drain()
                .collect();
            tracing::warn!(
                aborted = tasks.len(),
                "shutdown deadline reached; aborting connections still in flight"
            );
            for (_, t) in tasks {
                t.abort();
            }
        }
        tracing::info!("server stopped");
    }

    /// Resolves once [`Engine::shutdown`] has been called.
    pub async fn stopped(&self) {
        let mut rx = self.inner.shutdown.subscribe();
        let _ = rx.wait_for(|s| *s).await;
    }
}
