//! The transport between the listener (`httpqd`) and app processes, shared by both ends and
//! by the admin CLI, without the engine: a reader that decodes `httpq-wire` frames, a writer
//! task that batches every frame queued since its last write into one `write` call (many
//! frames per syscall under load, as the wire spec asks), per-stream body windows, the default
//! socket and state paths, and [`trust`]: the client's check that the listener is one it may
//! talk to.

pub mod trust;

use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use httpq_wire::{DecodeError, Decoder, Frame};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::Notify;

/// The byte pipe frames travel over, split into its two directions. Today a Unix stream
/// socket ([`tokio::net::UnixStream`]); a shared-memory ring with an eventfd for wake-ups can
/// implement the same two traits later without touching the frame layer, the listener or the
/// app library (DESIGN.md, "Listener-to-app IPC").
pub trait Pipe {
    /// The receiving direction.
    type Read: AsyncRead + Unpin + Send + 'static;
    /// The sending direction.
    type Write: PipeWrite;
    /// Splits the pipe.
    fn into_split(self) -> (Self::Read, Self::Write);
}

/// The sending direction of a [`Pipe`]: non-blocking writes plus a readiness wait, so that
/// the writer can batch everything queued since its last write into one call.
pub trait PipeWrite: Send + Sync + 'static {
    /// Writes what fits now; `WouldBlock` when nothing does.
    ///
    /// # Errors
    /// The pipe failed or `WouldBlock`.
    fn try_write(&self, buf: &[u8]) -> std::io::Result<usize>;
    /// Ready when a write may make progress.
    ///
    /// # Errors
    /// The pipe failed.
    fn poll_writable(&self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>>;
}

impl Pipe for tokio::net::UnixStream {
    type Read = OwnedReadHalf;
    type Write = OwnedWriteHalf;
    fn into_split(self) -> (OwnedReadHalf, OwnedWriteHalf) {
        tokio::net::UnixStream::into_split(self)
    }
}

impl PipeWrite for OwnedWriteHalf {
    fn try_write(&self, buf: &[u8]) -> std::io::Result<usize> {
        OwnedWriteHalf::try_write(self, buf)
    }
    fn poll_writable(&self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        AsRef::<tokio::net::UnixStream>::as_ref(self).poll_write_ready(cx)
    }
}

/// This process's real uid, from `/proc/self/status`.
#[must_use]
pub fn own_uid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line["Uid:".len()..].split_whitespace().next()?.parse().ok()
}

/// Where `httpqd` listens by default, and where the app library and the CLI look for it:
/// `/run/httpq/httpq.sock` for root, else `$XDG_RUNTIME_DIR/httpq/httpq.sock` (a per-user
/// listener), else the system listener's `/run/httpq/httpq.sock`. Never a world-writable
/// directory such as `/tmp`, where any user could create the path first
/// (docs/security.md); the client also checks whoever answers ([`trust`]).
#[must_use]
pub fn default_socket() -> std::path::PathBuf {
    let system = || std::path::PathBuf::from("/run/httpq/httpq.sock");
    if own_uid() == Some(0) {
        return system();
    }
    std::env::var_os("XDG_RUNTIME_DIR")
        .filter(|d| !d.is_empty())
        .map_or_else(system, |d| {
            std::path::PathBuf::from(d).join("httpq/httpq.sock")
        })
}

/// Where `httpqd` keeps its state by default, and where embedded mode finds the SSL
/// bindings: `/var/lib/httpq` for root, else `$XDG_STATE_HOME/httpq` (or
/// `~/.local/state/httpq`).
#[must_use]
pub fn default_state_dir() -> std::path::PathBuf {
    if own_uid() == Some(0) {
        return std::path::PathBuf::from("/var/lib/httpq");
    }
    let home = std::env::var_os("HOME").map_or_else(std::env::temp_dir, std::path::PathBuf::from);
    std::env::var_os("XDG_STATE_HOME")
        .map_or_else(|| home.join(".local/state"), std::path::PathBuf::from)
        .join("httpq")
}

