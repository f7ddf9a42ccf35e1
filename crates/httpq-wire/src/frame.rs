//! Frames: the typed form of every frame in `docs/wire-protocol.md` §5 and their encoder.
//!
//! A frame on the wire is a 16-byte header (type, flags, reserved, payload length, stream)
//! followed by the payload. [`Frame`] has one variant per frame type; flags that carry meaning
//! for a type appear as fields of its payload struct (`end_stream`, `ack`, `is_response`), and
//! [`Frame::flags`] computes the header byte from them.

use std::fmt;
use std::net::SocketAddr;
use std::ops::BitOr;

use bytes::{BufMut, Bytes, BytesMut};
use http::{HeaderMap, Method, StatusCode};

use crate::control::{ControlError, ControlRequest, ControlResponse};
use crate::primitive::{
    MAX_HEADER_FIELDS, addr_len, bytes_len, headers_len, opt_bytes_len, put_addr, put_bytes,
    put_headers, put_opt_bytes,
};
use crate::{HEADER_LEN, MAGIC};

/// The type byte of a frame header (wire-protocol.md §5).
///
/// An open newtype: frame types this version does not know still have a value, so an
/// ignorable frame from a newer peer can be carried in [`Frame::Unknown`] and forwarded.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FrameType(pub u8);

impl FrameType {
    /// `HELLO` (0x01), app → listener, stream 0: opens the handshake.
    pub const HELLO: Self = Self(0x01);
    /// `HELLO_ACK` (0x02), listener → app, stream 0: completes the handshake.
    pub const HELLO_ACK: Self = Self(0x02);
    /// `GOAWAY` (0x03), both ways, stream 0: no new streams; the connection is closing.
    pub const GOAWAY: Self = Self(0x03);
    /// `PING` (0x04), both ways, stream 0: liveness probe, answered with the ACK flag.
    pub const PING: Self = Self(0x04);
    /// `CONTROL` (0x10), both ways, stream 0: a JSON control request or response.
    pub const CONTROL: Self = Self(0x10);
    /// `REQUEST_HEAD` (0x20), listener → app: opens a request stream.
    pub const REQUEST_HEAD: Self = Self(0x20);
    /// `REQUEST_BODY` (0x21), listener → app: request body bytes.
    pub const REQUEST_BODY: Self = Self(0x21);
    /// `REQUEST_TRAILERS` (0x22), listener → app: request trailers; ends the request.
    pub const REQUEST_TRAILERS: Self = Self(0x22);
    /// `RESPONSE_HEAD` (0x30), app → listener: status, headers, cache policy.
    pub const RESPONSE_HEAD: Self = Self(0x30);
    /// `RESPONSE_BODY` (0x31), app → listener: response body bytes.
    pub const RESPONSE_BODY: Self = Self(0x31);
    /// `RESPONSE_FILE` (0x32), app → listener: a file range to send from a passed descriptor.
    pub const RESPONSE_FILE: Self = Self(0x32);
    /// `RESPONSE_TRAILERS` (0x33), app → listener: response trailers; ends the response.
    pub const RESPONSE_TRAILERS: Self = Self(0x33);
    /// `RESET` (0x40), both ways: abort a stream with an error code.
    pub const RESET: Self = Self(0x40);
    /// `CANCEL` (0x41), listener → app: the stream is gone (client, timeout, shutdown).
    pub const CANCEL: Self = Self(0x41);
    /// `CREDIT` (0x42), both ways: request credits (stream 0) or a body window increment.
    pub const CREDIT: Self = Self(0x42);
    /// `SET_LIMIT` (0x43), app → listener: per-request `max_request_body_size`.
    pub const SET_LIMIT: Self = Self(0x43);
    /// `UPGRADED_DATA` (0x50), both ways: opaque bytes after a 101 response.
    pub const UPGRADED_DATA: Self = Self(0x50);
    /// `DELEGATE` (0x51), app → listener: hand the request to another named queue.
    pub const DELEGATE: Self = Self(0x51);

    /// Every frame type this version defines, in type-byte order.
    pub const ALL: [Self; 18] = [
        Self::HELLO,
        Self::HELLO_ACK,
        Self::GOAWAY,
        Self::PING,
        Self::CONTROL,
        Self::REQUEST_HEAD,
        Self::REQUEST_BODY,
        Self::REQUEST_TRAILERS,
        Self::RESPONSE_HEAD,
        Self::RESPONSE_BODY,
        Self::RESPONSE_FILE,
        Self::RESPONSE_TRAILERS,
        Self::RESET,
        Self::CANCEL,
        Self::CREDIT,
        Self::SET_LIMIT,
        Self::UPGRADED_DATA,
        Self::DELEGATE,
    ];

    /// The spec's name (`"REQUEST_HEAD"`), or `None` for a type this version does not define.
    #[must_use]
    pub fn name(self) -> Option<&'static str> {
        Some(match self {
            Self::HELLO => "HELLO",
            Self::HELLO_ACK => "HELLO_ACK",
            Self::GOAWAY => "GOAWAY",
            Self::PING => "PING",
            Self::CONTROL => "CONTROL",
            Self::REQUEST_HEAD => "REQUEST_HEAD",
            Self::REQUEST_BODY => "REQUEST_BODY",
            Self::REQUEST_TRAILERS => "REQUEST_TRAILERS",
            Self::RESPONSE_HEAD => "RESPONSE_HEAD",
            Self::RESPONSE_BODY => "RESPONSE_BODY",
            Self::RESPONSE_FILE => "RESPONSE_FILE",
            Self::RESPONSE_TRAILERS => "RESPONSE_TRAILERS",
            Self::RESET => "RESET",
            Self::CANCEL => "CANCEL",
            Self::CREDIT => "CREDIT",
            Self::SET_LIMIT => "SET_LIMIT",
            Self::UPGRADED_DATA => "UPGRADED_DATA",
            Self::DELEGATE => "DELEGATE",
            _ => return None,
        })
    }

    /// Whether this version defines the type.
    #[must_use]
    pub fn is_known(self) -> bool {
        self.name().is_some()
    }

    /// The flags a frame of this type may carry and the flags it must carry
    /// (wire-protocol.md §4, "Flags per frame type"); `None` for unknown types.
    pub(crate) fn flag_rules(self) -> Option<(Flags, Flags)> {
        let none = Flags::empty();
        Some(match self {
            Self::PING | Self::CONTROL => (Flags::ACK, none),
            Self::REQUEST_HEAD
            | Self::REQUEST_BODY
            | Self::RESPONSE_HEAD
            | Self::RESPONSE_BODY
            | Self::RESPONSE_FILE
            | Self::UPGRADED_DATA => (Flags::END_STREAM, none),
            Self::REQUEST_TRAILERS | Self::RESPONSE_TRAILERS => {
                (Flags::END_STREAM, Flags::END_STREAM)
            }
            Self::HELLO
            | Self::HELLO_ACK
            | Self::GOAWAY
            | Self::CREDIT
            | Self::RESET
            | Self::CANCEL
            | Self::SET_LIMIT
            | Self::DELEGATE => (none, none),
            _ => return None,
        })
    }

    /// Which stream ids a frame of this type may use; `None` for unknown types.
    pub(crate) fn stream_rule(self) -> Option<StreamRule> {
        Some(match self {
            Self::HELLO | Self::HELLO_ACK | Self::GOAWAY | Self::PING | Self::CONTROL => {
                StreamRule::Connection
            }
            Self::CREDIT => StreamRule::Any,
            Self::REQUEST_HEAD
            | Self::REQUEST_BODY
            | Self::REQUEST_TRAILERS
            | Self::RESPONSE_HEAD
            | Self::RESPONSE_BODY
            | Self::RESPONSE_FILE
            | Self::RESPONSE_TRAILERS
            | Self::RESET
            | Self::CANCEL
            | Self::SET_LIMIT
            | Self::UPGRADED_DATA
            | Self::DELEGATE => StreamRule::Request,
            _ => return None,
        })
    }
}

