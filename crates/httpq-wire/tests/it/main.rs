//! Integration tests for httpq-wire: one binary, one module per concern.
#![allow(clippy::unwrap_used)] // Tests fail loudly on purpose.

mod control;
mod decode_errors;
mod encode;
mod golden;
mod roundtrip;
mod state;
mod strategy;

use bytes::BytesMut;
use httpq_wire::{Decoder, Frame};

/// Encodes `frames` back to back.
pub(crate) fn encode_all(frames: &[Frame]) -> Vec<u8> {
    let mut out = BytesMut::new();
    for frame in frames {
        let before = out.len();
        frame.encode(&mut out);
        assert_eq!(
            out.len() - before,
            frame.encoded_len(),
            "encoded_len of {frame:?}"
        );
    }
    out.to_vec()
}

/// Feeds `bytes` to a decoder in pieces of the given sizes (cycled), collecting every frame.
/// Panics on a decode error or leftover bytes.
pub(crate) fn decode_in_pieces(bytes: &[u8], pieces: &[usize], max_frame_size: u32) -> Vec<Frame> {
    let mut decoder = Decoder::new(max_frame_size);
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    let mut pos = 0;
    let mut sizes = pieces.iter().copied().cycle();
    while pos < bytes.len() {
        let n = sizes
            .next()
            .unwrap_or(bytes.len())
            .max(1)
            .min(bytes.len() - pos);
        buf.extend_from_slice(&bytes[pos..pos + n]);
        pos += n;
        for frame in decoder.frames(&mut buf) {
            frames.push(frame.unwrap());
        }
    }
    assert!(buf.is_empty(), "{} bytes left over", buf.len());
    frames
}

/// A raw frame with any header fields, for building invalid input.
pub(crate) fn raw(ty: u8, flags: u8, reserved: u16, stream: u64, payload: &[u8]) -> BytesMut {
    let mut out = BytesMut::new();
    out.extend_from_slice(&[ty, flags]);
    out.extend_from_slice(&reserved.to_le_bytes());
    out.extend_from_slice(&u32::try_from(payload.len()).unwrap().to_le_bytes());
    out.extend_from_slice(&stream.to_le_bytes());
    out.extend_from_slice(payload);
    out
}

/// A plain HTTP/1.1 request head on `stream` with the given body kind.
pub(crate) fn sample_head(
    stream: u64,
    body: httpq_wire::RequestBodyKind,
) -> httpq_wire::RequestHead {
    httpq_wire::RequestHead {
        stream: httpq_wire::StreamId(stream),
        queue: 1,
        url_context: 2,
        method: http::Method::POST,
        raw_target: bytes::Bytes::from_static(b"/app/upload?x=1"),
        path: "/app/upload".into(),
        query: Some("x=1".into()),
        version: httpq_wire::HttpVersion::Http11,
        headers: [(
            http::header::HOST,
            http::HeaderValue::from_static("example.com"),
        )]
        .into_iter()
        .collect(),
        connection_id: 9,
        request_id: 77,
        local: "192.0.2.1:443".parse().unwrap(),
        remote: "[2001:db8::1]:50000".parse().unwrap(),
        tls: None,
        identity: None,
        timings: vec![],
        body,
        max_request_body_size: 30_000_000,
        flags: httpq_wire::RequestFlags::empty(),
    }
}

/// The wire spec's example response head: 200, `content-type: text/plain`, a 5-byte body to
/// follow, on stream 1.
pub(crate) fn sample_response_head() -> httpq_wire::ResponseHead {
    httpq_wire::ResponseHead {
        stream: httpq_wire::StreamId(1),
        status: http::StatusCode::OK,
        headers: [(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("text/plain"),
        )]
        .into_iter()
        .collect(),
        cache: None,
        body_length: Some(5),
        end_stream: false,
    }
}
