//! One HTTP/2 connection (RFC 9113), served with the `h2` crate: every stream is routed,
//! admitted to its queue and handed to the app exactly like an HTTP/1.1 request, concurrently.
//!
//! Settings come from the limits: the header list may be as large as `MaxRequestBytes`,
//! at most 100 concurrent streams (HTTP.sys's default), stream windows of 256 KiB refilled
//! only as the app reads. `h2` itself guards against rapid reset (a cap on streams reset
//! before they are accepted and on locally reset streams), CONTINUATION floods (the header
//! list limit applies while headers are still arriving) and SETTINGS floods (a cap on
//! unacknowledged SETTINGS). Shutdown sends GOAWAY and lets open streams finish.

use std::future::poll_fn;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use h2::server::SendResponse;
use h2::{RecvStream, SendStream};
use http::header::{self, HeaderName, HeaderValue};
use http::{HeaderMap, Method, Request, Response, StatusCode, Version};
use httpq_core::canonical;
use httpq_core::{Reason, Rejection, Scheme};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::{Instant, timeout_at};

use crate::Inner;
use crate::app::{ConnectionInfo, RequestContext, RequestId, ResetStream};
use crate::body::{BodyError, BodyTx, MaxRequestBodySize, RequestBody};
use crate::conn::{CatchUnwind, Connection, build_uri};
use crate::exchange::Exchange;
use crate::pipeline::{Asked, HostSource, NotAdmitted, Routed};
use crate::stream::{Place, Pump, StreamOut};

/// Most concurrent streams a client may open (HTTP.sys's `MaxConcurrentClientStreams`).
const MAX_CONCURRENT_STREAMS: u32 = 100;
/// Per-stream receive window: the most request-body bytes in flight per stream.
const STREAM_WINDOW: u32 = 256 * 1024;
/// Connection receive window.
const CONNECTION_WINDOW: u32 = 1024 * 1024;

/// Serves an HTTP/2 connection until it ends.
pub(crate) async fn serve<T>(conn: Connection, io: T)
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let inner = conn.inner.clone();
    let info = conn.info.clone();
    let scheme = conn.scheme;
    let mut shutdown = conn.shutdown.clone();
    let opts = &inner.options;
    let max_header_list = u32::try_from(opts.parser.max_request_bytes).unwrap_or(u32::MAX);
    let handshake = h2::server::Builder::new()
        .max_concurrent_streams(MAX_CONCURRENT_STREAMS)
        .max_header_list_size(max_header_list)
        .initial_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .max_send_buffer_size(256 * 1024)
        .max_pending_accept_reset_streams(50)
        .max_local_error_reset_streams(Some(1024))
        .handshake::<_, Bytes>(crate::h2guard::Guarded::new(io, info.remote_addr));
    let deadline = Instant::now() + opts.timeouts.header_wait;
    let mut h2c = match timeout_at(deadline, handshake).await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => {
            tracing::debug!(client = %info.remote_addr, error = %e, "HTTP/2 preface failed");
            conn.disconnect.fire();
            return;
        }
        Err(_) => {
            log_timer(&info, "Timer_HeaderWait");
            conn.disconnect.fire();
            return;
        }
    };
    let active = Arc::new(AtomicUsize::new(0));
    let idle = opts.timeouts.idle_connection;
    let mut idle_deadline = Instant::now() + idle;
    let mut closing = false;
    loop {
        tokio::select! {
            next = h2c.accept() => match next {
                Some(Ok((request, respond))) => {
                    active.fetch_add(1, Ordering::AcqRel);
                    let guard = ActiveStream(active.clone());
                    let inner = inner.clone();
                    let info = info.clone();
                    tokio::spawn(async move {
                        let _guard = guard;
                        handle(inner, info, scheme, request, respond).await;
                    });
                }
                Some(Err(e)) => {
                    if e.is_go_away() || e.is_io() {
                        tracing::debug!(client = %info.remote_addr, error = %e, "HTTP/2 connection ended");
                    } else {
                        tracing::info!(target: "httpq::httperr", reason = "Connection_Abandoned_By_ReqQueue", client = %info.remote_addr, server = %info.local_addr, error = %e, "HTTP/2 protocol error; connection closed with GOAWAY");
                    }
                    break;
                }
                None => break,
            },
            _ = shutdown.changed(), if !closing => {
                closing = true;
                h2c.graceful_shutdown();
            }
            () = tokio::time::sleep_until(idle_deadline), if !closing => {
                if active.load(Ordering::Acquire) == 0 {
                    log_timer(&info, "Timer_ConnectionIdle");
                    closing = true;
                    h2c.graceful_shutdown();
                } else {
                    idle_deadline = Instant::now() + idle;
                }
            }
        }
        if *shutdown.borrow() && !closing {
            closing = true;
            h2c.graceful_shutdown();
        }
        if active.load(Ordering::Acquire) > 0 {
            idle_deadline = Instant::now() + idle;
        }
    }
    // Let the connection flush GOAWAY and finish the streams still answering.
    let _ = tokio::time::timeout(Duration::from_secs(30), poll_fn(|cx| h2c.poll_closed(cx))).await;
    conn.disconnect.fire();
}

