//! The decoder: bytes from the transport in, [`Frame`]s out (wire-protocol.md §2–§5).
//!
//! The decoder is sans-IO: the caller appends whatever the transport delivered to a
//! [`BytesMut`] and calls [`Decoder::decode`] (or iterates [`Decoder::frames`]) until it
//! returns `Ok(None)`. A frame is taken off the buffer only when it is complete; body
//! payloads are split off the buffer without copying.
//!
//! Every header check (reserved bits, frame size, unknown type, flags, stream id) happens as
//! soon as the 16 header bytes are there, before the decoder waits for or reserves room for
//! the payload; so a peer cannot make it buffer more than one maximum-size frame.
//!
//! Any error is fatal for the connection: send GOAWAY with [`DecodeError::code`] and close.
//! The decoder does not try to resynchronise.

use std::iter::FusedIterator;

use bytes::{Bytes, BytesMut};
use http::{Method, StatusCode};

use crate::frame::{
    AuthScheme, CacheFlags, CachePolicy, Cancel, CancelReason, ControlFrame, Credit, Data,
    Delegate, ErrorCode, Flags, Frame, FrameType, Goaway, Hello, HelloAck, HttpVersion, Identity,
    Ping, RequestBodyKind, RequestFlags, RequestHead, Reset, ResponseFile, ResponseHead, Role,
    SetLimit, StreamId, StreamRule, Timing, TimingKind, TlsInfo, Trailers,
};
use crate::primitive::Reader;
use crate::{DEFAULT_MAX_FRAME_SIZE, HEADER_LEN, MAGIC, MAX_FRAME_SIZE_LIMIT};

/// Decodes frames from a byte buffer, one complete frame at a time.
///
/// # Examples
///
/// ```
/// use bytes::BytesMut;
/// use httpq_wire::{Decoder, Frame, Ping};
///
/// let mut wire = BytesMut::new();
/// Frame::Ping(Ping { payload: 7, ack: false }).encode(&mut wire);
///
/// let mut decoder = Decoder::new(httpq_wire::DEFAULT_MAX_FRAME_SIZE);
/// let mut received = BytesMut::new();
/// received.extend_from_slice(&wire[..5]); // a partial read
/// assert_eq!(decoder.decode(&mut received).unwrap(), None);
/// received.extend_from_slice(&wire[5..]);
/// assert_eq!(
///     decoder.decode(&mut received).unwrap(),
///     Some(Frame::Ping(Ping { payload: 7, ack: false })),
/// );
/// assert!(received.is_empty());
/// ```
#[derive(Debug, Clone)]
pub struct Decoder {
    max_frame_size: u32,
}

impl Decoder {
    /// A decoder that rejects payloads longer than `max_frame_size` bytes: the limit this
    /// side announced in HELLO or HELLO_ACK.
    #[must_use]
    pub fn new(max_frame_size: u32) -> Self {
        Self { max_frame_size }
    }

    /// Changes the limit, for example after the handshake.
    pub fn set_max_frame_size(&mut self, max_frame_size: u32) {
        self.max_frame_size = max_frame_size;
    }

    /// Decodes one frame from the front of `src` if it holds a complete one.
    ///
    /// Returns `Ok(None)` when more bytes are needed; `src` is then unchanged except that
    /// room may be reserved for the rest of a frame whose header was valid. On success the
    /// frame's bytes are removed from `src`.
    ///
    /// # Errors
    ///
    /// A [`DecodeError`] naming the first rule the bytes break. Header errors are reported
    /// as soon as the header is complete, before the payload arrives.
    pub fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, DecodeError> {
        let Some(header) = src.first_chunk::<HEADER_LEN>() else {
            return Ok(None);
        };
        let header = Header::parse(header, self.max_frame_size)?;
        let total = HEADER_LEN + header.length as usize;
        if src.len() < total {
            // Bounded: `header.length <= max_frame_size` was checked above.
            src.reserve(total - src.len());
            return Ok(None);
        }
        let mut frame = src.split_to(total).freeze();
        let payload = frame.split_off(HEADER_LEN);
        decode_payload(&header, payload).map(Some)
    }

