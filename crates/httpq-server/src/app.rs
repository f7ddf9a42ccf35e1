//! The boundary between the engine and the application: a request queue's receiving side.
//!
//! The engine routes a request to a queue, admits it (queue limit), waits until the queue's
//! receiver is ready (that wait is the time in queue, bounded by the `request_queue` timer),
//! then hands the request over and awaits the response. In embedded mode the receiver is the
//! app's `tower::Service` in the same process; in daemon mode it is the IPC transport to
//! the app processes attached to the queue. Both implement [`AppQueue`].

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use http::{Request, Response};
use httpq_core::UrlPrefix;
use tokio::sync::Notify;

use crate::body::{BoxError, MaxRequestBodySize, RequestBody, ResponseBody};

/// The future of one response.
pub type AppFuture = Pin<Box<dyn Future<Output = Result<Response<ResponseBody>, BoxError>> + Send>>;

/// The receiving side of a request queue.
pub trait AppQueue: Send + Sync + 'static {
    /// A handle to receive one or more requests on. The engine keeps one per connection and
    /// queue, and calls [`AppHandle::poll_ready`] before each [`AppHandle::call`].
    fn handle(&self) -> Box<dyn AppHandle>;
}

/// One receiver of a queue, used like a `tower::Service`.
pub trait AppHandle: Send {
    /// Ready when the app can take one more request. While pending, the request counts as
    /// queued.
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>>;
    /// Hands the request to the app.
    fn call(&mut self, request: AppRequest) -> AppFuture;
}

/// A request as the engine hands it to a queue's receiver: the request, and beside it what
/// httpq knows about it. A receiver that forwards the request (httpqd's IPC queue) reads the
/// context from here; an app sees it in the request's extensions ([`AppRequest::into_request`]).
/// Kept apart until then, so a forwarded request never pays for an extensions map.
#[derive(Debug)]
pub struct AppRequest {
    /// The request: canonical URI, headers, body.
    pub request: Request<RequestBody>,
    /// What httpq knows about the request beyond its head.
    pub context: RequestContext,
    /// The request's stream reset (HTTP/2 and HTTP/3 only).
    pub reset: Option<ResetStream>,
}

impl AppRequest {
    /// The request as an app's `tower::Service` takes it: the [`RequestContext`] (and for
    /// HTTP/2 and HTTP/3 the [`ResetStream`]) in its extensions.
    #[must_use]
    pub fn into_request(self) -> Request<RequestBody> {
        let AppRequest {
            mut request,
            context,
            reset,
        } = self;
        let extensions = request.extensions_mut();
        extensions.insert(context);
        if let Some(reset) = reset {
            extensions.insert(reset);
        }
        request
    }
}

/// What httpq knows about a request beyond its head: found in every request's extensions as
/// one value (one extension instead of five saves four allocations per request).
///
/// ```
/// # fn handler(req: http::Request<httpq_server::RequestBody>) {
/// use httpq_server::RequestContext;
/// if let Some(ctx) = RequestContext::of(&req) {
///     println!("{} via {} from {}", ctx.id(), ctx.prefix(), ctx.connection().remote_addr);
/// }
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct RequestContext {
    prefix: MatchedPrefix,
    connection: ConnectionInfo,
    id: RequestId,
    body_limit: Option<MaxRequestBodySize>,
    raw_target: bytes::Bytes,
    stamps: crate::timing::ReqStamps,
}

impl RequestContext {
    /// The context of a request that crossed from the listener (`REQUEST_HEAD`'s meta): the
    /// daemon-mode transport builds it; apps never need to.
    #[doc(hidden)]
    #[must_use]
    pub fn from_wire(
        prefix: MatchedPrefix,
        meta: httpq_wire::RequestMeta,
        disconnect: Disconnect,
        body_limit: Option<MaxRequestBodySize>,
    ) -> Self {
        let (conn, stamps) = crate::timing::from_wire(&meta.timings);
        let connection = ConnectionInfo {
            local_addr: meta.local,
            remote_addr: meta.remote,
            connection_id: meta.connection_id,
            disconnect,
            tls: meta.tls.map(|t| Arc::new(t.into())),
            timing: Arc::new(conn),
        };
        Self::with_stamps(
            prefix,
            connection,
            RequestId(meta.request_id),
            body_limit,
            meta.raw_target,
            stamps,
        )
    }

