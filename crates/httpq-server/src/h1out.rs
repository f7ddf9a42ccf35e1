//! The HTTP/1.1 side of the response step: [`H1Out`] frames one exchange's answer on a
//! connection (Content-Length, chunked or close-delimited; `Connection` as keep-alive allows)
//! under HTTP.sys's minimum send rate, while the request body keeps flowing to the app (a
//! duplex echo) and a disconnect is noticed. The policies (what to answer, when, 413 and 500)
//! are `stream.rs`'s, the same for every protocol.

use std::future::poll_fn;
use std::pin::pin;
use std::task::Poll;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::header;
use http::{HeaderMap, Method, Response, Version};
use httpq_core::h1::{self, Persistence, ResponseFraming};
use httpq_core::{Reason, Rejection};
use tokio::io::AsyncWriteExt;
use tokio::time::{Instant, timeout_at};

use crate::Inner;
use crate::date::with_date;
use crate::h1read::{BodyState, PumpEvent, ReadIo, Reader, WriteIo, pump};
use crate::stream::{Broken, Sent, Shape, StreamOut};

const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// Bodies at least this large go to the socket as they are instead of being copied after
/// the framing bytes.
const DIRECT_WRITE: usize = 16 * 1024;

/// What happened on the connection while the exchange ran, for the connection to log and to
/// decide whether it goes on.
#[derive(Default)]
pub(crate) struct H1Events {
    /// The connection may carry another request after this exchange.
    pub(crate) keep_alive: bool,
    /// The client went away.
    pub(crate) disconnected: bool,
    /// The exchange ended the connection abruptly: a reset stream or a broken body (close
    /// without lingering).
    pub(crate) aborted: bool,
    /// The request was refused unprocessed under Basic 503 verbosity: reset the connection.
    pub(crate) refused: bool,
    /// Timers that fired: the entity-body timer (the body stopped), the minimum send rate.
    /// At most one of each: the body fails at its timeout (the pump then stops reading it)
    /// and the response ends at the send-rate timer.
    pub(crate) timers: Vec<Reason>,
    /// A request body's chunked framing broke.
    pub(crate) framing: Option<Rejection>,
}

/// One exchange's response on an HTTP/1.1 connection.
pub(crate) struct H1Out<'a, R, W> {
    reader: &'a mut Reader<R>,
    wr: &'a mut W,
    /// The connection's output buffer: the head, then small body pieces after it.
    out: &'a mut BytesMut,
    inner: &'a Inner,
    shutdown: &'a tokio::sync::watch::Receiver<bool>,
    /// The request body's progress, when it has one.
    pub(crate) body: Option<BodyState>,
    method: Method,
    version: Version,
    rate: SendRate,
    framing: ResponseFraming,
    /// What a Content-Length response still owes.
    declared_left: Option<u64>,
    /// The rest of a `100 Continue` being written (written before anything else, so a
    /// cancelled write never leaves half of it).
    continue_left: &'static [u8],
    /// The response has begun: the pump no longer answers `Expect: 100-continue`.
    responding: bool,
    pub(crate) events: H1Events,
}