    /// Iterates over every complete frame in `src`, stopping after the first error.
    ///
    /// # Examples
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use httpq_wire::{Credit, Decoder, Frame};
    ///
    /// let mut src = BytesMut::new();
    /// Frame::Credit(Credit::requests(5)).encode(&mut src);
    /// Frame::Credit(Credit::requests(6)).encode(&mut src);
    /// let frames: Result<Vec<Frame>, _> = Decoder::default().frames(&mut src).collect();
    /// assert_eq!(frames.unwrap().len(), 2);
    /// ```
    pub fn frames<'a>(&'a mut self, src: &'a mut BytesMut) -> Frames<'a> {
        Frames {
            decoder: self,
            src,
            failed: false,
        }
    }

    /// The current limit.
    #[must_use]
    pub fn max_frame_size(&self) -> u32 {
        self.max_frame_size
    }
}

impl Default for Decoder {
    /// A decoder with [`DEFAULT_MAX_FRAME_SIZE`].
    fn default() -> Self {
        Self::new(DEFAULT_MAX_FRAME_SIZE)
    }
}

/// The iterator [`Decoder::frames`] returns. It ends when no complete frame is left, or
/// right after yielding an error.
#[derive(Debug)]
pub struct Frames<'a> {
    decoder: &'a mut Decoder,
    src: &'a mut BytesMut,
    failed: bool,
}

impl Iterator for Frames<'_> {
    type Item = Result<Frame, DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        match self.decoder.decode(self.src) {
            Ok(Some(frame)) => Some(Ok(frame)),
            Ok(None) => {
                self.failed = true;
                None
            }
            Err(err) => {
                self.failed = true;
                Some(Err(err))
            }
        }
    }
}

impl FusedIterator for Frames<'_> {}

/// Why bytes from the peer are not a valid frame. Every variant is a connection error.
///
/// `field` values name the frame and field as the spec does (`"request_head.tls.sni"`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The header's payload length exceeds the maximum frame size.
    #[error("frame length {length} exceeds the maximum frame size {max}")]
    FrameTooLarge {
        /// The header's length field.
        length: u32,
        /// This side's limit.
        max: u32,
    },
    /// A frame type this version does not define, without the IGNORABLE flag.
    #[error("unknown frame type {ty:#04x} without the IGNORABLE flag")]
    UnknownFrameType {
        /// The type byte.
        ty: u8,
    },
    /// Reserved flag bits (2–6) are set.
    #[error("reserved flag bits set in flags {flags:#04x}")]
    ReservedBits {
        /// The flags byte.
        flags: u8,
    },
    /// The header's reserved u16 is not zero.
    #[error("header reserved field is {value:#06x}, must be 0")]
    ReservedField {
        /// Its value.
        value: u16,
    },
    /// A flag this frame type does not allow, or a required flag missing.
    #[error("flags {flags:#04x} are not valid on {ty}")]
    InvalidFlags {
        /// The frame type.
        ty: FrameType,
        /// The flags byte.
        flags: u8,
    },
    /// A connection-level frame on a request stream, or a stream frame on stream 0.
    #[error("{ty} is not allowed on stream {stream}")]
    InvalidStream {
        /// The frame type.
        ty: FrameType,
        /// The header's stream id.
        stream: u64,
    },
    /// The payload ended inside this field, or a length or count in it runs past the end.
    #[error("payload truncated in field {field}")]
    Truncated {
        /// The field.
        field: &'static str,
    },
    /// The payload has bytes after its last field.
    #[error("{extra} trailing bytes after the last field of {ty}")]
    TrailingBytes {
        /// The frame type.
        ty: FrameType,
        /// How many bytes were left.
        extra: usize,
    },
    /// A `str` field is not UTF-8.
    #[error("field {field} is not valid UTF-8")]
    InvalidUtf8 {
        /// The field.
        field: &'static str,
    },
    /// A header name is empty or has bytes outside the HTTP token set.
    #[error("invalid header name in {field}")]
    InvalidHeaderName {
        /// The header list.
        field: &'static str,
    },
    /// A header list has more fields than [`MAX_HEADER_FIELDS`](crate::MAX_HEADER_FIELDS).
    #[error(
        "{field} has {count} fields, more than the {max} a header list may carry",
        max = crate::MAX_HEADER_FIELDS
    )]
    TooManyHeaders {
        /// The header list.
        field: &'static str,
        /// The count it announced.
        count: usize,
    },
    /// A header list's fields do not fit an `http::HeaderMap` (more distinct names hashing
    /// alike than its index table takes), though there are no more than
    /// [`MAX_HEADER_FIELDS`](crate::MAX_HEADER_FIELDS).
    #[error("the fields of {field} do not fit a header map (too many names that hash alike)")]
    HeaderMapFull {
        /// The header list.
        field: &'static str,
    },
    /// A header value has a control character (other than HTAB) or DEL.
    #[error("invalid header value in {field}")]
    InvalidHeaderValue {
        /// The header list.
        field: &'static str,
    },
    /// The method is empty or not an HTTP token.
    #[error("field request_head.method is not a valid HTTP method")]
    InvalidMethod,
    /// A field holds a value the spec does not define for it.
    #[error("field {field} has invalid value {value}")]
    InvalidValue {
        /// The field.
        field: &'static str,
        /// The value, widened to u64.
        value: u64,
    },
    /// HELLO does not start with `HTTPQ`.
    #[error(r#"field hello.magic is not "HTTPQ": not an httpq peer"#)]
    BadMagic,
}