struct ActiveStream(Arc<AtomicUsize>);

impl Drop for ActiveStream {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

fn log_timer(info: &ConnectionInfo, reason: &str) {
    tracing::info!(
        target: "httpq::httperr",
        reason,
        client = %info.remote_addr,
        server = %info.local_addr,
        connection_id = info.connection_id,
        "connection closed by a timer"
    );
}

/// Logs a listener refusal on a multiplexed stream and returns the answer for it.
pub(crate) fn refusal_answer(
    inner: &Inner,
    info: &ConnectionInfo,
    ex: &mut Exchange,
    rejection: &Rejection,
    method: &Method,
    target: &[u8],
    protocol: &'static str,
) -> (StatusCode, String) {
    crate::pipeline::log_refusal(inner, info, ex, rejection, Some(method), target, protocol);
    crate::pipeline::refusal_answer(rejection)
}

/// Logs and builds HTTP.sys's 413 for a request body over `max_request_body_size`.
pub(crate) fn too_large_answer(
    inner: &Inner,
    info: &ConnectionInfo,
    ex: &mut Exchange,
    limit: u64,
    method: &Method,
    path: &str,
    protocol: &'static str,
) -> (StatusCode, String) {
    let rej = Rejection::new(
        Reason::EntityTooLarge,
        format!("the request body is larger than {limit} bytes (max_request_body_size)"),
    );
    refusal_answer(inner, info, ex, &rej, method, path.as_bytes(), protocol)
}

/// How a stream ends before reaching the app.
pub(crate) enum Early {
    /// Answer with this listener-generated response.
    Answer { status: StatusCode, body: String },
    /// Refuse the stream (a full queue under Basic verbosity): REFUSED_STREAM / H3_REQUEST_REJECTED.
    Refuse,
}

/// A request admitted to its queue, ready for the app.
pub(crate) struct Admitted {
    pub(crate) request: Request<RequestBody>,
    pub(crate) handle: Box<dyn crate::app::AppHandle>,
    pub(crate) body_tx: Option<BodyTx>,
    pub(crate) declared: Option<u64>,
    pub(crate) reset: ResetStream,
    pub(crate) method: Method,
    pub(crate) path: String,
    /// Counts the request as active in its queue.
    pub(crate) active: crate::pipeline::Active,
}

/// What HTTP/2 and HTTP/3 streams share with an HTTP/1.1 exchange: canonicalise the target,
/// route by scheme, host, address and path, admit to the queue (limit, 503 verbosity, the
/// request-queue timer), and build the request the app sees.
#[allow(clippy::too_many_lines, clippy::too_many_arguments)]
pub(crate) async fn admit(
    inner: &Arc<Inner>,
    info: &ConnectionInfo,
    scheme: Scheme,
    mut parts: http::request::Parts,
    has_body: bool,
    version: Version,
    mut timing: crate::timing::ReqStamps,
    ex: &mut Exchange,
) -> Result<Admitted, Early> {
    let opts = &inner.options;
    let method = parts.method.clone();
    let raw_target = Bytes::copy_from_slice(
        parts
            .uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .as_bytes(),
    );
    let protocol = if version == Version::HTTP_3 {
        "HTTP/3"
    } else {
        "HTTP/2"
    };
    ex.request(
        &method,
        &raw_target,
        &parts.headers,
        crate::exchange::head_size(&parts.headers),
    );
    if let Some(a) = parts.uri.authority() {
        if let Ok(v) = HeaderValue::from_str(a.as_str()) {
            ex.host(&v);
        }
    }
    let refuse = |ex: &mut Exchange, rej: &Rejection| {
        crate::pipeline::log_refusal(inner, info, ex, rej, Some(&method), &raw_target, protocol);
        let (status, body) = crate::pipeline::refusal_answer(rej);
        Early::Answer { status, body }
    };
    if method == Method::CONNECT {
        return Err(refuse(
            ex,
            &Rejection::new(Reason::Verb, "CONNECT is not served"),
        ));
    }
    let target = canonical::canonicalize(&raw_target, &opts.url).map_err(|rej| refuse(ex, &rej))?;
    // :authority (which Host must equal), TLS binding, route.
    let table = inner.routes_snapshot();
    let Routed {
        prefix,
        queue,
        host_header,
    } = crate::pipeline::route(
        inner,
        &table,
        info,
        scheme,
        Asked {
            path: &target.path,
            headers: &parts.headers,
            host: HostSource::Authority(parts.uri.authority().map(http::uri::Authority::as_str)),
        },
        &mut timing,
    )
    .map_err(|u| refuse(ex, &u.rejection))?;
    ex.routed(&queue);

    // Queue admission, as for HTTP/1.1; Basic verbosity refuses the stream (the multiplexed
    // form of a reset connection), and the client may retry it safely.
    let mut handle = queue.app.handle();
    let active = match crate::pipeline::admit(inner, &queue, &mut handle, &mut timing, ex).await {
        Ok(active) => active,
        Err(NotAdmitted::Queue(refusal)) => {
            crate::pipeline::log_refusal(
                inner,
                info,
                ex,
                refusal.rejection(),
                Some(&method),
                &raw_target,
                protocol,
            );
            return Err(match crate::pipeline::unavailable_answer(&refusal) {
                None => Early::Refuse,
                Some((status, body)) => Early::Answer { status, body },
            });
        }
        Err(NotAdmitted::Unavailable(rej)) => return Err(refuse(ex, &rej)),
    };

    // The request the app sees, with Host from :authority as HTTP.sys presents it.
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let limit = opts.max_request_body_size;
    let (body_tx, body) = if has_body {
        let (tx, rx) = RequestBody::channel(declared, limit);
        (Some(tx), rx)
    } else {
        (None, RequestBody::empty())
    };
    let uri = build_uri(&raw_target, &target).map_err(|rej| refuse(ex, &rej))?;
    if let Some(tx) = &body_tx {
        ex.body(tx);
    }
    let id = inner.next_request_id();
    ex.id(id);
    if let Some(host) = host_header {
        parts.headers.insert(header::HOST, host);
    }
    let mut request = Request::new(body);
    *request.method_mut() = parts.method;
    *request.uri_mut() = uri;
    *request.version_mut() = version;
    *request.headers_mut() = parts.headers;
    request.extensions_mut().insert(RequestContext::with_stamps(
        prefix,
        info.clone(),
        RequestId(id),
        body_tx.as_ref().map(MaxRequestBodySize::new),
        raw_target.clone(),
        timing,
    ));
    let reset = ResetStream::new();
    request.extensions_mut().insert(reset.clone());
    Ok(Admitted {
        request,
        handle,
        body_tx,
        declared,
        reset,
        method,
        path: target.path.into_owned(),
        active,
    })
}

impl Admitted {
    /// Hands the request to the app: the answer under way, and the request body's channel
    /// and declared length for the protocol's pump.
    pub(crate) fn call(self) -> (crate::stream::Call, Option<BodyTx>, Option<u64>) {
        let Admitted {
            request,
            mut handle,
            body_tx,
            declared,
            reset,
            method,
            path,
            active,
        } = self;
        let call = crate::stream::Call {
            fut: CatchUnwind(handle.call(request)),
            reset,
            probe: body_tx.clone(),
            method,
            path,
            _active: active,
        };
        (call, body_tx, declared)
    }
}

/// One stream: route, admit, run the app, send its response.
async fn handle(
    inner: Arc<Inner>,
    info: ConnectionInfo,
    scheme: Scheme,
    request: Request<RecvStream>,
    respond: SendResponse<Bytes>,
) {
    let (parts, recv) = request.into_parts();
    let has_body = !recv.is_end_stream();
    let head_only = parts.method == Method::HEAD;
    let (timing, mut ex) = crate::stream::begin(
        &inner,
        &info,
        Version::HTTP_2,
        crate::timing::TimingKind::HTTP2_STREAM_START,
    );
    let mut out = H2Out {
        respond,
        send: None,
    };
    let admitted = admit(
        &inner,
        &info,
        scheme,
        parts,
        has_body,
        Version::HTTP_2,
        timing,
        &mut ex,
    )
    .await;
    let (call, body_tx, declared) = match admitted {
        Ok(a) => a.call(),
        Err(early) => return crate::stream::early(&mut out, &mut ex, early, head_only).await,
    };
    // The body pump runs on its own: the response may stream while the request body still
    // arrives (an echo), and the app may answer before reading it at all.
    let pump = has_body.then(|| Pump::spawn(pump_body(recv, body_tx, declared), false));
    let at = Place {
        inner: &inner,
        info: &info,
        scheme,
        protocol: "HTTP/2",
        head_only,
    };
    crate::stream::respond(at, &mut out, &mut ex, call, pump).await;
}

/// An HTTP/2 stream's sending side: the response handle until the head is sent, then the
/// data stream.
struct H2Out {
    respond: SendResponse<Bytes>,
    send: Option<SendStream<Bytes>>,
}

impl StreamOut for H2Out {
    async fn send_head(&mut self, head: Response<()>, end: bool) -> Result<(), ()> {
        let send = self.respond.send_response(head, end).map_err(|_| ())?;
        self.send = Some(send);
        Ok(())
    }

