//! The app's end of the listener connection, with the wire spec's stream rules (§6, §8) on
//! both directions: every frame this process sends on a request stream is recorded in the
//! stream's [`StreamState`], every frame the listener sends is checked against it, as the
//! listener does with the app's frames. A stream's state lives from its REQUEST_HEAD until its
//! response is sent (or the stream is reset or cancelled); frames that arrive later crossed
//! its end on the wire and are ignored.

use std::sync::{Arc, Mutex, MutexGuard};

use httpq_server::ipc::FrameWriter;
use httpq_wire::{Direction, Frame, INITIAL_WINDOW, ProtocolError, StreamId, StreamState};
// Stream ids are the listener's, not a client's: a fast hash is safe.
use rustc_hash::FxHashMap as HashMap;

/// Frames to the listener, and the states of the open streams.
#[derive(Clone, Debug)]
pub(crate) struct Wire {
    writer: FrameWriter,
    states: Arc<Mutex<HashMap<u64, StreamState>>>,
}

impl Wire {
    pub(crate) fn new(writer: FrameWriter) -> Wire {
        Wire {
            writer,
            states: Arc::default(),
        }
    }

    fn states(&self) -> MutexGuard<'_, HashMap<u64, StreamState>> {
        self.states
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records `frame` in its stream's state (when it has one).
    fn record(states: &mut HashMap<u64, StreamState>, frame: &Frame) {
        let stream = frame.stream();
        if stream.is_connection() {
            return;
        }
        if let Some(state) = states.get_mut(&stream.0) {
            if let Err(e) = state.on_frame(Direction::AppToListener, frame) {
                // This library's own bug: say so, and send anyway (the listener checks too).
                tracing::error!(stream = stream.0, error = %e, "this process broke the wire protocol's stream rules");
            }
        }
    }

    /// Sends one frame. `false`: the connection is gone.
    pub(crate) fn send(&self, frame: Frame) -> bool {
        let mut states = self.states();
        Self::record(&mut states, &frame);
        // Sent under the lock: the recorded order is the order on the wire.
        self.writer.send(frame)
    }

    /// Holds what is sent until [`Wire::flush`]: the read loop answers a read's requests,
    /// then writes the answers itself (`FrameWriter::hold`).
    pub(crate) fn hold(&self) {
        self.writer.hold();
    }

    /// Ends a hold: writes what is queued.
    pub(crate) fn flush(&self) {
        self.writer.flush();
    }

    /// Closes the connection once what is queued went out (after a GOAWAY with an error).
    pub(crate) fn shutdown(&self) {
        self.writer.shutdown();
    }

    /// Sends frames together. `false`: the connection is gone.
    pub(crate) fn send_all(&self, frames: impl IntoIterator<Item = Frame>) -> bool {
        let mut states = self.states();
        self.writer
            .send_all(frames.into_iter().inspect(|f| Self::record(&mut states, f)))
    }

    /// Checks a frame the listener sent. REQUEST_HEAD opens its stream's state.
    ///
    /// # Errors
    /// The rule it broke (a REQUEST_HEAD for a stream already open included); the caller
    /// resets the stream with [`Wire::broke_rule`].
    pub(crate) fn check(&self, frame: &Frame) -> Result<(), ProtocolError> {
        let stream = frame.stream();
        if stream.is_connection() {
            return Ok(());
        }
        let mut states = self.states();
        match (states.get_mut(&stream.0), frame) {
            (Some(state), _) => state.on_frame(Direction::ListenerToApp, frame),
            (None, Frame::RequestHead(_)) => {
                let mut state = StreamState::with_initial_window(INITIAL_WINDOW);
                state.on_frame(Direction::ListenerToApp, frame)?;
                states.insert(stream.0, state);
                Ok(())
            }
            // Crossed the stream's end on the wire.
            (None, _) => Ok(()),
        }
    }

    /// The listener broke a stream rule: the stream is reset with the rule's code and text,
    /// and forgotten.
    pub(crate) fn broke_rule(&self, stream: StreamId, error: &ProtocolError) {
        tracing::error!(stream = stream.0, error = %error, "the httpqd listener broke the wire protocol; resetting the request");
        self.send(Frame::Reset(httpq_wire::Reset {
            stream,
            code: error.code(),
            reason: error.to_string(),
        }));
        self.close(stream);
    }

    /// The stream is over for this process (its response is sent, or it was reset or
    /// cancelled): its state goes.
    pub(crate) fn close(&self, stream: StreamId) {
        self.states().remove(&stream.0);
    }
}