impl fmt::Display for FrameType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => f.write_str(name),
            None => write!(f, "frame type {:#04x}", self.0),
        }
    }
}

impl fmt::Debug for FrameType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => f.write_str(name),
            None => write!(f, "FrameType({:#04x})", self.0),
        }
    }
}

/// Which stream ids a frame type allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StreamRule {
    /// Only stream 0.
    Connection,
    /// Only a request stream (not 0).
    Request,
    /// Either (CREDIT).
    Any,
}

/// The flags byte of a frame header (wire-protocol.md §4).
///
/// Bits 2–6 are reserved and must be zero; a decoder rejects a frame that sets them.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Flags(pub u8);

impl Flags {
    /// Bit 0: the sender's half of the stream ends with this frame.
    pub const END_STREAM: Self = Self(0x01);
    /// Bit 1: this frame answers an earlier one (PING reply, CONTROL response).
    pub const ACK: Self = Self(0x02);
    /// Bit 7: a receiver that does not know the frame type skips the frame.
    pub const IGNORABLE: Self = Self(0x80);
    /// The reserved bits (2–6).
    pub const RESERVED: Self = Self(0x7c);

    /// No flag set.
    #[must_use]
    pub const fn empty() -> Self {
        Self(0)
    }

    /// Whether every bit of `other` is set in `self`.
    #[must_use]
    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    /// `END_STREAM` if `set`, else no flag.
    #[must_use]
    pub const fn end_stream_if(set: bool) -> Self {
        if set { Self::END_STREAM } else { Self(0) }
    }

    /// `ACK` if `set`, else no flag.
    #[must_use]
    pub const fn ack_if(set: bool) -> Self {
        if set { Self::ACK } else { Self(0) }
    }
}

impl BitOr for Flags {
    type Output = Self;
    fn bitor(self, rhs: Self) -> Self {
        Self(self.0 | rhs.0)
    }
}

impl fmt::Debug for Flags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut names = Vec::new();
        if self.contains(Self::END_STREAM) {
            names.push("END_STREAM");
        }
        if self.contains(Self::ACK) {
            names.push("ACK");
        }
        if self.contains(Self::IGNORABLE) {
            names.push("IGNORABLE");
        }
        let reserved = self.0 & Self::RESERVED.0;
        if reserved != 0 {
            return write!(f, "Flags({names:?} + reserved {reserved:#04x})");
        }
        write!(f, "Flags({})", names.join(" | "))
    }
}

/// A stream id: 0 is the connection, anything else is a request id chosen by the listener.
///
/// Request ids on one connection are strictly increasing and never reused
/// (wire-protocol.md §2).
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamId(pub u64);

impl StreamId {
    /// Stream 0: frames about the whole connection.
    pub const CONNECTION: Self = Self(0);

    /// Whether this is stream 0.
    #[must_use]
    pub const fn is_connection(self) -> bool {
        self.0 == 0
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Debug for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StreamId({})", self.0)
    }
}

/// An error code carried by GOAWAY and RESET (wire-protocol.md §9).
///
/// Codes below 0x100 are HTTP/2's (RFC 9113 §7), so a RESET maps 1:1 onto `RST_STREAM` and
/// HTTP/3 stream errors; 0x100–0x1ff are httpq's; an app may use any other value as an
/// application error code, which the listener passes to the client unchanged. An open
/// newtype, so codes from a newer peer survive a round trip.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ErrorCode(pub u32);

impl ErrorCode {
    /// Graceful: no error.
    pub const NO_ERROR: Self = Self(0);
    /// The peer broke a protocol rule (malformed frame, frame in the wrong state).
    pub const PROTOCOL_ERROR: Self = Self(1);
    /// The sender hit an internal error.
    pub const INTERNAL_ERROR: Self = Self(2);
    /// The peer sent more than its credit allowed.
    pub const FLOW_CONTROL_ERROR: Self = Self(3);
    /// A frame exceeded the maximum frame size.
    pub const FRAME_SIZE_ERROR: Self = Self(6);
    /// The stream was not processed at all; it is safe to deliver it elsewhere.
    pub const REFUSED_STREAM: Self = Self(7);
    /// The stream is no longer needed.
    pub const CANCEL: Self = Self(8);
    /// No protocol version both sides support (GOAWAY after HELLO).
    pub const VERSION_MISMATCH: Self = Self(0x100);
    /// The peer's credentials (SO_PEERCRED) do not allow what it asked for.
    pub const ACCESS_DENIED: Self = Self(0x101);
    /// The request body exceeded `max_request_body_size`; the listener answers 413 itself.
    pub const CONTENT_TOO_LARGE: Self = Self(0x102);
    /// The peer's user already holds as many connections (or queues, prefixes, ports) as the
    /// listener's per-user quota allows (GOAWAY before or instead of HELLO_ACK).
    pub const QUOTA_EXCEEDED: Self = Self(0x103);

    /// The spec's name of a code this version defines.
    #[must_use]
    pub fn name(self) -> Option<&'static str> {
        Some(match self {
            Self::NO_ERROR => "NO_ERROR",
            Self::PROTOCOL_ERROR => "PROTOCOL_ERROR",
            Self::INTERNAL_ERROR => "INTERNAL_ERROR",
            Self::FLOW_CONTROL_ERROR => "FLOW_CONTROL_ERROR",
            Self::FRAME_SIZE_ERROR => "FRAME_SIZE_ERROR",
            Self::REFUSED_STREAM => "REFUSED_STREAM",
            Self::CANCEL => "CANCEL",
            Self::VERSION_MISMATCH => "VERSION_MISMATCH",
            Self::ACCESS_DENIED => "ACCESS_DENIED",
            Self::CONTENT_TOO_LARGE => "CONTENT_TOO_LARGE",
            Self::QUOTA_EXCEEDED => "QUOTA_EXCEEDED",
            _ => return None,
        })
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => f.write_str(name),
            None => write!(f, "error code {:#x}", self.0),
        }
    }
}

impl fmt::Debug for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => f.write_str(name),
            None => write!(f, "ErrorCode({:#x})", self.0),
        }
    }
}

/// One frame, decoded or to encode. One variant per frame type of wire-protocol.md §5.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Frame {
    /// `HELLO` (0x01).
    Hello(Hello),
    /// `HELLO_ACK` (0x02).
    HelloAck(HelloAck),
    /// `GOAWAY` (0x03).
    Goaway(Goaway),
    /// `PING` (0x04).
    Ping(Ping),
    /// `CONTROL` (0x10).
    Control(ControlFrame),
    /// `REQUEST_HEAD` (0x20). Boxed: it is by far the largest payload.
    RequestHead(Box<RequestHead>),
    /// `REQUEST_BODY` (0x21).
    RequestBody(Data),
    /// `REQUEST_TRAILERS` (0x22).
    RequestTrailers(Trailers),
    /// `RESPONSE_HEAD` (0x30).
    ResponseHead(ResponseHead),
    /// `RESPONSE_BODY` (0x31).
    ResponseBody(Data),
    /// `RESPONSE_FILE` (0x32).
    ResponseFile(ResponseFile),
    /// `RESPONSE_TRAILERS` (0x33).
    ResponseTrailers(Trailers),
    /// `RESET` (0x40).
    Reset(Reset),
    /// `CANCEL` (0x41).
    Cancel(Cancel),
    /// `CREDIT` (0x42), on stream 0 or a request stream.
    Credit(Credit),
    /// `SET_LIMIT` (0x43).
    SetLimit(SetLimit),
    /// `UPGRADED_DATA` (0x50).
    UpgradedData(Data),
    /// `DELEGATE` (0x51).
    Delegate(Delegate),
    /// A frame of a type this version does not define, received with the `IGNORABLE` flag.
    /// A receiver skips it; a proxy may forward it unchanged. Encoding writes it back as is.
    Unknown {
        /// The type byte (not one [`FrameType::is_known`] accepts).
        ty: FrameType,
        /// The flags byte, `IGNORABLE` included.
        flags: Flags,
        /// The stream id, unchecked.
        stream: StreamId,
        /// The payload, uninterpreted.
        payload: Bytes,
    },
}