    async fn send_data(&mut self, data: Bytes, end: bool) -> Result<(), ()> {
        match self.send.as_mut() {
            Some(send) => send_all(send, data, end).await,
            None => Err(()),
        }
    }

    async fn send_trailers(&mut self, trailers: HeaderMap) {
        if let Some(send) = self.send.as_mut() {
            let _ = send.send_trailers(trailers);
        }
    }

    async fn finish(&mut self) {
        if let Some(send) = self.send.as_mut() {
            let _ = send.send_data(Bytes::new(), true);
        }
    }

    fn reset(&mut self, code: Option<u32>) {
        let reason = code.map_or(h2::Reason::INTERNAL_ERROR, h2::Reason::from);
        match self.send.as_mut() {
            Some(send) => send.send_reset(reason),
            None => self.respond.send_reset(reason),
        }
    }

    fn refuse(&mut self) {
        self.respond.send_reset(h2::Reason::REFUSED_STREAM);
    }

    async fn client_reset(&mut self) {
        let _ = poll_fn(|cx| match self.send.as_mut() {
            Some(send) => send.poll_reset(cx),
            None => self.respond.poll_reset(cx),
        })
        .await;
    }
}

/// `Alt-Svc: h3=":PORT"; ma=86400` unless the app set its own.
pub(crate) fn add_alt_svc(headers: &mut HeaderMap, port: u16) {
    if !headers.contains_key(header::ALT_SVC) {
        if let Ok(v) = HeaderValue::from_str(&format!("h3=\":{port}\"; ma=86400")) {
            headers.insert(header::ALT_SVC, v);
        }
    }
}

/// The body pump's task. It is not aborted when the stream's handling ends: it stops by itself
/// when the app drops the body, the client ends it, or the connection closes, and meanwhile
/// it may be draining a refused body.
/// Moves request-body bytes from the stream to the app as it reads them; the stream's window
/// is refilled only for bytes handed over, so a slow app slows the client (HTTP/2 flow control)
/// instead of growing a buffer.
async fn pump_body(mut recv: RecvStream, tx: Option<BodyTx>, declared: Option<u64>) -> Option<u64> {
    let tx = tx?;
    let mut received = 0u64;
    loop {
        if !poll_fn(|cx| tx.poll_want(cx)).await {
            // The app dropped the body: stop reading it.
            return None;
        }
        if received == 0 {
            // The limit is fixed when the app starts reading; a declared length over it is
            // refused before any byte moves.
            if let Some(limit) = tx.check_limit(0, declared) {
                return too_large(recv, limit).await;
            }
        }
        match recv.data().await {
            None => {
                let trailers = recv.trailers().await.ok().flatten();
                tx.finish(trailers);
                return None;
            }
            Some(Ok(chunk)) => {
                let n = chunk.len();
                received += n as u64;
                let _ = recv.flow_control().release_capacity(n);
                if let Some(limit) = tx.check_limit(received, None) {
                    return too_large(recv, limit).await;
                }
                tx.push(chunk);
            }
            Some(Err(e)) => {
                tracing::debug!(error = %e, "request body stream failed");
                tx.fail(BodyError::Incomplete);
                return None;
            }
        }
    }
}

/// The body is too large: the app is told (its read fails) and the listener answers 413. The
/// rest of the body is drained for a moment (at most 256 KiB or 2 s, as HTTP.sys drains
/// refused bodies) so the client reads the 413 instead of seeing the stream reset under it.
async fn too_large(mut recv: RecvStream, limit: u64) -> Option<u64> {
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        let mut drained = 0usize;
        while let Some(Ok(chunk)) = recv.data().await {
            drained += chunk.len();
            let _ = recv.flow_control().release_capacity(chunk.len());
            if drained > 256 * 1024 {
                break;
            }
        }
    })
    .await;
    Some(limit)
}

/// Headers HTTP/2 forbids (RFC 9113 §8.2.2); an app written for HTTP/1.1 may set them.
pub(crate) fn strip_connection_headers(headers: &mut HeaderMap) {
    for name in [
        header::CONNECTION,
        header::TRANSFER_ENCODING,
        header::UPGRADE,
        HeaderName::from_static("keep-alive"),
        HeaderName::from_static("proxy-connection"),
    ] {
        headers.remove(name);
    }
}

/// Sends `data` as the stream's flow-control window allows.
async fn send_all(send: &mut SendStream<Bytes>, mut data: Bytes, end: bool) -> Result<(), ()> {
    if data.is_empty() {
        return send.send_data(data, end).map_err(|_| ());
    }
    while !data.is_empty() {
        send.reserve_capacity(data.len());
        let n = match poll_fn(|cx| send.poll_capacity(cx)).await {
            Some(Ok(n)) if n > 0 => n,
            Some(Ok(_)) => continue,
            _ => return Err(()),
        };
        let chunk = data.split_to(n.min(data.len()));
        send.send_data(chunk, end && data.is_empty())
            .map_err(|_| ())?;
    }
    Ok(())
}
