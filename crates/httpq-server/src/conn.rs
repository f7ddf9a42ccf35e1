//! One HTTP/1.1 connection: read a head, canonicalise, route, queue, hand to the app, stream
//! the response back, repeat while keep-alive allows.
//!
//! The connection task owns both socket halves. While the app works on a request, the task
//! keeps reading: request-body bytes when the app asks for them (at most [`BODY_BUFFER`] ahead),
//! otherwise just enough to notice a disconnect or buffer the next pipelined head. Every wait
//! has an HTTP.sys timer on it.

use std::future::{Future, poll_fn};
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::Poll;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use http::header::{self, HeaderValue};
use http::{Method, Request, StatusCode, Uri, Version};
use http_body::Body as _;
use http_body_util::BodyExt;
use httpq_core::canonical::{self, CanonicalTarget};
use httpq_core::h1::{
    self, BodyFraming, ChunkedDecoder, ChunkedEvent, Persistence, RequestHead, ResponseFraming,
};
use httpq_core::queue::Refusal;
use httpq_core::{Reason, Rejection, Scheme};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout_at};

use crate::app::{
    AppHandle, ConnectionInfo, Disconnect, DisconnectState, RequestContext, RequestId,
};
use crate::body::{BODY_BUFFER, BodyError, BodyTx, MaxRequestBodySize, RequestBody, ResponseBody};
use crate::date::with_date;
use crate::exchange::{Exchange, WIN32_ABORTED, WIN32_CLIENT_GONE};
use crate::pipeline::{Asked, HostSource, NotAdmitted, Routed, Unrouted};
use crate::timing::{ReqStamps, TimingKind, monotonic_nanos};
use crate::{Inner, Queue, RouteTable};

/// The client connection preface of HTTP/2 (RFC 9113 §3.4).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// A stream whose first bytes were already read: they are read again first.
struct Rewind {
    pre: Bytes,
    io: TcpStream,
}

impl AsyncRead for Rewind {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.pre.is_empty() {
            let n = self.pre.len().min(buf.remaining());
            let head = self.pre.split_to(n);
            buf.put_slice(&head);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Rewind {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

/// What follows an exchange.
enum Next {
    KeepAlive,
    End(End),
}

/// How a connection ended, for the caller that owns the socket.
enum End {
    /// Close normally (FIN), after lingering to let the client read our last answer.
    Close,
    /// Close now without lingering (the peer is gone or timed out).
    Drop,
    /// Reset the connection (RST): `Http503Verbosity::Basic`.
    Reset,
}

/// The reading side of a connection: a TCP socket's, or a TLS stream's.
pub(crate) trait ReadIo: AsyncRead + Unpin + Send {}
impl<T: AsyncRead + Unpin + Send> ReadIo for T {}

/// The writing side of a connection.
pub(crate) trait WriteIo: AsyncWrite + Unpin + Send {}
impl<T: AsyncWrite + Unpin + Send> WriteIo for T {}

struct Reader<R> {
    rd: R,
    buf: BytesMut,
    eof: bool,
    /// How much the next growth of `buf` reserves: small for a connection's first bytes,
    /// doubling up to [`READ_BUF`] while it reads more (a body).
    grow: usize,
}

impl<R> Reader<R> {
    fn new(rd: R, buf: BytesMut) -> Self {
        Reader {
            rd,
            buf,
            eof: false,
            grow: MIN_BUF,
        }
    }
}

/// The most bytes read ahead of the parser at a time.
const READ_BUF: usize = 8192;
/// The first read buffer of a request: most heads fit (curl's and wrk's ~100 bytes, a
/// browser's ~500); it doubles while more arrives.
const MIN_BUF: usize = 1024;
/// What an idle connection reads its next request's first bytes into: a stack buffer, so
/// that it holds no heap buffer while it waits.
const FIRST_READ: usize = 128;

impl<R: ReadIo> Reader<R> {
    /// Reads more bytes into the buffer; `Ok(0)` at end of stream.
    async fn fill(&mut self) -> io::Result<usize> {
        if self.buf.capacity() == 0 {
            // No buffer (a new or idle connection): wait for data without a heap buffer,
            // then take a small one.
            let mut first = [0u8; FIRST_READ];
            let n = self.rd.read(&mut first).await?;
            if n == 0 {
                self.eof = true;
            } else {
                self.buf.reserve(MIN_BUF);
                self.buf.extend_from_slice(&first[..n]);
                self.grow = MIN_BUF * 2;
            }
            return Ok(n);
        }
        if self.buf.capacity() - self.buf.len() < FIRST_READ {
            self.buf.reserve(self.grow);
            self.grow = (self.grow * 2).min(READ_BUF);
        }
        let n = self.rd.read_buf(&mut self.buf).await?;
        if n == 0 {
            self.eof = true;
        }
        Ok(n)
    }

    /// Gives the read buffer back while nothing is buffered (the connection is idle).
    fn release(&mut self) {
        if self.buf.is_empty() && self.buf.capacity() > 0 {
            self.buf = BytesMut::new();
            self.grow = MIN_BUF;
        }
    }
}

/// The connection's idle/header timer. Re-arming it for every request would cost a timer-wheel
/// insert and remove per request; instead the timer stays armed and only moves when it fires
/// early (the caller re-checks the real deadline) or must fire sooner than it is set for.
#[derive(Default)]
struct CoarseTimer {
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl CoarseTimer {
    /// A future that completes at or before `deadline`.
    fn arm(&mut self, deadline: Instant) -> Pin<&mut tokio::time::Sleep> {
        let sleep = self
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if sleep.deadline() > deadline || sleep.is_elapsed() {
            sleep.as_mut().reset(deadline);
        }
        sleep.as_mut()
    }
}

/// Turns a panic in the app's future into an error, so the client gets a 500 and the
/// connection's bookkeeping stays right.
pub(crate) struct CatchUnwind(pub(crate) crate::app::AppFuture);

impl Future for CatchUnwind {
    type Output = Result<http::Response<ResponseBody>, crate::body::BoxError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<Self::Output> {
        let fut = &mut self.0;
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| fut.as_mut().poll(cx))) {
            Ok(p) => p,
            Err(panic) => {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a non-string panic payload".to_owned());
                Poll::Ready(Err(format!("the application panicked: {what}").into()))
            }
        }
    }
}

/// Per-request body progress, kept across the pump's restarts.
struct BodyState {
    tx: BodyTx,
    framing: BodyState2,
    received: u64,
    declared: Option<u64>,
    expect_continue: bool,
    continue_sent: bool,
    checked_limit: bool,
    /// The body reached its end.
    done: bool,
    /// The body failed (limit, timeout, framing) or the app dropped it.
    failed: bool,
    abandoned: bool,
}

impl Drop for BodyState {
    fn drop(&mut self) {
        // The exchange is over: a reader the app kept (a spawned task) must not wait forever
        // for bytes nobody will deliver.
        if !self.done {
            self.tx.fail(BodyError::Incomplete);
        }
    }
}

enum BodyState2 {
    Length { remaining: u64 },
    Chunked(ChunkedDecoder),
}

enum PumpEvent {
    /// The app started reading a body sent with `Expect: 100-continue`: say 100 now.
    Continue,
    Disconnected,
    BodyTimeout,
    TooLarge,
    Framing(Rejection),
}

pub(crate) struct Connection {
    pub(crate) inner: Arc<Inner>,
    pub(crate) info: ConnectionInfo,
    pub(crate) disconnect: Arc<DisconnectState>,
    pub(crate) shutdown: tokio::sync::watch::Receiver<bool>,
    routes: Option<(u64, Arc<RouteTable>)>,
    timer: CoarseTimer,
    /// The raw target of the request being handled, for the error log.
    current_target: Bytes,
    /// When the head being read began to arrive (`CLOCK_MONOTONIC` ns).
    parse_start: u64,
    handle: Option<(Arc<Queue>, Box<dyn AppHandle>)>,
    out: BytesMut,
    /// `Https` once a TLS handshake succeeded: routing then matches https prefixes.
    pub(crate) scheme: Scheme,
    /// The exchange under way, for its record.
    ex: Exchange,
    /// The size of the last head parsed.
    head_len: u64,
}

impl Connection {
    pub(crate) fn new(
        inner: Arc<Inner>,
        local_addr: SocketAddr,
        remote_addr: SocketAddr,
        connection_id: u64,
        shutdown: tokio::sync::watch::Receiver<bool>,
    ) -> Self {
        let disconnect = Arc::new(DisconnectState::default());
        let mut info = ConnectionInfo::new(
            local_addr,
            remote_addr,
            connection_id,
            Disconnect::new(disconnect.clone()),
        );
        Arc::make_mut(&mut info.timing).stamp(TimingKind::CONNECTION_START);
        Connection {
            inner,
            info,
            disconnect,
            shutdown,
            routes: None,
            timer: CoarseTimer::default(),
            current_target: Bytes::new(),
            parse_start: 0,
            handle: None,
            out: BytesMut::new(),
            scheme: Scheme::Http,
            ex: Exchange::none(),
            head_len: 0,
        }
    }