    /// What of this request crosses to a daemon-mode app: `REQUEST_HEAD`'s meta. For the
    /// listener's transport; apps never need it.
    #[doc(hidden)]
    #[must_use]
    pub fn wire_meta(&self) -> httpq_wire::RequestMeta {
        let connection = &self.connection;
        let timings = crate::timing::to_wire(&connection.timing, &self.stamps);
        httpq_wire::RequestMeta {
            raw_target: self.raw_target.clone(),
            request_id: self.id.0,
            connection_id: connection.connection_id,
            local: connection.local_addr,
            remote: connection.remote_addr,
            tls: connection.tls().map(httpq_wire::TlsInfo::from),
            timings,
            max_request_body_size: self.body_limit.as_ref().and_then(MaxRequestBodySize::get),
        }
    }

    /// A context for the engine, whose connection already holds its stamps.
    pub(crate) fn with_stamps(
        prefix: MatchedPrefix,
        connection: ConnectionInfo,
        id: RequestId,
        body_limit: Option<MaxRequestBodySize>,
        raw_target: bytes::Bytes,
        stamps: crate::timing::ReqStamps,
    ) -> Self {
        RequestContext {
            prefix,
            connection,
            id,
            body_limit,
            raw_target,
            stamps,
        }
    }

    /// When each step of this request happened (HTTP.sys request timing), on the host's
    /// monotonic clock, in both modes.
    #[must_use]
    pub fn timing(&self) -> crate::timing::RequestTiming {
        crate::timing::RequestTiming::from_parts(&self.connection.timing, &self.stamps)
    }

    /// The request target exactly as the client sent it, before canonicalisation (HTTP.sys's
    /// `RawUrl`, ASP.NET Core's `RawTarget`): `/a/../b%2Fc?x=1` where the request's URI holds
    /// the canonical `/b%2Fc?x=1`; for HTTP/2 and HTTP/3, the `:path`. Also in daemon mode.
    #[must_use]
    pub fn raw_target(&self) -> &[u8] {
        &self.raw_target
    }

    /// The context of `request`, if httpq delivered it.
    #[must_use]
    pub fn of<B>(request: &http::Request<B>) -> Option<&RequestContext> {
        request.extensions().get::<RequestContext>()
    }

    /// The registered URL prefix that matched (the path base).
    #[must_use]
    pub fn prefix(&self) -> &MatchedPrefix {
        &self.prefix
    }

    /// The connection the request arrived on.
    #[must_use]
    pub fn connection(&self) -> &ConnectionInfo {
        &self.connection
    }

    /// The request id.
    #[must_use]
    pub fn id(&self) -> RequestId {
        self.id
    }

    /// The body-size limit handle; `None` when the request has no body.
    #[must_use]
    pub fn max_request_body_size(&self) -> Option<&MaxRequestBodySize> {
        self.body_limit.as_ref()
    }

    /// The client-disconnect notification (same as `connection().disconnect()`).
    #[must_use]
    pub fn disconnect(&self) -> &Disconnect {
        self.connection.disconnect()
    }
}

/// The registered URL prefix that matched the request (HTTP.sys's `UrlContext`; ASP.NET's
/// PathBase comes from it), from [`RequestContext::prefix`]. Cheap to clone; its text form
/// is computed once at registration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatchedPrefix {
    prefix: Arc<UrlPrefix>,
    text: Arc<str>,
}

impl MatchedPrefix {
    /// A matched prefix (its text is computed here, once).
    #[must_use]
    pub fn new(prefix: UrlPrefix) -> Self {
        let text = Arc::from(prefix.to_string());
        MatchedPrefix {
            prefix: Arc::new(prefix),
            text,
        }
    }

    /// The prefix.
    #[must_use]
    pub fn prefix(&self) -> &UrlPrefix {
        &self.prefix
    }

    /// The full prefix, `scheme://host:port/path/`.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The prefix's path without its trailing slash: the app's path base (`""` for `/`).
    #[must_use]
    pub fn path_base(&self) -> &str {
        let p = self.prefix.path();
        p.strip_suffix('/').unwrap_or(p)
    }
}

impl fmt::Display for MatchedPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// The connection a request arrived on, and its disconnect notification, from
/// [`RequestContext::connection`].
#[derive(Debug, Clone)]
pub struct ConnectionInfo {
    /// The listener's address the client connected to.
    pub local_addr: SocketAddr,
    /// The client's address.
    pub remote_addr: SocketAddr,
    /// Process-unique connection id.
    pub connection_id: u64,
    disconnect: Disconnect,
    tls: Option<Arc<TlsInfo>>,
    /// The connection's own stamps (ConnectionStart, DataStart, TLS): every request's
    /// timing starts from them.
    pub(crate) timing: Arc<crate::timing::ConnStamps>,
}

