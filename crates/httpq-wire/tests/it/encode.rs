//! Encoder-side API: try_encode limits, split_data, flags and stream accessors.

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderValue};
use httpq_wire::{
    ControlFrame, Credit, DEFAULT_MAX_FRAME_SIZE, Data, EncodeError, ErrorCode, Flags, Frame,
    FrameType, Hello, MAX_HEADER_FIELDS, MAX_REASON_LEN, RequestBodyKind, Reset, Role, StreamId,
    Trailers, split_data,
};

use crate::sample_head;

#[test]
fn try_encode_refuses_frames_over_the_limit_and_leaves_dst_alone() {
    let frame = Frame::RequestBody(Data {
        stream: StreamId(1),
        data: Bytes::from(vec![0u8; 100]),
        end_stream: false,
    });
    let mut dst = BytesMut::from(&b"prefix"[..]);
    assert_eq!(
        frame.try_encode(&mut dst, 99),
        Err(EncodeError::FrameTooLarge {
            length: 100,
            max: 99
        })
    );
    assert_eq!(&dst[..], b"prefix");
    frame.try_encode(&mut dst, 100).unwrap();
    assert_eq!(dst.len(), 6 + frame.encoded_len());
}

/// One more field than a header list may carry (its receiver would refuse the frame).
fn too_many_fields() -> HeaderMap {
    let mut headers = HeaderMap::new();
    for _ in 0..=MAX_HEADER_FIELDS {
        headers.append("x", HeaderValue::from_static(""));
    }
    headers
}

#[test]
fn try_encode_refuses_more_fields_than_a_list_may_carry() {
    let frame = Frame::RequestTrailers(Trailers {
        stream: StreamId(1),
        headers: too_many_fields(),
    });
    let mut dst = BytesMut::new();
    assert_eq!(
        frame.try_encode(&mut dst, u32::MAX),
        Err(EncodeError::FieldTooLong {
            field: "trailers.headers",
            len: MAX_HEADER_FIELDS + 1,
            max: MAX_HEADER_FIELDS
        })
    );
    assert!(dst.is_empty());
}

/// `check_fits` answers what `try_encode` would, without encoding.
#[test]
fn check_fits_agrees_with_try_encode() {
    let frames = [
        Frame::RequestTrailers(Trailers {
            stream: StreamId(1),
            headers: too_many_fields(),
        }),
        Frame::RequestBody(Data {
            stream: StreamId(1),
            data: Bytes::from(vec![0u8; 100]),
            end_stream: false,
        }),
        Frame::ResponseHead(crate::sample_response_head()),
    ];
    for frame in &frames {
        for max in [99, 100, u32::MAX] {
            let mut dst = BytesMut::new();
            assert_eq!(
                frame.check_fits(max),
                frame.try_encode(&mut dst, max),
                "{max}"
            );
        }
    }
}

/// A RESET reason built from long error text is cut to MAX_REASON_LEN bytes, never inside a
/// character, and the frame then fits the smallest frame size.
#[test]
fn a_reset_reason_is_cut_at_a_character_boundary() {
    let long = "é".repeat(MAX_REASON_LEN); // two bytes each
    let reset = Reset::new(StreamId(1), ErrorCode::INTERNAL_ERROR, long.as_str());
    assert_eq!(reset.reason.len(), MAX_REASON_LEN);
    assert!(long.starts_with(&reset.reason));
    let odd = format!("x{long}");
    let reset = Reset::new(StreamId(1), ErrorCode::INTERNAL_ERROR, odd);
    assert_eq!(reset.reason.len(), MAX_REASON_LEN - 1);
    let short = Reset::new(StreamId(1), ErrorCode::CANCEL, "short");
    assert_eq!(short.reason, "short");
    assert!(
        Frame::Reset(reset)
            .check_fits(DEFAULT_MAX_FRAME_SIZE)
            .is_ok()
    );
}

#[test]
#[should_panic(expected = "cannot encode REQUEST_TRAILERS")]
fn encode_panics_on_unencodable_frames() {
    Frame::RequestTrailers(Trailers {
        stream: StreamId(1),
        headers: too_many_fields(),
    })
    .encode(&mut BytesMut::new());
}