    pub(crate) async fn run(mut self, mut stream: TcpStream) {
        // HTTP/2 with prior knowledge (h2c): a client may open a plain-text connection with the
        // HTTP/2 preface. The bytes read to tell are kept for whichever protocol it is.
        let mut buf = BytesMut::new();
        let deadline = Instant::now() + self.inner.options.timeouts.header_wait;
        loop {
            let n = buf.len().min(H2_PREFACE.len());
            if buf[..n] != H2_PREFACE[..n] {
                break;
            }
            if n == H2_PREFACE.len() {
                let io = Rewind {
                    pre: buf.freeze(),
                    io: stream,
                };
                // The preface was the connection's first data (h2c).
                Arc::make_mut(&mut self.info.timing).stamp(TimingKind::DATA_START);
                // Boxed: an HTTP/2 connection's state does not widen every HTTP/1.1 one.
                Box::pin(crate::h2conn::serve(self, io)).await;
                return;
            }
            // The first bytes land on the stack: a connection that sends nothing holds no
            // buffer.
            let mut first = [0u8; FIRST_READ];
            match timeout_at(deadline, stream.read(&mut first)).await {
                Ok(Ok(n)) if n > 0 => {
                    if buf.capacity() == 0 {
                        buf.reserve(MIN_BUF);
                    }
                    buf.extend_from_slice(&first[..n]);
                }
                Ok(_) => {
                    self.disconnect.fire();
                    return;
                }
                Err(_) => {
                    self.log_timer(Reason::TimerHeaderWait);
                    self.disconnect.fire();
                    return;
                }
            }
        }
        let end = {
            let (rd, mut wr) = stream.split();
            let mut reader = Reader::new(rd, buf);
            self.drive(&mut reader, &mut wr).await
        };
        self.disconnect.fire();
        if let End::Reset = end {
            let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
        }
        drop(stream);
    }

    /// HTTP/1.1 over TLS.
    pub(crate) async fn run_tls(mut self, stream: tokio_rustls::server::TlsStream<TcpStream>) {
        let (rd, mut wr) = tokio::io::split(stream);
        let mut reader = Reader::new(rd, BytesMut::new());
        let end = self.drive(&mut reader, &mut wr).await;
        self.disconnect.fire();
        let stream = reader.rd.unsplit(wr);
        if let End::Reset = end {
            let _ = socket2::SockRef::from(stream.get_ref().0).set_linger(Some(Duration::ZERO));
        }
        drop(stream);
    }

