//! Per-stream ordering and flow-control rules (wire-protocol.md §6 and §8), as a sans-IO
//! checker.
//!
//! The decoder only checks that each frame is well-formed. Whether a frame may come *now*
//! depends on what went before on its stream; [`StreamState`] tracks that. Either endpoint
//! (or a test) keeps one per open stream and feeds it every stream frame in both
//! directions, in the order they were sent or received:
//!
//! ```
//! use bytes::Bytes;
//! use httpq_wire::{Data, Direction, Frame, StreamId, StreamState};
//! # use httpq_wire::*;
//! # let head = RequestHead {
//! #     stream: StreamId(1), queue: 1, url_context: 1, method: http::Method::POST,
//! #     raw_target: Bytes::from_static(b"/"), path: "/".into(), query: None,
//! #     version: HttpVersion::Http11, headers: http::HeaderMap::new(), connection_id: 1, request_id: 1,
//! #     local: "127.0.0.1:80".parse().unwrap(), remote: "127.0.0.1:5000".parse().unwrap(),
//! #     tls: None, identity: None, timings: vec![], body: RequestBodyKind::Length(3),
//! #     max_request_body_size: 30_000_000, flags: RequestFlags::empty(),
//! # };
//! let mut state = StreamState::new();
//! state.on_frame(Direction::ListenerToApp, &Frame::RequestHead(Box::new(head))).unwrap();
//! let body = Frame::RequestBody(Data {
//!     stream: StreamId(1),
//!     data: Bytes::from_static(b"abc"),
//!     end_stream: true,
//! });
//! state.on_frame(Direction::ListenerToApp, &body).unwrap();
//! // A second end of the request body breaks the state table.
//! assert!(state.on_frame(Direction::ListenerToApp, &body).is_err());
//! ```
//!
//! Frames that cross on the wire are allowed: after one side ends the stream with RESET,
//! CANCEL or DELEGATE, frames the *other* side sent before it learned of it are accepted
//! (and should be dropped by the receiver); frames the ending side sends afterwards are
//! errors.

use std::fmt;

use http::StatusCode;

use crate::frame::{ErrorCode, Frame, FrameType, RequestBodyKind, RequestFlags};
use crate::{INITIAL_WINDOW, MAX_WINDOW};

/// Who sent a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// The app process sent it to the listener.
    AppToListener,
    /// The listener sent it to the app process.
    ListenerToApp,
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::AppToListener => "app to listener",
            Self::ListenerToApp => "listener to app",
        })
    }
}

/// The rules-only state of one request stream, seen from both directions.
///
/// Create it before the stream's first frame (REQUEST_HEAD) and feed every frame of the
/// stream to [`StreamState::on_frame`]. Drop it once [`StreamState::is_closed`].
#[derive(Debug, Clone)]
pub struct StreamState {
    request: RequestSide,
    response: ResponseSide,
    upgrade: Option<Halves>,
    /// Who ended the stream early with RESET, CANCEL or DELEGATE.
    ended_by: Option<Direction>,
    expect_continue: bool,
    upgrade_requested: bool,
    /// The app has sent CREDIT on this stream: it started reading the body.
    reading: bool,
    /// Bytes the listener may still send (request body, upgraded data to the app).
    to_app_window: u64,
    /// Bytes the app may still send (response body, upgraded data to the listener).
    to_listener_window: u64,
}

/// The request message, listener → app.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RequestSide {
    /// No REQUEST_HEAD yet.
    Idle,
    /// REQUEST_HEAD without END_STREAM; body frames or trailers may follow.
    Open,
    /// END_STREAM seen.
    Closed,
}

/// The response message, app → listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ResponseSide {
    /// No RESPONSE_HEAD yet.
    Idle,
    /// Only informational (1xx) heads so far.
    Informational,
    /// A final head without END_STREAM; body, file or trailers may follow.
    Open,
    /// END_STREAM seen, or the 101 that hands the stream to upgraded data.
    Closed,
}

