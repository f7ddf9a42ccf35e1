//! The per-stream state table of wire-protocol.md §6 and the windows of §8.

use bytes::Bytes;
use http::StatusCode;
use httpq_wire::{
    Cancel, CancelReason, Credit, Data, Delegate, Direction, ErrorCode, Flags, Frame, FrameType,
    Ping, ProtocolError, RequestBodyKind, RequestFlags, Reset, ResponseFile, ResponseHead,
    SetLimit, StreamId, StreamState, Trailers,
};

use crate::sample_head;

const L2A: Direction = Direction::ListenerToApp;
const A2L: Direction = Direction::AppToListener;
const S: StreamId = StreamId(1);

fn head(body: RequestBodyKind, flags: RequestFlags) -> Frame {
    let mut head = sample_head(1, body);
    head.flags = flags;
    Frame::RequestHead(Box::new(head))
}

fn req_body(len: usize, end_stream: bool) -> Frame {
    Frame::RequestBody(Data {
        stream: S,
        data: Bytes::from(vec![b'x'; len]),
        end_stream,
    })
}

fn resp_body(len: usize, end_stream: bool) -> Frame {
    Frame::ResponseBody(Data {
        stream: S,
        data: Bytes::from(vec![b'y'; len]),
        end_stream,
    })
}

fn upgraded(len: usize, end_stream: bool) -> Frame {
    Frame::UpgradedData(Data {
        stream: S,
        data: Bytes::from(vec![b'z'; len]),
        end_stream,
    })
}

fn resp_head(status: u16, end_stream: bool) -> Frame {
    Frame::ResponseHead(ResponseHead {
        stream: S,
        status: StatusCode::from_u16(status).unwrap(),
        headers: http::HeaderMap::new(),
        cache: None,
        body_length: None,
        end_stream,
    })
}

fn credit(bytes: u32) -> Frame {
    Frame::Credit(Credit::bytes(S, bytes))
}

fn reset() -> Frame {
    Frame::Reset(Reset {
        stream: S,
        code: ErrorCode::CANCEL,
        reason: String::new(),
    })
}

fn req_trailers() -> Frame {
    Frame::RequestTrailers(Trailers {
        stream: S,
        headers: http::HeaderMap::new(),
    })
}

fn resp_trailers() -> Frame {
    Frame::ResponseTrailers(Trailers {
        stream: S,
        headers: http::HeaderMap::new(),
    })
}

fn file(end_stream: bool) -> Frame {
    Frame::ResponseFile(ResponseFile {
        stream: S,
        fd_index: 0,
        offset: 0,
        length: 1 << 40,
        end_stream,
    })
}

fn set_limit() -> Frame {
    Frame::SetLimit(SetLimit {
        stream: S,
        max_request_body_size: 10,
    })
}

fn delegate() -> Frame {
    Frame::Delegate(Delegate {
        stream: S,
        queue_name: "other".into(),
        url: None,
    })
}

/// Feeds frames that must all be accepted.
fn run(state: &mut StreamState, frames: &[(Direction, Frame)]) {
    for (i, (dir, frame)) in frames.iter().enumerate() {
        if let Err(err) = state.on_frame(*dir, frame) {
            panic!("frame {i} ({}) rejected: {err}", frame.frame_type());
        }
    }
}

fn opened(body: RequestBodyKind, flags: RequestFlags) -> StreamState {
    let mut state = StreamState::new();
    run(&mut state, &[(L2A, head(body, flags))]);
    state
}

fn rejected(state: &mut StreamState, dir: Direction, frame: &Frame) -> ProtocolError {
    let before = format!("{state:?}");
    let err = state.on_frame(dir, frame).unwrap_err();
    assert_eq!(
        format!("{state:?}"),
        before,
        "a rejected frame must not change the state"
    );
    err
}

#[test]
fn get_without_body() {
    let mut state = opened(RequestBodyKind::Empty, RequestFlags::empty());
    assert!(!state.is_closed());
    run(&mut state, &[(A2L, resp_head(204, true))]);
    assert!(state.is_closed());
}

