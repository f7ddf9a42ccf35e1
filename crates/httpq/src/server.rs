//! The `Server` builder: options from code and environment, prefixes, serve, shutdown.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use httpq_core::UrlPrefix;
use httpq_core::options::{Options, OptionsPatch};
use httpq_core::queue::Http503Verbosity;
use httpq_server::{BoxError, Engine, QueueHandle, RequestBody};
use tower_service::Service;

use crate::Error;
use crate::service::TowerQueue;

type Setter = Box<dyn Fn(&mut Options) + Send + Sync>;
type EnvLookup = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// Builds a [`Server`]. Start with [`Server::builder`].
pub struct ServerBuilder {
    urls: Vec<String>,
    setters: Vec<Setter>,
    use_env: bool,
    env: Option<EnvLookup>,
    socket: Option<std::path::PathBuf>,
    shutdown_timeout: Duration,
    certificate: Option<CertSource>,
    tls_store: Option<std::path::PathBuf>,
}

/// Where an embedded server's certificate comes from.
#[derive(Clone)]
enum CertSource {
    Pem {
        chain: Vec<u8>,
        key: Vec<u8>,
    },
    Files {
        chain: std::path::PathBuf,
        key: std::path::PathBuf,
    },
}

impl fmt::Debug for ServerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerBuilder")
            .field("urls", &self.urls)
            .field("use_env", &self.use_env)
            .field("shutdown_timeout", &self.shutdown_timeout)
            .finish_non_exhaustive()
    }
}

