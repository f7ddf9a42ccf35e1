//! One hand-built bad frame per `DecodeError` variant (and the accepted edge cases next to
//! each), checking that the error names the right field.

use bytes::{Bytes, BytesMut};
use httpq_wire::{
    DecodeError, Decoder, ErrorCode, Flags, Frame, FrameType, RequestBodyKind, StreamId,
};

use crate::{raw, sample_head};

fn decode(mut src: BytesMut) -> Result<Option<Frame>, DecodeError> {
    Decoder::default().decode(&mut src)
}

fn decode_err(src: BytesMut) -> DecodeError {
    decode(src).unwrap_err()
}

fn encoded(frame: &Frame) -> Vec<u8> {
    let mut out = BytesMut::new();
    frame.encode(&mut out);
    out.to_vec()
}

/// Offset of the payload in an encoded frame.
const P: usize = 16;

fn hello_payload(min: u16, max: u16, role: u8, frame_size: u32) -> Vec<u8> {
    let mut p = b"HTTPQ".to_vec();
    p.extend_from_slice(&min.to_le_bytes());
    p.extend_from_slice(&max.to_le_bytes());
    p.push(role);
    p.extend_from_slice(&frame_size.to_le_bytes());
    p.extend_from_slice(&0u64.to_le_bytes());
    p
}

#[test]
fn frame_too_large() {
    let mut src = raw(0x21, 0, 0, 1, &[]);
    src[4..8].copy_from_slice(&65_537u32.to_le_bytes());
    let err = decode_err(src);
    assert_eq!(
        err,
        DecodeError::FrameTooLarge {
            length: 65_537,
            max: 65_536
        }
    );
    assert_eq!(err.code(), ErrorCode::FRAME_SIZE_ERROR);
    assert_eq!(
        err.to_string(),
        "frame length 65537 exceeds the maximum frame size 65536"
    );
}

#[test]
fn unknown_frame_type_without_ignorable() {
    let err = decode_err(raw(0x7f, 0, 0, 0, b"xyz"));
    assert_eq!(err, DecodeError::UnknownFrameType { ty: 0x7f });
    assert_eq!(err.code(), ErrorCode::PROTOCOL_ERROR);
}

#[test]
fn unknown_frame_type_with_ignorable_is_returned() {
    let frame = decode(raw(0x7f, 0x81, 0, 5, b"xyz")).unwrap().unwrap();
    assert_eq!(
        frame,
        Frame::Unknown {
            ty: FrameType(0x7f),
            flags: Flags::IGNORABLE | Flags::END_STREAM,
            stream: StreamId(5),
            payload: Bytes::from_static(b"xyz"),
        }
    );
}

#[test]
fn reserved_flag_bits() {
    for bit in 2..=6 {
        let flags = 1u8 << bit;
        assert_eq!(
            decode_err(raw(0x04, flags, 0, 0, &[0; 8])),
            DecodeError::ReservedBits { flags }
        );
    }
    // Checked before the type: an ignorable unknown frame with reserved bits is still an error.
    assert_eq!(
        decode_err(raw(0x7f, 0x84, 0, 0, &[])),
        DecodeError::ReservedBits { flags: 0x84 }
    );
}

#[test]
fn reserved_field() {
    assert_eq!(
        decode_err(raw(0x04, 0, 0x0100, 0, &[0; 8])),
        DecodeError::ReservedField { value: 0x0100 }
    );
}

#[test]
fn flags_not_allowed_on_type() {
    // END_STREAM on PING, ACK on REQUEST_BODY, IGNORABLE on a known type.
    for (ty, flags, payload) in [(0x04u8, 0x01u8, 8usize), (0x21, 0x02, 0), (0x04, 0x80, 8)] {
        assert_eq!(
            decode_err(raw(
                ty,
                flags,
                0,
                if ty == 0x04 { 0 } else { 1 },
                &vec![0; payload]
            )),
            DecodeError::InvalidFlags {
                ty: FrameType(ty),
                flags
            }
        );
    }
}

#[test]
fn trailers_require_end_stream() {
    let no_headers = 0u16.to_le_bytes();
    for ty in [FrameType::REQUEST_TRAILERS, FrameType::RESPONSE_TRAILERS] {
        assert_eq!(
            decode_err(raw(ty.0, 0, 0, 1, &no_headers)),
            DecodeError::InvalidFlags { ty, flags: 0 }
        );
        assert!(decode(raw(ty.0, 1, 0, 1, &no_headers)).unwrap().is_some());
    }
}