impl DecodeError {
    /// The code to put in the GOAWAY that closes the connection.
    #[must_use]
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::FrameTooLarge { .. } => ErrorCode::FRAME_SIZE_ERROR,
            _ => ErrorCode::PROTOCOL_ERROR,
        }
    }
}

/// A validated frame header.
#[derive(Debug, Clone, Copy)]
struct Header {
    ty: FrameType,
    flags: Flags,
    length: u32,
    stream: StreamId,
}

impl Header {
    /// Checks everything the header alone decides, in the order wire-protocol.md §2 lists.
    fn parse(bytes: &[u8; HEADER_LEN], max_frame_size: u32) -> Result<Self, DecodeError> {
        let [
            ty,
            flags,
            r0,
            r1,
            l0,
            l1,
            l2,
            l3,
            s0,
            s1,
            s2,
            s3,
            s4,
            s5,
            s6,
            s7,
        ] = *bytes;
        let ty = FrameType(ty);
        let flags = Flags(flags);
        let reserved = u16::from_le_bytes([r0, r1]);
        let length = u32::from_le_bytes([l0, l1, l2, l3]);
        let stream = StreamId(u64::from_le_bytes([s0, s1, s2, s3, s4, s5, s6, s7]));

        if flags.0 & Flags::RESERVED.0 != 0 {
            return Err(DecodeError::ReservedBits { flags: flags.0 });
        }
        if reserved != 0 {
            return Err(DecodeError::ReservedField { value: reserved });
        }
        if length > max_frame_size {
            return Err(DecodeError::FrameTooLarge {
                length,
                max: max_frame_size,
            });
        }
        let (Some((allowed, required)), Some(stream_rule)) = (ty.flag_rules(), ty.stream_rule())
        else {
            if !flags.contains(Flags::IGNORABLE) {
                return Err(DecodeError::UnknownFrameType { ty: ty.0 });
            }
            return Ok(Self {
                ty,
                flags,
                length,
                stream,
            });
        };
        if flags.0 & !allowed.0 != 0 || !flags.contains(required) {
            return Err(DecodeError::InvalidFlags { ty, flags: flags.0 });
        }
        let stream_ok = match stream_rule {
            StreamRule::Connection => stream.is_connection(),
            StreamRule::Request => !stream.is_connection(),
            StreamRule::Any => true,
        };
        if !stream_ok {
            return Err(DecodeError::InvalidStream {
                ty,
                stream: stream.0,
            });
        }
        Ok(Self {
            ty,
            flags,
            length,
            stream,
        })
    }