    /// Serves requests until the connection ends; closes gracefully when that is the end.
    async fn drive(&mut self, reader: &mut Reader<impl ReadIo>, wr: &mut impl WriteIo) -> End {
        let end = self.serve(reader, wr).await;
        if let End::Close = end {
            let _ = wr.shutdown().await;
            // Boxed, as the rare paths below: their state would otherwise widen every
            // connection's task for its whole life.
            Box::pin(linger(reader)).await;
        }
        end
    }

    fn log_reject(
        &mut self,
        rejection: &Rejection,
        method: Option<&Method>,
        target: Option<&[u8]>,
    ) {
        crate::pipeline::log_refusal(
            &self.inner,
            &self.info,
            &mut self.ex,
            rejection,
            method,
            target.unwrap_or(&self.current_target),
            "HTTP/1.1",
        );
    }

    async fn write_rejection(
        &mut self,
        wr: &mut impl WriteIo,
        rejection: &Rejection,
        keep_alive: bool,
        req: Option<(&Method, Version)>,
    ) -> bool {
        let (status, body) = crate::pipeline::refusal_answer(rejection);
        self.write_simple(wr, status, &body, keep_alive, req).await
    }

    /// Writes a listener-generated answer. `req` is the request's method and version when a
    /// head was parsed: a HEAD answer carries no body, an HTTP/1.0 keep-alive says so.
    async fn write_simple(
        &mut self,
        wr: &mut impl WriteIo,
        status: StatusCode,
        body: &str,
        keep_alive: bool,
        req: Option<(&Method, Version)>,
    ) -> bool {
        let (head_only, version) =
            req.map_or((false, Version::HTTP_11), |(m, v)| (*m == Method::HEAD, v));
        self.out.clear();
        let mut headers = http::HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        with_date(|d| {
            h1::encode_response_head(
                &mut self.out,
                status,
                &headers,
                if head_only {
                    ResponseFraming::NoBody
                } else {
                    ResponseFraming::Length(body.len() as u64)
                },
                Some(body.len() as u64),
                Persistence::for_response(keep_alive, version),
                d,
            );
        });
        if !head_only {
            self.out.extend_from_slice(body.as_bytes());
        }
        let out = self.out.split().freeze();
        let mut rate = SendRate::new(self.inner.options.timeouts.min_send_bytes_per_second);
        self.ex.status(status.as_u16());
        let ok = write_all(wr, &out, &mut rate).await.is_ok();
        self.ex.sent(rate.total);
        if !ok {
            self.ex.failed(WIN32_CLIENT_GONE);
        }
        ok
    }

    fn route_table(&mut self) -> Arc<RouteTable> {
        let generation = self.inner.route_gen.load(Ordering::Acquire);
        match &self.routes {
            Some((g, t)) if *g == generation => t.clone(),
            _ => {
                let t = self.inner.routes_snapshot();
                self.routes = Some((generation, t.clone()));
                t
            }
        }
    }

    async fn serve(&mut self, reader: &mut Reader<impl ReadIo>, wr: &mut impl WriteIo) -> End {
        let mut first = true;
        loop {
            let head = match self.read_head(reader, first).await {
                Ok(Some(h)) => h,
                Ok(None) => return End::Drop,
                Err(rej) => {
                    self.current_target = Bytes::new();
                    self.ex = Exchange::start(
                        &self.inner.observers,
                        &self.info,
                        Version::HTTP_11,
                        self.parse_start,
                    );
                    self.log_reject(&rej, None, None);
                    Box::pin(self.write_rejection(wr, &rej, false, None)).await;
                    self.ex = Exchange::none();
                    return End::Close;
                }
            };
            first = false;
            if self.info.timing.get(TimingKind::DATA_START).is_none() {
                Arc::make_mut(&mut self.info.timing)
                    .stamp_at(TimingKind::DATA_START, self.parse_start);
            }
            let mut timing = ReqStamps::default();
            timing.stamp_at(TimingKind::REQUEST_HEADER_PARSE_START, self.parse_start);
            // Parsing ends where routing starts: one clock read for both.
            let parsed = monotonic_nanos();
            timing.stamp_at(TimingKind::REQUEST_HEADER_PARSE_END, parsed);
            timing.stamp_at(TimingKind::REQUEST_ROUTING_START, parsed);
            let raw_target = head.target.clone();
            self.ex = Exchange::start(
                &self.inner.observers,
                &self.info,
                head.version,
                self.parse_start,
            );
            self.ex
                .request(&head.method, &raw_target, &head.headers, self.head_len);
            // Boxed for the length of one exchange: an idle connection's state then holds only
            // what waiting for the next head needs (its task is ~1 KiB instead of ~11).
            let next = Box::pin(self.exchange(reader, wr, head, raw_target, timing)).await;
            // The exchange is over: its record goes out now.
            self.ex = Exchange::none();
            match next {
                Next::KeepAlive => {}
                Next::End(end) => return end,
            }
        }
    }
}

impl Connection {
    /// Reads until one complete head is buffered. `Ok(None)`: the connection ends quietly
    /// (client closed between requests, a timer fired, or the server is shutting down).
    async fn read_head(
        &mut self,
        reader: &mut Reader<impl ReadIo>,
        first: bool,
    ) -> Result<Option<RequestHead>, Rejection> {
        let t = self.inner.options.timeouts;
        let limits = self.inner.options.parser;
        // The first request of a connection gets header_wait from accept; later requests get
        // idle_connection until their first byte, then header_wait from that byte.
        let mut header_deadline = first.then(|| Instant::now() + t.header_wait);
        let mut idle_deadline = None;
        self.parse_start = 0;
        loop {
            if !reader.buf.is_empty() {
                if self.parse_start == 0 {
                    // The request's first bytes are here: its head starts now.
                    self.parse_start = monotonic_nanos();
                }
                let before = reader.buf.len();
                if let Some(head) = h1::parse_request_head(&mut reader.buf, &limits)? {
                    self.head_len = (before - reader.buf.len()) as u64;
                    return Ok(Some(head));
                }
                if header_deadline.is_none() {
                    header_deadline = Some(Instant::now() + t.header_wait);
                }
            }
            if reader.eof {
                return Ok(None);
            }
            let idle = reader.buf.is_empty() && !first;
            let now = Instant::now();
            let (deadline, reason) = match header_deadline {
                Some(d) => (d, Reason::TimerHeaderWait),
                None => (
                    *idle_deadline.get_or_insert(now + t.idle_connection),
                    Reason::TimerConnectionIdle,
                ),
            };
            // While idle, wake at least once a second to notice a graceful shutdown (cheaper
            // than registering with the shutdown signal for every request).
            let wake = if reader.buf.is_empty() {
                deadline.min(now + Duration::from_secs(1))
            } else {
                deadline
            };
            let timer = self.timer.arm(wake);
            let mut timed_out = false;
            tokio::select! {
                r = reader.fill() => match r {
                    Ok(0) | Err(_) => return Ok(None),
                    Ok(_) => {}
                },
                () = timer => {
                    if (idle || reader.buf.is_empty()) && *self.shutdown.borrow() {
                        return Ok(None);
                    }
                    if idle {
                        // Idle for a second: hold no buffers while waiting (memory per idle
                        // connection, bench/idle.sh); busy connections keep theirs.
                        reader.release();
                        self.out = BytesMut::new();
                    }
                    if Instant::now() >= deadline {
                        timed_out = true;
                    }
                }
            }
            if timed_out {
                self.log_timer(reason);
                return Ok(None);
            }
        }
    }

