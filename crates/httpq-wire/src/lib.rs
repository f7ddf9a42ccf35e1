//! The wire format between the httpq listener (`httpqd`) and app processes: versioned,
//! binary, sans-IO frames. The normative specification is `docs/wire-protocol.md`; this
//! crate implements it and section numbers in the docs refer to it.
//!
//! # Getting started
//!
//! ```
//! use bytes::BytesMut;
//! use httpq_wire::{Credit, Decoder, Frame, Hello, Role, DEFAULT_MAX_FRAME_SIZE};
//!
//! // App side: say hello, then ask for up to 8 requests at a time.
//! let mut out = BytesMut::new();
//! Frame::Hello(Hello::new(Role::App)).encode(&mut out);
//! Frame::Credit(Credit::requests(8)).encode(&mut out);
//!
//! // Listener side: whatever the socket delivered goes into a buffer; complete frames
//! // come out, partial ones wait for more bytes.
//! let mut decoder = Decoder::new(DEFAULT_MAX_FRAME_SIZE);
//! let mut received = out; // as if read from the socket
//! let Some(Frame::Hello(hello)) = decoder.decode(&mut received)? else { panic!() };
//! assert_eq!(
//!     hello.negotiate(1, httpq_wire::PROTOCOL_VERSION),
//!     Some(httpq_wire::PROTOCOL_VERSION)
//! );
//! assert_eq!(decoder.decode(&mut received)?, Some(Frame::Credit(Credit::requests(8))));
//! assert_eq!(decoder.decode(&mut received)?, None);
//! # Ok::<(), httpq_wire::DecodeError>(())
//! ```
//!
//! # Design overview
//!
//! ```text
//!   listener (httpqd)                                   app process (lib httpq)
//!   ─────────────────                                   ───────────────────────
//!   Frame::encode ──► bytes ──► transport ──► bytes ──► Decoder::decode ──► Frame
//!                      (Unix stream socket now; fds beside the bytes via SCM_RIGHTS;
//!                       a shared-memory ring later: frames do not change)
//!   StreamState::on_frame (either side, optional): ordering and flow-control rules
//! ```
//!
//! - [`Frame`] has one variant per frame type; [`Decoder`] turns bytes into frames and checks
//!   syntax only (lengths before allocation, UTF-8, header validity, reserved bits).
//! - [`StreamState`] checks what may follow what on a stream, and the body windows.
//! - [`control`] holds the JSON messages carried by `CONTROL` frames.
//! - [`RequestHeadRef::from_http`] (the listener encodes the request it parsed from it) /
//!   [`RequestHead::into_http`] (the app rebuilds the request) and their [`ResponseHead`]
//!   twins are the one conversion between the `http` crate's heads and the wire's, which
//!   both ends use; [`RequestMeta`] carries the rest of a request.
//!
//! Nothing here performs I/O, reads a clock or depends on an async runtime.
//!
//! # Feature flags
//!
//! None.
//!
//! # Cancel safety
//!
//! Not applicable: no function here is async. [`Decoder::decode`] consumes bytes only when it
//! returns a complete frame, so a caller may stop between calls at any point.
//!
//! # Stability
//!
//! The byte format is versioned by [`PROTOCOL_VERSION`] and its evolution rules
//! (wire-protocol.md §10). The `Display` text of errors is not part of the API.
#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![doc(test(attr(deny(warnings))))]

pub mod control;
mod convert;
mod decode;
mod frame;
mod primitive;
mod state;

pub use convert::RequestMeta;
pub use decode::{DecodeError, Decoder, Frames};
pub use frame::{
    AuthScheme, CacheFlags, CachePolicy, Cancel, CancelReason, ControlFrame, Credit, Data,
    Delegate, EncodeError, ErrorCode, Flags, Frame, FrameType, Goaway, Hello, HelloAck,
    HttpVersion, Identity, Ping, RequestBodyKind, RequestFlags, RequestHead, RequestHeadRef, Reset,
    ResponseFile, ResponseHead, Role, SetLimit, SplitData, StreamId, Timing, TimingKind, TlsInfo,
    Trailers, split_data,
};
pub use primitive::MAX_HEADER_FIELDS;
pub use state::{Direction, ProtocolError, StreamState};

/// The longest `RESET` reason [`Reset::new`] keeps, in bytes (wire-protocol.md §5.13).
pub const MAX_REASON_LEN: usize = 1024;

/// The protocol version this crate implements (wire-protocol.md §10).
pub const PROTOCOL_VERSION: u16 = 2;

/// The magic that starts a HELLO payload.
pub const MAGIC: &[u8; 5] = b"HTTPQ";

/// Bytes in every frame header.
pub const HEADER_LEN: usize = 16;

/// The maximum frame payload before the handshake, and the smallest value HELLO or
/// HELLO_ACK may announce.
pub const DEFAULT_MAX_FRAME_SIZE: u32 = 65_536;

/// The largest maximum frame size HELLO or HELLO_ACK may announce (2^24 − 1).
pub const MAX_FRAME_SIZE_LIMIT: u32 = 16_777_215;

/// The body window each direction of a request stream starts with (wire-protocol.md §8).
pub const INITIAL_WINDOW: u32 = 65_536;

/// The largest a body window may grow to (2^31 − 1); more is a flow-control error.
pub const MAX_WINDOW: u64 = (1 << 31) - 1;

/// A request body size limit meaning "no limit" (`max_request_body_size`, SET_LIMIT).
pub const UNLIMITED_BODY_SIZE: u64 = u64::MAX;