/// Where `httpq dev-certs` writes the localhost development certificate
/// (`localhost.crt`, `localhost.key`), and where embedded apps look for it:
/// `$XDG_CONFIG_HOME/httpq` or `~/.config/httpq`.
#[must_use]
pub fn dev_cert_dir() -> std::path::PathBuf {
    let home = std::env::var_os("HOME").map_or_else(std::env::temp_dir, std::path::PathBuf::from);
    std::env::var_os("XDG_CONFIG_HOME")
        .map_or_else(|| home.join(".config"), std::path::PathBuf::from)
        .join("httpq")
}

/// Why reading frames stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    /// The peer closed the connection.
    #[error("the peer closed the connection")]
    Closed,
    /// The socket failed.
    #[error("reading from the peer failed: {0}")]
    Io(#[from] std::io::Error),
    /// The peer sent bytes that are not a valid frame.
    #[error("the peer sent an invalid frame: {0}")]
    Decode(#[from] DecodeError),
}

/// Reads frames from one connection.
#[derive(Debug)]
pub struct FrameReader<R = OwnedReadHalf> {
    rd: R,
    buf: BytesMut,
    decoder: Decoder,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    /// A reader with the default maximum frame size (raise it after the handshake with
    /// [`FrameReader::set_max_frame_size`]).
    #[must_use]
    pub fn new(rd: R) -> Self {
        FrameReader {
            rd,
            buf: BytesMut::with_capacity(64 * 1024),
            decoder: Decoder::default(),
        }
    }

    /// Sets the negotiated maximum frame size.
    pub fn set_max_frame_size(&mut self, max: u32) {
        self.decoder.set_max_frame_size(max);
    }

    /// The next frame if one is already whole in the buffer, without reading: a loop that
    /// batches its answers (as request credits) sends them when this says `None`, before it
    /// waits in [`FrameReader::next`].
    ///
    /// # Errors
    /// The buffered bytes are not a valid frame.
    pub fn try_next(&mut self) -> Result<Option<Frame>, DecodeError> {
        self.decoder.decode(&mut self.buf)
    }

    /// The next frame. Cancel-safe: bytes already read stay buffered.
    ///
    /// # Errors
    /// The connection closed or failed, or the peer sent an invalid frame.
    pub async fn next(&mut self) -> Result<Frame, ReadError> {
        loop {
            if let Some(frame) = self.decoder.decode(&mut self.buf)? {
                return Ok(frame);
            }
            self.buf.reserve(16 * 1024);
            if self.rd.read_buf(&mut self.buf).await? == 0 {
                return Err(ReadError::Closed);
            }
        }
    }
}

struct WriterState {
    /// Encoded frames not yet written.
    buf: BytesMut,
    /// The writer task is flushing; senders only append.
    busy: bool,
    /// A reader handles what it read and writes the answers itself ([`FrameWriter::hold`]):
    /// senders only append.
    held: bool,
    /// A [`FrameWriter::flush`] is writing a chunk taken from `buf`: the writer task leaves
    /// `buf` alone until it is done, so bytes keep their order.
    flushing: bool,
    closed: bool,
    handles: usize,
}

/// The most bytes a connection may have queued and not yet taken by its peer. Everything
/// bulky is flow-controlled (request heads by credits, bodies by stream windows), so only a
/// peer that stops reading gets here: it is disconnected (wire spec §13), and the listener's
/// memory stays bounded whatever it sends.
pub const MAX_QUEUED: usize = 64 << 20;

/// How long frames queued when the last sender went away may take to reach a peer before the
/// connection is dropped with them.
const FLUSH_ON_CLOSE: std::time::Duration = std::time::Duration::from_secs(5);

/// A memory budget that several connections' queued bytes count against together (the
/// listener gives one to each user, so that one user's many connections together stay
/// bounded). `take` is called before bytes are queued, `give` once they are gone.
pub trait QueueBudget: Send + Sync + 'static {
    /// Counts `n` more queued bytes; `false` when that would exceed the budget (nothing is
    /// counted then).
    fn take(&self, n: usize) -> bool;
    /// Gives back `n` bytes that left the queue.
    fn give(&self, n: usize);
}

