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
use http::{HeaderMap, Method, Request, Response, Version};
use httpq_core::Scheme;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::{Instant, timeout_at};

use crate::Inner;
use crate::app::ConnectionInfo;
use crate::body::{BodyError, BodyTx};
use crate::pipeline::Called;
use crate::stream::{Broken, Place, Pump, Sent, Shape, StreamOut, strip_connection_headers};

/// Most concurrent streams a client may open (HTTP.sys's `MaxConcurrentClientStreams`).
const MAX_CONCURRENT_STREAMS: u32 = 100;
/// Per-stream receive window: the most request-body bytes in flight per stream.
const STREAM_WINDOW: u32 = 256 * 1024;
/// Connection receive window.
const CONNECTION_WINDOW: u32 = 1024 * 1024;

/// What an accepted connection brings to HTTP/2: the engine, the connection's information,
/// its disconnect notification, its scheme and the shutdown signal.
pub(crate) struct Accepted {
    pub(crate) inner: Arc<Inner>,
    pub(crate) info: ConnectionInfo,
    pub(crate) disconnect: Arc<crate::app::DisconnectState>,
    pub(crate) scheme: Scheme,
    pub(crate) shutdown: tokio::sync::watch::Receiver<bool>,
}

/// Serves an HTTP/2 connection until it ends.
pub(crate) async fn serve<T>(conn: Accepted, io: T)
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
    // One timer for the connection's life, moved only when it fires: a new one per accepted
    // stream would cost a timer-wheel insert and removal per request.
    let idle_timer = tokio::time::sleep_until(idle_deadline);
    tokio::pin!(idle_timer);
    let mut closing = false;
    loop {
        tokio::select! {
            next = h2c.accept() => match next {
                Some(Ok((request, respond))) => {
                    active.fetch_add(1, Ordering::AcqRel);
                    let guard = ActiveStream(active.clone());
                    let inner = inner.clone();
                    let info = info.clone();
                    // Boxed before it is spawned: the runtime moves a task's future several
                    // times (into its cell, through its stages), so it gets a pointer, not the
                    // stream's whole state. Spawned as it is, not wrapped in another async
                    // block, whose first poll would copy the whole state once more.
                    tokio::spawn(Box::pin(handle(guard, inner, info, scheme, request, respond)));
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
            () = &mut idle_timer, if !closing => {
                if active.load(Ordering::Acquire) > 0 {
                    idle_deadline = Instant::now() + idle;
                }
                if Instant::now() >= idle_deadline {
                    log_timer(&info, "Timer_ConnectionIdle");
                    closing = true;
                    h2c.graceful_shutdown();
                } else {
                    // Streams came and went since it was set: idle counts from the last.
                    idle_timer.as_mut().reset(idle_deadline);
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

/// One stream: route, admit, run the app, send its response.
async fn handle(
    _active: ActiveStream,
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
    let table = inner.routes_snapshot();
    let req = crate::stream::incoming(parts, Version::HTTP_2, has_body);
    let declared = req.declared;
    let admitted =
        crate::pipeline::admit_stream(&inner, &info, scheme, &table, req, timing, &mut ex).await;
    let Called { call, body_tx, .. } = match admitted {
        Ok(called) => called,
        Err(early) => {
            crate::stream::early(&mut out, &mut ex, early, head_only).await;
            return;
        }
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
    async fn send_head(&mut self, head: Response<()>, shape: Shape) -> Result<bool, Broken> {
        let (mut parts, ()) = head.into_parts();
        strip_connection_headers(&mut parts.headers);
        let send = self
            .respond
            .send_response(Response::from_parts(parts, ()), shape.end)
            .map_err(|_| Broken::ClientGone)?;
        self.send = Some(send);
        Ok(!shape.end)
    }

    async fn send_data(&mut self, data: Bytes, end: bool) -> Sent {
        match self.send.as_mut() {
            Some(send) => send_all(send, data, end)
                .await
                .map_err(|()| Broken::ClientGone),
            None => Err(Broken::ClientGone),
        }
    }

    async fn send_trailers(&mut self, trailers: HeaderMap) -> Sent {
        if let Some(send) = self.send.as_mut() {
            let _ = send.send_trailers(trailers);
        }
        Ok(())
    }

    async fn finish(&mut self) -> Sent {
        if let Some(send) = self.send.as_mut() {
            let _ = send.send_data(Bytes::new(), true);
        }
        Ok(())
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