    fn end_stream(&self) -> bool {
        self.flags.contains(Flags::END_STREAM)
    }

    fn ack(&self) -> bool {
        self.flags.contains(Flags::ACK)
    }
}

fn decode_payload(h: &Header, payload: Bytes) -> Result<Frame, DecodeError> {
    let mut r = Reader::new(payload);
    let stream = h.stream;
    let frame = match h.ty {
        FrameType::HELLO => Frame::Hello(decode_hello(&mut r)?),
        FrameType::HELLO_ACK => {
            let version = r.u16("hello_ack.version")?;
            if version == 0 {
                return Err(invalid("hello_ack.version", 0u16));
            }
            let max_frame_size = frame_size_field(&mut r, "hello_ack.max_frame_size")?;
            Frame::HelloAck(HelloAck {
                version,
                max_frame_size,
                features: r.u64("hello_ack.features")?,
                server: r.string("hello_ack.server")?,
            })
        }
        FrameType::GOAWAY => Frame::Goaway(Goaway {
            last_stream: StreamId(r.u64("goaway.last_stream")?),
            code: ErrorCode(r.u32("goaway.code")?),
            reason: r.string("goaway.reason")?,
        }),
        FrameType::PING => Frame::Ping(Ping {
            payload: r.u64("ping.payload")?,
            ack: h.ack(),
        }),
        FrameType::CONTROL => Frame::Control(ControlFrame {
            op_id: r.u32("control.op_id")?,
            is_response: h.ack(),
            body: r.bytes("control.body")?,
        }),
        FrameType::REQUEST_HEAD => Frame::RequestHead(Box::new(decode_request_head(h, &mut r)?)),
        FrameType::REQUEST_BODY => Frame::RequestBody(data(h, &mut r)),
        FrameType::REQUEST_TRAILERS => Frame::RequestTrailers(Trailers {
            stream,
            headers: r.headers("request_trailers.headers")?,
        }),
        FrameType::RESPONSE_HEAD => Frame::ResponseHead(decode_response_head(h, &mut r)?),
        FrameType::RESPONSE_BODY => Frame::ResponseBody(data(h, &mut r)),
        FrameType::RESPONSE_FILE => Frame::ResponseFile(ResponseFile {
            stream,
            fd_index: r.u16("response_file.fd_index")?,
            offset: r.u64("response_file.offset")?,
            length: r.u64("response_file.length")?,
            end_stream: h.end_stream(),
        }),
        FrameType::RESPONSE_TRAILERS => Frame::ResponseTrailers(Trailers {
            stream,
            headers: r.headers("response_trailers.headers")?,
        }),
        FrameType::RESET => Frame::Reset(Reset {
            stream,
            code: ErrorCode(r.u32("reset.code")?),
            reason: r.string("reset.reason")?,
        }),
        FrameType::CANCEL => {
            let value = r.u8("cancel.reason")?;
            let reason =
                CancelReason::from_wire(value).ok_or_else(|| invalid("cancel.reason", value))?;
            Frame::Cancel(Cancel { stream, reason })
        }
        FrameType::CREDIT => {
            let increment = r.u32("credit.increment")?;
            if increment == 0 {
                return Err(invalid("credit.increment", 0u32));
            }
            Frame::Credit(Credit { stream, increment })
        }
        FrameType::SET_LIMIT => Frame::SetLimit(SetLimit {
            stream,
            max_request_body_size: r.u64("set_limit.max_request_body_size")?,
        }),
        FrameType::UPGRADED_DATA => Frame::UpgradedData(data(h, &mut r)),
        FrameType::DELEGATE => Frame::Delegate(Delegate {
            stream,
            queue_name: r.string("delegate.queue_name")?,
            url: opt_string(&mut r, "delegate.url")?,
        }),
        ty => {
            // Header::parse let an unknown type through only with IGNORABLE set.
            return Ok(Frame::Unknown {
                ty,
                flags: h.flags,
                stream,
                payload: r.rest(),
            });
        }
    };
    r.finish(h.ty)?;
    Ok(frame)
}