/// What senders and the writer task share. The pipe itself belongs to the task alone, so it
/// closes as soon as the task ends, whoever still holds this (a flush borrows it meanwhile).
struct WriterShared {
    state: Mutex<WriterState>,
    pipe: std::sync::Weak<dyn PipeWrite>,
    notify: Notify,
    /// Stops a write the peer is not taking (overflow, or the flush deadline after close).
    abort: Notify,
    /// Woken whenever queued bytes went out, for senders waiting in [`FrameWriter::ready`].
    drained: Notify,
    /// Woken once when the connection closes, for [`FrameWriter::closed`].
    closed: Notify,
    budget: Option<Arc<dyn QueueBudget>>,
    /// Dropped when the writer task ends, that is when the pipe closes (a quota slot).
    guard: Mutex<Option<Box<dyn Send>>>,
}

impl WriterShared {
    /// Marks the connection closed: what is queued still goes out, then the write side
    /// closes; a peer that does not take it within [`FLUSH_ON_CLOSE`] loses it.
    fn close_after_flush(self: &Arc<Self>, mut st: MutexGuard<'_, WriterState>) {
        if st.closed {
            return;
        }
        st.closed = true;
        // A flush in progress may put back what its pipe did not take.
        let pending = !st.buf.is_empty() || st.busy || st.flushing;
        drop(st);
        self.notify.notify_one();
        if pending {
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                let shared = self.clone();
                rt.spawn(async move {
                    tokio::time::sleep(FLUSH_ON_CLOSE).await;
                    shared.abort.notify_one();
                });
            }
        }
    }

    /// Marks the connection closed and drops what is queued (giving its budget back).
    fn close_now(&self, st: &mut WriterState) {
        st.closed = true;
        if let Some(b) = &self.budget {
            b.give(st.buf.len());
        }
        st.buf = BytesMut::new();
        self.closed.notify_waiters();
        self.drained.notify_waiters();
    }
}

fn lock(m: &Mutex<WriterState>) -> MutexGuard<'_, WriterState> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Sends frames on one connection; cheap to clone, never blocks.
///
/// Senders append encoded frames to a buffer and wake the writer task; the writer first
/// yields once, so every task that is ready in the same scheduler tick adds its frames, then
/// writes the whole buffer in one call. Under load many frames go out per syscall (measured:
/// the listener's IPC sends fell from ~1 per request to ~0.1, bench/results).
///
/// A reader that answers most of what it reads itself (the app library runs each request's
/// first poll in its read loop) can instead [`hold`](FrameWriter::hold) the wake-ups and
/// [`flush`](FrameWriter::flush) once its read is handled: the answers go out in one write
/// from the reading task, and no second task runs per read.
pub struct FrameWriter {
    shared: Arc<WriterShared>,
}

impl std::fmt::Debug for FrameWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FrameWriter")
    }
}

impl Clone for FrameWriter {
    fn clone(&self) -> Self {
        lock(&self.shared.state).handles += 1;
        FrameWriter {
            shared: self.shared.clone(),
        }
    }
}

impl Drop for FrameWriter {
    fn drop(&mut self) {
        let mut st = lock(&self.shared.state);
        st.handles -= 1;
        if st.handles == 0 {
            // Nobody can send any more.
            self.shared.close_after_flush(st);
        }
    }
}

impl FrameWriter {
    /// Starts the writer for `wr`.
    #[must_use]
    pub fn spawn(wr: impl PipeWrite) -> FrameWriter {
        Self::spawn_with_budget(wr, None)
    }