impl Frame {
    /// A `CONTROL` frame carrying `request` as JSON.
    #[must_use]
    pub fn control(op_id: u32, request: &ControlRequest) -> Self {
        Self::Control(ControlFrame {
            op_id,
            is_response: false,
            body: request.to_json(),
        })
    }

    /// A `CONTROL` frame (ACK set) answering the request `op_id` with `response`.
    #[must_use]
    pub fn control_response(op_id: u32, response: &ControlResponse) -> Self {
        Self::Control(ControlFrame {
            op_id,
            is_response: true,
            body: response.to_json(),
        })
    }

    /// The frame's type byte.
    #[must_use]
    pub fn frame_type(&self) -> FrameType {
        match self {
            Self::Hello(_) => FrameType::HELLO,
            Self::HelloAck(_) => FrameType::HELLO_ACK,
            Self::Goaway(_) => FrameType::GOAWAY,
            Self::Ping(_) => FrameType::PING,
            Self::Control(_) => FrameType::CONTROL,
            Self::RequestHead(_) => FrameType::REQUEST_HEAD,
            Self::RequestBody(_) => FrameType::REQUEST_BODY,
            Self::RequestTrailers(_) => FrameType::REQUEST_TRAILERS,
            Self::ResponseHead(_) => FrameType::RESPONSE_HEAD,
            Self::ResponseBody(_) => FrameType::RESPONSE_BODY,
            Self::ResponseFile(_) => FrameType::RESPONSE_FILE,
            Self::ResponseTrailers(_) => FrameType::RESPONSE_TRAILERS,
            Self::Reset(_) => FrameType::RESET,
            Self::Cancel(_) => FrameType::CANCEL,
            Self::Credit(_) => FrameType::CREDIT,
            Self::SetLimit(_) => FrameType::SET_LIMIT,
            Self::UpgradedData(_) => FrameType::UPGRADED_DATA,
            Self::Delegate(_) => FrameType::DELEGATE,
            Self::Unknown { ty, .. } => *ty,
        }
    }

    /// The stream id: [`StreamId::CONNECTION`] for connection-level frames.
    #[must_use]
    pub fn stream(&self) -> StreamId {
        match self {
            Self::Hello(_)
            | Self::HelloAck(_)
            | Self::Goaway(_)
            | Self::Ping(_)
            | Self::Control(_) => StreamId::CONNECTION,
            Self::RequestHead(f) => f.stream,
            Self::RequestBody(f) | Self::ResponseBody(f) | Self::UpgradedData(f) => f.stream,
            Self::RequestTrailers(f) | Self::ResponseTrailers(f) => f.stream,
            Self::ResponseHead(f) => f.stream,
            Self::ResponseFile(f) => f.stream,
            Self::Reset(f) => f.stream,
            Self::Cancel(f) => f.stream,
            Self::Credit(f) => f.stream,
            Self::SetLimit(f) => f.stream,
            Self::Delegate(f) => f.stream,
            Self::Unknown { stream, .. } => *stream,
        }
    }

    /// The flags byte the frame is encoded with.
    #[must_use]
    pub fn flags(&self) -> Flags {
        match self {
            Self::Ping(f) => Flags::ack_if(f.ack),
            Self::Control(f) => Flags::ack_if(f.is_response),
            Self::RequestHead(f) => Flags::end_stream_if(f.body == RequestBodyKind::Empty),
            Self::RequestBody(f) | Self::ResponseBody(f) | Self::UpgradedData(f) => {
                Flags::end_stream_if(f.end_stream)
            }
            Self::RequestTrailers(_) | Self::ResponseTrailers(_) => Flags::END_STREAM,
            Self::ResponseHead(f) => Flags::end_stream_if(f.end_stream),
            Self::ResponseFile(f) => Flags::end_stream_if(f.end_stream),
            Self::Unknown { flags, .. } => *flags,
            Self::Hello(_)
            | Self::HelloAck(_)
            | Self::Goaway(_)
            | Self::Reset(_)
            | Self::Cancel(_)
            | Self::Credit(_)
            | Self::SetLimit(_)
            | Self::Delegate(_) => Flags::empty(),
        }
    }

    /// Whether the `END_STREAM` flag is set: the sender's half of the stream ends here.
    #[must_use]
    pub fn is_end_stream(&self) -> bool {
        self.flags().contains(Flags::END_STREAM)
    }

    /// The exact number of bytes [`Frame::encode`] appends: header plus payload.
    #[must_use]
    pub fn encoded_len(&self) -> usize {
        HEADER_LEN + self.payload_len()
    }

    /// Appends the encoded frame to `dst`.
    ///
    /// Does not check the peer's maximum frame size; use [`Frame::try_encode`] when the
    /// frame's size is not already known to fit, and [`split_data`] for bodies.
    ///
    /// # Panics
    ///
    /// If a field does not fit its length prefix or a list its cap: more than
    /// [`MAX_HEADER_FIELDS`](crate::MAX_HEADER_FIELDS) header fields, more than 65,535
    /// certificates or timings, a header name longer than 65,535 bytes, or a payload over
    /// 4 GiB. Encode frames built from peer or handler data with [`Frame::try_encode`] or check
    /// them with [`Frame::check_fits`] first.
    #[track_caller]
    pub fn encode(&self, dst: &mut BytesMut) {
        if let Err(err) = self.try_encode(dst, u32::MAX) {
            panic!("httpq-wire: cannot encode {}: {err}", self.frame_type());
        }
    }

    /// Whether [`Frame::try_encode`] would succeed with `max_frame_size`, without encoding:
    /// for a sender that must not hand its writer a frame the peer would refuse (an app's
    /// response head, built from whatever its handler returned).
    ///
    /// # Errors
    ///
    /// As [`Frame::try_encode`].
    pub fn check_fits(&self, max_frame_size: u32) -> Result<(), EncodeError> {
        let length = self.payload_len();
        // In a payload of at most 65,535 bytes no count or length can pass its prefix, nor a
        // header list MAX_HEADER_FIELDS (each field takes 6 bytes or more): the usual head
        // is measured once.
        if length > usize::from(u16::MAX) {
            self.check_widths()?;
        }
        if length > max_frame_size as usize {
            return Err(EncodeError::FrameTooLarge {
                length,
                max: max_frame_size,
            });
        }
        Ok(())
    }

    /// Appends the encoded frame to `dst` if it is encodable and its payload is at most
    /// `max_frame_size` bytes; otherwise leaves `dst` untouched.
    ///
    /// # Errors
    ///
    /// [`EncodeError::FrameTooLarge`] if the payload exceeds `max_frame_size`,
    /// [`EncodeError::FieldTooLong`] if a field does not fit its length prefix.
    pub fn try_encode(&self, dst: &mut BytesMut, max_frame_size: u32) -> Result<(), EncodeError> {
        self.check_widths()?;
        put_frame(
            dst,
            max_frame_size,
            (self.frame_type(), self.flags(), self.stream()),
            self.payload_len(),
            |dst| self.put_payload(dst),
        )
    }