/// Which halves of an upgraded stream are still open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Halves {
    to_app: bool,
    to_listener: bool,
}

impl StreamState {
    /// A stream that has seen no frame yet, with the default windows of 65,536 bytes.
    #[must_use]
    pub fn new() -> Self {
        Self::with_initial_window(INITIAL_WINDOW)
    }

    /// A stream whose body windows in both directions start at `initial_window` bytes.
    #[must_use]
    pub fn with_initial_window(initial_window: u32) -> Self {
        Self {
            request: RequestSide::Idle,
            response: ResponseSide::Idle,
            upgrade: None,
            ended_by: None,
            expect_continue: false,
            upgrade_requested: false,
            reading: false,
            to_app_window: u64::from(initial_window),
            to_listener_window: u64::from(initial_window),
        }
    }

    /// [`StreamState::on_frame`] for a `REQUEST_HEAD` the listener sends from its parts
    /// (a [`crate::RequestHeadRef`]): it opens the stream.
    ///
    /// # Errors
    /// [`ProtocolError::UnexpectedFrame`] when the stream is already open; the state is then
    /// unchanged.
    pub fn on_request_head(
        &mut self,
        body: RequestBodyKind,
        flags: RequestFlags,
    ) -> Result<(), ProtocolError> {
        if self.request != RequestSide::Idle || self.ended_by.is_some() {
            return Err(ProtocolError::UnexpectedFrame {
                ty: FrameType::REQUEST_HEAD,
                dir: Direction::ListenerToApp,
                rule: "REQUEST_HEAD may only open a stream",
            });
        }
        self.open(body, flags);
        Ok(())
    }

    fn open(&mut self, body: RequestBodyKind, flags: RequestFlags) {
        self.request = if body == RequestBodyKind::Empty {
            RequestSide::Closed
        } else {
            RequestSide::Open
        };
        self.expect_continue = flags.contains(RequestFlags::EXPECT_CONTINUE);
        self.upgrade_requested = flags.contains(RequestFlags::UPGRADE);
    }