impl<'a, R: ReadIo, W: WriteIo> H1Out<'a, R, W> {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        reader: &'a mut Reader<R>,
        wr: &'a mut W,
        out: &'a mut BytesMut,
        inner: &'a Inner,
        shutdown: &'a tokio::sync::watch::Receiver<bool>,
        method: Method,
        version: Version,
        keep_alive: bool,
    ) -> Self {
        H1Out {
            reader,
            wr,
            out,
            inner,
            shutdown,
            body: None,
            method,
            version,
            rate: SendRate::new(inner.options.timeouts.min_send_bytes_per_second),
            framing: ResponseFraming::NoBody,
            declared_left: None,
            continue_left: &[],
            responding: false,
            events: H1Events {
                keep_alive,
                ..H1Events::default()
            },
        }
    }

    /// Ends the exchange: what happened, and the request body's state for the drain.
    pub(crate) fn into_parts(self) -> (H1Events, Option<BodyState>) {
        (self.events, self.body)
    }

    /// Finishes a `100 Continue` under way, flushed, under the send-rate timer (a client
    /// that stops reading cannot hold the exchange). Cancel-safe: progress is kept.
    async fn flush_continue(&mut self) -> Sent {
        let deadline = self.rate.deadline(self.continue_left.len());
        let (wr, left) = (&mut *self.wr, &mut self.continue_left);
        let write = async {
            while !left.is_empty() {
                match wr.write(left).await {
                    Ok(0) | Err(_) => return Err(()),
                    Ok(n) => *left = &left[n..],
                }
            }
            wr.flush().await.map_err(|_| ())
        };
        let written = match deadline {
            Some(d) => match timeout_at(d, write).await {
                Ok(r) => r,
                Err(_) => {
                    self.events.timers.push(Reason::TimerMinBytesPerSecond);
                    self.events.aborted = true;
                    return Err(Broken::Aborted);
                }
            },
            None => write.await,
        };
        written.map_err(|()| {
            self.events.disconnected = true;
            Broken::ClientGone
        })
    }

    /// Writes `bytes` (or the output buffer, then clears it) under the send-rate timer, while
    /// the request body keeps flowing to the app.
    async fn write(&mut self, bytes: Option<&Bytes>) -> Sent {
        let H1Out {
            reader,
            wr,
            out,
            inner,
            body,
            rate,
            events,
            ..
        } = self;
        let buf: &[u8] = match bytes {
            Some(b) => b,
            None => out,
        };
        // Fast path: the socket takes it all now (most responses); no timer, no pump.
        let mut done = 0;
        let fast = poll_fn(|cx| Poll::Ready(try_write(&mut **wr, cx, buf, &mut done))).await;
        if rate.start.is_some() {
            // Once its clock runs, the send rate counts every byte of the response.
            rate.sent_since_start += done as u64;
        }
        let result = match fast {
            Ok(true) => Ok(()),
            Err(_) => Err(WriteError::Io),
            // The client is slow: go on under the send-rate timer while the request body
            // flows (boxed: this state does not widen every exchange).
            Ok(false) => {
                Box::pin(slow_write(
                    &mut **wr,
                    &buf[done..],
                    rate,
                    &mut **reader,
                    body.as_mut(),
                    inner,
                    events,
                ))
                .await
            }
        };
        if bytes.is_none() {
            out.clear();
        }
        match result {
            Ok(()) => Ok(()),
            Err(WriteError::MinSendRate) => {
                events.timers.push(Reason::TimerMinBytesPerSecond);
                events.aborted = true;
                Err(Broken::Aborted)
            }
            Err(WriteError::Io) => {
                events.disconnected = true;
                Err(Broken::ClientGone)
            }
        }
    }

    /// Frames `data` into the output buffer. `false`: it is longer than the Content-Length
    /// (what fits was framed).
    fn put(&mut self, data: &Bytes) -> bool {
        match self.framing {
            ResponseFraming::Chunked => {
                if !data.is_empty() {
                    h1::encode_chunk_size(self.out, data.len());
                    self.out.extend_from_slice(data);
                    self.out.extend_from_slice(b"\r\n");
                }
                true
            }
            ResponseFraming::Length(_) => {
                let left = self.declared_left.unwrap_or(0);
                if data.len() as u64 > left {
                    self.out
                        .extend_from_slice(&data[..usize::try_from(left).unwrap_or(0)]);
                    self.declared_left = Some(0);
                    false
                } else {
                    self.out.extend_from_slice(data);
                    self.declared_left = Some(left - data.len() as u64);
                    true
                }
            }
            ResponseFraming::CloseDelimited => {
                self.out.extend_from_slice(data);
                true
            }
            ResponseFraming::NoBody => true,
        }
    }

    fn abort(&mut self, why: &str) -> Broken {
        tracing::warn!("{why}; connection closed");
        self.events.aborted = true;
        Broken::Aborted
    }

    /// The body is over: the last chunk (with trailers), and a Content-Length fully sent.
    async fn end_body(&mut self, trailers: Option<&HeaderMap>) -> Sent {
        if self.framing == ResponseFraming::Chunked {
            h1::encode_last_chunk(self.out, trailers);
        }
        if !self.out.is_empty() {
            self.write(None).await?;
        }
        if self.declared_left.is_some_and(|l| l > 0) {
            return Err(self.abort("the response body is shorter than its Content-Length"));
        }
        Ok(())
    }
}

