//! Frame transport over a Unix stream socket, shared by the listener (`httpqd`) and the app
//! library in daemon mode: a reader that decodes `httpq-wire` frames, and a writer task that
//! batches every frame queued since its last write into one `write` call (many frames per
//! syscall under load, as the wire spec asks).

use bytes::BytesMut;
use httpq_wire::{DecodeError, Decoder, Frame};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::mpsc;

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

/// Queues frames for one connection; cheap to clone. Sending never blocks; the writer task
/// drains the queue in batches.
#[derive(Debug, Clone)]
pub struct FrameWriter {
    tx: mpsc::UnboundedSender<Frame>,
}

impl FrameWriter {
    /// Starts the writer task for `wr`.
    #[must_use]
    pub fn spawn(mut wr: OwnedWriteHalf) -> FrameWriter {
        let (tx, mut rx) = mpsc::unbounded_channel::<Frame>();
        tokio::spawn(async move {
            let mut buf = BytesMut::with_capacity(64 * 1024);
            while let Some(frame) = rx.recv().await {
                buf.clear();
                frame.encode(&mut buf);
                while let Ok(more) = rx.try_recv() {
                    more.encode(&mut buf);
                    if buf.len() > 256 * 1024 {
                        break;
                    }
                }
                if wr.write_all(&buf).await.is_err() {
                    break;
                }
            }
            let _ = wr.shutdown().await;
        });
        FrameWriter { tx }
    }

    /// Queues a frame; `false` when the connection's writer has stopped.
    pub fn send(&self, frame: Frame) -> bool {
        self.tx.send(frame).is_ok()
    }
}