    fn payload_len(&self) -> usize {
        match self {
            Self::Hello(_) => MAGIC.len() + 2 + 2 + 1 + 4 + 8,
            Self::HelloAck(f) => 2 + 4 + 8 + bytes_len(f.server.as_bytes()),
            Self::Goaway(f) => 8 + 4 + bytes_len(f.reason.as_bytes()),
            Self::Ping(_) => 8,
            Self::Control(f) => 4 + bytes_len(&f.body),
            Self::RequestHead(f) => f.payload_len(),
            Self::RequestBody(f) | Self::ResponseBody(f) | Self::UpgradedData(f) => f.data.len(),
            Self::RequestTrailers(f) | Self::ResponseTrailers(f) => headers_len(&f.headers),
            Self::ResponseHead(f) => {
                2 + headers_len(&f.headers)
                    + 1
                    + f.cache.map_or(0, |_| 4 + 4)
                    + 1
                    + f.body_length.map_or(0, |_| 8)
            }
            Self::ResponseFile(_) => 2 + 8 + 8,
            Self::Reset(f) => 4 + bytes_len(f.reason.as_bytes()),
            Self::Cancel(_) => 1,
            Self::Credit(_) => 4,
            Self::SetLimit(_) => 8,
            Self::Delegate(f) => {
                bytes_len(f.queue_name.as_bytes())
                    + opt_bytes_len(f.url.as_deref().map(str::as_bytes))
            }
            Self::Unknown { payload, .. } => payload.len(),
        }
    }

    fn put_payload(&self, dst: &mut BytesMut) {
        match self {
            Self::Hello(f) => {
                dst.put_slice(MAGIC);
                dst.put_u16_le(f.min_version);
                dst.put_u16_le(f.max_version);
                dst.put_u8(f.role.to_wire());
                dst.put_u32_le(f.max_frame_size);
                dst.put_u64_le(f.features);
            }
            Self::HelloAck(f) => {
                dst.put_u16_le(f.version);
                dst.put_u32_le(f.max_frame_size);
                dst.put_u64_le(f.features);
                put_bytes(dst, f.server.as_bytes());
            }
            Self::Goaway(f) => {
                dst.put_u64_le(f.last_stream.0);
                dst.put_u32_le(f.code.0);
                put_bytes(dst, f.reason.as_bytes());
            }
            Self::Ping(f) => dst.put_u64_le(f.payload),
            Self::Control(f) => {
                dst.put_u32_le(f.op_id);
                put_bytes(dst, &f.body);
            }
            Self::RequestHead(f) => f.put_payload(dst),
            Self::RequestBody(f) | Self::ResponseBody(f) | Self::UpgradedData(f) => {
                dst.put_slice(&f.data);
            }
            Self::RequestTrailers(f) | Self::ResponseTrailers(f) => put_headers(dst, &f.headers),
            Self::ResponseHead(f) => {
                dst.put_u16_le(f.status.as_u16());
                put_headers(dst, &f.headers);
                match f.cache {
                    None => dst.put_u8(0),
                    Some(cache) => {
                        dst.put_u8(1);
                        dst.put_u32_le(cache.ttl_secs);
                        dst.put_u32_le(cache.flags.0);
                    }
                }
                match f.body_length {
                    None => dst.put_u8(0),
                    Some(len) => {
                        dst.put_u8(1);
                        dst.put_u64_le(len);
                    }
                }
            }
            Self::ResponseFile(f) => {
                dst.put_u16_le(f.fd_index);
                dst.put_u64_le(f.offset);
                dst.put_u64_le(f.length);
            }
            Self::Reset(f) => {
                dst.put_u32_le(f.code.0);
                put_bytes(dst, f.reason.as_bytes());
            }
            Self::Cancel(f) => dst.put_u8(f.reason.to_wire()),
            Self::Credit(f) => dst.put_u32_le(f.increment),
            Self::SetLimit(f) => dst.put_u64_le(f.max_request_body_size),
            Self::Delegate(f) => {
                put_bytes(dst, f.queue_name.as_bytes());
                put_opt_bytes(dst, f.url.as_deref().map(str::as_bytes));
            }
            Self::Unknown { payload, .. } => dst.put_slice(payload),
        }
    }

    /// Checks that every length and count fits its wire prefix.
    fn check_widths(&self) -> Result<(), EncodeError> {
        match self {
            Self::HelloAck(f) => check_bytes("hello_ack.server", f.server.len()),
            Self::Goaway(f) => check_bytes("goaway.reason", f.reason.len()),
            Self::Control(f) => check_bytes("control.body", f.body.len()),
            Self::RequestHead(f) => f.check_widths(),
            Self::RequestBody(f) | Self::ResponseBody(f) | Self::UpgradedData(f) => {
                check_bytes("data", f.data.len())
            }
            Self::RequestTrailers(f) | Self::ResponseTrailers(f) => {
                check_headers("trailers.headers", &f.headers)
            }
            Self::ResponseHead(f) => check_headers("response_head.headers", &f.headers),
            Self::Reset(f) => check_bytes("reset.reason", f.reason.len()),
            Self::Delegate(f) => {
                check_bytes("delegate.queue_name", f.queue_name.len())?;
                check_bytes("delegate.url", f.url.as_ref().map_or(0, String::len))
            }
            Self::Unknown { payload, .. } => check_bytes("payload", payload.len()),
            Self::Hello(_)
            | Self::Ping(_)
            | Self::ResponseFile(_)
            | Self::Cancel(_)
            | Self::Credit(_)
            | Self::SetLimit(_) => Ok(()),
        }
    }
}

/// Splits a body into data frames of at most `max_frame_size` bytes each, without copying.
///
/// The last piece carries `end_stream`. Empty `data` gives one empty frame if `end_stream`
/// is set (a bare END_STREAM) and nothing otherwise. Wrap each piece in the frame variant
/// for its direction ([`Frame::RequestBody`], [`Frame::ResponseBody`], [`Frame::UpgradedData`]).
/// Flow control still applies: send only as many bytes as the peer's credit allows.
#[must_use]
pub fn split_data(
    stream: StreamId,
    data: Bytes,
    end_stream: bool,
    max_frame_size: u32,
) -> SplitData {
    SplitData {
        stream,
        rest: data,
        end_stream,
        max: (max_frame_size as usize).max(1),
        done: false,
    }
}

/// The iterator [`split_data`] returns.
#[derive(Debug, Clone)]
pub struct SplitData {
    stream: StreamId,
    rest: Bytes,
    end_stream: bool,
    max: usize,
    done: bool,
}

impl Iterator for SplitData {
    type Item = Data;

    fn next(&mut self) -> Option<Data> {
        if self.done {
            return None;
        }
        if self.rest.is_empty() && !self.end_stream {
            self.done = true;
            return None;
        }
        let take = self.rest.len().min(self.max);
        let data = self.rest.split_to(take);
        let last = self.rest.is_empty();
        self.done = last;
        Some(Data {
            stream: self.stream,
            data,
            end_stream: last && self.end_stream,
        })
    }
}

/// Why [`Frame::try_encode`] refused a frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// The payload is larger than the maximum frame size given.
    #[error("frame payload of {length} bytes exceeds the maximum frame size {max}")]
    FrameTooLarge {
        /// Payload bytes the frame would have.
        length: usize,
        /// The limit.
        max: u32,
    },
    /// A field's length or element count does not fit its prefix.
    #[error("{field}: {len} does not fit the wire limit {max}")]
    FieldTooLong {
        /// Which field (`"request_head.headers"`).
        field: &'static str,
        /// Its length or count.
        len: usize,
        /// The largest value its prefix can carry.
        max: usize,
    },
}