    /// Starts the writer for `wr`, its queued bytes also counted against `budget`: when the
    /// budget is exhausted the connection is closed as when it passes [`MAX_QUEUED`].
    #[must_use]
    pub fn spawn_with_budget(
        wr: impl PipeWrite,
        budget: Option<Arc<dyn QueueBudget>>,
    ) -> FrameWriter {
        let wr: Arc<dyn PipeWrite> = Arc::new(wr);
        let shared = Arc::new(WriterShared {
            state: Mutex::new(WriterState {
                buf: BytesMut::with_capacity(64 * 1024),
                busy: false,
                held: false,
                flushing: false,
                closed: false,
                handles: 1,
            }),
            pipe: Arc::downgrade(&wr),
            notify: Notify::new(),
            abort: Notify::new(),
            drained: Notify::new(),
            closed: Notify::new(),
            budget,
            guard: Mutex::new(None),
        });
        let task = shared.clone();
        tokio::spawn(async move {
            // However the task ends, the guard goes with the pipe.
            struct EndOfPipe(Arc<WriterShared>);
            impl Drop for EndOfPipe {
                fn drop(&mut self) {
                    self.0.closed.notify_waiters();
                    let guard = self
                        .0
                        .guard
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .take();
                    drop(guard);
                }
            }
            let _end = EndOfPipe(task.clone());
            loop {
                task.notify.notified().await;
                // Let every task that is ready in this scheduler tick queue its frames
                // first: under load, one write then carries many of them.
                tokio::task::yield_now().await;
                loop {
                    let chunk = {
                        let mut st = lock(&task.state);
                        if st.flushing {
                            // A flush holds earlier bytes; it wakes this task when done.
                            st.busy = false;
                            break;
                        }
                        if st.buf.is_empty() {
                            st.busy = false;
                            if st.closed {
                                return;
                            }
                            break;
                        }
                        st.buf.split().freeze()
                    };
                    let len = chunk.len();
                    let written = tokio::select! {
                        r = write_all(&*wr, chunk) => r,
                        () = task.abort.notified() => Err(std::io::ErrorKind::TimedOut.into()),
                    };
                    if let Some(b) = &task.budget {
                        b.give(len);
                    }
                    task.drained.notify_waiters();
                    if written.is_err() {
                        let mut st = lock(&task.state);
                        task.close_now(&mut st);
                        return;
                    }
                }
            }
        });
        FrameWriter { shared }
    }

    /// Closes the connection for every handle, as the last handle's drop does: what is queued
    /// still goes out, later sends fail. The sender of a GOAWAY with an error code closes the
    /// connection (wire spec §5.3) though tasks still hold handles.
    pub fn shutdown(&self) {
        self.shared.close_after_flush(lock(&self.shared.state));
    }