    fn log_timer(&self, reason: Reason) {
        if let Some(log) = &self.inner.httperr {
            log.log(&crate::httperr::Entry {
                client: Some(self.info.remote_addr),
                server: Some(self.info.local_addr),
                reason: reason.phrase(),
                ..crate::httperr::Entry::default()
            });
        }
        tracing::info!(
            target: "httpq::httperr",
            reason = reason.phrase(),
            client = %self.info.remote_addr,
            server = %self.info.local_addr,
            connection_id = self.info.connection_id,
            "connection closed by a timer"
        );
    }

    /// One request/response exchange on a parsed head.
    async fn exchange(
        &mut self,
        reader: &mut Reader<impl ReadIo>,
        wr: &mut impl WriteIo,
        head: RequestHead,
        raw_target: Bytes,
        mut timing: ReqStamps,
    ) -> Next {
        self.current_target = raw_target.clone();
        let inner = self.inner.clone();
        let opts = &inner.options;
        let has_body = head.framing != BodyFraming::Length(0);

        // Canonicalise the target and find the host, then route.
        let target = match canonical::canonicalize(&raw_target, &opts.url) {
            Ok(t) => t,
            Err(rej) => return self.refuse(wr, &rej, &head, false).await,
        };
        // Host (an absolute-form target's authority wins), TLS binding, route.
        let table = self.route_table();
        let routed = match crate::pipeline::route(
            &inner,
            &table,
            &self.info,
            self.scheme,
            Asked {
                path: &target.path,
                headers: &head.headers,
                host: HostSource::Target(target.authority.as_deref()),
            },
            &mut timing,
        ) {
            Ok(r) => r,
            Err(Unrouted {
                rejection,
                well_formed,
            }) => {
                return self
                    .refuse(wr, &rejection, &head, well_formed && !has_body)
                    .await;
            }
        };
        let Routed {
            prefix,
            queue,
            host_header: routed_host,
        } = routed;
        self.ex.routed(&queue);
        if let Some(h) = &routed_host {
            self.ex.host(h);
        }

        // Queue admission, waiting for a receiver under the request-queue timer.
        let mut handle = match self.handle.take() {
            Some((q, h)) if Arc::ptr_eq(&q, &queue) => h,
            _ => queue.app.handle(),
        };
        let _active =
            match crate::pipeline::admit(&inner, &queue, &mut handle, &mut timing, &mut self.ex)
                .await
            {
                Ok(active) => active,
                Err(NotAdmitted::Queue(refusal)) => {
                    return self.apply_refusal(wr, refusal, &head).await;
                }
                Err(NotAdmitted::Unavailable(rej)) => {
                    return self.refuse(wr, &rej, &head, false).await;
                }
            };

        // Build the request the app sees.
        let limit = opts.max_request_body_size;
        let (mut body_state, body) = if has_body {
            let declared = match head.framing {
                BodyFraming::Length(n) => Some(n),
                BodyFraming::Chunked => None,
            };
            let (tx, rx) = RequestBody::channel(declared, limit);
            let framing = match head.framing {
                BodyFraming::Length(n) => BodyState2::Length { remaining: n },
                BodyFraming::Chunked => BodyState2::Chunked(ChunkedDecoder::new(opts.parser)),
            };
            (
                Some(BodyState {
                    tx,
                    framing,
                    received: 0,
                    declared,
                    expect_continue: head.expect_continue,
                    continue_sent: false,
                    checked_limit: false,
                    done: false,
                    failed: false,
                    abandoned: false,
                }),
                rx,
            )
        } else {
            (None, RequestBody::empty())
        };
        let uri = match build_uri(&raw_target, &target) {
            Ok(u) => u,
            Err(rej) => return self.refuse(wr, &rej, &head, false).await,
        };
        let method = head.method.clone();
        let version = head.version;
        let mut keep_alive = head.keep_alive;
        let mut request = Request::new(body);
        *request.method_mut() = head.method;
        *request.uri_mut() = uri;
        *request.version_mut() = head.version;
        *request.headers_mut() = head.headers;
        if let Some(host) = routed_host {
            request.headers_mut().insert(header::HOST, host);
        }
        if let Some(b) = &body_state {
            self.ex.body(&b.tx);
        }
        let id = inner.next_request_id();
        self.ex.id(id);
        let ext = request.extensions_mut();
        ext.insert(RequestContext::with_stamps(
            prefix,
            self.info.clone(),
            RequestId(id),
            body_state.as_ref().map(|b| MaxRequestBodySize::new(&b.tx)),
            raw_target.clone(),
            timing,
        ));

        // Hand it over and wait for the response, pumping the body meanwhile.
        let mut fut = CatchUnwind(handle.call(request));
        self.handle = Some((queue, handle));
        let mut too_large = false;
        let mut close_after = false;
        // Most handlers answer on their first poll: try that before setting up the pump.
        let first = poll_fn(|cx| Poll::Ready(Pin::new(&mut fut).poll(cx))).await;
        let result = loop {
            if let Poll::Ready(r) = first {
                break r;
            }
            tokio::select! {
                biased;
                r = &mut fut => break r,
                ev = pump(reader, body_state.as_mut(), true, &inner) => match ev {
                    PumpEvent::Continue => {
                        if let Some(b) = body_state.as_mut() {
                            b.continue_sent = true;
                        }
                        if !self.write_continue(wr).await {
                            return Next::End(End::Drop);
                        }
                    }
                    PumpEvent::Disconnected => {
                        self.ex.failed(WIN32_CLIENT_GONE);
                        self.disconnect.fire();
                        tracing::debug!(connection_id = self.info.connection_id, "client disconnected while the app was working; request cancelled");
                        return Next::End(End::Drop);
                    }
                    PumpEvent::BodyTimeout => { self.log_timer(Reason::TimerEntityBody); close_after = true; }
                    PumpEvent::TooLarge => too_large = true,
                    PumpEvent::Framing(rej) => { self.log_reject(&rej, Some(&method), Some(&target_bytes(&target))); close_after = true; }
                },
            }
        };
        drop(fut);

        if too_large {
            let lim = body_state.as_ref().and_then(|b| b.tx.limit()).unwrap_or(0);
            let rej = Rejection::new(
                Reason::EntityTooLarge,
                format!("the request body is larger than {lim} bytes (max_request_body_size)"),
            );
            self.log_reject(&rej, Some(&method), Some(&target_bytes(&target)));
            self.write_rejection(wr, &rej, false, Some((&method, version)))
                .await;
            return Next::End(End::Close);
        }
        let response = match crate::pipeline::final_response(result, &method, &target.path) {
            Ok(r) => r,
            Err((status, text)) => {
                let ok = self
                    .write_simple(wr, status, text, false, Some((&method, version)))
                    .await;
                return Next::End(if ok { End::Close } else { End::Drop });
            }
        };

        // Decide whether the connection survives this exchange.
        if *self.shutdown.borrow() || close_after || asks_to_close(response.headers()) {
            keep_alive = false;
        }
        // A streamed response may read the request body while it is written (an echo): say
        // 100 Continue now, because the writer cannot once the head is on its way.
        if let Some(b) = body_state.as_mut() {
            if !b.done
                && b.expect_continue
                && !b.continue_sent
                && matches!(response.body(), ResponseBody::Stream(_))
            {
                b.continue_sent = true;
                if !self.write_continue(wr).await {
                    return Next::End(End::Drop);
                }
            }
        }
        if let Some(b) = &body_state {
            if !b.done && b.expect_continue && !b.continue_sent {
                // The client may never send the body it announced: the connection cannot be reused.
                keep_alive = false;
            }
        }

        // Stream the response, still pumping the request body for duplex apps.
        let (mut parts, body) = response.into_parts();
        if self.scheme == Scheme::Https && inner.options.alt_svc {
            crate::h2conn::add_alt_svc(&mut parts.headers, self.info.local_addr.port());
        }
        let mut out = std::mem::take(&mut self.out);
        self.ex.status(parts.status.as_u16());
        let mut rate = SendRate::new(opts.timeouts.min_send_bytes_per_second);
        let written = {
            let write = write_response(
                wr, &mut out, parts, body, &method, version, keep_alive, &mut rate,
            );
            tokio::pin!(write);
            let first = poll_fn(|cx| Poll::Ready(write.as_mut().poll(cx))).await;
            loop {
                if let Poll::Ready(r) = first {
                    break r;
                }
                tokio::select! {
                    biased;
                    r = &mut write => break r,
                    ev = pump(reader, body_state.as_mut(), false, &inner) => match ev {
                        PumpEvent::Continue => {}
                        PumpEvent::Disconnected => {
                            self.ex.failed(WIN32_CLIENT_GONE);
                            return Next::End(End::Drop);
                        }
                        PumpEvent::BodyTimeout => { self.log_timer(Reason::TimerEntityBody); keep_alive = false; }
                        PumpEvent::TooLarge | PumpEvent::Framing(_) => keep_alive = false,
                    },
                }
            }
        };
        self.out = out;
        self.ex.sent(rate.total);
        match written {
            Ok(WriteEnd::Complete { reusable }) => keep_alive &= reusable,
            Ok(WriteEnd::Aborted) => {
                self.ex.failed(WIN32_ABORTED);
                return Next::End(End::Drop);
            }
            Err(WriteError::MinSendRate) => {
                self.ex.failed(WIN32_ABORTED);
                self.log_timer(Reason::TimerMinBytesPerSecond);
                return Next::End(End::Drop);
            }
            Err(WriteError::Io) => {
                self.ex.failed(WIN32_CLIENT_GONE);
                return Next::End(End::Drop);
            }
        }
        if !keep_alive {
            return Next::End(End::Close);
        }

        // Drain what the app did not read, within drain_entity_body.
        if let Some(b) = body_state.as_mut() {
            if !b.done {
                // A failed body, or one announced larger than we would ever accept, is not worth
                // draining: close instead.
                let over_limit = matches!((b.declared, b.tx.limit()), (Some(d), Some(l)) if d > l);
                if b.failed || over_limit {
                    return Next::End(End::Close);
                }
                let deadline = Instant::now() + opts.timeouts.drain_entity_body;
                match timeout_at(deadline, drain(reader, b)).await {
                    Ok(true) => {}
                    Ok(false) => return Next::End(End::Drop),
                    Err(_) => {
                        self.log_timer(Reason::TimerEntityBody);
                        return Next::End(End::Drop);
                    }
                }
            }
        }
        Next::KeepAlive
    }