#[test]
fn request_head_end_stream_must_match_body_kind() {
    let head = Frame::RequestHead(Box::new(sample_head(1, RequestBodyKind::Chunked)));
    let mut bytes = encoded(&head);
    bytes[1] = Flags::END_STREAM.0;
    assert_eq!(
        decode_err(BytesMut::from(&bytes[..])),
        DecodeError::InvalidFlags {
            ty: FrameType::REQUEST_HEAD,
            flags: 1
        }
    );
    let head = Frame::RequestHead(Box::new(sample_head(1, RequestBodyKind::Empty)));
    let mut bytes = encoded(&head);
    assert_eq!(bytes[1], 1);
    bytes[1] = 0;
    assert_eq!(
        decode_err(BytesMut::from(&bytes[..])),
        DecodeError::InvalidFlags {
            ty: FrameType::REQUEST_HEAD,
            flags: 0
        }
    );
}

#[test]
fn invalid_stream() {
    assert_eq!(
        decode_err(raw(0x04, 0, 0, 3, &[0; 8])),
        DecodeError::InvalidStream {
            ty: FrameType::PING,
            stream: 3
        }
    );
    assert_eq!(
        decode_err(raw(0x21, 0, 0, 0, b"body")),
        DecodeError::InvalidStream {
            ty: FrameType::REQUEST_BODY,
            stream: 0
        }
    );
    // CREDIT is valid on both.
    for stream in [0, 3] {
        assert!(
            decode(raw(0x42, 0, 0, stream, &1u32.to_le_bytes()))
                .unwrap()
                .is_some()
        );
    }
}

#[test]
fn truncated_fields() {
    assert_eq!(
        decode_err(raw(0x04, 0, 0, 0, &[0; 7])),
        DecodeError::Truncated {
            field: "ping.payload"
        }
    );
    // A `bytes` length running past the end of the payload.
    let mut goaway = vec![0u8; 12];
    goaway.extend_from_slice(&100u32.to_le_bytes());
    goaway.extend_from_slice(b"short");
    assert_eq!(
        decode_err(raw(0x03, 0, 0, 0, &goaway)),
        DecodeError::Truncated {
            field: "goaway.reason"
        }
    );
    // A header count that the payload cannot hold is refused before allocating.
    assert_eq!(
        decode_err(raw(0x22, 1, 0, 1, &u16::MAX.to_le_bytes())),
        DecodeError::Truncated {
            field: "request_trailers.headers"
        }
    );
    // HELLO shorter than its magic.
    assert_eq!(
        decode_err(raw(0x01, 0, 0, 0, b"HTT")),
        DecodeError::Truncated {
            field: "hello.magic"
        }
    );
}

#[test]
fn trailing_bytes() {
    let err = decode_err(raw(0x04, 0, 0, 0, &[0; 9]));
    assert_eq!(
        err,
        DecodeError::TrailingBytes {
            ty: FrameType::PING,
            extra: 1
        }
    );
    assert_eq!(
        err.to_string(),
        "1 trailing bytes after the last field of PING"
    );
}

#[test]
fn invalid_utf8() {
    let mut reset = 8u32.to_le_bytes().to_vec();
    reset.extend_from_slice(&2u32.to_le_bytes());
    reset.extend_from_slice(&[0xc3, 0x28]);
    assert_eq!(
        decode_err(raw(0x40, 0, 0, 1, &reset)),
        DecodeError::InvalidUtf8 {
            field: "reset.reason"
        }
    );
}

fn one_header(name: &[u8], value: &[u8]) -> Vec<u8> {
    let mut p = 1u16.to_le_bytes().to_vec();
    p.extend_from_slice(&u16::try_from(name.len()).unwrap().to_le_bytes());
    p.extend_from_slice(name);
    p.extend_from_slice(&u32::try_from(value.len()).unwrap().to_le_bytes());
    p.extend_from_slice(value);
    p
}

#[test]
fn invalid_header_name() {
    for name in [&b""[..], b"bad name", b"colon:", b"\xff"] {
        assert_eq!(
            decode_err(raw(0x33, 1, 0, 1, &one_header(name, b"v"))),
            DecodeError::InvalidHeaderName {
                field: "response_trailers.headers"
            }
        );
    }
    // Upper case is accepted and normalised.
    let frame = decode(raw(0x33, 1, 0, 1, &one_header(b"Grpc-Status", b"0")))
        .unwrap()
        .unwrap();
    let Frame::ResponseTrailers(trailers) = frame else {
        panic!()
    };
    assert_eq!(trailers.headers["grpc-status"], "0");
}