impl<R: ReadIo, W: WriteIo> StreamOut for H1Out<'_, R, W> {
    async fn responding(&mut self, streamed: bool) -> Sent {
        self.responding = true;
        if let Some(b) = self.body.as_mut() {
            if !b.done && b.expect_continue && !b.continue_sent {
                if streamed {
                    // A streamed response may read the request body while it is written (an
                    // echo): say 100 Continue now, as the head cannot wait for the body.
                    b.continue_sent = true;
                    self.continue_left = CONTINUE;
                } else {
                    // The client may never send the body it announced: the connection cannot
                    // be reused.
                    self.events.keep_alive = false;
                }
            }
        }
        if !self.continue_left.is_empty() {
            self.flush_continue().await?;
        }
        Ok(())
    }

    async fn send_head(&mut self, head: Response<()>, shape: Shape) -> Result<bool, Broken> {
        if !self.continue_left.is_empty() {
            self.flush_continue().await?;
        }
        let (parts, ()) = head.into_parts();
        if !shape.keep || *self.shutdown.borrow() || asks_to_close(&parts.headers) {
            self.events.keep_alive = false;
        }
        let framing = h1::response_framing(
            &self.method,
            self.version,
            parts.status,
            &parts.headers,
            shape.length,
        );
        if framing == ResponseFraming::CloseDelimited {
            self.events.keep_alive = false;
        }
        self.framing = framing;
        self.declared_left = match framing {
            ResponseFraming::Length(n) => Some(n),
            _ => None,
        };
        let head_length = (self.method == Method::HEAD)
            .then(|| {
                parts
                    .headers
                    .get(header::CONTENT_LENGTH)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .or(shape.length)
            })
            .flatten();
        self.out.clear();
        // One allocation for a typical head instead of growing from nothing.
        self.out.reserve(256);
        let persistence = Persistence::for_response(self.events.keep_alive, self.version);
        with_date(|d| {
            h1::encode_response_head(
                self.out,
                parts.status,
                &parts.headers,
                framing,
                head_length,
                persistence,
                d,
            );
        });
        // Its map serves the connection's next request head.
        self.reader.recycle(parts.headers);
        if shape.end || framing == ResponseFraming::NoBody {
            // Nothing follows: the head goes out now.
            self.write(None).await?;
            if self.declared_left.is_some_and(|l| l > 0) {
                // The app declared a length and sent no body: the connection cannot go on
                // (the client would read the next response as this one's body).
                return Err(self.abort("the response body is shorter than its Content-Length"));
            }
            return Ok(false);
        }
        // The head waits for the first body bytes: a small response is one write.
        Ok(true)
    }

    async fn send_data(&mut self, data: Bytes, end: bool) -> Sent {
        let large = data.len() >= DIRECT_WRITE && self.framing != ResponseFraming::Chunked;
        if large && self.out.is_empty() && self.declared_left.is_none_or(|l| data.len() as u64 <= l)
        {
            if let Some(l) = self.declared_left.as_mut() {
                *l -= data.len() as u64;
            }
            self.write(Some(&data)).await?;
        } else {
            let fits = self.put(&data);
            if !fits || !end {
                self.write(None).await?;
            }
            if !fits {
                return Err(self.abort("the response body is longer than its Content-Length"));
            }
        }
        if end {
            self.end_body(None).await?;
        }
        Ok(())
    }

    async fn send_trailers(&mut self, trailers: HeaderMap) -> Sent {
        self.end_body(Some(&trailers)).await
    }

    async fn finish(&mut self) -> Sent {
        self.end_body(None).await
    }

    fn reset(&mut self, _code: Option<u32>) {
        // HTTP/1.1 has no stream to reset: the connection ends without lingering.
        self.events.aborted = true;
        self.events.keep_alive = false;
    }

    fn refuse(&mut self) {
        // Http503Verbosity Basic: the connection is reset.
        self.events.refused = true;
        self.events.keep_alive = false;
    }

    async fn client_reset(&mut self) {
        // While the app works: its request body flows, `Expect: 100-continue` is answered
        // when it starts reading, and the connection is watched for a disconnect.
        loop {
            if !self.continue_left.is_empty() && self.flush_continue().await.is_err() {
                return;
            }
            match pump(
                self.reader,
                self.body.as_mut(),
                !self.responding,
                self.inner,
            )
            .await
            {
                PumpEvent::Continue => {
                    if let Some(b) = self.body.as_mut() {
                        b.continue_sent = true;
                    }
                    self.continue_left = CONTINUE;
                }
                PumpEvent::Disconnected => {
                    self.events.disconnected = true;
                    return;
                }
                PumpEvent::BodyTimeout => {
                    self.events.timers.push(Reason::TimerEntityBody);
                    self.events.keep_alive = false;
                }
                // The answer is 413 once the app is done (the body's channel says so).
                PumpEvent::TooLarge => {}
                PumpEvent::Framing(rej) => {
                    self.events.framing.get_or_insert(rej);
                    self.events.keep_alive = false;
                }
            }
        }
    }
}

