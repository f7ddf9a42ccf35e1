//! One HTTP/1.1 connection: read a head under HTTP.sys's timers, hand it to the request step
//! every protocol shares (`pipeline::admit`), answer through the shared response step
//! (`stream::respond`) over [`H1Out`], drain what the app left of the body, repeat while
//! keep-alive allows; or hand the connection to HTTP/2 when it opens with the h2c preface.
//!
//! The connection task owns both socket halves. While the app works on a request, the task
//! keeps reading (`h1read.rs`): request-body bytes when the app asks for them, otherwise just
//! enough to notice a disconnect or buffer the next pipelined head.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{Method, Version};
use httpq_core::h1::{self, BodyFraming, ChunkedDecoder, RequestHead};
use httpq_core::{Reason, Rejection, Scheme};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout_at};

use crate::app::{AppHandle, ConnectionInfo, Disconnect, DisconnectState};
use crate::exchange::Exchange;
use crate::h1out::H1Out;
use crate::h1read::{
    BodyState, BodyState2, FIRST_READ, MIN_BUF, ReadIo, Reader, WriteIo, drain, linger,
};
use crate::pipeline::{Called, HostFrom, Incoming, NotYet};
use crate::stream::{Outcome, Place};
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

/// How long a connection keeps its exchange state while it waits for a next request whose
/// first byte has not come: clients that send back to back reuse it, idle ones give it back.
const BUSY_SPELL: Duration = Duration::from_millis(20);

/// How often a connection waiting for a request wakes to notice a graceful shutdown.
const IDLE_TICK: Duration = Duration::from_secs(1);

/// What waiting for a head may end with, besides a head.
enum Head {
    Ready(RequestHead),
    /// [`Wait::Busy`]: no byte of a next request within [`BUSY_SPELL`]; the idle timer's
    /// deadline, which the wait goes on under.
    Idle(Instant),
    /// The connection ends quietly.
    End,
}

/// How a head is waited for.
#[derive(Clone, Copy)]
enum Wait {
    /// Under the connection's timers; an idle deadline already running, if any.
    Idle(Option<Instant>),
    /// Right after an exchange, for at most [`BUSY_SPELL`] while no byte comes.
    Busy,
}

/// How a busy spell ended.
enum Busy {
    /// The connection idles, under this idle deadline.
    Idle(Instant),
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

    /// What HTTP/2 takes over from this connection.
    pub(crate) fn into_accepted(self) -> crate::h2conn::Accepted {
        crate::h2conn::Accepted {
            inner: self.inner,
            info: self.info,
            disconnect: self.disconnect,
            scheme: self.scheme,
            shutdown: self.shutdown,
        }
    }