/// What was negotiated on a TLS connection (ASP.NET's `ITlsHandshakeFeature`, HTTP.sys's
/// `HttpRequestPropertySni` and client certificate), from [`ConnectionInfo::tls`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsInfo {
    /// The protocol version as on the wire: 0x0303 TLS 1.2, 0x0304 TLS 1.3.
    pub protocol: u16,
    /// The IANA cipher suite number (0x1301 `TLS_AES_128_GCM_SHA256`, ...).
    pub cipher: u16,
    /// The server name the client asked for (SNI), if it sent one.
    pub sni: Option<String>,
    /// The ALPN protocol agreed (`h2`, `http/1.1`), if any.
    pub alpn: Option<Vec<u8>>,
    /// The client's certificate chain (DER, leaf first) when the binding negotiates client
    /// certificates and the client sent one. The listener checked that the client holds the
    /// leaf's key, not whom it trusts: that is the app's decision.
    pub client_certificates: Vec<bytes::Bytes>,
}

impl TlsInfo {
    /// `"TLSv1.3"`, `"TLSv1.2"`, or the number.
    #[must_use]
    pub fn protocol_name(&self) -> String {
        match self.protocol {
            0x0304 => "TLSv1.3".to_owned(),
            0x0303 => "TLSv1.2".to_owned(),
            n => format!("0x{n:04x}"),
        }
    }
}

impl ConnectionInfo {
    /// Connection information with its disconnect notification.
    #[must_use]
    pub fn new(
        local_addr: SocketAddr,
        remote_addr: SocketAddr,
        connection_id: u64,
        disconnect: Disconnect,
    ) -> Self {
        ConnectionInfo {
            local_addr,
            remote_addr,
            connection_id,
            disconnect,
            tls: None,
            timing: Arc::default(),
        }
    }

    /// The same information for a TLS connection.
    #[must_use]
    pub fn with_tls(mut self, tls: TlsInfo) -> Self {
        self.tls = Some(Arc::new(tls));
        self
    }

    /// What TLS negotiated; `None` on plain-text connections.
    #[must_use]
    pub fn tls(&self) -> Option<&TlsInfo> {
        self.tls.as_deref()
    }

    /// The client-disconnect notification (HTTP.sys `HttpWaitForDisconnect`; ASP.NET's
    /// `RequestAborted`).
    #[must_use]
    pub fn disconnect(&self) -> &Disconnect {
        &self.disconnect
    }
}

/// Process-unique request id (HTTP.sys `HTTP_REQUEST_ID`), from [`RequestContext::id`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RequestId(pub u64);

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

#[derive(Debug, Default)]
pub(crate) struct DisconnectState {
    gone: AtomicBool,
    notify: Notify,
}

/// Notification that the client disconnected (HTTP.sys `HttpWaitForDisconnect`; ASP.NET's
/// `RequestAborted`), from [`ConnectionInfo::disconnect`]. Clone it into spawned work.
///
/// The engine also drops the response future when the client goes away, which cancels an
/// async handler; use this to stop work the handler spawned.
#[derive(Debug, Clone)]
pub struct Disconnect {
    state: Arc<DisconnectState>,
}

impl Disconnect {
    pub(crate) fn new(state: Arc<DisconnectState>) -> Self {
        Disconnect { state }
    }

    /// A notification and the trigger that fires it, for transports.
    #[must_use]
    pub fn pair() -> (DisconnectTrigger, Disconnect) {
        let state = Arc::new(DisconnectState::default());
        (DisconnectTrigger(state.clone()), Disconnect { state })
    }

    /// Whether the client has already disconnected.
    #[must_use]
    pub fn is_disconnected(&self) -> bool {
        self.state.gone.load(Ordering::Acquire)
    }

    /// Resolves once the client has disconnected.
    pub async fn disconnected(&self) {
        loop {
            let notified = self.state.notify.notified();
            if self.is_disconnected() {
                return;
            }
            notified.await;
        }
    }
}

/// Fires a [`Disconnect`] notification (transports use it when their client goes away).
#[derive(Debug, Clone)]
pub struct DisconnectTrigger(Arc<DisconnectState>);

impl DisconnectTrigger {
    /// Marks the client as disconnected and wakes everyone waiting.
    pub fn fire(&self) {
        self.0.fire();
    }
}