    /// Writes `100 Continue` under the send-rate timer. `false`: the client is gone.
    async fn write_continue(&mut self, wr: &mut impl WriteIo) -> bool {
        let mut rate = SendRate::new(self.inner.options.timeouts.min_send_bytes_per_second);
        write_all(wr, b"HTTP/1.1 100 Continue\r\n\r\n", &mut rate)
            .await
            .is_ok()
    }

    /// Answers a listener-generated error; keeps the connection only if asked and possible.
    async fn refuse(
        &mut self,
        wr: &mut impl WriteIo,
        rej: &Rejection,
        head: &RequestHead,
        keep: bool,
    ) -> Next {
        self.log_reject(rej, Some(&head.method), None);
        let keep = keep && head.keep_alive && !*self.shutdown.borrow();
        if !self
            .write_rejection(wr, rej, keep, Some((&head.method, head.version)))
            .await
        {
            return Next::End(End::Drop);
        }
        if keep {
            Next::KeepAlive
        } else {
            Next::End(End::Close)
        }
    }

    async fn apply_refusal(
        &mut self,
        wr: &mut impl WriteIo,
        refusal: Refusal,
        head: &RequestHead,
    ) -> Next {
        self.log_reject(refusal.rejection(), Some(&head.method), None);
        match crate::pipeline::unavailable_answer(&refusal) {
            None => Next::End(End::Reset),
            Some((status, body)) => {
                self.write_simple(wr, status, &body, false, Some((&head.method, head.version)))
                    .await;
                Next::End(End::Close)
            }
        }
    }
}

/// Whether the app's response says `Connection: close`.
fn asks_to_close(headers: &http::HeaderMap) -> bool {
    headers.get_all(header::CONNECTION).iter().any(|v| {
        v.as_bytes()
            .split(|b| *b == b',')
            .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"close"))
    })
}