    /// Keeps `guard` alive until the connection's pipe closes (not merely until the last
    /// handle is dropped: queued frames may still be flushing then). The listener parks a
    /// user's connection-quota slot here.
    pub fn hold_until_closed(&self, guard: impl Send + 'static) {
        *self
            .shared
            .guard
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Box::new(guard));
    }

    /// Resolves once the connection is closed for sending (peer gone, or disconnected for not
    /// reading): a reader loop selects on it so that it stops too.
    pub async fn closed(&self) {
        loop {
            let notified = self.shared.closed.notified();
            if lock(&self.shared.state).closed {
                return;
            }
            notified.await;
        }
    }

    /// Waits until at most `limit` bytes are queued (or the connection closed). Producers of
    /// bulk data (request bodies) call it before sending, so a peer that does not read makes
    /// them wait instead of growing the queue: memory stays bounded.
    pub async fn ready(&self, limit: usize) {
        loop {
            let drained = self.shared.drained.notified();
            {
                let st = lock(&self.shared.state);
                if st.closed || st.buf.len() <= limit {
                    return;
                }
            }
            drained.await;
        }
    }

    /// Bytes queued and not yet handed to the socket.
    #[must_use]
    pub fn queued(&self) -> usize {
        lock(&self.shared.state).buf.len()
    }

    /// Sends one frame; `false` when the connection is closed.
    pub fn send(&self, frame: Frame) -> bool {
        self.send_all(std::iter::once(frame))
    }

    /// Sends frames together (in one write); `false` when the connection is closed, or is
    /// closed now because the peer left more than [`MAX_QUEUED`] bytes unread.
    pub fn send_all(&self, frames: impl IntoIterator<Item = Frame>) -> bool {
        self.send_with(|buf| {
            for frame in frames {
                frame.encode(buf);
            }
        })
    }

    /// Sends what `encode` appends to the connection's buffer: frames encoded straight from
    /// where their parts live (a [`httpq_wire::RequestHeadRef`]), without building [`Frame`]s.
    /// `false` as [`FrameWriter::send_all`].
    pub fn send_with(&self, encode: impl FnOnce(&mut BytesMut)) -> bool {
        let mut st = lock(&self.shared.state);
        if st.closed {
            return false;
        }
        let before = st.buf.len();
        encode(&mut st.buf);
        let added = st.buf.len() - before;
        let within_budget = self.shared.budget.as_ref().is_none_or(|b| b.take(added));
        if !within_budget || st.buf.len() > MAX_QUEUED {
            tracing::warn!(
                queued = st.buf.len(),
                over_user_budget = !within_budget,
                "the peer does not read what it is sent; disconnecting it"
            );
            if !within_budget {
                // Nothing was counted for the frames just encoded.
                st.buf.truncate(before);
            }
            self.shared.close_now(&mut st);
            drop(st);
            self.shared.abort.notify_one();
            self.shared.notify.notify_one();
            self.shared.drained.notify_waiters();
            return false;
        }
        if !st.held && !st.flushing {
            self.wake_writer(st);
        }
        true
    }

    /// Holds the writer task's wake-ups: what is sent waits in the buffer until
    /// [`FrameWriter::flush`]. Every hold must end with a flush, whatever the caller does
    /// next: only a writer task already at work, or the connection closing, writes held
    /// frames otherwise.
    pub fn hold(&self) {
        lock(&self.shared.state).held = true;
    }

    /// Ends a [`hold`](FrameWriter::hold) and writes what is queued from the calling task,
    /// as much as the pipe takes now without waiting; the rest, if any, goes to the writer
    /// task. When the writer task is already at work (or the connection is closing) it is
    /// left to that task.
    pub fn flush(&self) {
        let mut st = lock(&self.shared.state);
        st.held = false;
        if st.buf.is_empty() {
            return;
        }
        let pipe = self.shared.pipe.upgrade();
        let Some(pipe) = pipe.filter(|_| !st.busy && !st.flushing && !st.closed) else {
            self.wake_writer(st);
            return;
        };
        st.flushing = true;
        let mut chunk = st.buf.split().freeze();
        drop(st);
        let len = chunk.len();
        while !chunk.is_empty() {
            match pipe.try_write(&chunk) {
                Ok(0) => break,
                Ok(n) => chunk.advance(n),
                // WouldBlock waits in the writer task; an error is met there again and
                // closes the connection as any write error does.
                Err(_) => break,
            }
        }
        let written = len - chunk.len();
        if written > 0 {
            if let Some(b) = &self.shared.budget {
                b.give(written);
            }
            self.shared.drained.notify_waiters();
        }
        let mut st = lock(&self.shared.state);
        st.flushing = false;
        if !chunk.is_empty() {
            // Before whatever other tasks queued meanwhile.
            let mut rest = BytesMut::with_capacity(chunk.len() + st.buf.len());
            rest.extend_from_slice(&chunk);
            rest.extend_from_slice(&st.buf);
            st.buf = rest;
        }
        drop(pipe);
        if !st.buf.is_empty() || st.closed {
            self.wake_writer(st);
        }
    }

    /// Hands what is queued to the writer task.
    fn wake_writer(&self, mut st: MutexGuard<'_, WriterState>) {
        if st.busy {
            return;
        }
        st.busy = true;
        drop(st);
        self.shared.notify.notify_one();
    }
}

/// One direction of a request stream's body window (wire spec §8): how many data bytes the
/// sender may still send. The receiver grants more with `CREDIT` as it consumes; the sender
/// takes from it before each data frame, waiting when it is empty. Shared between the task
/// that reads the connection (which applies `CREDIT`s) and the task sending the body.
#[derive(Debug)]
pub struct StreamWindow {
    state: Mutex<WindowState>,
    notify: Notify,
}

#[derive(Debug)]
struct WindowState {
    avail: u64,
    /// The receiver has sent at least one `CREDIT` (for the to-app window: the app started
    /// reading the body).
    credited: bool,
    closed: bool,
}

