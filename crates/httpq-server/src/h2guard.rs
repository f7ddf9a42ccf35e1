//! The IO in front of `h2`: client bytes pass through [`httpq_core::h2check::Checker`] on the
//! way in; when it finds a violation `h2` would answer with another code than the RFC's, the
//! guard stops feeding `h2`, writes the GOAWAY with the RFC's code itself (between two of
//! `h2`'s frames, never inside one), and ends the connection.
//!
//! Bytes are read straight into `h2`'s buffer and checked there; only a frame the checker must
//! hold until it is complete (SETTINGS, HEADERS, CONTINUATION split across reads) is copied
//! aside, so the common path costs no copy.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, BytesMut};
use httpq_core::h2check::{Checker, Violation};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

pub(crate) struct Guarded<T> {
    io: T,
    checker: Checker,
    /// Bytes read but not yet handed to h2, oldest first; the first `cleared` of them are
    /// checked and may go.
    pending: BytesMut,
    cleared: usize,
    /// Where slow-path reads land before joining `pending`.
    scratch: Vec<u8>,
    /// The GOAWAY to write, then the connection ends.
    goaway: Option<BytesMut>,
    failed: Option<Violation>,
    /// Bytes left of the frame h2 is writing (0: at a frame boundary), and a partial header.
    out_left: usize,
    out_header: Vec<u8>,
    client: std::net::SocketAddr,
}

impl<T> Guarded<T> {
    pub(crate) fn new(io: T, client: std::net::SocketAddr) -> Self {
        Guarded {
            io,
            checker: Checker::new(),
            pending: BytesMut::new(),
            cleared: 0,
            scratch: Vec::new(),
            goaway: None,
            failed: None,
            out_left: 0,
            out_header: Vec::with_capacity(9),
            client,
        }
    }

    /// Follows h2's output frame by frame, to know when a GOAWAY may be put in between.
    fn track_output(&mut self, mut written: &[u8]) {
        while !written.is_empty() {
            if self.out_left > 0 {
                let n = self.out_left.min(written.len());
                self.out_left -= n;
                written = &written[n..];
                continue;
            }
            let n = (9 - self.out_header.len()).min(written.len());
            self.out_header.extend_from_slice(&written[..n]);
            written = &written[n..];
            if self.out_header.len() == 9 {
                self.out_left = (usize::from(self.out_header[0]) << 16)
                    | (usize::from(self.out_header[1]) << 8)
                    | usize::from(self.out_header[2]);
                self.out_header.clear();
            }
        }
    }

    fn at_boundary(&self) -> bool {
        self.out_left == 0 && self.out_header.is_empty()
    }

    fn violation(&mut self, v: Violation) {
        tracing::info!(
            target: "httpq::httperr",
            reason = "Connection_Abandoned_By_ReqQueue",
            client = %self.client,
            code = v.code,
            detail = v.detail,
            "HTTP/2 protocol violation; connection closed with GOAWAY"
        );
        self.goaway = Some(goaway_frame(self.checker.last_stream(), v.code, v.detail));
        self.failed = Some(v);
    }
}

fn goaway_frame(last_stream: u32, code: u32, detail: &str) -> BytesMut {
    let mut f = BytesMut::with_capacity(17 + detail.len());
    let len = 8 + detail.len();
    f.extend_from_slice(&[(len >> 16) as u8, (len >> 8) as u8, len as u8, 0x7, 0]);
    f.extend_from_slice(&0u32.to_be_bytes());
    f.extend_from_slice(&last_stream.to_be_bytes());
    f.extend_from_slice(&code.to_be_bytes());
    f.extend_from_slice(detail.as_bytes());
    f
}

impl<T: AsyncRead + AsyncWrite + Unpin> Guarded<T> {
    /// Writes the pending GOAWAY (at a frame boundary), flushes, and shuts the write side.
    fn poll_goaway(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if !self.at_boundary() {
            // h2 is inside a frame: a GOAWAY cannot go in; the connection just ends.
            self.goaway = None;
        }
        while let Some(buf) = self.goaway.as_mut() {
            if buf.is_empty() {
                self.goaway = None;
                break;
            }
            match Pin::new(&mut self.io).poll_write(cx, buf) {
                Poll::Ready(Ok(0) | Err(_)) => self.goaway = None,
                Poll::Ready(Ok(n)) => buf.advance(n),
                Poll::Pending => return Poll::Pending,
            }
        }
        let _ = Pin::new(&mut self.io).poll_flush(cx);
        let _ = Pin::new(&mut self.io).poll_shutdown(cx);
        Poll::Ready(())
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> AsyncRead for Guarded<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            if this.cleared > 0 {
                let n = this.cleared.min(buf.remaining());
                buf.put_slice(&this.pending[..n]);
                this.pending.advance(n);
                this.cleared -= n;
                return Poll::Ready(Ok(()));
            }
            if this.failed.is_some() {
                if this.poll_goaway(cx).is_pending() {
                    return Poll::Pending;
                }
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::ConnectionAborted,
                    "HTTP/2 protocol violation; GOAWAY sent",
                )));
            }
            if this.pending.is_empty() {
                // Fast path: read into h2's buffer, check in place, keep back what must wait.
                let start = buf.filled().len();
                match Pin::new(&mut this.io).poll_read(cx, buf) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Ready(Ok(())) => {}
                }
                let new = &buf.filled()[start..];
                if new.is_empty() {
                    return Poll::Ready(Ok(())); // end of stream
                }
                let (ok, violation) = this.checker.feed(new);
                let len = new.len();
                if ok < len {
                    if violation.is_none() {
                        this.pending.extend_from_slice(&new[ok..]);
                    }
                    buf.set_filled(start + ok);
                }
                if let Some(v) = violation {
                    this.violation(v);
                }
                if ok > 0 {
                    return Poll::Ready(Ok(()));
                }
                continue;
            }
            // Slow path: a held frame is incomplete; collect more of it.
            if this.scratch.is_empty() {
                this.scratch = vec![0; 16 * 1024];
            }
            let mut rb = ReadBuf::new(&mut this.scratch);
            match Pin::new(&mut this.io).poll_read(cx, &mut rb) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Ready(Ok(())) => {}
            }
            let n = rb.filled().len();
            if n == 0 {
                return Poll::Ready(Ok(()));
            }
            let (ok, violation) = this.checker.feed(&this.scratch[..n]);
            this.pending.extend_from_slice(&this.scratch[..n]);
            this.cleared += ok;
            if let Some(v) = violation {
                this.pending.truncate(this.cleared);
                this.violation(v);
            }
        }
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> AsyncWrite for Guarded<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.failed.is_some() && self.goaway.is_none() {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "connection closed after a protocol violation",
            )));
        }
        let this = &mut *self;
        let r = Pin::new(&mut this.io).poll_write(cx, data);
        if let Poll::Ready(Ok(n)) = r {
            this.track_output(&data[..n]);
        }
        r
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}