fn target_bytes(t: &CanonicalTarget) -> Vec<u8> {
    t.path.as_bytes().to_vec()
}

/// The URI the app sees: the canonical path (percent-encoded where needed) and the raw query.
pub(crate) fn build_uri(raw: &Bytes, target: &CanonicalTarget) -> Result<Uri, Rejection> {
    let raw_path_end = raw.iter().position(|&b| b == b'?').unwrap_or(raw.len());
    let raw_path = &raw[..raw_path_end];
    let uri = if raw_path == target.path.as_bytes() {
        // Already canonical (the common case): reuse the bytes as sent.
        Uri::from_maybe_shared(raw.clone())
    } else {
        let mut s = String::with_capacity(target.path.len() + 16);
        for &b in target.path.as_bytes() {
            if b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/".contains(&b) {
                s.push(b as char);
            } else {
                s.push('%');
                s.push(char::from(b"0123456789ABCDEF"[usize::from(b >> 4)]));
                s.push(char::from(b"0123456789ABCDEF"[usize::from(b & 15)]));
            }
        }
        if let Some(q) = &target.query {
            s.push('?');
            s.push_str(q);
        }
        Uri::try_from(s)
    };
    uri.map_err(|_| Rejection::new(Reason::Url, "the request target is not a valid URI"))
}

/// Moves request-body bytes from the socket to the app when it wants them; otherwise watches
/// the socket for a disconnect and buffers pipelined bytes. Returns only on notable events;
/// cancel-safe (state lives in `reader` and `body`).
async fn pump(
    reader: &mut Reader<impl ReadIo>,
    mut body: Option<&mut BodyState>,
    can_continue: bool,
    inner: &Inner,
) -> PumpEvent {
    let opts = &inner.options;
    loop {
        let active = body
            .as_ref()
            .is_some_and(|b| !b.done && !b.failed && !b.abandoned);
        if !active {
            // Watch for a disconnect; keep pipelined bytes, up to one head's worth.
            if reader.eof || reader.buf.len() >= opts.parser.max_request_bytes {
                return std::future::pending().await;
            }
            match reader.fill().await {
                Ok(0) | Err(_) => return PumpEvent::Disconnected,
                Ok(_) => continue,
            }
        }
        let Some(b) = body.as_deref_mut() else {
            continue;
        };
        let wanted = poll_fn(|cx| b.tx.poll_want(cx)).await;
        if !wanted {
            b.abandoned = true;
            continue;
        }
        if !b.checked_limit {
            b.checked_limit = true;
            if b.tx.check_limit(0, b.declared).is_some() {
                b.failed = true;
                return PumpEvent::TooLarge;
            }
        }
        // The 100 is written by the caller, outside any select, so it is never cut short.
        if can_continue && b.expect_continue && !b.continue_sent && reader.buf.is_empty() {
            return PumpEvent::Continue;
        }
        // Decode what is buffered before reading more.
        match decode_step(reader, b) {
            Ok(true) => continue,
            Ok(false) => {}
            Err(ev) => return ev,
        }
        let deadline = Instant::now() + opts.timeouts.entity_body;
        match timeout_at(deadline, reader.fill()).await {
            Err(_) => {
                b.tx.fail(BodyError::Timeout);
                b.failed = true;
                return PumpEvent::BodyTimeout;
            }
            Ok(Ok(0) | Err(_)) => {
                b.tx.fail(BodyError::Incomplete);
                b.failed = true;
                return PumpEvent::Disconnected;
            }
            Ok(Ok(_)) => {}
        }
    }
}