/// `HELLO` (0x01), app → listener on stream 0: the first frame of every connection.
///
/// The app's identity is not in the frame: the listener takes it from `SO_PEERCRED`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hello {
    /// Lowest protocol version the app speaks (≥ 1).
    pub min_version: u16,
    /// Highest protocol version the app speaks (≥ `min_version`).
    pub max_version: u16,
    /// What the connection is for.
    pub role: Role,
    /// Largest frame payload the app accepts (65,536 ..= 16,777,215).
    pub max_frame_size: u32,
    /// Optional features the app supports (bitmask; none are defined in version 1).
    pub features: u64,
}

impl Hello {
    /// A HELLO for this implementation: versions 1..=[`PROTOCOL_VERSION`](crate::PROTOCOL_VERSION),
    /// the default maximum frame size and no features.
    #[must_use]
    pub fn new(role: Role) -> Self {
        Self {
            min_version: crate::PROTOCOL_VERSION,
            max_version: crate::PROTOCOL_VERSION,
            role,
            max_frame_size: crate::DEFAULT_MAX_FRAME_SIZE,
            features: 0,
        }
    }

    /// The version the listener answers with: the highest version in both
    /// `self.min_version..=self.max_version` and `min..=max`, or `None` (then the listener
    /// sends GOAWAY with [`ErrorCode::VERSION_MISMATCH`] and closes).
    #[must_use]
    pub fn negotiate(&self, min: u16, max: u16) -> Option<u16> {
        let high = self.max_version.min(max);
        let low = self.min_version.max(min);
        (low <= high).then_some(high)
    }
}

/// The role a connection asks for in [`Hello`].
///
/// A claim about purpose, never about privilege: admin commands still need the peer's
/// `SO_PEERCRED` uid to be root or in the admin group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Role {
    /// An app process receiving requests (1).
    App,
    /// An administration client such as `httpq` the CLI (2).
    Admin,
}

impl Role {
    pub(crate) fn to_wire(self) -> u8 {
        match self {
            Self::App => 1,
            Self::Admin => 2,
        }
    }

    pub(crate) fn from_wire(value: u8) -> Option<Self> {
        match value {
            1 => Some(Self::App),
            2 => Some(Self::Admin),
            _ => None,
        }
    }
}

/// `HELLO_ACK` (0x02), listener → app on stream 0: the handshake succeeded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HelloAck {
    /// The negotiated version, the highest both sides speak.
    pub version: u16,
    /// Largest frame payload the listener accepts (65,536 ..= 16,777,215).
    pub max_frame_size: u32,
    /// The features both sides support: the intersection of HELLO's and the listener's.
    pub features: u64,
    /// The listener's name and version, for logs (`"httpqd/0.1.0"`).
    pub server: String,
}

/// `GOAWAY` (0x03), either direction on stream 0: the sender starts no new streams.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Goaway {
    /// From the listener: the last stream it opened. From the app: the last stream it has
    /// started processing; the listener may redeliver later ones to another receiver.
    pub last_stream: StreamId,
    /// Why.
    pub code: ErrorCode,
    /// Human-readable detail for logs; may be empty.
    pub reason: String,
}

/// `PING` (0x04), either direction on stream 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ping {
    /// Opaque; the answer echoes it.
    pub payload: u64,
    /// The ACK flag: this is the answer to a PING with the same payload.
    pub ack: bool,
}

/// `CONTROL` (0x10), either direction on stream 0: a JSON control message.
///
/// Requests go app → listener; the listener answers each with a CONTROL frame carrying
/// the same `op_id` and the ACK flag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlFrame {
    /// Correlates a response with its request; chosen by the requester.
    pub op_id: u32,
    /// The ACK flag: `body` is a response, not a request.
    pub is_response: bool,
    /// A UTF-8 JSON object (wire-protocol.md §7). Not parsed by the decoder.
    pub body: Bytes,
}

impl ControlFrame {
    /// Parses the body as a [`ControlRequest`].
    ///
    /// # Errors
    ///
    /// [`ControlError::NotARequest`] if the frame is a response,
    /// [`ControlError::InvalidJson`] if the body is not a control request.
    pub fn request(&self) -> Result<ControlRequest, ControlError> {
        if self.is_response {
            return Err(ControlError::NotARequest);
        }
        ControlRequest::from_json(&self.body)
    }

    /// Parses the body as a [`ControlResponse`].
    ///
    /// # Errors
    ///
    /// [`ControlError::NotAResponse`] if the frame is a request,
    /// [`ControlError::InvalidJson`] if the body is not a control response.
    pub fn response(&self) -> Result<ControlResponse, ControlError> {
        if !self.is_response {
            return Err(ControlError::NotAResponse);
        }
        ControlResponse::from_json(&self.body)
    }
}

/// `CREDIT` (0x42).
///
/// On stream 0 (app → listener only): the app accepts `increment` more REQUEST_HEADs. On a
/// request stream: the sender accepts `increment` more body bytes on that stream (request
/// body or upgraded data from the app; response body or upgraded data from the listener).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Credit {
    /// Stream 0 for request credits, else the request stream.
    pub stream: StreamId,
    /// Requests (stream 0) or bytes; never 0.
    pub increment: u32,
}

impl Credit {
    /// Request credits on stream 0: the app will take `requests` more requests.
    #[must_use]
    pub fn requests(requests: u32) -> Self {
        Self {
            stream: StreamId::CONNECTION,
            increment: requests,
        }
    }

    /// A body window increment of `bytes` on `stream`.
    #[must_use]
    pub fn bytes(stream: StreamId, bytes: u32) -> Self {
        Self {
            stream,
            increment: bytes,
        }
    }
}

/// `REQUEST_HEAD` (0x20), listener → app: a new request; opens the stream.
///
/// The frame's END_STREAM flag is derived from [`RequestHead::body`]: set exactly when the
/// request has no body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHead {
    /// The request id.
    pub stream: StreamId,
    /// The queue the request was delivered from (the id CreateQueue returned).
    pub queue: u64,
    /// Which registered prefix matched (the id AddUrl returned).
    pub url_context: u64,
    /// The method.
    pub method: Method,
    /// The request target exactly as the client sent it.
    pub raw_target: Bytes,
    /// The canonicalised path the router matched.
    pub path: String,
    /// The query without `?`, if the target had one.
    pub query: Option<String>,
    /// The HTTP version the client used.
    pub version: HttpVersion,
    /// Request headers: a name's values in the order received (fields of different names
    /// may be regrouped, which HTTP gives no meaning to).
    pub headers: HeaderMap,
    /// The client connection's id (stable across requests on one connection).
    pub connection_id: u64,
    /// The listener's id for the request: the app's `RequestId`, and `s-streamid` in the
    /// listener's logs, so the two can be joined (the stream id is per app connection).
    pub request_id: u64,
    /// The listener's address the client connected to.
    pub local: SocketAddr,
    /// The client's address.
    pub remote: SocketAddr,
    /// TLS details, when the connection is TLS.
    pub tls: Option<TlsInfo>,
    /// The authenticated client, when the listener authenticated one.
    pub identity: Option<Identity>,
    /// Request timestamps (HttpSysRequestTimingType equivalents), the ones recorded.
    pub timings: Vec<Timing>,
    /// Whether and how a body follows.
    pub body: RequestBodyKind,
    /// The body size limit in force (u64::MAX = unlimited; see [`SetLimit`]).
    pub max_request_body_size: u64,
    /// Request flags.
    pub flags: RequestFlags,
}