    /// Serves a plain-text connection until it ends: HTTP/1.1, or HTTP/2 when it opens with
    /// the h2c preface.
    ///
    /// A plain function around an `async move` block: the connection is kept once in the
    /// task's state (an `async fn` would hold its argument twice), which is what every idle
    /// connection costs.
    #[allow(clippy::manual_async_fn)]
    pub(crate) fn run(
        mut self,
        mut stream: TcpStream,
        guard: crate::listen::ConnGuard,
    ) -> impl std::future::Future<Output = ()> + Send {
        async move {
            // Dropped last: the connection goes first (below), so the engine counts it closed
            // only once it is.
            let _guard = guard;
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
                    Box::pin(crate::h2conn::serve(self.into_accepted(), io)).await;
                    return;
                }
                // The first bytes land on the stack: a connection that sends nothing holds no
                // buffer.
                let mut first = [0u8; FIRST_READ];
                match timeout_at(deadline, stream.read(&mut first)).await {
                    Ok(Ok(n)) if n > 0 => {
                        if buf.capacity() == 0 {
                            // As Reader::fill: a head that fit the first read gets a buffer
                            // of its size.
                            buf.reserve(if n < FIRST_READ { n } else { MIN_BUF });
                        }
                        buf.extend_from_slice(&first[..n]);
                    }
                    Ok(_) => {
                        self.disconnect.fire();
                        drop(self);
                        return;
                    }
                    Err(_) => {
                        self.log_timer(Reason::TimerHeaderWait);
                        self.disconnect.fire();
                        drop(self);
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
            drop(self);
        }
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

    /// Answers a head that could not be parsed; the connection closes after it.
    async fn answer_malformed(
        &mut self,
        reader: &mut Reader<impl ReadIo>,
        wr: &mut impl WriteIo,
        rejection: &Rejection,
    ) {
        let (status, body) = crate::pipeline::refusal_answer(rejection);
        let mut out = H1Out::new(
            reader,
            wr,
            &mut self.out,
            &self.inner,
            &self.shutdown,
            Method::GET,
            Version::HTTP_11,
            false,
        );
        crate::stream::answer(&mut out, &mut self.ex, status, &body, false, false).await;
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
        let mut got = self.read_head(reader, true, Wait::Idle(None)).await;
        loop {
            if let Ok(Head::End) = got {
                return End::Drop;
            }
            // Exchanges that follow each other closely share one boxed future: an idle
            // connection's task then holds only what waiting for the next head needs (~1 KiB
            // instead of ~4), and a busy one allocates that state once per busy spell, not once
            // per request.
            match Box::pin(self.busy(reader, wr, got)).await {
                Busy::Idle(idle_deadline) => {
                    got = self
                        .read_head(reader, false, Wait::Idle(Some(idle_deadline)))
                        .await;
                }
                Busy::End(end) => return end,
            }
        }
    }

    /// Exchanges back to back, from the head `got`, until the connection ends or waits
    /// [`BUSY_SPELL`] for a next request without a byte of it arriving. Each exchange: the
    /// request step every protocol shares, the response step over [`H1Out`], then the drain
    /// of the body the app left.
    #[allow(clippy::too_many_lines)]
    async fn busy(
        &mut self,
        reader: &mut Reader<impl ReadIo>,
        wr: &mut impl WriteIo,
        mut got: Result<Head, Rejection>,
    ) -> Busy {
        // The task's waker, for the request step's first look at its queue.
        let waker = crate::pipeline::task_waker().await;
        loop {
            let head = match got {
                Ok(Head::Ready(h)) => h,
                Ok(Head::Idle(idle_deadline)) => return Busy::Idle(idle_deadline),
                Ok(Head::End) => return Busy::End(End::Drop),
                Err(rej) => {
                    self.current_target = Bytes::new();
                    self.ex = Exchange::start(
                        &self.inner.observers,
                        &self.info,
                        Version::HTTP_11,
                        self.parse_start,
                    );
                    self.log_reject(&rej, None, None);
                    Box::pin(self.answer_malformed(reader, wr, &rej)).await;
                    self.ex = Exchange::none();
                    return Busy::End(End::Close);
                }
            };
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
            // The exchange, inline: a future of its own would be moved into this one for
            // every request.
            let end = 'exchange: {
                self.current_target = raw_target.clone();
                let inner = self.inner.clone();
                let table = self.route_table();
                let (method, version) = (head.method.clone(), head.version);
                let head_only = method == Method::HEAD;
                let declared = match head.framing {
                    BodyFraming::Length(n) => Some(n),
                    BodyFraming::Chunked => None,
                };
                let framing = match head.framing {
                    BodyFraming::Length(n) => BodyState2::Length { remaining: n },
                    BodyFraming::Chunked => {
                        BodyState2::Chunked(ChunkedDecoder::new(inner.options.parser))
                    }
                };
                let expect_continue = head.expect_continue;
                let keep_alive = head.keep_alive && !*self.shutdown.borrow();
                let incoming = Incoming {
                    method: head.method,
                    raw_target,
                    version,
                    headers: head.headers,
                    host: HostFrom::Target,
                    head_len: self.head_len,
                    has_body: declared != Some(0),
                    declared,
                };
                let admitted = crate::pipeline::admit(
                    &mut Context::from_waker(&waker),
                    &inner,
                    &self.info,
                    self.scheme,
                    &table,
                    incoming,
                    timing,
                    &mut self.ex,
                    self.handle.take(),
                );
                let called = match admitted {
                    Ok(c) => Ok(c),
                    Err(NotYet::Early(e)) => Err(e),
                    Err(NotYet::Queued(q)) => {
                        Box::pin(q.wait(&inner, &self.info, &mut self.ex)).await
                    }
                };
                let mut out = H1Out::new(
                    reader,
                    wr,
                    &mut self.out,
                    &inner,
                    &self.shutdown,
                    method.clone(),
                    version,
                    keep_alive,
                );
                let outcome = match called {
                    Err(early) => {
                        crate::stream::early(&mut out, &mut self.ex, early, head_only).await
                    }
                    Ok(Called {
                        call,
                        body_tx,
                        handle,
                    }) => {
                        self.handle = Some(handle);
                        out.body = body_tx.map(|tx| BodyState {
                            tx,
                            framing,
                            received: 0,
                            declared,
                            expect_continue,
                            continue_sent: false,
                            checked_limit: false,
                            done: false,
                            failed: false,
                            abandoned: false,
                        });
                        let at = Place {
                            inner: &inner,
                            info: &self.info,
                            scheme: self.scheme,
                            protocol: "HTTP/1.1",
                            head_only,
                        };
                        crate::stream::respond(at, &mut out, &mut self.ex, call, None).await
                    }
                };
                let (events, mut body) = out.into_parts();
                for timer in &events.timers {
                    self.log_timer(*timer);
                }
                if let Some(rej) = &events.framing {
                    crate::pipeline::log_body_failure(
                        &inner,
                        &self.info,
                        &mut self.ex,
                        rej,
                        &method,
                        &self.current_target,
                        "HTTP/1.1",
                    );
                }
                if outcome == Outcome::Stopped {
                    if events.disconnected {
                        self.disconnect.fire();
                        tracing::debug!(
                            connection_id = self.info.connection_id,
                            "the client disconnected during the exchange"
                        );
                    }
                    break 'exchange Some(if events.refused {
                        End::Reset
                    } else {
                        End::Drop
                    });
                }
                if !events.keep_alive {
                    break 'exchange Some(End::Close);
                }

                // Drain what the app did not read, within drain_entity_body.
                if let Some(b) = body.as_mut() {
                    if !b.done {
                        // A failed body, or one announced larger than we would ever accept, is not worth
                        // draining: close instead.
                        let over_limit =
                            matches!((b.declared, b.tx.limit()), (Some(d), Some(l)) if d > l);
                        if b.failed || over_limit {
                            break 'exchange Some(End::Close);
                        }
                        let deadline = Instant::now() + inner.options.timeouts.drain_entity_body;
                        match timeout_at(deadline, drain(reader, b)).await {
                            Ok(true) => {}
                            Ok(false) => break 'exchange Some(End::Drop),
                            Err(_) => {
                                self.log_timer(Reason::TimerEntityBody);
                                break 'exchange Some(End::Drop);
                            }
                        }
                    }
                }
                None
            };
            // The exchange is over: its record goes out now.
            self.ex = Exchange::none();
            if let Some(end) = end {
                return Busy::End(end);
            }
            got = self.read_head(reader, false, Wait::Busy).await;
        }
    }
}