#[test]
fn invalid_header_value() {
    for value in [&b"a\nb"[..], b"a\rb", b"\0", b"\x7f"] {
        assert_eq!(
            decode_err(raw(0x22, 1, 0, 1, &one_header(b"x", value))),
            DecodeError::InvalidHeaderValue {
                field: "request_trailers.headers"
            }
        );
    }
    // HTAB and obs-text are valid.
    assert!(
        decode(raw(0x22, 1, 0, 1, &one_header(b"x", b"a\tb\xe9")))
            .unwrap()
            .is_some()
    );
}

#[test]
fn invalid_method() {
    let head = Frame::RequestHead(Box::new(sample_head(1, RequestBodyKind::Empty)));
    let mut bytes = encoded(&head);
    // queue u64, url_context u64, then the method's u32 length and "POST".
    let method = P + 8 + 8 + 4;
    assert_eq!(&bytes[method..method + 4], b"POST");
    bytes[method + 1] = b' ';
    assert_eq!(
        decode_err(BytesMut::from(&bytes[..])),
        DecodeError::InvalidMethod
    );
}

#[test]
fn invalid_values() {
    let cases: Vec<(BytesMut, &str, u64)> = vec![
        (
            raw(0x01, 0, 0, 0, &hello_payload(1, 1, 3, 65_536)),
            "hello.role",
            3,
        ),
        (
            raw(0x01, 0, 0, 0, &hello_payload(0, 1, 1, 65_536)),
            "hello.min_version",
            0,
        ),
        (
            raw(0x01, 0, 0, 0, &hello_payload(2, 1, 1, 65_536)),
            "hello.max_version",
            1,
        ),
        (
            raw(0x01, 0, 0, 0, &hello_payload(1, 1, 1, 65_535)),
            "hello.max_frame_size",
            65_535,
        ),
        (
            raw(0x01, 0, 0, 0, &hello_payload(1, 1, 1, 1 << 24)),
            "hello.max_frame_size",
            1 << 24,
        ),
        (
            raw(0x42, 0, 0, 0, &0u32.to_le_bytes()),
            "credit.increment",
            0,
        ),
        (raw(0x41, 0, 0, 1, &[9]), "cancel.reason", 9),
        (raw(0x41, 0, 0, 1, &[0]), "cancel.reason", 0),
    ];
    for (src, field, value) in cases {
        assert_eq!(
            decode_err(src),
            DecodeError::InvalidValue { field, value },
            "{field}"
        );
    }
    // HELLO_ACK version 0.
    let mut ack = 0u16.to_le_bytes().to_vec();
    ack.extend_from_slice(&65_536u32.to_le_bytes());
    ack.extend_from_slice(&[0; 12]);
    assert_eq!(
        decode_err(raw(0x02, 0, 0, 0, &ack)),
        DecodeError::InvalidValue {
            field: "hello_ack.version",
            value: 0
        }
    );
    // An `opt` presence byte other than 0 or 1.
    let mut delegate = 1u32.to_le_bytes().to_vec();
    delegate.extend_from_slice(b"q\x02");
    assert_eq!(
        decode_err(raw(0x51, 0, 0, 1, &delegate)),
        DecodeError::InvalidValue {
            field: "delegate.url",
            value: 2
        }
    );
}

#[test]
fn invalid_response_head_values() {
    // status 99, then an empty header list, no cache, no length.
    let mut p = 99u16.to_le_bytes().to_vec();
    p.extend_from_slice(&[0, 0, 0, 0]);
    assert_eq!(
        decode_err(raw(0x30, 0, 0, 1, &p)),
        DecodeError::InvalidValue {
            field: "response_head.status",
            value: 99
        }
    );
    // Unknown cache flag bit 3.
    let mut p = 200u16.to_le_bytes().to_vec();
    p.extend_from_slice(&[0, 0, 1]);
    p.extend_from_slice(&60u32.to_le_bytes());
    p.extend_from_slice(&8u32.to_le_bytes());
    p.push(0);
    assert_eq!(
        decode_err(raw(0x30, 0, 0, 1, &p)),
        DecodeError::InvalidValue {
            field: "response_head.cache.flags",
            value: 8
        }
    );
}