#[test]
fn post_with_body_trailers_and_response() {
    let mut state = opened(RequestBodyKind::Chunked, RequestFlags::empty());
    run(
        &mut state,
        &[
            (A2L, credit(100)),
            (L2A, req_body(10, false)),
            (L2A, req_trailers()),
            (A2L, resp_head(103, false)),
            (A2L, resp_head(200, false)),
            (A2L, resp_body(5, false)),
            (A2L, file(false)),
            (L2A, credit(5)),
            (A2L, resp_trailers()),
        ],
    );
    assert!(state.is_closed());
}

#[test]
fn frames_before_request_head_are_rejected() {
    let mut state = StreamState::new();
    for (dir, frame) in [
        (A2L, resp_head(200, true)),
        (A2L, credit(1)),
        (L2A, req_body(1, true)),
    ] {
        assert!(matches!(
            rejected(&mut state, dir, &frame),
            ProtocolError::UnexpectedFrame { .. }
        ));
    }
}

#[test]
fn request_head_only_once() {
    let mut state = opened(RequestBodyKind::Length(5), RequestFlags::empty());
    let err = rejected(
        &mut state,
        L2A,
        &head(RequestBodyKind::Empty, RequestFlags::empty()),
    );
    assert_eq!(err.code(), ErrorCode::PROTOCOL_ERROR);
}

#[test]
fn nothing_after_the_request_ends() {
    let mut state = opened(RequestBodyKind::Length(5), RequestFlags::empty());
    run(&mut state, &[(L2A, req_body(5, true))]);
    rejected(&mut state, L2A, &req_body(1, false));
    rejected(&mut state, L2A, &req_trailers());

    let mut state = opened(RequestBodyKind::Empty, RequestFlags::empty());
    rejected(&mut state, L2A, &req_body(0, true));
}

#[test]
fn directions_are_enforced() {
    let mut state = opened(RequestBodyKind::Chunked, RequestFlags::empty());
    for (dir, frame) in [
        (A2L, req_body(1, false)),
        (L2A, resp_head(200, false)),
        (L2A, set_limit()),
        (L2A, delegate()),
        (
            A2L,
            Frame::Cancel(Cancel {
                stream: S,
                reason: CancelReason::ClientDisconnected,
            }),
        ),
    ] {
        let ty = frame.frame_type();
        assert_eq!(
            rejected(&mut state, dir, &frame),
            ProtocolError::WrongDirection { ty, dir }
        );
    }
}

#[test]
fn connection_frames_and_unknown_frames() {
    let mut state = opened(RequestBodyKind::Empty, RequestFlags::empty());
    let ping = Frame::Ping(Ping {
        payload: 1,
        ack: false,
    });
    assert_eq!(
        rejected(&mut state, A2L, &ping),
        ProtocolError::NotAStreamFrame {
            ty: FrameType::PING
        }
    );
    assert_eq!(
        rejected(&mut state, A2L, &Frame::Credit(Credit::requests(1))),
        ProtocolError::NotAStreamFrame {
            ty: FrameType::CREDIT
        }
    );
    let unknown = Frame::Unknown {
        ty: FrameType(0x70),
        flags: Flags::IGNORABLE,
        stream: S,
        payload: Bytes::new(),
    };
    state.on_frame(A2L, &unknown).unwrap();
}

#[test]
fn response_head_rules() {
    let mut state = opened(RequestBodyKind::Empty, RequestFlags::empty());
    // Body before head.
    rejected(&mut state, A2L, &resp_body(1, false));
    rejected(&mut state, A2L, &file(true));
    rejected(&mut state, A2L, &resp_trailers());
    // 1xx cannot end the stream.
    rejected(&mut state, A2L, &resp_head(100, true));
    run(
        &mut state,
        &[(A2L, resp_head(103, false)), (A2L, resp_head(200, false))],
    );
    // Only one final head.
    rejected(&mut state, A2L, &resp_head(500, false));
    run(&mut state, &[(A2L, resp_trailers())]);
    rejected(&mut state, A2L, &resp_body(1, true));
    assert!(state.is_closed());
}