impl StreamWindow {
    /// A window holding `initial` bytes.
    #[must_use]
    pub fn new(initial: u32) -> Arc<Self> {
        Arc::new(StreamWindow {
            state: Mutex::new(WindowState {
                avail: u64::from(initial),
                credited: false,
                closed: false,
            }),
            notify: Notify::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, WindowState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Applies a `CREDIT`; `false` when it takes the window above 2³¹−1 (a
    /// `FLOW_CONTROL_ERROR`).
    pub fn grant(&self, increment: u32) -> bool {
        let mut st = self.lock();
        st.avail += u64::from(increment);
        st.credited = true;
        let ok = st.avail <= httpq_wire::MAX_WINDOW;
        drop(st);
        self.notify.notify_waiters();
        ok
    }

    /// Counts `len` received bytes against the window; `false` when the sender overran it
    /// (a `FLOW_CONTROL_ERROR`).
    pub fn consume(&self, len: usize) -> bool {
        let mut st = self.lock();
        match st.avail.checked_sub(len as u64) {
            Some(rest) => {
                st.avail = rest;
                true
            }
            None => false,
        }
    }

    /// Ends the stream: waiting senders return.
    pub fn close(&self) {
        self.lock().closed = true;
        self.notify.notify_waiters();
    }

    /// Waits until some window is available and takes up to `max` bytes of it; `None` once
    /// the stream is closed.
    pub async fn acquire(&self, max: usize) -> Option<usize> {
        loop {
            let notified = self.notify.notified();
            {
                let mut st = self.lock();
                if st.closed {
                    return None;
                }
                if st.avail > 0 {
                    let n = usize::try_from(st.avail).unwrap_or(usize::MAX).min(max);
                    st.avail -= n as u64;
                    return Some(n);
                }
            }
            notified.await;
        }
    }

    /// Takes up to `max` bytes of window if any is available now; `None` when it is empty or
    /// the stream is closed.
    pub fn try_acquire(&self, max: usize) -> Option<usize> {
        let mut st = self.lock();
        if st.closed || st.avail == 0 {
            return None;
        }
        let n = usize::try_from(st.avail).unwrap_or(usize::MAX).min(max);
        st.avail -= n as u64;
        Some(n)
    }

    /// Waits until the stream is closed.
    pub async fn closed(&self) {
        loop {
            let notified = self.notify.notified();
            if self.lock().closed {
                return;
            }
            notified.await;
        }
    }

    /// Waits for the receiver's first `CREDIT`; `false` if the stream closed first.
    pub async fn credited(&self) -> bool {
        loop {
            let notified = self.notify.notified();
            {
                let st = self.lock();
                if st.credited {
                    return true;
                }
                if st.closed {
                    return false;
                }
            }
            notified.await;
        }
    }
}

async fn write_all(wr: &dyn PipeWrite, mut chunk: Bytes) -> std::io::Result<()> {
    while !chunk.is_empty() {
        std::future::poll_fn(|cx| wr.poll_writable(cx)).await?;
        match wr.try_write(&chunk) {
            Ok(n) => chunk.advance(n),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// A bounded in-memory byte ring, standing in for the shared-memory ring the [`Pipe`]
    /// traits leave room for: frames must cross it unchanged, in order, under backpressure.
    #[derive(Default)]
    struct Ring {
        bytes: std::collections::VecDeque<u8>,
        reader: Option<std::task::Waker>,
        writer: Option<std::task::Waker>,
    }
    const RING: usize = 4096;
    struct RingRead(Arc<Mutex<Ring>>);
    struct RingWrite(Arc<Mutex<Ring>>);

    impl AsyncRead for RingRead {
        fn poll_read(
            self: std::pin::Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut tokio::io::ReadBuf<'_>,
        ) -> Poll<std::io::Result<()>> {
            let mut r = self.0.lock().unwrap();
            if r.bytes.is_empty() {
                r.reader = Some(cx.waker().clone());
                return Poll::Pending;
            }
            let n = buf.remaining().min(r.bytes.len());
            let chunk: Vec<u8> = r.bytes.drain(..n).collect();
            buf.put_slice(&chunk);
            if let Some(w) = r.writer.take() {
                w.wake();
            }
            Poll::Ready(Ok(()))
        }
    }

    impl PipeWrite for RingWrite {
        fn try_write(&self, buf: &[u8]) -> std::io::Result<usize> {
            let mut r = self.0.lock().unwrap();
            let n = buf.len().min(RING - r.bytes.len());
            if n == 0 {
                return Err(std::io::ErrorKind::WouldBlock.into());
            }
            r.bytes.extend(&buf[..n]);
            if let Some(w) = r.reader.take() {
                w.wake();
            }
            Ok(n)
        }
        fn poll_writable(&self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            let mut r = self.0.lock().unwrap();
            if r.bytes.len() < RING {
                return Poll::Ready(Ok(()));
            }
            r.writer = Some(cx.waker().clone());
            Poll::Pending
        }
    }

    #[tokio::test]
    async fn frames_cross_any_pipe_in_order_under_backpressure() {
        let ring = Arc::new(Mutex::new(Ring::default()));
        let writer = FrameWriter::spawn(RingWrite(ring.clone()));
        let mut reader = FrameReader::new(RingRead(ring));
        // Far more than the ring holds, so the writer has to wait for the reader repeatedly.
        let frames: Vec<Frame> = (1..=300u64)
            .map(|i| {
                Frame::RequestBody(httpq_wire::Data {
                    stream: httpq_wire::StreamId(i),
                    data: Bytes::from(vec![(i % 256) as u8; (i as usize * 37) % 1000]),
                    end_stream: i % 2 == 0,
                })
            })
            .collect();
        for f in &frames {
            assert!(writer.send(f.clone()));
        }
        for expected in &frames {
            let got = tokio::time::timeout(Duration::from_secs(5), reader.next())
                .await
                .unwrap()
                .unwrap();
            assert_eq!(&got, expected);
        }
    }

    /// A writer on one end of a socket pair and a reader on the other (with the unused
    /// halves, which must live as long as the test).
    fn socket_pair() -> (FrameWriter, FrameReader, (OwnedReadHalf, OwnedWriteHalf)) {
        let (ours, theirs) = tokio::net::UnixStream::pair().unwrap();
        let (rd, wr) = ours.into_split();
        let (theirs_rd, theirs_wr) = theirs.into_split();
        (
            FrameWriter::spawn(wr),
            FrameReader::new(theirs_rd),
            (rd, theirs_wr),
        )
    }

    fn body(stream: u64, n: u64, len: usize) -> Frame {
        let mut data = n.to_le_bytes().to_vec();
        data.resize(len.max(8), (n % 251) as u8);
        Frame::RequestBody(httpq_wire::Data {
            stream: httpq_wire::StreamId(stream),
            data: Bytes::from(data),
            end_stream: false,
        })
    }

    #[tokio::test]
    async fn held_frames_wait_for_the_flush_and_keep_their_order_past_a_full_pipe() {
        let ring = Arc::new(Mutex::new(Ring::default()));
        let writer = FrameWriter::spawn(RingWrite(ring.clone()));
        let mut reader = FrameReader::new(RingRead(ring.clone()));
        writer.hold();
        let mut expected = vec![body(1, 0, 100)];
        assert!(writer.send(expected[0].clone()));
        // Held: the writer task is not woken, nothing reaches the pipe.
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(
            ring.lock().unwrap().bytes.is_empty(),
            "a held frame went out"
        );
        // More than the pipe takes at once: the flush writes what fits, the writer task the
        // rest, before anything sent after the flush.
        for n in 1..40 {
            expected.push(body(1, n, 500));
            assert!(writer.send(expected.last().unwrap().clone()));
        }
        writer.flush();
        assert_eq!(
            ring.lock().unwrap().bytes.len(),
            RING,
            "the flush writes from the calling task"
        );
        let other = writer.clone();
        for n in 40..60 {
            expected.push(body(1, n, 300));
            assert!(other.send(expected.last().unwrap().clone()));
        }
        for want in &expected {
            let got = tokio::time::timeout(Duration::from_secs(5), reader.next())
                .await
                .unwrap()
                .unwrap();
            assert_eq!(&got, want);
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn holds_and_flushes_racing_other_senders_keep_every_frame_whole_and_in_order() {
        let (writer, mut reader, _halves) = socket_pair();
        let held = writer.clone();
        let holder = tokio::spawn(async move {
            for round in 0..300u64 {
                held.hold();
                for i in 0..3 {
                    held.send(body(1, round * 3 + i, 2000));
                }
                held.flush();
                tokio::task::yield_now().await;
            }
        });
        let free = writer.clone();
        let other = tokio::spawn(async move {
            for n in 0..900u64 {
                free.send(body(2, n, 1500));
                if n % 3 == 0 {
                    tokio::task::yield_now().await;
                }
            }
        });
        let mut next = [0u64; 3];
        for _ in 0..1800 {
            let frame = tokio::time::timeout(Duration::from_secs(10), reader.next())
                .await
                .unwrap()
                .unwrap();
            let Frame::RequestBody(d) = frame else {
                panic!("{frame:?}")
            };
            let s = d.stream.0 as usize;
            let n = u64::from_le_bytes(d.data[..8].try_into().unwrap());
            assert_eq!(n, next[s], "stream {s} out of order");
            next[s] += 1;
        }
        holder.await.unwrap();
        other.await.unwrap();
    }

    #[tokio::test]
    async fn frames_held_when_the_last_handle_goes_still_reach_the_peer() {
        let (writer, mut reader, _halves) = socket_pair();
        writer.hold();
        let frame = body(1, 7, 64);
        assert!(writer.send(frame.clone()));
        drop(writer);
        let got = tokio::time::timeout(Duration::from_secs(5), reader.next())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got, frame);
        let end = tokio::time::timeout(Duration::from_secs(5), reader.next())
            .await
            .unwrap();
        assert!(end.is_err(), "the connection closes after the held frame");
    }

    #[tokio::test]
    async fn a_peer_that_never_reads_is_disconnected_at_the_bound() {
        let (ours, mut theirs) = tokio::net::UnixStream::pair().unwrap();
        let (_rd, wr) = ours.into_split();
        let writer = FrameWriter::spawn(wr);
        let chunk = Bytes::from(vec![7u8; 60_000]);
        let mut sent = 0usize;
        while writer.send(Frame::RequestBody(httpq_wire::Data {
            stream: httpq_wire::StreamId(1),
            data: chunk.clone(),
            end_stream: false,
        })) {
            sent += chunk.len();
            assert!(
                sent <= MAX_QUEUED + (8 << 20),
                "the queue grew past its bound"
            );
        }
        assert_eq!(
            writer.queued(),
            0,
            "the queue is dropped with the connection"
        );
        // The socket is closed even though the peer never read: it sees the end after what
        // the kernel had buffered.
        drop(writer);
        let mut buf = vec![0u8; 1 << 16];
        let eof = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                match tokio::io::AsyncReadExt::read(&mut theirs, &mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        })
        .await;
        assert!(eof.is_ok(), "the write side must be closed");
    }

    #[tokio::test]
    async fn a_peer_that_does_not_read_makes_bulk_senders_wait() {
        let (ours, theirs) = tokio::net::UnixStream::pair().unwrap();
        let (_rd, wr) = ours.into_split();
        let writer = FrameWriter::spawn(wr);
        let chunk = Bytes::from(vec![7u8; 60_000]);
        // Fill the socket buffer and then the queue: the peer reads nothing.
        for i in 0..200u64 {
            writer.send(Frame::RequestBody(httpq_wire::Data {
                stream: httpq_wire::StreamId(i + 1),
                data: chunk.clone(),
                end_stream: false,
            }));
        }
        assert!(writer.queued() > 1 << 20);
        let waited = tokio::time::timeout(Duration::from_millis(200), writer.ready(1 << 20)).await;
        assert!(
            waited.is_err(),
            "ready() must wait while the queue is over the limit"
        );
        // The peer starts reading: the queue drains and ready() returns.
        let reader = tokio::spawn(async move {
            let mut theirs = theirs;
            let mut buf = vec![0u8; 1 << 16];
            loop {
                match tokio::io::AsyncReadExt::read(&mut theirs, &mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
            }
        });
        tokio::time::timeout(Duration::from_secs(10), writer.ready(1 << 20))
            .await
            .unwrap();
        drop(writer);
        reader.await.unwrap();
    }
}
