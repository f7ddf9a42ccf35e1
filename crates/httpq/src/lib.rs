//! # httpq: HTTP.sys for Linux
//!
//! Run any [`tower::Service`](tower_service::Service), such as an axum `Router`, on httpq.
//! The server takes HTTP.sys's URL prefixes (`http://+:8080/api/`), its limits and timers with
//! their defaults, and its request-queue semantics. The engine runs embedded in your process,
//! or the same code runs behind the shared `httpqd` listener (port sharing across processes and
//! users) when `HTTPQ_SOCKET` names one or the default socket answers; the listener is
//! authenticated before anything is sent to it ([`Error::ListenerNotTrusted`]).
//!
//! ```no_run
//! use std::convert::Infallible;
//! use http::{Request, Response};
//!
//! #[tokio::main]
//! async fn main() -> Result<(), httpq::Error> {
//!     let app = tower::service_fn(|req: Request<httpq::Body>| async move {
//!         let prefix = httpq::RequestContext::of(&req).map(|c| c.prefix().to_string());
//!         Ok::<_, Infallible>(Response::new(format!("hello from {prefix:?}\n")))
//!     });
//!     httpq::Server::builder()
//!         .url_prefix("http://localhost:8080/")
//!         .serve(app)
//!         .await
//! }
//! ```
//!
//! ## Where the URLs come from
//! Highest first: [`ServerBuilder::url_prefix`] in code, then `HTTPQ_URLS` (separated by `;`),
//! then `HTTPQ_HTTP_PORTS` / `HTTPQ_HTTPS_PORTS` (each port becomes `http://*:PORT/`), then
//! `http://localhost:5000/`. Port 0 picks a free port; [`Server::urls`] reports the real one.
//!
//! ## Options
//! Every option has HTTP.sys's default and can also come from the environment as `HTTPQ_` and
//! its name in upper snake case (`HTTPQ_MAX_REQUEST_BODY_SIZE`, `HTTPQ_REQUEST_QUEUE_LIMIT`,
//! `HTTPQ_HTTP503_VERBOSITY`, `HTTPQ_HEADER_WAIT_TIMEOUT` in seconds, ...). Code wins over
//! the environment; a bad value is a startup error naming the variable.
//!
//! ## What each request carries
//! One [`RequestContext`] in its extensions (`RequestContext::of(&req)`, or axum's
//! `Extension<RequestContext>`): the [`MatchedPrefix`] (the path base), [`ConnectionInfo`]
//! (addresses, connection id and the [`Disconnect`] notification), the [`RequestId`], and, when
//! the request has a body, [`MaxRequestBodySize`] (changeable until the body is first read).
//!
//! ## What a response may carry behind the listener
//! In daemon mode a response's head crosses to `httpqd` as one wire frame: it must fit the
//! connection's maximum frame size (64 KiB) and carry at most
//! [`MAX_HEADER_FIELDS`](httpq_wire::MAX_HEADER_FIELDS) header fields. A head that does not is
//! answered `500` instead, with an error log that names the limit; trailers that do not fit
//! reset the response. The other requests on the connection are not affected.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod daemon;
mod server;
mod service;
mod stream_rules;

pub use httpq_core::logging::{AccessLogOptions, LogField, LogFields, LogRollover};
pub use httpq_core::options::{OptionError, Options, Timeouts};
pub use httpq_core::queue::{Http503Verbosity, QueueAclEntry, RequestQueueMode};
pub use httpq_core::{UrlPrefix, UrlPrefixError};
pub use httpq_server::{
    BodyAlreadyRead, BodyError, BoxError, ConnectionInfo, Disconnect, EngineError, MatchedPrefix,
    MaxRequestBodySize, RequestContext, RequestId, RequestTiming, ResetStream, TimingKind, TlsInfo,
    monotonic_nanos,
};
pub use server::{Server, ServerBuilder, ServerHandle};

/// Logs to stderr as operators expect (feature `logs`): the filter from `HTTPQ_LOG`, else
/// `RUST_LOG`, else `info`; colours only when stderr is a terminal.
///
/// ```no_run
/// httpq::init_logs();
/// tracing::info!("visible unless HTTPQ_LOG or RUST_LOG says otherwise");
/// ```
#[cfg(feature = "logs")]
pub use httpq_server::logs::init as init_logs;

/// The request body type your service receives: an [`http_body::Body`] of [`bytes::Bytes`].
pub type Body = httpq_server::RequestBody;

/// Everything that can stop a server from starting or changing its prefixes.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An option (from code or the environment) is invalid; the message names it.
    #[error(transparent)]
    Option(#[from] OptionError),
    /// A URL prefix is malformed; the message quotes it and says how to fix it.
    #[error(transparent)]
    Prefix(#[from] UrlPrefixError),
    /// The engine refused (prefix taken, port in use, ...); the message says why.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// `HTTPQ_URLS` holds a prefix that does not parse.
    #[error("HTTPQ_URLS: {0}")]
    EnvPrefix(UrlPrefixError),
    /// Daemon mode: the listener could not be reached or refused (the message names the
    /// socket, the reason, and how to run embedded instead).
    #[error("{0}")]
    Daemon(String),
    /// Daemon mode: the process answering on the listener's socket is not a listener this
    /// process trusts (wrong owner, unsafe directory): nothing was sent to it. The message
    /// names the socket, the owner found and the fix.
    #[error(transparent)]
    ListenerNotTrusted(#[from] httpq_server::trust::ListenerNotTrusted),
    /// A certificate given in code or by `HTTPQ_CERT_FILE`/`HTTPQ_KEY_FILE` cannot be used; the
    /// message names the file and the problem.
    #[error("{0}")]
    Tls(String),
    /// Waiting for a shutdown signal failed.
    #[error("cannot install the shutdown signal handler: {0}")]
    Signal(std::io::Error),
}