/// Decodes buffered body bytes into the app's buffer. `Ok(true)`: progress was made.
fn decode_step(reader: &mut Reader<impl ReadIo>, b: &mut BodyState) -> Result<bool, PumpEvent> {
    if reader.buf.is_empty() {
        return Ok(false);
    }
    let room = BODY_BUFFER;
    let chunk = match &mut b.framing {
        BodyState2::Length { remaining } => {
            let n = usize::try_from(*remaining)
                .unwrap_or(usize::MAX)
                .min(reader.buf.len())
                .min(room);
            *remaining -= n as u64;
            let data = reader.buf.split_to(n).freeze();
            if *remaining == 0 {
                b.done = true;
            }
            Some(data)
        }
        BodyState2::Chunked(dec) => match dec.decode(&mut reader.buf, room) {
            Ok(Some(ChunkedEvent::Data(d))) => Some(d),
            Ok(Some(ChunkedEvent::End(trailers))) => {
                b.done = true;
                b.tx.finish(Some(trailers));
                return Ok(true);
            }
            Ok(None) => return Ok(false),
            Err(rej) => {
                b.tx.fail(BodyError::Framing(rej.detail.to_string()));
                b.failed = true;
                return Err(PumpEvent::Framing(rej));
            }
        },
    };
    if let Some(data) = chunk {
        b.received += data.len() as u64;
        if b.tx.check_limit(b.received, None).is_some() {
            b.failed = true;
            return Err(PumpEvent::TooLarge);
        }
        if !data.is_empty() {
            b.tx.push(data);
        }
        if b.done {
            b.tx.finish(None);
        }
    }
    Ok(true)
}

/// Reads and discards the rest of a request body. `false`: the client went away or the framing broke.
async fn drain(reader: &mut Reader<impl ReadIo>, b: &mut BodyState) -> bool {
    loop {
        if b.done {
            return true;
        }
        if !reader.buf.is_empty() {
            match &mut b.framing {
                BodyState2::Length { remaining } => {
                    let n = usize::try_from(*remaining)
                        .unwrap_or(usize::MAX)
                        .min(reader.buf.len());
                    reader.buf.advance(n);
                    *remaining -= n as u64;
                    b.done = *remaining == 0;
                    continue;
                }
                BodyState2::Chunked(dec) => match dec.decode(&mut reader.buf, usize::MAX) {
                    Ok(Some(ChunkedEvent::End(_))) => {
                        b.done = true;
                        continue;
                    }
                    Ok(Some(ChunkedEvent::Data(_))) => continue,
                    Ok(None) => {}
                    Err(_) => return false,
                },
            }
        }
        // What the decoder left (a partial trailer section) stays for the next round.
        match reader.fill().await {
            Ok(0) | Err(_) => return false,
            Ok(_) => {}
        }
    }
}

/// After a final answer on a closing connection: give the client a moment to read it before
/// the socket closes, so unread request bytes do not turn our FIN into a reset.
async fn linger(reader: &mut Reader<impl ReadIo>) {
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut total = 0usize;
    while !reader.eof && total < 256 * 1024 {
        reader.buf.clear();
        match timeout_at(deadline, reader.fill()).await {
            Ok(Ok(n)) if n > 0 => total += n,
            _ => break,
        }
    }
}

enum WriteEnd {
    /// The whole response went out; `reusable`: the framing lets the connection continue.
    Complete { reusable: bool },
    /// The response could not be completed (the app's body failed or broke its length).
    Aborted,
}

enum WriteError {
    MinSendRate,
    Io,
}

/// Enforces `min_send_bytes_per_second` over a response. The clock starts at the first write
/// the socket cannot take at once (until then the client is keeping up); from then on each
/// write must finish by the time its bytes would take at the minimum rate, and never needs to
/// finish sooner than one second.
struct SendRate {
    rate: u32,
    start: Option<Instant>,
    sent_since_start: u64,
    /// Bytes written in all.
    total: u64,
}

impl SendRate {
    fn new(rate: u32) -> Self {
        SendRate {
            rate,
            start: None,
            sent_since_start: 0,
            total: 0,
        }
    }

    fn deadline(&mut self, n: usize) -> Option<Instant> {
        if self.rate == 0 {
            return None;
        }
        let now = Instant::now();
        let start = *self.start.get_or_insert(now);
        let at_rate = Duration::from_secs_f64(
            (self.sent_since_start + n as u64) as f64 / f64::from(self.rate),
        );
        Some((start + at_rate).max(now + Duration::from_secs(1)))
    }
}