macro_rules! setters {
    ($($(#[$doc:meta])* $name:ident: $ty:ty => |$o:ident, $v:ident| $body:expr;)*) => {
        $(
            $(#[$doc])*
            #[must_use]
            pub fn $name(mut self, value: $ty) -> Self {
                self.setters.push(Box::new(move |$o: &mut Options| { let $v = value.clone(); $body; }));
                self
            }
        )*
    };
}

impl ServerBuilder {
    /// Adds a URL prefix to serve, e.g. `http://localhost:8080/` or `http://+:80/api/`.
    /// Prefixes given in code replace those from the environment.
    #[must_use]
    pub fn url_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.urls.push(prefix.into());
        self
    }

    /// Adds several URL prefixes.
    #[must_use]
    pub fn url_prefixes<I: IntoIterator<Item = S>, S: Into<String>>(mut self, prefixes: I) -> Self {
        self.urls.extend(prefixes.into_iter().map(Into::into));
        self
    }

    /// Ignores every `HTTPQ_*` environment variable (tests, embedding in larger programs).
    #[must_use]
    pub fn ignore_environment(mut self) -> Self {
        self.use_env = false;
        self
    }

    /// Reads options through `lookup` instead of the process environment.
    #[must_use]
    pub fn environment(
        mut self,
        lookup: impl Fn(&str) -> Option<String> + Send + Sync + 'static,
    ) -> Self {
        self.env = Some(Arc::new(lookup));
        self.use_env = true;
        self
    }

    /// Serves through the `httpqd` listener at this socket (daemon mode) instead of
    /// in-process. Without it, `HTTPQ_SOCKET` decides (`embedded` forces in-process); without
    /// that, the listener's default socket is used if it answers, else embedded mode.
    #[must_use]
    pub fn daemon_socket(mut self, path: impl Into<std::path::PathBuf>) -> Self {
        self.socket = Some(path.into());
        self
    }

    /// The certificate (PEM chain, leaf first) and private key (PEM) for the https prefixes,
    /// in embedded mode: bound to every address of their ports. Without it (and without
    /// `HTTPQ_CERT_FILE`/`HTTPQ_KEY_FILE`), embedded mode uses the SSL bindings of the
    /// listener's store ([`tls_store`](Self::tls_store)). In daemon mode the listener's
    /// bindings apply and this is ignored.
    ///
    /// ```no_run
    /// # async fn f() -> Result<(), httpq::Error> {
    /// let cert = std::fs::read("cert.pem").unwrap();
    /// let key = std::fs::read("key.pem").unwrap();
    /// httpq::Server::builder()
    ///     .url_prefix("https://localhost:8443/")
    ///     .certificate_pem(cert, key)
    ///     .serve(tower::service_fn(|_req| async {
    ///         Ok::<_, std::convert::Infallible>(http::Response::new(String::from("secure\n")))
    ///     }))
    ///     .await
    /// # }
    /// ```
    #[must_use]
    pub fn certificate_pem(mut self, chain: impl Into<Vec<u8>>, key: impl Into<Vec<u8>>) -> Self {
        self.certificate = Some(CertSource::Pem {
            chain: chain.into(),
            key: key.into(),
        });
        self
    }

    /// Like [`certificate_pem`](Self::certificate_pem), read from files at bind time.
    #[must_use]
    pub fn certificate_files(
        mut self,
        chain: impl Into<std::path::PathBuf>,
        key: impl Into<std::path::PathBuf>,
    ) -> Self {
        self.certificate = Some(CertSource::Files {
            chain: chain.into(),
            key: key.into(),
        });
        self
    }

    /// The listener state directory whose SSL bindings and certificate store embedded mode
    /// uses for https prefixes (default: httpqd's, `/var/lib/httpq` for root, else
    /// `$XDG_STATE_HOME/httpq` or `~/.local/state/httpq`).
    #[must_use]
    pub fn tls_store(mut self, state_dir: impl Into<std::path::PathBuf>) -> Self {
        self.tls_store = Some(state_dir.into());
        self
    }

    /// How long graceful shutdown waits for in-flight requests before aborting them (30 s).
    #[must_use]
    pub fn shutdown_timeout(mut self, deadline: Duration) -> Self {
        self.shutdown_timeout = deadline;
        self
    }

    setters! {
        /// The request queue's name (daemon mode): processes with the same name share it.
        request_queue_name: String => |o, v| o.request_queue_name = Some(v);
        /// Create, attach to, or either, the named queue (default Create).
        request_queue_mode: httpq_core::queue::RequestQueueMode => |o, v| o.request_queue_mode = v;
        /// How long the named queue outlives its last process, holding its requests (default 0).
        queue_retention: Duration => |o, v| o.queue_retention = v;
        /// Who besides this user (and root) may attach to the named queue, e.g.
        /// `["group:web".parse()?]` (default: nobody else).
        request_queue_acl: Vec<httpq_core::queue::QueueAclEntry> => |o, v| o.request_queue_acl = v;
        /// Most requests waiting in the queue (HTTP.sys `RequestQueueLimit`, default 1000).
        request_queue_limit: u32 => |o, v| o.request_queue_limit = v;
        /// How a full queue answers (default Basic: reset the connection).
        http503_verbosity: Http503Verbosity => |o, v| o.http503_verbosity = v;
        /// Add `Alt-Svc: h3=":PORT"` to HTTPS responses that lack one (default false).
        alt_svc: bool => |o, v| o.alt_svc = v;
        /// Outstanding receives per process (default 5 × cores).
        max_accepts: u32 => |o, v| o.max_accepts = v;
        /// Most concurrent connections (default unlimited).
        max_connections: Option<u64> => |o, v| o.max_connections = v;
        /// Largest request body (default 30,000,000 bytes; `None` unlimited).
        max_request_body_size: Option<u64> => |o, v| o.max_request_body_size = v;
        /// Longest pause in a request body while the app reads it (default 120 s).
        entity_body_timeout: Duration => |o, v| o.timeouts.entity_body = v;
        /// Longest time to drain an unread body for keep-alive (default 120 s).
        drain_entity_body_timeout: Duration => |o, v| o.timeouts.drain_entity_body = v;
        /// Longest time a request waits in the queue (default 120 s).
        request_queue_timeout: Duration => |o, v| o.timeouts.request_queue = v;
        /// Longest idle time between requests on a connection (default 120 s).
        idle_connection_timeout: Duration => |o, v| o.timeouts.idle_connection = v;
        /// Longest time to receive a request head (default 120 s).
        header_wait_timeout: Duration => |o, v| o.timeouts.header_wait = v;
        /// Slowest acceptable response read rate in bytes/s (default 150; 0 disables).
        min_send_bytes_per_second: u32 => |o, v| o.timeouts.min_send_bytes_per_second = v;
        /// Write HTTP.sys's error log (`httperrN.log`) in this directory (default: not written).
        error_log_dir: std::path::PathBuf => |o, v| o.error_log_dir = Some(v);
        /// Write a W3C access log of every exchange (default: not written); see
        /// [`httpq_core::logging::AccessLogOptions`] for its rollover and fields.
        access_log: crate::AccessLogOptions => |o, v| o.access_log = Some(v);
        /// Serve Prometheus metrics at `GET /metrics` on this address (default: none). Use a
        /// loopback or private address: the endpoint has no authentication.
        metrics_address: std::net::SocketAddr => |o, v| o.metrics_address = Some(v);
        /// Longest header line or request target (default 16384).
        max_field_length: usize => |o, v| o.parser.max_field_length = v;
        /// Longest request line plus headers (default 16384).
        max_request_bytes: usize => |o, v| o.parser.max_request_bytes = v;
        /// Most header lines in a request (default 1000).
        max_headers: usize => |o, v| o.parser.max_headers = v;
        /// Longest URL path segment in characters (default 260).
        url_segment_max_length: usize => |o, v| o.url.segment_max_length = v;
        /// Most URL path segments (default 255).
        url_segment_max_count: usize => |o, v| o.url.segment_max_count = v;
        /// Accept percent-escaped control characters in URLs (default false).
        allow_restricted_chars: bool => |o, v| o.url.allow_restricted_chars = v;
    }

    /// Resolves the options (defaults ← environment ← code) and the URL prefixes.
    ///
    /// # Errors
    /// A bad environment value (naming the variable), a bad option, or a malformed prefix.
    pub fn resolve(&self) -> Result<(Options, Vec<UrlPrefix>), Error> {
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        let mut options = Options::with_cores(cores);
        let patch = if self.use_env {
            match &self.env {
                Some(lookup) => OptionsPatch::from_lookup(|k| lookup(k))?,
                None => OptionsPatch::from_lookup(|k| std::env::var(k).ok())?,
            }
        } else {
            OptionsPatch::default()
        };
        patch.apply(&mut options);
        for set in &self.setters {
            set(&mut options);
        }
        options.validate()?;
        let prefixes = if !self.urls.is_empty() {
            self.urls
                .iter()
                .map(|u| UrlPrefix::parse(u))
                .collect::<Result<Vec<_>, _>>()?
        } else if let Some(urls) = &patch.urls {
            urls.iter()
                .map(|u| UrlPrefix::parse(u).map_err(Error::EnvPrefix))
                .collect::<Result<Vec<_>, _>>()?
        } else if patch.http_ports.is_some() || patch.https_ports.is_some() {
            let http = patch
                .http_ports
                .iter()
                .flatten()
                .map(|p| format!("http://*:{p}/"));
            let https = patch
                .https_ports
                .iter()
                .flatten()
                .map(|p| format!("https://*:{p}/"));
            http.chain(https)
                .map(|u| UrlPrefix::parse(&u).map_err(Error::EnvPrefix))
                .collect::<Result<Vec<_>, _>>()?
        } else {
            vec![UrlPrefix::parse("http://localhost:5000/")?]
        };
        Ok((options, prefixes))
    }

    /// Starts listening and hands requests to `service`. Returns once every prefix is bound;
    /// call [`Server::run`] (or await [`ServerBuilder::serve`]) to keep serving.
    ///
    /// # Errors
    /// See [`ServerBuilder::resolve`]; also a prefix that cannot be registered or bound.
    /// Nothing keeps listening after an error.
    pub async fn bind<S, B>(self, service: S) -> Result<Server, Error>
    where
        S: Service<Request<RequestBody>, Response = Response<B>> + Clone + Send + 'static,
        S::Future: Send + 'static,
        S::Error: Into<BoxError>,
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let (options, prefixes) = self.resolve()?;
        let socket = self.socket.clone().or_else(|| {
            if !self.use_env {
                return None;
            }
            let value = match &self.env {
                Some(lookup) => lookup("HTTPQ_SOCKET"),
                None => std::env::var("HTTPQ_SOCKET").ok(),
            };
            match value.as_deref().map(str::trim) {
                // Forced in-process.
                Some("embedded") => None,
                Some(v) if !v.is_empty() => Some(v.into()),
                // Nothing said: the listener if its default socket answers, else in-process.
                _ => {
                    let default = httpq_server::ipc::default_socket();
                    let answers = std::os::unix::net::UnixStream::connect(&default).is_ok();
                    if answers {
                        tracing::info!(socket = %default.display(), "found the httpqd listener at its default socket (HTTPQ_SOCKET=embedded runs in-process instead)");
                    }
                    answers.then_some(default)
                }
            }
        });
        if let Some(socket) = socket {
            let conn = crate::daemon::connect(&socket, prefixes, &options, service).await?;
            return Ok(Server {
                handle: ServerHandle {
                    mode: Mode::Daemon {
                        urls: conn.urls,
                        stop: Arc::new(tokio::sync::Notify::new()),
                        task: Arc::new(conn.task.abort_handle()),
                    },
                },
                shutdown_timeout: self.shutdown_timeout,
            });
        }
        let engine = Engine::new(options)?;
        let queue = engine.create_queue(None, TowerQueue::new(service));
        let mut bound = Vec::with_capacity(prefixes.len());
        for prefix in prefixes {
            if prefix.is_top_level_wildcard() {
                tracing::warn!(%prefix, "top-level wildcard prefix: any Host header reaches this app; prefer explicit host names");
            }
            match engine.add_prefix(prefix, &queue).await {
                Ok(p) => bound.push(p),
                Err(e) => {
                    engine.shutdown(Duration::ZERO).await;
                    return Err(e.into());
                }
            }
        }
        if let Err(e) = self.configure_tls(&engine, &bound) {
            engine.shutdown(Duration::ZERO).await;
            return Err(e);
        }
        tracing::info!(
            mode = "embedded",
            urls = ?bound.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "httpq is serving in embedded mode (in-process engine)"
        );
        Ok(Server {
            handle: ServerHandle {
                mode: Mode::Embedded { engine, queue },
            },
            shutdown_timeout: self.shutdown_timeout,
        })
    }

    /// Certificates for the https prefixes of an embedded server: from code, from
    /// `HTTPQ_CERT_FILE`/`HTTPQ_KEY_FILE`, else from the listener's store.
    fn configure_tls(&self, engine: &Engine, bound: &[UrlPrefix]) -> Result<(), Error> {
        let https_ports: std::collections::BTreeSet<u16> = bound
            .iter()
            .filter(|p| p.scheme() == httpq_core::Scheme::Https)
            .map(UrlPrefix::port)
            .collect();
        if https_ports.is_empty() {
            return Ok(());
        }
        let env = |k: &str| -> Option<String> {
            if !self.use_env {
                return None;
            }
            match &self.env {
                Some(lookup) => lookup(k),
                None => std::env::var(k).ok(),
            }
            .filter(|v| !v.trim().is_empty())
        };
        let source = self.certificate.clone().or_else(|| {
            match (env("HTTPQ_CERT_FILE"), env("HTTPQ_KEY_FILE")) {
                (Some(c), Some(k)) => Some(CertSource::Files {
                    chain: c.into(),
                    key: k.into(),
                }),
                _ => None,
            }
        });
        if let Some(source) = source {
            let (chain, key) = match source {
                CertSource::Pem { chain, key } => (chain, key),
                CertSource::Files { chain, key } => {
                    let read = |p: &std::path::Path| {
                        std::fs::read(p)
                            .map_err(|e| Error::Tls(format!("cannot read {}: {e}", p.display())))
                    };
                    (read(&chain)?, read(&key)?)
                }
            };
            let (_, certified) = httpq_tls::parse_pem_pair(&chain, &key)
                .map_err(|e| Error::Tls(format!("the certificate for the https prefixes: {e}")))?;
            for port in https_ports {
                engine
                    .tls()
                    .insert(
                        httpq_tls::BindingKey::IpPort {
                            addr: SocketAddr::from(([0, 0, 0, 0], port)),
                        },
                        certified.clone(),
                        httpq_tls::BindingFlags::default(),
                    )
                    .map_err(|e| Error::Tls(e.to_string()))?;
            }
            return Ok(());
        }
        // The listener's store: the same bindings httpqd would use.
        let dir = self
            .tls_store
            .clone()
            .unwrap_or_else(httpq_server::ipc::default_state_dir);
        match httpq_state::Store::read(&dir) {
            Ok(None) => {}
            Ok(Some(config)) => {
                let problems = engine.tls().replace(
                    &config.ssl_bindings,
                    &httpq_tls::CertStore::new(&dir),
                    &dir.join("ccs"),
                );
                for (key, e) in problems {
                    tracing::warn!(binding = %key, error = %e, "SSL binding unusable");
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot read the SSL bindings"),
        }
        // Then the development certificate `httpq dev-certs` made, as Kestrel falls back to
        // the `dotnet dev-certs` one.
        let dev_dir = httpq_server::ipc::dev_cert_dir();
        let dev = (
            std::fs::read(dev_dir.join("localhost.crt")),
            std::fs::read(dev_dir.join("localhost.key")),
        );
        if let (Ok(chain), Ok(key)) = dev {
            match httpq_tls::parse_pem_pair(&chain, &key) {
                Ok((_, certified)) => {
                    for &port in https_ports
                        .iter()
                        .filter(|p| !engine.tls().covers_port(**p))
                    {
                        tracing::info!(port, dir = %dev_dir.display(), "no SSL binding for this https port: using the development certificate");
                        let _ = engine.tls().insert(
                            httpq_tls::BindingKey::IpPort {
                                addr: SocketAddr::from(([0, 0, 0, 0], port)),
                            },
                            certified.clone(),
                            httpq_tls::BindingFlags::default(),
                        );
                    }
                }
                Err(e) => {
                    tracing::warn!(dir = %dev_dir.display(), error = %e, "the development certificate is unusable; run httpq dev-certs again")
                }
            }
        }
        for port in https_ports {
            if !engine.tls().covers_port(port) {
                tracing::warn!(
                    port,
                    store = %dir.display(),
                    "no SSL certificate binding covers this https port: handshakes will be refused; give a certificate (ServerBuilder::certificate_pem, or HTTPQ_CERT_FILE and HTTPQ_KEY_FILE), run httpq dev-certs for a localhost one, or add a binding with httpq add sslcert"
                );
            }
        }
        Ok(())
    }

    /// [`bind`](Self::bind), then [`Server::run`]: serve until Ctrl-C, SIGTERM or
    /// [`ServerHandle::shutdown`], then shut down gracefully.
    ///
    /// # Errors
    /// As [`bind`](Self::bind).
    pub async fn serve<S, B>(self, service: S) -> Result<(), Error>
    where
        S: Service<Request<RequestBody>, Response = Response<B>> + Clone + Send + 'static,
        S::Future: Send + 'static,
        S::Error: Into<BoxError>,
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        self.bind(service).await?.run().await
    }
}

/// A bound, serving server. Dropping it does not stop it; use [`Server::run`] or
/// [`ServerHandle::shutdown`].
#[derive(Debug)]
pub struct Server {
    handle: ServerHandle,
    shutdown_timeout: Duration,
}

impl Server {
    /// A builder with HTTP.sys's defaults.
    #[must_use]
    pub fn builder() -> ServerBuilder {
        ServerBuilder {
            urls: Vec::new(),
            setters: Vec::new(),
            use_env: true,
            env: None,
            socket: None,
            shutdown_timeout: Duration::from_secs(30),
            certificate: None,
            tls_store: None,
        }
    }

    /// The prefixes being served, with real ports.
    #[must_use]
    pub fn urls(&self) -> Vec<UrlPrefix> {
        self.handle.urls()
    }

    /// The socket addresses this process listens on (none in daemon mode: the listener owns
    /// the sockets).
    pub async fn local_addrs(&self) -> Vec<SocketAddr> {
        match &self.handle.mode {
            Mode::Embedded { engine, .. } => engine.local_addrs().await,
            Mode::Daemon { .. } => Vec::new(),
        }
    }

    /// Writes the log lines buffered so far (the error log and the access log) to their files
    /// (`netsh http flush logbuffer`); returns how many lines were dropped since start
    /// because a log's buffer was full. In daemon mode the listener writes the logs: run
    /// `httpq flush logbuffer` there.
    pub fn flush_logs(&self) -> u64 {
        match &self.handle.mode {
            Mode::Embedded { engine, .. } => engine.flush_logs(),
            Mode::Daemon { .. } => 0,
        }
    }

    /// A handle to change prefixes or stop the server from elsewhere.
    #[must_use]
    pub fn handle(&self) -> ServerHandle {
        self.handle.clone()
    }

    /// Serves until Ctrl-C, SIGTERM or [`ServerHandle::shutdown`], then drains in-flight
    /// requests for up to the shutdown timeout.
    ///
    /// # Errors
    /// The signal handlers cannot be installed.
    pub async fn run(self) -> Result<(), Error> {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .map_err(Error::Signal)?;
        let stopped = async {
            match &self.handle.mode {
                Mode::Embedded { engine, .. } => engine.stopped().await,
                Mode::Daemon { stop, .. } => stop.notified().await,
            }
        };
        tokio::select! {
            r = tokio::signal::ctrl_c() => { r.map_err(Error::Signal)?; tracing::info!("Ctrl-C: shutting down"); }
            _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
            () = stopped => {}
        }
        self.handle.shutdown(self.shutdown_timeout).await;
        Ok(())
    }
}

#[derive(Debug, Clone)]
enum Mode {
    Embedded {
        engine: Engine,
        queue: QueueHandle,
    },
    Daemon {
        urls: Vec<UrlPrefix>,
        stop: Arc<tokio::sync::Notify>,
        task: Arc<tokio::task::AbortHandle>,
    },
}

/// Changes a running server: add or remove prefixes, or shut it down. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ServerHandle {
    mode: Mode,
}

impl ServerHandle {
    fn embedded(&self) -> Result<(&Engine, &QueueHandle), Error> {
        match &self.mode {
            Mode::Embedded { engine, queue } => Ok((engine, queue)),
            Mode::Daemon { .. } => Err(Error::Daemon(
                "changing prefixes of a running app is not available through httpqd yet; restart the app with the new URLs".to_owned(),
            )),
        }
    }

    /// Starts serving one more prefix; returns it with its real port.
    ///
    /// # Errors
    /// A malformed prefix, one already registered, or a port that cannot be bound.
    pub async fn add_prefix(&self, prefix: &str) -> Result<UrlPrefix, Error> {
        let prefix = UrlPrefix::parse(prefix)?;
        let (engine, queue) = self.embedded()?;
        Ok(engine.add_prefix(prefix, queue).await?)
    }

    /// Stops serving a prefix; requests in flight finish.
    ///
    /// # Errors
    /// A malformed or unregistered prefix.
    pub async fn remove_prefix(&self, prefix: &str) -> Result<(), Error> {
        let prefix = UrlPrefix::parse(prefix)?;
        let (engine, _) = self.embedded()?;
        Ok(engine.remove_prefix(&prefix).await?)
    }

    /// The prefixes being served.
    #[must_use]
    pub fn urls(&self) -> Vec<UrlPrefix> {
        match &self.mode {
            Mode::Embedded { engine, .. } => engine.prefixes(),
            Mode::Daemon { urls, .. } => urls.clone(),
        }
    }

    /// Open client connections in this process (0 in daemon mode: the listener holds them).
    #[must_use]
    pub fn connections(&self) -> usize {
        match &self.mode {
            Mode::Embedded { engine, .. } => engine.connections(),
            Mode::Daemon { .. } => 0,
        }
    }

    /// Requests admitted and not yet taken by the app (0 in daemon mode: the listener holds
    /// the queue).
    #[must_use]
    pub fn queue_depth(&self) -> u32 {
        match &self.mode {
            Mode::Embedded { queue, .. } => queue.depth(),
            Mode::Daemon { .. } => 0,
        }
    }

    /// Shutdown with this deadline; resolves when done. In daemon mode the app stops
    /// receiving at once and the listener answers what it still holds.
    pub async fn shutdown(&self, deadline: Duration) {
        match &self.mode {
            Mode::Embedded { engine, .. } => engine.shutdown(deadline).await,
            Mode::Daemon { stop, task, .. } => {
                task.abort();
                stop.notify_waiters();
            }
        }
    }
}