    /// Checks `frame`, sent in direction `dir`, against the state table and the windows,
    /// and advances the state. Frames of unknown (ignorable) types are accepted unchanged.
    ///
    /// # Errors
    ///
    /// A [`ProtocolError`] if the frame may not be sent now; the state is then unchanged.
    /// Its [`ProtocolError::code`] is the code for the RESET (or GOAWAY) that follows.
    pub fn on_frame(&mut self, dir: Direction, frame: &Frame) -> Result<(), ProtocolError> {
        let ty = frame.frame_type();
        if let Frame::Unknown { .. } = frame {
            return Ok(());
        }
        if frame.stream().is_connection() {
            return Err(ProtocolError::NotAStreamFrame { ty });
        }
        let allowed = match ty {
            FrameType::REQUEST_HEAD
            | FrameType::REQUEST_BODY
            | FrameType::REQUEST_TRAILERS
            | FrameType::CANCEL => Some(Direction::ListenerToApp),
            FrameType::RESPONSE_HEAD
            | FrameType::RESPONSE_BODY
            | FrameType::RESPONSE_FILE
            | FrameType::RESPONSE_TRAILERS
            | FrameType::SET_LIMIT
            | FrameType::DELEGATE => Some(Direction::AppToListener),
            _ => None,
        };
        if allowed.is_some_and(|allowed| allowed != dir) {
            return Err(ProtocolError::WrongDirection { ty, dir });
        }
        let unexpected = |rule| ProtocolError::UnexpectedFrame { ty, dir, rule };
        if self.request == RequestSide::Idle && ty != FrameType::REQUEST_HEAD {
            return Err(unexpected("the stream has not been opened by REQUEST_HEAD"));
        }
        if let Some(ender) = self.ended_by {
            if ender != dir {
                // Crossed on the wire, or the listener's RESET answering DELEGATE.
                return Ok(());
            }
            return Err(unexpected(
                "the sender already ended the stream with RESET, CANCEL or DELEGATE",
            ));
        }

        if self.is_closed()
            && !matches!(ty, FrameType::CREDIT | FrameType::RESET | FrameType::CANCEL)
        {
            // Only frames that may cross the last ones on the wire are still allowed.
            return Err(unexpected("the stream has closed"));
        }

        let mut next = self.clone();
        match frame {
            Frame::RequestHead(head) => {
                if self.request != RequestSide::Idle {
                    return Err(unexpected("REQUEST_HEAD may only open a stream"));
                }
                next.open(head.body, head.flags);
            }
            Frame::RequestBody(data) => {
                if self.request != RequestSide::Open {
                    return Err(unexpected("the request body has ended"));
                }
                if self.expect_continue && !self.reading {
                    return Err(unexpected(
                        "no request body before the app's first CREDIT when the client expects 100-continue",
                    ));
                }
                next.to_app_window = consume(ty, self.to_app_window, data.data.len())?;
                if data.end_stream {
                    next.request = RequestSide::Closed;
                }
            }
            Frame::RequestTrailers(_) => {
                if self.request != RequestSide::Open {
                    return Err(unexpected("the request has ended"));
                }
                next.request = RequestSide::Closed;
            }
            Frame::ResponseHead(head) => {
                if !matches!(
                    self.response,
                    ResponseSide::Idle | ResponseSide::Informational
                ) {
                    return Err(unexpected("the final response head was already sent"));
                }
                if head.status == StatusCode::SWITCHING_PROTOCOLS {
                    if !self.upgrade_requested {
                        return Err(unexpected(
                            "101 answers only a request with the UPGRADE flag",
                        ));
                    }
                    if self.request != RequestSide::Closed {
                        return Err(unexpected("101 is valid only after the request has ended"));
                    }
                    if head.end_stream {
                        return Err(unexpected("101 must not carry END_STREAM"));
                    }
                    next.response = ResponseSide::Closed;
                    next.upgrade = Some(Halves {
                        to_app: true,
                        to_listener: true,
                    });
                } else if head.status.is_informational() {
                    if head.end_stream {
                        return Err(unexpected(
                            "an informational (1xx) head must not carry END_STREAM",
                        ));
                    }
                    next.response = ResponseSide::Informational;
                } else {
                    next.response = if head.end_stream {
                        ResponseSide::Closed
                    } else {
                        ResponseSide::Open
                    };
                }
            }
            Frame::ResponseBody(data) => {
                if self.response != ResponseSide::Open {
                    return Err(unexpected(
                        "response body only between a final RESPONSE_HEAD and END_STREAM",
                    ));
                }
                next.to_listener_window = consume(ty, self.to_listener_window, data.data.len())?;
                if data.end_stream {
                    next.response = ResponseSide::Closed;
                }
            }
            Frame::ResponseFile(file) => {
                if self.response != ResponseSide::Open {
                    return Err(unexpected(
                        "response file only between a final RESPONSE_HEAD and END_STREAM",
                    ));
                }
                if file.end_stream {
                    next.response = ResponseSide::Closed;
                }
            }
            Frame::ResponseTrailers(_) => {
                if self.response != ResponseSide::Open {
                    return Err(unexpected(
                        "response trailers only between a final RESPONSE_HEAD and END_STREAM",
                    ));
                }
                next.response = ResponseSide::Closed;
            }
            Frame::Reset(_) | Frame::Cancel(_) => next.ended_by = Some(dir),
            Frame::Credit(credit) => {
                let window = match dir {
                    Direction::AppToListener => {
                        next.reading = true;
                        &mut next.to_app_window
                    }
                    Direction::ListenerToApp => &mut next.to_listener_window,
                };
                *window += u64::from(credit.increment);
                if *window > MAX_WINDOW {
                    return Err(ProtocolError::WindowOverflow { window: *window });
                }
            }
            Frame::SetLimit(_) => {
                if self.reading {
                    return Err(unexpected("SET_LIMIT only before the app's first CREDIT"));
                }
            }
            Frame::UpgradedData(data) => {
                let Some(halves) = &mut next.upgrade else {
                    return Err(unexpected("upgraded data only after a 101 response"));
                };
                let (open, window) = match dir {
                    Direction::ListenerToApp => (&mut halves.to_app, &mut next.to_app_window),
                    Direction::AppToListener => {
                        (&mut halves.to_listener, &mut next.to_listener_window)
                    }
                };
                if !*open {
                    return Err(unexpected("the sender half-closed the upgraded stream"));
                }
                *window = consume(ty, *window, data.data.len())?;
                if data.end_stream {
                    *open = false;
                }
            }
            Frame::Delegate(_) => {
                if self.reading || self.response != ResponseSide::Idle {
                    return Err(unexpected(
                        "DELEGATE only before the app reads the body or starts the response",
                    ));
                }
                next.ended_by = Some(dir);
            }
            _ => return Err(ProtocolError::NotAStreamFrame { ty }),
        }
        *self = next;
        Ok(())
    }