/// Offsets into the sample head's payload, found by encoding it: the fields after the
/// variable-length ones are located from the end.
#[test]
fn invalid_request_head_values() {
    let head = Frame::RequestHead(Box::new(sample_head(1, RequestBodyKind::Length(10))));
    let bytes = encoded(&head);
    let end = bytes.len();
    // The fixed tail: body u8, declared u64, max u64, flags u32.
    let flags_at = end - 4;
    let kind_at = end - 4 - 8 - 8 - 1;

    let mut bad = bytes.clone();
    bad[flags_at] = 0x10;
    assert_eq!(
        decode_err(BytesMut::from(&bad[..])),
        DecodeError::InvalidValue {
            field: "request_head.flags",
            value: 0x10
        }
    );

    let mut bad = bytes.clone();
    bad[kind_at] = 3;
    assert_eq!(
        decode_err(BytesMut::from(&bad[..])),
        DecodeError::InvalidValue {
            field: "request_head.body",
            value: 3
        }
    );

    // Chunked with a declared length.
    let mut bad = bytes.clone();
    bad[kind_at] = 2;
    assert_eq!(
        decode_err(BytesMut::from(&bad[..])),
        DecodeError::InvalidValue {
            field: "request_head.declared_length",
            value: 10
        }
    );

    // The version byte follows method, raw target, path and query.
    let version_at = P + 8 + 8 + (4 + 4) + (4 + 15) + (4 + 11) + (1 + 4 + 3);
    assert_eq!(bytes[version_at], 11);
    let mut bad = bytes.clone();
    bad[version_at] = 12;
    assert_eq!(
        decode_err(BytesMut::from(&bad[..])),
        DecodeError::InvalidValue {
            field: "request_head.version",
            value: 12
        }
    );

    // The local address family follows the headers, the connection id and the request id.
    let headers_len = 2 + (2 + 4) + (4 + 11);
    let family_at = version_at + 1 + headers_len + 8 + 8;
    assert_eq!(bytes[family_at], 4);
    let mut bad = bytes.clone();
    bad[family_at] = 5;
    assert_eq!(
        decode_err(BytesMut::from(&bad[..])),
        DecodeError::InvalidValue {
            field: "request_head.local",
            value: 5
        }
    );
}

#[test]
fn bad_magic() {
    let mut p = hello_payload(1, 1, 1, 65_536);
    p[0] = b'X';
    let err = decode_err(raw(0x01, 0, 0, 0, &p));
    assert_eq!(err, DecodeError::BadMagic);
    assert!(err.to_string().contains("hello.magic"));
}

#[test]
fn errors_name_their_field() {
    assert_eq!(
        DecodeError::Truncated {
            field: "request_head.tls.sni"
        }
        .to_string(),
        "payload truncated in field request_head.tls.sni"
    );
    assert_eq!(
        DecodeError::InvalidValue {
            field: "hello.role",
            value: 3
        }
        .to_string(),
        "field hello.role has invalid value 3"
    );
}

#[test]
fn incomplete_input_is_not_an_error() {
    let bytes = encoded(&Frame::RequestHead(Box::new(sample_head(
        1,
        RequestBodyKind::Empty,
    ))));
    for cut in 0..bytes.len() {
        let mut src = BytesMut::from(&bytes[..cut]);
        assert_eq!(
            Decoder::default().decode(&mut src).unwrap(),
            None,
            "cut at {cut}"
        );
        assert_eq!(src.len(), cut);
    }
}

#[test]
fn frames_iterator_stops_after_an_error() {
    let mut src = BytesMut::new();
    src.extend_from_slice(&raw(0x04, 0, 0, 0, &[1; 8]));
    src.extend_from_slice(&raw(0x04, 0x04, 0, 0, &[2; 8]));
    src.extend_from_slice(&raw(0x04, 0, 0, 0, &[3; 8]));
    let mut decoder = Decoder::default();
    let results: Vec<_> = decoder.frames(&mut src).collect();
    assert_eq!(results.len(), 2);
    assert!(results[0].is_ok());
    assert_eq!(results[1], Err(DecodeError::ReservedBits { flags: 0x04 }));
}

#[test]
fn body_payloads_share_the_input_buffer() {
    let body = vec![7u8; 1000];
    let mut src = raw(0x21, 0, 0, 1, &body);
    let start = src.as_ptr() as usize;
    let Some(Frame::RequestBody(data)) = Decoder::default().decode(&mut src).unwrap() else {
        panic!()
    };
    // The data points into the original allocation, just past the header.
    assert_eq!(data.data.as_ptr() as usize, start + 16);
}