impl DisconnectState {
    pub(crate) fn fire(&self) {
        if !self.gone.swap(true, Ordering::AcqRel) {
            self.notify.notify_waiters();
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_trigger_wakes_every_waiter() {
        let (trigger, disconnect) = Disconnect::pair();
        assert!(!disconnect.is_disconnected());
        let other = disconnect.clone();
        let waiter = tokio::spawn(async move { other.disconnected().await });
        tokio::task::yield_now().await;
        trigger.fire();
        waiter.await.unwrap();
        assert!(disconnect.is_disconnected());
    }
}

/// Resets the request's stream with an application error code: ASP.NET's `IHttpResetFeature`,
/// HTTP.sys's `HttpRequestPropertyStreamError`. In the extensions of HTTP/2 (and later
/// HTTP/3) requests only, as HTTP.sys offers it; an HTTP/1.1 request has no stream to reset.
///
/// The reset happens whenever it is called: before the response head (the client sees no
/// response, only `RST_STREAM` with the code) or while the body streams (the client sees the
/// body cut off by the reset). gRPC uses it to cancel calls.
///
/// ```
/// # use httpq_server::ResetStream;
/// # fn handler(request: http::Request<()>) {
/// if let Some(reset) = request.extensions().get::<ResetStream>() {
///     reset.reset(0x8); // CANCEL
/// }
/// # }
/// ```
#[derive(Clone)]
pub struct ResetStream {
    inner: Arc<ResetInner>,
}

struct ResetInner {
    /// 0: not reset; else the code + 1.
    code: std::sync::atomic::AtomicU64,
    notify: Notify,
    hook: Option<Box<dyn Fn(u32) + Send + Sync>>,
}

impl fmt::Debug for ResetStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResetStream")
            .field("requested", &self.requested())
            .finish()
    }
}

impl Default for ResetStream {
    fn default() -> Self {
        Self::new()
    }
}

impl ResetStream {
    /// A reset handle the engine watches.
    #[must_use]
    pub fn new() -> Self {
        ResetStream {
            inner: Arc::new(ResetInner {
                code: std::sync::atomic::AtomicU64::new(0),
                notify: Notify::new(),
                hook: None,
            }),
        }
    }

    /// A reset handle that also calls `hook` with the code, once (transports: the daemon-mode
    /// app library sends the reset to the listener).
    #[must_use]
    pub fn with_hook(hook: impl Fn(u32) + Send + Sync + 'static) -> Self {
        ResetStream {
            inner: Arc::new(ResetInner {
                code: std::sync::atomic::AtomicU64::new(0),
                notify: Notify::new(),
                hook: Some(Box::new(hook)),
            }),
        }
    }

    /// Resets the stream with `code` (an HTTP/2 error code, e.g. 0x8 `CANCEL`, or an
    /// application's own). Only the first call counts.
    pub fn reset(&self, code: u32) {
        let first = self
            .inner
            .code
            .compare_exchange(
                0,
                u64::from(code) + 1,
                std::sync::atomic::Ordering::AcqRel,
                std::sync::atomic::Ordering::Acquire,
            )
            .is_ok();
        if first {
            if let Some(hook) = &self.inner.hook {
                hook(code);
            }
            self.inner.notify.notify_waiters();
        }
    }

    /// The code, once a reset was asked for.
    #[must_use]
    pub fn requested(&self) -> Option<u32> {
        match self.inner.code.load(std::sync::atomic::Ordering::Acquire) {
            0 => None,
            n => u32::try_from(n - 1).ok(),
        }
    }

    /// Waits until a reset is asked for; returns its code.
    pub async fn wait(&self) -> u32 {
        loop {
            let notified = self.inner.notify.notified();
            if let Some(code) = self.requested() {
                return code;
            }
            notified.await;
        }
    }
}

impl From<&TlsInfo> for httpq_wire::TlsInfo {
    fn from(t: &TlsInfo) -> Self {
        httpq_wire::TlsInfo {
            protocol: t.protocol,
            cipher: t.cipher,
            sni: t.sni.clone(),
            alpn: t.alpn.clone().map(bytes::Bytes::from),
            client_cert_chain: t.client_certificates.clone(),
        }
    }
}

impl From<httpq_wire::TlsInfo> for TlsInfo {
    fn from(t: httpq_wire::TlsInfo) -> Self {
        TlsInfo {
            protocol: t.protocol,
            cipher: t.cipher,
            sni: t.sni,
            alpn: t.alpn.map(|a| a.to_vec()),
            client_certificates: t.client_cert_chain,
        }
    }
}