/// Whether the app's response says `Connection: close`.
fn asks_to_close(headers: &HeaderMap) -> bool {
    headers.get_all(header::CONNECTION).iter().any(|v| {
        v.as_bytes()
            .split(|b| *b == b',')
            .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"close"))
    })
}

/// Writes what the socket takes now, then flushes (a TLS stream may keep encrypted records
/// buffered otherwise). `Ok(true)`: all of `buf` went out; `Ok(false)`: the socket is full
/// (`done` bytes went).
fn try_write(
    wr: &mut impl WriteIo,
    cx: &mut std::task::Context<'_>,
    buf: &[u8],
    done: &mut usize,
) -> std::io::Result<bool> {
    while *done < buf.len() {
        match std::pin::Pin::new(&mut *wr).poll_write(cx, &buf[*done..]) {
            Poll::Ready(Ok(0)) => return Err(std::io::ErrorKind::WriteZero.into()),
            Poll::Ready(Ok(n)) => *done += n,
            Poll::Ready(Err(e)) => return Err(e),
            Poll::Pending => return Ok(false),
        }
    }
    match std::pin::Pin::new(&mut *wr).poll_flush(cx) {
        Poll::Ready(Ok(())) => Ok(true),
        Poll::Ready(Err(e)) => Err(e),
        Poll::Pending => Ok(false),
    }
}

/// The rest of a write the socket could not take at once: under the send-rate timer, with the
/// request body flowing to the app meanwhile.
async fn slow_write<R: ReadIo, W: WriteIo>(
    wr: &mut W,
    rest: &[u8],
    rate: &mut SendRate,
    reader: &mut Reader<R>,
    mut body: Option<&mut BodyState>,
    inner: &Inner,
    events: &mut H1Events,
) -> Result<(), WriteError> {
    let mut write = pin!(write_all(wr, rest, rate));
    loop {
        tokio::select! {
            biased;
            r = &mut write => return r,
            ev = pump(reader, body.as_deref_mut(), false, inner) => match ev {
                PumpEvent::Continue => {}
                PumpEvent::Disconnected => return Err(WriteError::Io),
                PumpEvent::BodyTimeout => {
                    events.timers.push(Reason::TimerEntityBody);
                    events.keep_alive = false;
                }
                PumpEvent::TooLarge | PumpEvent::Framing(_) => events.keep_alive = false,
            },
        }
    }
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
}

impl SendRate {
    fn new(rate: u32) -> Self {
        SendRate {
            rate,
            start: None,
            sent_since_start: 0,
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
    // Flush: a TLS stream may keep encrypted records buffered otherwise (a no-op on TCP).
    let write = async {
        wr.write_all(buf).await?;
        wr.flush().await
    };
    // The clock runs from here: the socket could not take the bytes at once.
    let r = match rate.deadline(buf.len()) {
        Some(d) => timeout_at(d, write)
            .await
            .map_err(|_| WriteError::MinSendRate)?,
        None => write.await,
    };
    r.map_err(|_| WriteError::Io)?;
    if rate.start.is_some() {
        rate.sent_since_start += buf.len() as u64;
    }
    Ok(())
}
