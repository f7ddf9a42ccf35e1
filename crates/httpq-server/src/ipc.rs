//! Frame transport over a Unix stream socket, shared by the listener (`httpqd`) and the app
//! library in daemon mode: a reader that decodes `httpq-wire` frames, and a writer task that
//! batches every frame queued since its last write into one `write` call (many frames per
//! syscall under load, as the wire spec asks).

use std::sync::{Arc, Mutex, MutexGuard};

use bytes::{Buf, Bytes, BytesMut};
use httpq_wire::{DecodeError, Decoder, Frame};
use tokio::io::AsyncReadExt;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::Notify;

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
pub struct FrameReader {
    rd: OwnedReadHalf,
    buf: BytesMut,
    decoder: Decoder,
}

impl FrameReader {
    /// A reader with the default maximum frame size (raise it after the handshake with
    /// [`FrameReader::set_max_frame_size`]).
    #[must_use]
    pub fn new(rd: OwnedReadHalf) -> Self {
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
    closed: bool,
    handles: usize,
}

struct WriterShared {
    wr: OwnedWriteHalf,
    state: Mutex<WriterState>,
    notify: Notify,
}

fn lock(m: &Mutex<WriterState>) -> MutexGuard<'_, WriterState> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Sends frames on one connection; cheap to clone, never blocks.
///
/// When the socket is idle the sender writes at once (a non-blocking `write`, no task hop);
/// when a write is already under way, frames are appended to a buffer the writer task
/// flushes, so under load many frames go out per syscall.
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
            // Nobody can send any more: flush what is queued, then close the write side.
            st.closed = true;
            drop(st);
            self.shared.notify.notify_one();
        }
    }
}

impl FrameWriter {
    /// Starts the writer for `wr`.
    #[must_use]
    pub fn spawn(wr: OwnedWriteHalf) -> FrameWriter {
        let shared = Arc::new(WriterShared {
            wr,
            state: Mutex::new(WriterState {
                buf: BytesMut::with_capacity(64 * 1024),
                busy: false,
                closed: false,
                handles: 1,
            }),
            notify: Notify::new(),
        });
        let task = shared.clone();
        tokio::spawn(async move {
            loop {
                task.notify.notified().await;
                loop {
                    let chunk = {
                        let mut st = lock(&task.state);
                        if st.buf.is_empty() {
                            st.busy = false;
                            if st.closed {
                                return;
                            }
                            break;
                        }
                        st.buf.split().freeze()
                    };
                    if write_all(&task.wr, chunk).await.is_err() {
                        let mut st = lock(&task.state);
                        st.closed = true;
                        st.buf.clear();
                        return;
                    }
                }
            }
        });
        FrameWriter { shared }
    }

    /// Sends one frame; `false` when the connection is closed.
    pub fn send(&self, frame: Frame) -> bool {
        self.send_all(std::iter::once(frame))
    }

    /// Sends frames together (one write when the socket is idle); `false` when the
    /// connection is closed.
    pub fn send_all(&self, frames: impl IntoIterator<Item = Frame>) -> bool {
        let mut st = lock(&self.shared.state);
        if st.closed {
            return false;
        }
        let queued = !st.buf.is_empty();
        for frame in frames {
            frame.encode(&mut st.buf);
        }
        if st.busy {
            return true;
        }
        if !queued {
            // Idle socket: write now, without waking the writer task.
            match self.shared.wr.try_write(&st.buf) {
                Ok(n) if n == st.buf.len() => {
                    st.buf.clear();
                    return true;
                }
                Ok(n) => st.buf.advance(n),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(_) => {
                    st.closed = true;
                    st.buf.clear();
                    return false;
                }
            }
        }
        st.busy = true;
        drop(st);
        self.shared.notify.notify_one();
        true
    }
}

async fn write_all(wr: &OwnedWriteHalf, mut chunk: Bytes) -> std::io::Result<()> {
    while !chunk.is_empty() {
        wr.writable().await?;
        match wr.try_write(&chunk) {
            Ok(n) => chunk.advance(n),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
