//! The reading side of an HTTP/1.1 connection: its read buffer (small while idle, growing
//! while a body streams), the request-body pump that feeds the app while it works, the drain
//! of a body the app left unread, and the linger before a close.

use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::task::{Poll, ready};
use std::time::Duration;

use bytes::{Buf, BytesMut};
use httpq_core::Rejection;
use httpq_core::h1::{ChunkedDecoder, ChunkedEvent};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::time::{Instant, timeout_at};

use crate::Inner;
use crate::body::{BODY_BUFFER, BodyError, BodyTx};

/// The reading side of a connection: a TCP socket's, or a TLS stream's.
pub(crate) trait ReadIo: AsyncRead + Unpin + Send {}
impl<T: AsyncRead + Unpin + Send> ReadIo for T {}

/// The writing side of a connection.
pub(crate) trait WriteIo: AsyncWrite + Unpin + Send {}
impl<T: AsyncWrite + Unpin + Send> WriteIo for T {}

pub(crate) struct Reader<R> {
    pub(crate) rd: R,
    pub(crate) buf: BytesMut,
    pub(crate) eof: bool,
    /// How much the next growth of `buf` reserves: small for a connection's first bytes,
    /// doubling up to [`READ_BUF`] while it reads more (a body).
    grow: usize,
    /// The connection has not needed a buffer yet (new, or idle for a while): the first
    /// one is the size of what arrived.
    unbuffered: bool,
    /// The last response's header map, emptied, for the next request's head (hyper's
    /// trick: a busy connection builds no new map per request). Boxed, so that it widens
    /// every connection's state by a pointer, not a map; given back when idle.
    pub(crate) spare_headers: Option<Box<http::HeaderMap>>,
}

/// The largest header map kept for reuse (in fields, and in values: repeated names live in a
/// list of their own): a response with more does not pin that much memory to a busy
/// connection.
const SPARE_HEADERS_MAX: usize = 64;

impl<R> Reader<R> {
    pub(crate) fn new(rd: R, buf: BytesMut) -> Self {
        Reader {
            rd,
            unbuffered: true,
            buf,
            eof: false,
            grow: MIN_BUF,
            spare_headers: None,
        }
    }

    /// Keeps a response's header map, emptied, for the next request's head.
    pub(crate) fn recycle(&mut self, mut headers: http::HeaderMap) {
        if headers.capacity() <= SPARE_HEADERS_MAX && headers.len() <= SPARE_HEADERS_MAX {
            headers.clear();
            // The box, once made, serves the whole busy spell.
            match self.spare_headers.as_deref_mut() {
                Some(spare) => *spare = headers,
                None => self.spare_headers = Some(Box::new(headers)),
            }
        }
    }
}

/// The most bytes read ahead of the parser at a time.
const READ_BUF: usize = 8192;
/// The first read buffer of a request: most heads fit (curl's and wrk's ~100 bytes, a
/// browser's ~500); it doubles while more arrives.
pub(crate) const MIN_BUF: usize = 1024;
/// What an idle connection reads its next request's first bytes into: a stack buffer, so
/// that it holds no heap buffer while it waits.
pub(crate) const FIRST_READ: usize = 128;

impl<R: ReadIo> Reader<R> {
    /// Reads more bytes into the buffer; `Ok(0)` at end of stream.
    pub(crate) async fn fill(&mut self) -> io::Result<usize> {
        if self.buf.capacity() == 0 {
            // No buffer (a new or idle connection): wait for data without a heap buffer,
            // then take a small one. The stack buffer lives in one poll, not in the waiting
            // future's state (what every idle connection holds).
            return poll_fn(|cx| {
                let mut first = [0u8; FIRST_READ];
                let mut read = ReadBuf::new(&mut first);
                ready!(Pin::new(&mut self.rd).poll_read(cx, &mut read))?;
                let n = read.filled().len();
                if n == 0 {
                    self.eof = true;
                } else {
                    // A connection's first head that fit the first read (most do: curl's and
                    // wrk's ~100 bytes) gets a buffer of its size, so one that made a small
                    // request and went idle holds ~128 bytes, not a kilobyte (bench/idle.sh).
                    // A busy connection that used its buffer up gets room for the next
                    // requests.
                    self.buf.reserve(if self.unbuffered && n < FIRST_READ {
                        n
                    } else {
                        self.grow.max(MIN_BUF)
                    });
                    self.buf.extend_from_slice(read.filled());
                    self.unbuffered = false;
                }
                Poll::Ready(Ok(n))
            })
            .await;
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

    /// Gives the reused header map back, and the read buffer while nothing is buffered (the
    /// connection is idle).
    pub(crate) fn release(&mut self) {
        self.spare_headers = None;
        if self.buf.is_empty() && self.buf.capacity() > 0 {
            self.buf = BytesMut::new();
            self.grow = MIN_BUF;
        }
        if self.buf.is_empty() {
            self.unbuffered = true;
        }
    }
}

/// Per-request body progress, kept across the pump's restarts.
pub(crate) struct BodyState {
    pub(crate) tx: BodyTx,
    pub(crate) framing: BodyState2,
    pub(crate) received: u64,
    pub(crate) declared: Option<u64>,
    pub(crate) expect_continue: bool,
    pub(crate) continue_sent: bool,
    pub(crate) checked_limit: bool,
    /// The body reached its end.
    pub(crate) done: bool,
    /// The body failed (limit, timeout, framing) or the app dropped it.
    pub(crate) failed: bool,
    pub(crate) abandoned: bool,
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

pub(crate) enum BodyState2 {
    Length { remaining: u64 },
    Chunked(ChunkedDecoder),
}

pub(crate) enum PumpEvent {
    /// The app started reading a body sent with `Expect: 100-continue`: say 100 now.
    Continue,
    Disconnected,
    BodyTimeout,
    TooLarge,
    Framing(Rejection),
}

/// Moves request-body bytes from the socket to the app when it wants them; otherwise watches
/// the socket for a disconnect and buffers pipelined bytes. Returns only on notable events;
/// cancel-safe (state lives in `reader` and `body`).
pub(crate) async fn pump(
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
pub(crate) async fn drain(reader: &mut Reader<impl ReadIo>, b: &mut BodyState) -> bool {
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
pub(crate) async fn linger(reader: &mut Reader<impl ReadIo>) {
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

#[cfg(test)]
mod tests {
    use http::{HeaderMap, HeaderValue, header};

    use super::Reader;

    #[test]
    fn a_recycled_map_is_kept_emptied_and_only_while_small() {
        let mut reader = Reader::new(tokio::io::empty(), bytes::BytesMut::new());
        let mut small = HeaderMap::new();
        small.insert(header::SET_COOKIE, HeaderValue::from_static("a=1"));
        reader.recycle(small);
        let kept = reader
            .spare_headers
            .as_deref()
            .expect("a small map is kept");
        assert!(
            kept.is_empty(),
            "a kept map holds none of the response's values"
        );

        // One name with many values: few fields, but a long list of values.
        let mut many = HeaderMap::new();
        for _ in 0..1000 {
            many.append(header::SET_COOKIE, HeaderValue::from_static("a=1"));
        }
        reader.spare_headers = None;
        reader.recycle(many);
        assert!(
            reader.spare_headers.is_none(),
            "a map of 1,000 values is not kept"
        );

        reader.recycle(HeaderMap::new());
        reader.release();
        assert!(
            reader.spare_headers.is_none(),
            "an idle connection keeps no map"
        );
    }
}