impl RequestHead {
    /// The head borrowed, as [`RequestHeadRef`] (which encodes it).
    #[must_use]
    pub fn as_ref(&self) -> RequestHeadRef<'_> {
        RequestHeadRef {
            stream: self.stream,
            queue: self.queue,
            url_context: self.url_context,
            method: &self.method,
            raw_target: &self.raw_target,
            path: &self.path,
            query: self.query.as_deref(),
            version: self.version,
            headers: &self.headers,
            connection_id: self.connection_id,
            request_id: self.request_id,
            local: self.local,
            remote: self.remote,
            tls: self.tls.as_ref(),
            identity: self.identity.as_ref(),
            timings: &self.timings,
            body: self.body,
            max_request_body_size: self.max_request_body_size,
            flags: self.flags,
        }
    }

    fn payload_len(&self) -> usize {
        self.as_ref().payload_len()
    }

    fn put_payload(&self, dst: &mut BytesMut) {
        self.as_ref().put_payload(dst);
    }

    fn check_widths(&self) -> Result<(), EncodeError> {
        self.as_ref().check_widths()
    }
}

/// A `REQUEST_HEAD` borrowed from where its parts live: the listener encodes the request it
/// parsed with it, without building a [`RequestHead`] (and cloning its header map) first.
/// The same fields, encoded the same way.
#[derive(Debug, Clone, Copy)]
#[allow(missing_docs)] // The fields are [`RequestHead`]'s.
pub struct RequestHeadRef<'a> {
    pub stream: StreamId,
    pub queue: u64,
    pub url_context: u64,
    pub method: &'a Method,
    pub raw_target: &'a [u8],
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub version: HttpVersion,
    pub headers: &'a HeaderMap,
    pub connection_id: u64,
    pub request_id: u64,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub tls: Option<&'a TlsInfo>,
    pub identity: Option<&'a Identity>,
    pub timings: &'a [Timing],
    pub body: RequestBodyKind,
    pub max_request_body_size: u64,
    pub flags: RequestFlags,
}

impl RequestHeadRef<'_> {
    /// Appends the frame, as [`Frame::try_encode`] does for [`Frame::RequestHead`].
    ///
    /// # Errors
    /// As [`Frame::try_encode`]: a field too wide for its length prefix, or a frame larger
    /// than `max_frame_size`; nothing is written then.
    pub fn try_encode(&self, dst: &mut BytesMut, max_frame_size: u32) -> Result<(), EncodeError> {
        self.check_widths()?;
        put_frame(
            dst,
            max_frame_size,
            (
                FrameType::REQUEST_HEAD,
                Flags::end_stream_if(self.body == RequestBodyKind::Empty),
                self.stream,
            ),
            self.payload_len(),
            |dst| self.put_payload(dst),
        )
    }
    fn payload_len(&self) -> usize {
        let tls = self.tls.map_or(0, |tls| {
            2 + 2
                + opt_bytes_len(tls.sni.as_deref().map(str::as_bytes))
                + opt_bytes_len(tls.alpn.as_deref())
                + 2
                + tls
                    .client_cert_chain
                    .iter()
                    .map(|c| bytes_len(c))
                    .sum::<usize>()
        });
        let identity = self.identity.map_or(0, |id| {
            1 + bytes_len(id.user.as_bytes()) + opt_bytes_len(id.token.as_deref())
        });
        8 + 8
            + bytes_len(self.method.as_str().as_bytes())
            + bytes_len(self.raw_target)
            + bytes_len(self.path.as_bytes())
            + opt_bytes_len(self.query.map(str::as_bytes))
            + 1
            + headers_len(self.headers)
            + 8
            + 8
            + addr_len(&self.local)
            + addr_len(&self.remote)
            + 1
            + tls
            + 1
            + identity
            + 2
            + self.timings.len() * (1 + 8)
            + 1
            + 8
            + 8
            + 4
    }

    fn put_payload(&self, dst: &mut BytesMut) {
        dst.put_u64_le(self.queue);
        dst.put_u64_le(self.url_context);
        put_bytes(dst, self.method.as_str().as_bytes());
        put_bytes(dst, self.raw_target);
        put_bytes(dst, self.path.as_bytes());
        put_opt_bytes(dst, self.query.map(str::as_bytes));
        dst.put_u8(self.version.to_wire());
        put_headers(dst, self.headers);
        dst.put_u64_le(self.connection_id);
        dst.put_u64_le(self.request_id);
        put_addr(dst, &self.local);
        put_addr(dst, &self.remote);
        match self.tls {
            None => dst.put_u8(0),
            Some(tls) => {
                dst.put_u8(1);
                dst.put_u16_le(tls.protocol);
                dst.put_u16_le(tls.cipher);
                put_opt_bytes(dst, tls.sni.as_deref().map(str::as_bytes));
                put_opt_bytes(dst, tls.alpn.as_deref());
                dst.put_u16_le(tls.client_cert_chain.len() as u16);
                for cert in &tls.client_cert_chain {
                    put_bytes(dst, cert);
                }
            }
        }
        match self.identity {
            None => dst.put_u8(0),
            Some(id) => {
                dst.put_u8(1);
                dst.put_u8(id.scheme.to_wire());
                put_bytes(dst, id.user.as_bytes());
                put_opt_bytes(dst, id.token.as_deref());
            }
        }
        dst.put_u16_le(self.timings.len() as u16);
        for timing in self.timings {
            dst.put_u8(timing.kind.0);
            dst.put_u64_le(timing.nanos);
        }
        let (kind, declared) = self.body.to_wire();
        dst.put_u8(kind);
        dst.put_u64_le(declared);
        dst.put_u64_le(self.max_request_body_size);
        dst.put_u32_le(self.flags.0);
    }

    fn check_widths(&self) -> Result<(), EncodeError> {
        check_bytes("request_head.raw_target", self.raw_target.len())?;
        check_bytes("request_head.path", self.path.len())?;
        check_bytes("request_head.query", self.query.map_or(0, str::len))?;
        check_headers("request_head.headers", self.headers)?;
        if let Some(tls) = self.tls {
            check_bytes(
                "request_head.tls.sni",
                tls.sni.as_ref().map_or(0, String::len),
            )?;
            check_bytes(
                "request_head.tls.alpn",
                tls.alpn.as_ref().map_or(0, Bytes::len),
            )?;
            check_count(
                "request_head.tls.client_cert_chain",
                tls.client_cert_chain.len(),
            )?;
            for cert in &tls.client_cert_chain {
                check_bytes("request_head.tls.client_cert_chain", cert.len())?;
            }
        }
        if let Some(id) = self.identity {
            check_bytes("request_head.identity.user", id.user.len())?;
            check_bytes(
                "request_head.identity.token",
                id.token.as_ref().map_or(0, Bytes::len),
            )?;
        }
        check_count("request_head.timings", self.timings.len())
    }
}

/// The HTTP version of a request, as the wire encodes it (10, 11, 20, 30).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HttpVersion {
    /// HTTP/1.0 (10).
    Http10,
    /// HTTP/1.1 (11).
    Http11,
    /// HTTP/2 (20).
    Http2,
    /// HTTP/3 (30).
    Http3,
}

impl HttpVersion {
    pub(crate) fn to_wire(self) -> u8 {
        match self {
            Self::Http10 => 10,
            Self::Http11 => 11,
            Self::Http2 => 20,
            Self::Http3 => 30,
        }
    }

    pub(crate) fn from_wire(value: u8) -> Option<Self> {
        match value {
            10 => Some(Self::Http10),
            11 => Some(Self::Http11),
            20 => Some(Self::Http2),
            30 => Some(Self::Http3),
            _ => None,
        }
    }
}