async fn write_all(
    wr: &mut impl WriteIo,
    buf: &[u8],
    rate: &mut SendRate,
) -> Result<(), WriteError> {
    if buf.is_empty() {
        return Ok(());
    }
    // Flush: a TLS stream may keep encrypted records buffered otherwise (a no-op on TCP).
    let mut write = std::pin::pin!(async {
        wr.write_all(buf).await?;
        wr.flush().await
    });
    // Fast path: the socket takes it all now; no clock, no timer.
    let r = match poll_fn(|cx| Poll::Ready(write.as_mut().poll(cx))).await {
        Poll::Ready(r) => r,
        Poll::Pending => match rate.deadline(buf.len()) {
            Some(d) => timeout_at(d, write)
                .await
                .map_err(|_| WriteError::MinSendRate)?,
            None => write.await,
        },
    };
    r.map_err(|_| WriteError::Io)?;
    rate.total += buf.len() as u64;
    if rate.start.is_some() {
        rate.sent_since_start += buf.len() as u64;
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn write_response(
    wr: &mut impl WriteIo,
    out: &mut BytesMut,
    parts: http::response::Parts,
    body: ResponseBody,
    method: &Method,
    version: Version,
    keep_alive: bool,
    rate: &mut SendRate,
) -> Result<WriteEnd, WriteError> {
    let (mut stream, mut first, hint) = match body {
        ResponseBody::Empty => (None, None, Some(0)),
        ResponseBody::Full(b) => {
            let n = b.len() as u64;
            (None, Some(b), Some(n))
        }
        ResponseBody::Stream(s) => {
            let hint = s.size_hint().exact();
            (Some(s), None, hint)
        }
    };
    let framing = h1::response_framing(method, version, parts.status, &parts.headers, hint);
    if framing == ResponseFraming::NoBody {
        stream = None;
        first = None;
    }
    // Pull the first frame now so that a small body goes out with the head in one write.
    let mut trailers = None;
    let mut ended = stream.is_none();
    if let Some(s) = stream.as_mut() {
        if s.is_end_stream() {
            ended = true;
        } else {
            match s.frame().await {
                None => ended = true,
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "the response body failed before its first byte; closing the connection");
                    return Ok(WriteEnd::Aborted);
                }
                Some(Ok(f)) => match f.into_data() {
                    Ok(d) => {
                        first = Some(d);
                        ended = s.is_end_stream();
                    }
                    Err(f) => {
                        trailers = f.into_trailers().ok();
                        ended = true;
                    }
                },
            }
        }
    }
    // A body known to be complete can still use Content-Length.
    let framing = match (framing, ended, &first) {
        (ResponseFraming::Chunked | ResponseFraming::CloseDelimited, true, _)
            if trailers.is_none() =>
        {
            ResponseFraming::Length(first.as_ref().map_or(0, |b| b.len() as u64))
        }
        (f, _, _) => f,
    };
    let reusable = framing != ResponseFraming::CloseDelimited;
    out.clear();
    let head_length = if *method == Method::HEAD {
        parts
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .or(hint)
    } else {
        None
    };
    with_date(|d| {
        h1::encode_response_head(
            out,
            parts.status,
            &parts.headers,
            framing,
            head_length,
            Persistence::for_response(keep_alive, version),
            d,
        )
    });

    let mut declared_left = match framing {
        ResponseFraming::Length(n) => Some(n),
        _ => None,
    };
    let put = |out: &mut BytesMut, data: &Bytes, declared_left: &mut Option<u64>| -> bool {
        match framing {
            ResponseFraming::Chunked => {
                if !data.is_empty() {
                    h1::encode_chunk_size(out, data.len());
                    out.extend_from_slice(data);
                    out.extend_from_slice(b"\r\n");
                }
                true
            }
            ResponseFraming::Length(_) => {
                let left = declared_left.unwrap_or(0);
                if data.len() as u64 > left {
                    out.extend_from_slice(&data[..usize::try_from(left).unwrap_or(0)]);
                    *declared_left = Some(0);
                    false
                } else {
                    out.extend_from_slice(data);
                    *declared_left = Some(left - data.len() as u64);
                    true
                }
            }
            ResponseFraming::CloseDelimited => {
                out.extend_from_slice(data);
                true
            }
            ResponseFraming::NoBody => true,
        }
    };
    let mut overflow = false;
    if let Some(d) = &first {
        overflow |= !put(out, d, &mut declared_left);
    }
    if ended && framing == ResponseFraming::Chunked {
        h1::encode_last_chunk(out, trailers.as_ref());
    }
    write_all(wr, out, rate).await?;
    out.clear();
    if overflow {
        tracing::warn!("the response body is longer than its Content-Length; connection closed");
        return Ok(WriteEnd::Aborted);
    }
    if let Some(mut s) = stream.filter(|_| !ended) {
        loop {
            match s.frame().await {
                None => break,
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "the response body failed; aborting the connection");
                    return Ok(WriteEnd::Aborted);
                }
                Some(Ok(f)) => match f.into_data() {
                    Ok(d) => {
                        if d.len() >= 16 * 1024 && framing != ResponseFraming::Chunked {
                            if declared_left.is_some_and(|l| d.len() as u64 > l) {
                                let ok = put(out, &d, &mut declared_left);
                                write_all(wr, out, rate).await?;
                                out.clear();
                                if !ok {
                                    return Ok(WriteEnd::Aborted);
                                }
                            } else {
                                if let Some(l) = declared_left.as_mut() {
                                    *l -= d.len() as u64;
                                }
                                write_all(wr, &d, rate).await?;
                            }
                        } else {
                            let ok = put(out, &d, &mut declared_left);
                            write_all(wr, out, rate).await?;
                            out.clear();
                            if !ok {
                                tracing::warn!(
                                    "the response body is longer than its Content-Length; connection closed"
                                );
                                return Ok(WriteEnd::Aborted);
                            }
                        }
                    }
                    Err(f) => {
                        if let Ok(t) = f.into_trailers() {
                            trailers = Some(t);
                        }
                    }
                },
            }
        }
        if framing == ResponseFraming::Chunked {
            h1::encode_last_chunk(out, trailers.as_ref());
            write_all(wr, out, rate).await?;
            out.clear();
        }
    }
    if declared_left.is_some_and(|l| l > 0) {
        tracing::warn!("the response body is shorter than its Content-Length; connection closed");
        return Ok(WriteEnd::Aborted);
    }
    Ok(WriteEnd::Complete { reusable })
}