fn decode_hello(r: &mut Reader) -> Result<Hello, DecodeError> {
    if r.take(MAGIC.len(), "hello.magic")? != MAGIC[..] {
        return Err(DecodeError::BadMagic);
    }
    let min_version = r.u16("hello.min_version")?;
    if min_version == 0 {
        return Err(invalid("hello.min_version", 0u16));
    }
    let max_version = r.u16("hello.max_version")?;
    if max_version < min_version {
        return Err(invalid("hello.max_version", max_version));
    }
    let role = r.u8("hello.role")?;
    let role = Role::from_wire(role).ok_or_else(|| invalid("hello.role", role))?;
    Ok(Hello {
        min_version,
        max_version,
        role,
        max_frame_size: frame_size_field(r, "hello.max_frame_size")?,
        features: r.u64("hello.features")?,
    })
}

fn decode_request_head(h: &Header, r: &mut Reader) -> Result<RequestHead, DecodeError> {
    let queue = r.u64("request_head.queue")?;
    let url_context = r.u64("request_head.url_context")?;
    // Parsed from the frame's bytes: a standard method needs no allocation.
    let method = r.bytes("request_head.method")?;
    if std::str::from_utf8(&method).is_err() {
        return Err(DecodeError::InvalidUtf8 {
            field: "request_head.method",
        });
    }
    let method = Method::from_bytes(&method).map_err(|_| DecodeError::InvalidMethod)?;
    let raw_target = r.bytes("request_head.raw_target")?;
    let path = r.string("request_head.path")?;
    let query = opt_string(r, "request_head.query")?;
    let version = r.u8("request_head.version")?;
    let version =
        HttpVersion::from_wire(version).ok_or_else(|| invalid("request_head.version", version))?;
    let headers = r.headers("request_head.headers")?;
    let connection_id = r.u64("request_head.connection_id")?;
    let request_id = r.u64("request_head.request_id")?;
    let local = r.addr("request_head.local")?;
    let remote = r.addr("request_head.remote")?;
    let tls = if r.present("request_head.tls")? {
        Some(decode_tls(r)?)
    } else {
        None
    };
    let identity = if r.present("request_head.identity")? {
        let scheme = r.u8("request_head.identity.scheme")?;
        let scheme = AuthScheme::from_wire(scheme)
            .ok_or_else(|| invalid("request_head.identity.scheme", scheme))?;
        Some(Identity {
            scheme,
            user: r.string("request_head.identity.user")?,
            token: opt_bytes(r, "request_head.identity.token")?,
        })
    } else {
        None
    };
    let count = r.count(1 + 8, "request_head.timings")?;
    let mut timings = Vec::with_capacity(count);
    for _ in 0..count {
        timings.push(Timing {
            kind: TimingKind(r.u8("request_head.timings")?),
            nanos: r.u64("request_head.timings")?,
        });
    }
    let kind = r.u8("request_head.body")?;
    let declared = r.u64("request_head.declared_length")?;
    let body = match kind {
        0 | 2 if declared != 0 => return Err(invalid("request_head.declared_length", declared)),
        0 => RequestBodyKind::Empty,
        1 => RequestBodyKind::Length(declared),
        2 => RequestBodyKind::Chunked,
        other => return Err(invalid("request_head.body", other)),
    };
    if h.end_stream() != (body == RequestBodyKind::Empty) {
        return Err(DecodeError::InvalidFlags {
            ty: h.ty,
            flags: h.flags.0,
        });
    }
    let max_request_body_size = r.u64("request_head.max_request_body_size")?;
    let flags = r.u32("request_head.flags")?;
    if flags & !RequestFlags::KNOWN.0 != 0 {
        return Err(invalid("request_head.flags", flags));
    }
    Ok(RequestHead {
        stream: h.stream,
        queue,
        url_context,
        method,
        raw_target,
        path,
        query,
        version,
        headers,
        connection_id,
        request_id,
        local,
        remote,
        tls,
        identity,
        timings,
        body,
        max_request_body_size,
        flags: RequestFlags(flags),
    })
}