#[test]
fn split_data_respects_the_frame_size() {
    let data = Bytes::from((0..=255u8).cycle().take(1000).collect::<Vec<_>>());
    let pieces: Vec<Data> = split_data(StreamId(3), data.clone(), true, 300).collect();
    assert_eq!(
        pieces.iter().map(|d| d.data.len()).collect::<Vec<_>>(),
        [300, 300, 300, 100]
    );
    assert_eq!(
        pieces.iter().map(|d| d.end_stream).collect::<Vec<_>>(),
        [false, false, false, true]
    );
    assert!(pieces.iter().all(|d| d.stream == StreamId(3)));
    let joined: Vec<u8> = pieces.iter().flat_map(|d| d.data.to_vec()).collect();
    assert_eq!(joined, data);
    // Zero-copy: the first piece points into the original buffer.
    assert_eq!(pieces[0].data.as_ptr(), data.as_ptr());
}

#[test]
fn split_data_edge_cases() {
    let exact: Vec<Data> = split_data(StreamId(1), Bytes::from(vec![1; 600]), false, 300).collect();
    assert_eq!(exact.len(), 2);
    assert!(!exact[1].end_stream);

    let bare_end: Vec<Data> = split_data(StreamId(1), Bytes::new(), true, 300).collect();
    assert_eq!(
        bare_end,
        [Data {
            stream: StreamId(1),
            data: Bytes::new(),
            end_stream: true
        }]
    );

    assert_eq!(split_data(StreamId(1), Bytes::new(), false, 300).count(), 0);
    // A zero limit is treated as 1 rather than looping forever.
    assert_eq!(
        split_data(StreamId(1), Bytes::from_static(b"abc"), false, 0).count(),
        3
    );
}

#[test]
fn flags_follow_the_payload_fields() {
    let ack = Frame::Control(ControlFrame {
        op_id: 1,
        is_response: true,
        body: Bytes::new(),
    });
    assert_eq!(ack.flags(), Flags::ACK);
    let empty = Frame::RequestHead(Box::new(sample_head(1, RequestBodyKind::Empty)));
    assert!(empty.is_end_stream());
    let with_body = Frame::RequestHead(Box::new(sample_head(1, RequestBodyKind::Length(3))));
    assert!(!with_body.is_end_stream());
    let trailers = Frame::ResponseTrailers(Trailers {
        stream: StreamId(1),
        headers: HeaderMap::new(),
    });
    assert_eq!(trailers.flags(), Flags::END_STREAM);
    assert_eq!(
        Frame::Hello(Hello::new(Role::Admin)).flags(),
        Flags::empty()
    );
}

#[test]
fn stream_and_type_accessors() {
    let credit = Frame::Credit(Credit::bytes(StreamId(9), 10));
    assert_eq!(credit.stream(), StreamId(9));
    assert_eq!(credit.frame_type(), FrameType::CREDIT);
    assert_eq!(
        Frame::Credit(Credit::requests(1)).stream(),
        StreamId::CONNECTION
    );
    assert_eq!(
        Frame::Hello(Hello::new(Role::App)).stream(),
        StreamId::CONNECTION
    );
}

#[test]
fn names_and_display() {
    assert_eq!(FrameType::ALL.len(), 18);
    assert!(FrameType::ALL.iter().all(|t| t.is_known()));
    assert_eq!(FrameType::REQUEST_HEAD.to_string(), "REQUEST_HEAD");
    assert_eq!(FrameType(0x99).to_string(), "frame type 0x99");
    assert_eq!(ErrorCode::VERSION_MISMATCH.to_string(), "VERSION_MISMATCH");
    assert_eq!(ErrorCode(0x1234).to_string(), "error code 0x1234");
    assert_eq!(
        format!("{:?}", Flags::END_STREAM | Flags::ACK),
        "Flags(END_STREAM | ACK)"
    );
}

#[test]
fn version_negotiation() {
    let hello = Hello {
        min_version: 1,
        max_version: 3,
        ..Hello::new(Role::App)
    };
    assert_eq!(hello.negotiate(1, 1), Some(1));
    assert_eq!(hello.negotiate(2, 5), Some(3));
    assert_eq!(hello.negotiate(4, 5), None);
    let newer = Hello {
        min_version: 2,
        max_version: 2,
        ..Hello::new(Role::App)
    };
    assert_eq!(newer.negotiate(1, 1), None);
}