    /// Whether the stream is over: ended early by either side, or both messages (and both
    /// halves of an upgraded stream) have ended.
    #[must_use]
    pub fn is_closed(&self) -> bool {
        if self.ended_by.is_some() {
            return true;
        }
        let upgraded_closed = self.upgrade.is_none_or(|h| !h.to_app && !h.to_listener);
        self.request == RequestSide::Closed
            && self.response == ResponseSide::Closed
            && upgraded_closed
    }

    /// Whether the app has started reading the body (sent CREDIT on the stream).
    #[must_use]
    pub fn is_reading(&self) -> bool {
        self.reading
    }

    /// Body bytes the listener may still send on this stream.
    #[must_use]
    pub fn to_app_window(&self) -> u64 {
        self.to_app_window
    }

    /// Body bytes the app may still send on this stream.
    #[must_use]
    pub fn to_listener_window(&self) -> u64 {
        self.to_listener_window
    }
}

impl Default for StreamState {
    fn default() -> Self {
        Self::new()
    }
}

/// A frame that is well-formed but not allowed at this point of its stream.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// A connection-level frame was given to a stream's state.
    #[error("{ty} is not a stream frame")]
    NotAStreamFrame {
        /// The frame type.
        ty: FrameType,
    },
    /// The frame type only travels the other way.
    #[error("{ty} may not be sent {dir}")]
    WrongDirection {
        /// The frame type.
        ty: FrameType,
        /// The direction it was sent.
        dir: Direction,
    },
    /// The state table does not allow the frame now.
    #[error("{ty} sent {dir} breaks the stream rules: {rule}")]
    UnexpectedFrame {
        /// The frame type.
        ty: FrameType,
        /// The direction it was sent.
        dir: Direction,
        /// The rule it breaks.
        rule: &'static str,
    },
    /// The frame carries more bytes than the receiver granted.
    #[error("{ty} of {length} bytes exceeds the flow-control window of {window}")]
    FlowControl {
        /// The frame type.
        ty: FrameType,
        /// Its data length.
        length: usize,
        /// The window left.
        window: u64,
    },
    /// A CREDIT grew a window past 2^31 − 1 bytes.
    #[error("credit grows the window to {window}, above the maximum 2^31-1")]
    WindowOverflow {
        /// The window it would have made.
        window: u64,
    },
}

impl ProtocolError {
    /// The code for the RESET that ends the stream (or GOAWAY, if the endpoint treats it as
    /// a connection error).
    #[must_use]
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::FlowControl { .. } | Self::WindowOverflow { .. } => ErrorCode::FLOW_CONTROL_ERROR,
            _ => ErrorCode::PROTOCOL_ERROR,
        }
    }
}

fn consume(ty: FrameType, window: u64, length: usize) -> Result<u64, ProtocolError> {
    window
        .checked_sub(length as u64)
        .ok_or(ProtocolError::FlowControl { ty, length, window })
}