impl From<HttpVersion> for http::Version {
    fn from(version: HttpVersion) -> Self {
        match version {
            HttpVersion::Http10 => Self::HTTP_10,
            HttpVersion::Http11 => Self::HTTP_11,
            HttpVersion::Http2 => Self::HTTP_2,
            HttpVersion::Http3 => Self::HTTP_3,
        }
    }
}

/// TLS details of the client connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsInfo {
    /// The TLS protocol version as on the TLS wire (0x0303 = TLS 1.2, 0x0304 = TLS 1.3).
    pub protocol: u16,
    /// The IANA cipher-suite number (0x1301 = TLS_AES_128_GCM_SHA256).
    pub cipher: u16,
    /// The server name the client sent (SNI), if any.
    pub sni: Option<String>,
    /// The negotiated ALPN protocol id (`b"h2"`), if any.
    pub alpn: Option<Bytes>,
    /// The client's certificate chain, DER, leaf first; empty if none was presented.
    pub client_cert_chain: Vec<Bytes>,
}

/// The client identity the listener authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// How the client authenticated.
    pub scheme: AuthScheme,
    /// The user name (`user@REALM` for Kerberos).
    pub user: String,
    /// Scheme-specific token (for example a delegated credential), if any.
    pub token: Option<Bytes>,
}

/// An authentication scheme, numbered as the wire encodes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AuthScheme {
    /// Basic (1).
    Basic,
    /// Negotiate, SPNEGO (2).
    Negotiate,
    /// NTLM (3).
    Ntlm,
    /// Kerberos (4).
    Kerberos,
}

impl AuthScheme {
    pub(crate) fn to_wire(self) -> u8 {
        match self {
            Self::Basic => 1,
            Self::Negotiate => 2,
            Self::Ntlm => 3,
            Self::Kerberos => 4,
        }
    }

    pub(crate) fn from_wire(value: u8) -> Option<Self> {
        match value {
            1 => Some(Self::Basic),
            2 => Some(Self::Negotiate),
            3 => Some(Self::Ntlm),
            4 => Some(Self::Kerberos),
            _ => None,
        }
    }
}

/// One request timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// What happened.
    pub kind: TimingKind,
    /// When: `CLOCK_MONOTONIC` in nanoseconds on the listener's host, which is the app's
    /// host too, so the app can compare it with its own monotonic clock.
    pub nanos: u64,
}

/// Which moment a [`Timing`] records, numbered as HTTP.sys's `HttpSysRequestTimingType`.
///
/// An open newtype: kinds from a newer listener survive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TimingKind(pub u8);

#[allow(missing_docs)] // The names are HTTP.sys's HttpSysRequestTimingType members.
impl TimingKind {
    pub const CONNECTION_START: Self = Self(0);
    pub const DATA_START: Self = Self(1);
    pub const TLS_CERTIFICATE_LOAD_START: Self = Self(2);
    pub const TLS_CERTIFICATE_LOAD_END: Self = Self(3);
    pub const TLS_HANDSHAKE_LEG1_START: Self = Self(4);
    pub const TLS_HANDSHAKE_LEG1_END: Self = Self(5);
    pub const TLS_HANDSHAKE_LEG2_START: Self = Self(6);
    pub const TLS_HANDSHAKE_LEG2_END: Self = Self(7);
    pub const TLS_ATTRIBUTES_QUERY_START: Self = Self(8);
    pub const TLS_ATTRIBUTES_QUERY_END: Self = Self(9);
    pub const TLS_CLIENT_CERT_QUERY_START: Self = Self(10);
    pub const TLS_CLIENT_CERT_QUERY_END: Self = Self(11);
    pub const HTTP2_STREAM_START: Self = Self(12);
    pub const HTTP2_HEADER_DECODE_START: Self = Self(13);
    pub const HTTP2_HEADER_DECODE_END: Self = Self(14);
    /// The recommended start of a request's own timeline.
    pub const REQUEST_HEADER_PARSE_START: Self = Self(15);
    pub const REQUEST_HEADER_PARSE_END: Self = Self(16);
    pub const REQUEST_ROUTING_START: Self = Self(17);
    pub const REQUEST_ROUTING_END: Self = Self(18);
    pub const REQUEST_QUEUED_FOR_INSPECTION: Self = Self(19);
    pub const REQUEST_DELIVERED_FOR_INSPECTION: Self = Self(20);
    pub const REQUEST_RETURNED_AFTER_INSPECTION: Self = Self(21);
    pub const REQUEST_QUEUED_FOR_DELEGATION: Self = Self(22);
    pub const REQUEST_DELIVERED_FOR_DELEGATION: Self = Self(23);
    pub const REQUEST_RETURNED_AFTER_DELEGATION: Self = Self(24);
    pub const REQUEST_QUEUED_FOR_IO: Self = Self(25);
    pub const REQUEST_DELIVERED_FOR_IO: Self = Self(26);
    pub const HTTP3_STREAM_START: Self = Self(27);
    pub const HTTP3_HEADER_DECODE_START: Self = Self(28);
    pub const HTTP3_HEADER_DECODE_END: Self = Self(29);
}

/// Whether a request has a body and whether its length is declared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RequestBodyKind {
    /// No body (0); REQUEST_HEAD carries END_STREAM.
    Empty,
    /// A body of exactly this many bytes (1), from `Content-Length`.
    Length(u64),
    /// A body of undeclared length (2): HTTP/1.1 chunked, or HTTP/2/3 without
    /// `content-length`. It ends with the END_STREAM flag.
    Chunked,
}

impl RequestBodyKind {
    pub(crate) fn to_wire(self) -> (u8, u64) {
        match self {
            Self::Empty => (0, 0),
            Self::Length(len) => (1, len),
            Self::Chunked => (2, 0),
        }
    }
}

/// Request flags (a u32 on the wire). Bits 4–31 are reserved and must be zero.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct RequestFlags(pub u32);

impl RequestFlags {
    /// Bit 0: the client sent `Expect: 100-continue`; the listener sends `100 Continue` when
    /// the app first grants body credit.
    pub const EXPECT_CONTINUE: Self = Self(1);
    /// Bit 1: the client asked for a protocol upgrade (HTTP/1.1 `Upgrade`, or an extended
    /// CONNECT on HTTP/2 or HTTP/3); a 101 response accepts it.
    pub const UPGRADE: Self = Self(2);
    /// Bit 2: the request arrived over HTTP/2 (set exactly when `version` is 20).
    pub const HTTP2: Self = Self(4);
    /// Bit 3: the request arrived over HTTP/3 (set exactly when `version` is 30).
    pub const HTTP3: Self = Self(8);
    /// Every bit this version defines.
    pub const KNOWN: Self = Self(0xf);

    /// No flag.
    #[must_use]
    pub const fn empty() -> Self {
        Self(0)
    }

    /// Whether every bit of `other` is set.
    #[must_use]
    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }
}

impl BitOr for RequestFlags {
    type Output = Self;
    fn bitor(self, rhs: Self) -> Self {
        Self(self.0 | rhs.0)
    }
}

/// A request body frame, a response body frame or upgraded-stream data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Data {
    /// The request stream.
    pub stream: StreamId,
    /// The bytes: the whole payload.
    pub data: Bytes,
    /// END_STREAM: the last frame of this body (for upgraded data: a half-close).
    pub end_stream: bool,
}

/// `REQUEST_TRAILERS` (0x22) or `RESPONSE_TRAILERS` (0x33). Always END_STREAM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trailers {
    /// The request stream.
    pub stream: StreamId,
    /// The trailer fields.
    pub headers: HeaderMap,
}