impl Connection {
    /// Reads until one complete head is buffered. `Head::End`: the connection ends quietly
    /// (client closed between requests, a timer fired, or the server is shutting down).
    async fn read_head(
        &mut self,
        reader: &mut Reader<impl ReadIo>,
        first: bool,
        wait: Wait,
    ) -> Result<Head, Rejection> {
        // Only what the wait needs is kept across it (not the whole timeouts table).
        let header_wait = self.inner.options.timeouts.header_wait;
        let idle_connection = self.inner.options.timeouts.idle_connection;
        let limits = self.inner.options.parser;
        // The first request of a connection gets header_wait from accept; later requests get
        // idle_connection until their first byte, then header_wait from that byte.
        let mut header_deadline = first.then(|| Instant::now() + header_wait);
        let (mut idle_deadline, busy) = match wait {
            Wait::Idle(d) => (d, false),
            Wait::Busy => (None, true),
        };
        self.parse_start = 0;
        loop {
            if !reader.buf.is_empty() {
                if self.parse_start == 0 {
                    // The request's first bytes are here: its head starts now.
                    self.parse_start = monotonic_nanos();
                }
                let before = reader.buf.len();
                let mut none = http::HeaderMap::new();
                let spare = match reader.spare_headers.as_deref_mut() {
                    Some(map) => map,
                    None => &mut none,
                };
                if let Some(head) = h1::parse_request_head_reusing(&mut reader.buf, &limits, spare)?
                {
                    self.head_len = (before - reader.buf.len()) as u64;
                    return Ok(Head::Ready(head));
                }
                if header_deadline.is_none() {
                    header_deadline = Some(Instant::now() + header_wait);
                }
            }
            if reader.eof {
                return Ok(Head::End);
            }
            let idle = reader.buf.is_empty() && !first;
            // A busy spell ends only while no byte of a next request came (a bare CRLF
            // between requests starts header_wait, which goes on as before).
            let spell = busy && header_deadline.is_none();
            let now = Instant::now();
            let (deadline, reason) = match header_deadline {
                Some(d) => (d, Reason::TimerHeaderWait),
                None => (
                    *idle_deadline.get_or_insert(now + idle_connection),
                    Reason::TimerConnectionIdle,
                ),
            };
            // While idle, wake at least once a second to notice a graceful shutdown (cheaper
            // than registering with the shutdown signal for every request); right after an
            // exchange, after BUSY_SPELL, to give back the exchange state.
            let wake = if reader.buf.is_empty() {
                deadline.min(now + if spell { BUSY_SPELL } else { IDLE_TICK })
            } else {
                deadline
            };
            let timer = self.timer.arm(wake);
            let mut timed_out = false;
            tokio::select! {
                r = reader.fill() => match r {
                    Ok(0) | Err(_) => return Ok(Head::End),
                    Ok(_) => {}
                },
                () = timer => {
                    if spell && idle && Instant::now() < deadline {
                        // No next request this soon: the exchange state and the buffers go
                        // (memory per idle connection, bench/idle.sh); the wait goes on.
                        reader.release();
                        self.out = BytesMut::new();
                        return Ok(Head::Idle(deadline));
                    }
                    if (idle || reader.buf.is_empty()) && *self.shutdown.borrow() {
                        return Ok(Head::End);
                    }
                    if Instant::now() >= deadline {
                        timed_out = true;
                    }
                }
            }
            if timed_out {
                self.log_timer(reason);
                return Ok(Head::End);
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
}