#[test]
fn response_may_start_before_the_request_ends() {
    let mut state = opened(RequestBodyKind::Length(1000), RequestFlags::empty());
    run(&mut state, &[(A2L, resp_head(413, true))]);
    assert!(!state.is_closed());
    run(&mut state, &[(L2A, req_body(1000, true))]);
    assert!(state.is_closed());
}

#[test]
fn request_body_window() {
    let mut state = opened(RequestBodyKind::Chunked, RequestFlags::empty());
    assert_eq!(state.to_app_window(), 65_536);
    // The initial window may be used before any CREDIT (no Expect: 100-continue).
    run(&mut state, &[(L2A, req_body(65_000, false))]);
    let err = rejected(&mut state, L2A, &req_body(537, false));
    assert_eq!(
        err,
        ProtocolError::FlowControl {
            ty: FrameType::REQUEST_BODY,
            length: 537,
            window: 536
        }
    );
    assert_eq!(err.code(), ErrorCode::FLOW_CONTROL_ERROR);
    run(&mut state, &[(A2L, credit(1)), (L2A, req_body(537, true))]);
    assert_eq!(state.to_app_window(), 0);
}

#[test]
fn response_body_window() {
    let mut state = StreamState::with_initial_window(10);
    run(
        &mut state,
        &[
            (L2A, head(RequestBodyKind::Empty, RequestFlags::empty())),
            (A2L, resp_head(200, false)),
        ],
    );
    run(&mut state, &[(A2L, resp_body(10, false))]);
    rejected(&mut state, A2L, &resp_body(1, false));
    // Files do not use the window.
    run(
        &mut state,
        &[
            (A2L, file(false)),
            (L2A, credit(3)),
            (A2L, resp_body(3, true)),
        ],
    );
}

#[test]
fn window_overflow() {
    let mut state = opened(RequestBodyKind::Chunked, RequestFlags::empty());
    run(&mut state, &[(A2L, credit(u32::MAX / 2 - 65_536))]);
    let err = rejected(&mut state, A2L, &credit(2));
    assert!(matches!(err, ProtocolError::WindowOverflow { .. }));
    assert_eq!(err.code(), ErrorCode::FLOW_CONTROL_ERROR);
}

#[test]
fn expect_continue_waits_for_the_first_credit() {
    let mut state = opened(RequestBodyKind::Length(10), RequestFlags::EXPECT_CONTINUE);
    rejected(&mut state, L2A, &req_body(10, true));
    assert!(!state.is_reading());
    run(&mut state, &[(A2L, credit(10))]);
    assert!(state.is_reading());
    run(&mut state, &[(L2A, req_body(10, true))]);
}

#[test]
fn set_limit_only_before_the_first_credit() {
    let mut state = opened(RequestBodyKind::Length(10), RequestFlags::empty());
    run(
        &mut state,
        &[(A2L, set_limit()), (A2L, set_limit()), (A2L, credit(10))],
    );
    rejected(&mut state, A2L, &set_limit());
}

#[test]
fn delegate_before_reading_or_responding() {
    let mut state = opened(RequestBodyKind::Length(10), RequestFlags::empty());
    run(&mut state, &[(A2L, delegate())]);
    assert!(state.is_closed());
    // The listener's answer, and body bytes it sent before it saw DELEGATE, are accepted.
    run(&mut state, &[(L2A, req_body(10, true)), (L2A, reset())]);
    // The app itself sends nothing more.
    rejected(&mut state, A2L, &resp_head(200, true));

    let mut state = opened(RequestBodyKind::Length(10), RequestFlags::empty());
    run(&mut state, &[(A2L, credit(10))]);
    rejected(&mut state, A2L, &delegate());

    let mut state = opened(RequestBodyKind::Empty, RequestFlags::empty());
    run(&mut state, &[(A2L, resp_head(103, false))]);
    rejected(&mut state, A2L, &delegate());
}

