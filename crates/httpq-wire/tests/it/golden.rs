//! Golden byte vectors: the exact bytes of wire-protocol.md's examples. If one of these
//! fails, the format changed: that needs a new protocol version, not a new vector.

use bytes::{Bytes, BytesMut};
use httpq_wire::{Credit, Data, Decoder, Frame, Hello, Role, StreamId};

fn hex(s: &str) -> Vec<u8> {
    let digits: Vec<u8> = s.bytes().filter(u8::is_ascii_hexdigit).collect();
    digits
        .chunks(2)
        .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).unwrap(), 16).unwrap())
        .collect()
}

fn check(frame: &Frame, expected_hex: &str) {
    let expected = hex(expected_hex);
    let mut out = BytesMut::new();
    frame.encode(&mut out);
    assert_eq!(out.to_vec(), expected, "encoding of {frame:?}");
    let mut src = BytesMut::from(&expected[..]);
    assert_eq!(
        Decoder::default().decode(&mut src).unwrap().as_ref(),
        Some(frame)
    );
}

#[test]
fn hello() {
    check(
        &Frame::Hello(Hello::new(Role::App)),
        "01 00 0000 16000000 0000000000000000
         4854545051 0200 0200 01 00000100 0000000000000000",
    );
}

#[test]
fn request_credit() {
    check(
        &Frame::Credit(Credit::requests(8)),
        "42 00 0000 04000000 0000000000000000 08000000",
    );
}

#[test]
fn response_head() {
    let frame = Frame::ResponseHead(crate::sample_response_head());
    check(
        &frame,
        "30 00 0000 2a000000 0100000000000000
         c800
         0100 0c00 636f6e74656e742d74797065 0a000000 746578742f706c61696e
         00
         01 0500000000000000",
    );
}

#[test]
fn response_body_end_stream() {
    let frame = Frame::ResponseBody(Data {
        stream: StreamId(1),
        data: Bytes::from_static(b"hello"),
        end_stream: true,
    });
    check(&frame, "31 01 0000 05000000 0100000000000000 68656c6c6f");
}