fn decode_tls(r: &mut Reader) -> Result<TlsInfo, DecodeError> {
    let protocol = r.u16("request_head.tls.protocol")?;
    let cipher = r.u16("request_head.tls.cipher")?;
    let sni = opt_string(r, "request_head.tls.sni")?;
    let alpn = opt_bytes(r, "request_head.tls.alpn")?;
    let count = r.count(4, "request_head.tls.client_cert_chain")?;
    let mut client_cert_chain = Vec::with_capacity(count);
    for _ in 0..count {
        client_cert_chain.push(r.bytes("request_head.tls.client_cert_chain")?);
    }
    Ok(TlsInfo {
        protocol,
        cipher,
        sni,
        alpn,
        client_cert_chain,
    })
}

fn decode_response_head(h: &Header, r: &mut Reader) -> Result<ResponseHead, DecodeError> {
    let status = r.u16("response_head.status")?;
    let status =
        StatusCode::from_u16(status).map_err(|_| invalid("response_head.status", status))?;
    let headers = r.headers("response_head.headers")?;
    let cache = if r.present("response_head.cache")? {
        let ttl_secs = r.u32("response_head.cache.ttl_secs")?;
        let flags = r.u32("response_head.cache.flags")?;
        if flags & !CacheFlags::KNOWN.0 != 0 {
            return Err(invalid("response_head.cache.flags", flags));
        }
        Some(CachePolicy {
            ttl_secs,
            flags: CacheFlags(flags),
        })
    } else {
        None
    };
    let body_length = if r.present("response_head.body_length")? {
        Some(r.u64("response_head.body_length")?)
    } else {
        None
    };
    Ok(ResponseHead {
        stream: h.stream,
        status,
        headers,
        cache,
        body_length,
        end_stream: h.end_stream(),
    })
}

fn data(h: &Header, r: &mut Reader) -> Data {
    Data {
        stream: h.stream,
        data: r.rest(),
        end_stream: h.end_stream(),
    }
}

fn opt_string(r: &mut Reader, field: &'static str) -> Result<Option<String>, DecodeError> {
    if r.present(field)? {
        r.string(field).map(Some)
    } else {
        Ok(None)
    }
}

fn opt_bytes(r: &mut Reader, field: &'static str) -> Result<Option<Bytes>, DecodeError> {
    if r.present(field)? {
        r.bytes(field).map(Some)
    } else {
        Ok(None)
    }
}

/// A `max_frame_size` field of HELLO or HELLO_ACK: 65,536 ..= 16,777,215.
fn frame_size_field(r: &mut Reader, field: &'static str) -> Result<u32, DecodeError> {
    let value = r.u32(field)?;
    if !(DEFAULT_MAX_FRAME_SIZE..=MAX_FRAME_SIZE_LIMIT).contains(&value) {
        return Err(invalid(field, value));
    }
    Ok(value)
}

fn invalid(field: &'static str, value: impl Into<u64>) -> DecodeError {
    DecodeError::InvalidValue {
        field,
        value: value.into(),
    }
}