#[test]
fn reset_ends_the_stream_for_its_sender() {
    let mut state = opened(RequestBodyKind::Chunked, RequestFlags::empty());
    run(&mut state, &[(A2L, reset())]);
    assert!(state.is_closed());
    // Frames the listener sent before it saw the RESET cross on the wire: accepted.
    run(&mut state, &[(L2A, req_body(10, false)), (L2A, reset())]);
    // The app sends nothing after its own RESET.
    let err = rejected(&mut state, A2L, &resp_head(200, true));
    assert!(matches!(
        err,
        ProtocolError::UnexpectedFrame {
            ty: FrameType::RESPONSE_HEAD,
            ..
        }
    ));
    rejected(&mut state, A2L, &reset());
}

#[test]
fn cancel_ends_the_stream() {
    let mut state = opened(RequestBodyKind::Empty, RequestFlags::empty());
    let cancel = Frame::Cancel(Cancel {
        stream: S,
        reason: CancelReason::RequestTimedOut,
    });
    run(
        &mut state,
        &[(L2A, cancel.clone()), (A2L, resp_head(200, false))],
    );
    assert!(state.is_closed());
    rejected(&mut state, L2A, &cancel);
}

#[test]
fn upgrade() {
    let mut state = opened(RequestBodyKind::Empty, RequestFlags::UPGRADE);
    run(&mut state, &[(A2L, resp_head(101, false))]);
    run(
        &mut state,
        &[
            (L2A, upgraded(100, false)),
            (A2L, upgraded(100, false)),
            (A2L, upgraded(0, true)),
        ],
    );
    // The app half-closed: no more data from it, but the listener's half is open.
    rejected(&mut state, A2L, &upgraded(1, false));
    assert!(!state.is_closed());
    run(&mut state, &[(L2A, upgraded(1, true))]);
    assert!(state.is_closed());
}

#[test]
fn upgrade_rules() {
    // No 101 without the UPGRADE flag.
    let mut state = opened(RequestBodyKind::Empty, RequestFlags::empty());
    rejected(&mut state, A2L, &resp_head(101, false));
    // No 101 before the request ends, or with END_STREAM.
    let mut state = opened(RequestBodyKind::Length(1), RequestFlags::UPGRADE);
    rejected(&mut state, A2L, &resp_head(101, false));
    let mut state = opened(RequestBodyKind::Empty, RequestFlags::UPGRADE);
    rejected(&mut state, A2L, &resp_head(101, true));
    // No upgraded data without 101; no response body after it.
    rejected(&mut state, L2A, &upgraded(1, false));
    run(&mut state, &[(A2L, resp_head(101, false))]);
    rejected(&mut state, A2L, &resp_body(1, false));
    // An upgrade request answered normally never carries upgraded data.
    let mut state = opened(RequestBodyKind::Empty, RequestFlags::UPGRADE);
    run(&mut state, &[(A2L, resp_head(200, false))]);
    rejected(&mut state, A2L, &upgraded(1, false));
}

#[test]
fn upgraded_data_uses_the_windows() {
    let mut state = StreamState::with_initial_window(4);
    run(
        &mut state,
        &[
            (L2A, head(RequestBodyKind::Empty, RequestFlags::UPGRADE)),
            (A2L, resp_head(101, false)),
        ],
    );
    run(&mut state, &[(L2A, upgraded(4, false))]);
    rejected(&mut state, L2A, &upgraded(1, false));
    run(&mut state, &[(A2L, credit(1)), (L2A, upgraded(1, false))]);
}

#[test]
fn after_a_normal_close_only_crossing_frames_are_allowed() {
    let mut state = opened(RequestBodyKind::Empty, RequestFlags::empty());
    run(&mut state, &[(A2L, resp_head(200, true))]);
    assert!(state.is_closed());
    rejected(&mut state, A2L, &set_limit());
    rejected(&mut state, A2L, &resp_head(200, true));
    let cancel = Frame::Cancel(Cancel {
        stream: S,
        reason: CancelReason::ClientDisconnected,
    });
    run(
        &mut state,
        &[(L2A, credit(10)), (A2L, credit(10)), (L2A, cancel)],
    );
    assert!(state.is_closed());
}