/// `RESPONSE_HEAD` (0x30), app → listener.
///
/// A 1xx status other than 101 is an informational response; a final response follows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseHead {
    /// The request stream.
    pub stream: StreamId,
    /// The status.
    pub status: StatusCode,
    /// Response headers.
    pub headers: HeaderMap,
    /// Whether and how the listener may cache the response.
    pub cache: Option<CachePolicy>,
    /// The body's total length if known (the listener then frames with `Content-Length`).
    /// May be set with `end_stream` (a response to HEAD).
    pub body_length: Option<u64>,
    /// END_STREAM: no body frames follow.
    pub end_stream: bool,
}

/// How the listener may cache a response (HTTP.sys `HTTP_CACHE_POLICY`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CachePolicy {
    /// Seconds the entry stays fresh (`HttpCachePolicyTimeToLive`); 0 means do not cache,
    /// unless [`CacheFlags::USER_INVALIDATES`] is set.
    pub ttl_secs: u32,
    /// Cache flags.
    pub flags: CacheFlags,
}

/// Cache policy flags (a u32 on the wire). Bits 3–31 are reserved and must be zero.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct CacheFlags(pub u32);

impl CacheFlags {
    /// Bit 0: the entry may be served to any client, authenticated requests included.
    /// Without it the listener serves the entry only to anonymous requests.
    pub const PUBLIC: Self = Self(1);
    /// Bit 1: the query string is part of the cache key, so requests with a query may be
    /// cached. Without it, as in HTTP.sys, a request with a query is never served from cache.
    pub const VARY_BY_QUERY: Self = Self(2);
    /// Bit 2: `HttpCachePolicyUserInvalidates`: the entry stays until it is flushed
    /// (`httpq delete cache`) or evicted; `ttl_secs` is ignored.
    pub const USER_INVALIDATES: Self = Self(4);
    /// Every bit this version defines.
    pub const KNOWN: Self = Self(0x7);

    /// No flag.
    #[must_use]
    pub const fn empty() -> Self {
        Self(0)
    }

    /// Whether every bit of `other` is set.
    #[must_use]
    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }
}

impl BitOr for CacheFlags {
    type Output = Self;
    fn bitor(self, rhs: Self) -> Self {
        Self(self.0 | rhs.0)
    }
}

/// `RESPONSE_FILE` (0x32), app → listener: send `length` bytes of a file from `offset`.
///
/// The descriptor travels beside the frame bytes (`SCM_RIGHTS`), in the same `sendmsg` as the
/// frame's first byte (wire-protocol.md §11).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponseFile {
    /// The request stream.
    pub stream: StreamId,
    /// Which passed descriptor: the receiver numbers the descriptors it receives on the
    /// connection 0, 1, 2, … in arrival order; this is that number modulo 65,536.
    pub fd_index: u16,
    /// First byte to send.
    pub offset: u64,
    /// Bytes to send.
    pub length: u64,
    /// END_STREAM: the response ends after this range.
    pub end_stream: bool,
}

/// `RESET` (0x40), either direction: abort the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reset {
    /// The request stream.
    pub stream: StreamId,
    /// Why; HTTP/2 error-code space, app-defined codes allowed.
    pub code: ErrorCode,
    /// Human-readable detail for logs; may be empty.
    pub reason: String,
}

impl Reset {
    /// A `RESET` whose reason is cut to [`MAX_REASON_LEN`](crate::MAX_REASON_LEN) bytes, at a
    /// character boundary: a reason built from a handler's or a peer's error text must not
    /// outgrow the frame (a frame the peer refuses ends the whole connection).
    #[must_use]
    pub fn new(stream: StreamId, code: ErrorCode, reason: impl Into<String>) -> Self {
        let mut reason = reason.into();
        if reason.len() > crate::MAX_REASON_LEN {
            let mut end = crate::MAX_REASON_LEN;
            while !reason.is_char_boundary(end) {
                end -= 1;
            }
            reason.truncate(end);
        }
        Reset {
            stream,
            code,
            reason,
        }
    }
}

/// `CANCEL` (0x41), listener → app: the listener has abandoned the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cancel {
    /// The request stream.
    pub stream: StreamId,
    /// Why.
    pub reason: CancelReason,
}

/// Why the listener cancelled a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CancelReason {
    /// The client disconnected (1).
    ClientDisconnected,
    /// A timer expired: entity body, drain or min-send-rate (2).
    RequestTimedOut,
    /// The listener is shutting down and stopped waiting (3).
    ListenerShutdown,
}

impl CancelReason {
    pub(crate) fn to_wire(self) -> u8 {
        match self {
            Self::ClientDisconnected => 1,
            Self::RequestTimedOut => 2,
            Self::ListenerShutdown => 3,
        }
    }

    pub(crate) fn from_wire(value: u8) -> Option<Self> {
        match value {
            1 => Some(Self::ClientDisconnected),
            2 => Some(Self::RequestTimedOut),
            3 => Some(Self::ListenerShutdown),
            _ => None,
        }
    }
}

/// `SET_LIMIT` (0x43), app → listener: replace the request's `max_request_body_size`.
/// Valid only before the app's first CREDIT on the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SetLimit {
    /// The request stream.
    pub stream: StreamId,
    /// The new limit in bytes; u64::MAX = unlimited.
    pub max_request_body_size: u64,
}

/// `DELEGATE` (0x51), app → listener: hand the request to another named queue.
/// Valid only before the app read the body (sent CREDIT) or started the response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delegate {
    /// The request stream.
    pub stream: StreamId,
    /// The target queue's name.
    pub queue_name: String,
    /// The URL to route with in the target queue, if not the request's own.
    pub url: Option<String>,
}

fn check_bytes(field: &'static str, len: usize) -> Result<(), EncodeError> {
    let max = u32::MAX as usize;
    if len > max {
        return Err(EncodeError::FieldTooLong { field, len, max });
    }
    Ok(())
}

fn check_count(field: &'static str, len: usize) -> Result<(), EncodeError> {
    let max = usize::from(u16::MAX);
    if len > max {
        return Err(EncodeError::FieldTooLong { field, len, max });
    }
    Ok(())
}

/// Appends one frame: its header, then the payload `put` writes (`payload_len` bytes), unless
/// the payload is larger than `max_frame_size` (nothing is written then).
fn put_frame(
    dst: &mut BytesMut,
    max_frame_size: u32,
    (ty, flags, stream): (FrameType, Flags, StreamId),
    payload_len: usize,
    put: impl FnOnce(&mut BytesMut),
) -> Result<(), EncodeError> {
    if payload_len > max_frame_size as usize {
        return Err(EncodeError::FrameTooLarge {
            length: payload_len,
            max: max_frame_size,
        });
    }
    dst.reserve(HEADER_LEN + payload_len);
    let start = dst.len();
    dst.put_u8(ty.0);
    dst.put_u8(flags.0);
    dst.put_u16_le(0);
    // `payload_len <= max_frame_size`, a u32.
    dst.put_u32_le(payload_len as u32);
    dst.put_u64_le(stream.0);
    put(dst);
    debug_assert_eq!(dst.len() - start, HEADER_LEN + payload_len);
    Ok(())
}

fn check_headers(field: &'static str, headers: &HeaderMap) -> Result<(), EncodeError> {
    // What the receiver decodes (wire spec §3), not only what the u16 count can carry.
    if headers.len() > MAX_HEADER_FIELDS {
        return Err(EncodeError::FieldTooLong {
            field,
            len: headers.len(),
            max: MAX_HEADER_FIELDS,
        });
    }
    for (name, value) in headers {
        check_count(field, name.as_str().len())?;
        check_bytes(field, value.len())?;
    }
    Ok(())
}
