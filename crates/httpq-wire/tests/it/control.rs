//! CONTROL frames: JSON shapes, round trips through the frame codec, typed errors.

use std::collections::BTreeMap;

use bytes::{Bytes, BytesMut};
use httpq_wire::control::{
    ControlError, ControlRequest, ControlResponse, ErrorCode, Http503Verbosity, RequestQueueMode,
};
use httpq_wire::{ControlFrame, Decoder, Frame};
use proptest::prelude::*;
use serde_json::json;

use crate::strategy::string;

fn through_the_wire(frame: &Frame) -> ControlFrame {
    let mut buf = BytesMut::new();
    frame.encode(&mut buf);
    match Decoder::default().decode(&mut buf).unwrap() {
        Some(Frame::Control(control)) => control,
        other => panic!("not a control frame: {other:?}"),
    }
}

fn json_of(frame: &Frame) -> serde_json::Value {
    let Frame::Control(control) = frame else {
        panic!()
    };
    serde_json::from_slice(&control.body).unwrap()
}

fn all_requests() -> Vec<ControlRequest> {
    vec![
        ControlRequest::CreateQueue {
            name: Some("api".into()),
            mode: RequestQueueMode::CreateOrAttach,
            request_queue_limit: Some(1000),
            http503_verbosity: Some(Http503Verbosity::Limited),
            retention_secs: Some(30),
            max_accepts: Some(8),
            acl: vec!["user:www-data".into(), "group:web".into()],
        },
        ControlRequest::CreateQueue {
            name: None,
            mode: RequestQueueMode::Create,
            request_queue_limit: None,
            http503_verbosity: None,
            retention_secs: None,
            max_accepts: None,
            acl: Vec::new(),
        },
        ControlRequest::CloseQueue { queue: 7 },
        ControlRequest::AddUrl {
            queue: 7,
            prefix: "https://+:443/api/".into(),
        },
        ControlRequest::RemoveUrl {
            queue: 7,
            prefix: "https://+:443/api/".into(),
        },
        ControlRequest::Admin {
            command: "add urlacl".into(),
            args: BTreeMap::from([
                ("url".into(), "http://+:80/".into()),
                ("user".into(), "svc".into()),
            ]),
        },
    ]
}

#[test]
fn every_request_round_trips() {
    for (op_id, request) in all_requests().into_iter().enumerate() {
        let op_id = u32::try_from(op_id).unwrap();
        let control = through_the_wire(&Frame::control(op_id, &request));
        assert_eq!(control.op_id, op_id);
        assert!(!control.is_response);
        assert_eq!(control.request().unwrap(), request);
    }
}

#[test]
fn request_json_shape() {
    let frame = Frame::control(
        1,
        &ControlRequest::CreateQueue {
            name: Some("api".into()),
            mode: RequestQueueMode::CreateOrAttach,
            request_queue_limit: None,
            http503_verbosity: Some(Http503Verbosity::Full),
            retention_secs: None,
            max_accepts: Some(4),
            acl: vec!["group:web".into()],
        },
    );
    assert_eq!(
        json_of(&frame),
        json!({
            "op": "create_queue",
            "name": "api",
            "mode": "create_or_attach",
            "http503_verbosity": "full",
            "max_accepts": 4,
            "acl": ["group:web"],
        })
    );
}

#[test]
fn missing_optional_fields_take_defaults_and_unknown_fields_are_ignored() {
    let control = ControlFrame {
        op_id: 1,
        is_response: false,
        body: Bytes::from_static(br#"{"op":"create_queue","future_field":true}"#),
    };
    assert_eq!(
        control.request().unwrap(),
        ControlRequest::CreateQueue {
            name: None,
            mode: RequestQueueMode::Create,
            request_queue_limit: None,
            http503_verbosity: None,
            retention_secs: None,
            max_accepts: None,
            acl: Vec::new(),
        }
    );
    let admin = ControlFrame {
        op_id: 1,
        is_response: false,
        body: Bytes::from_static(br#"{"op":"admin","command":"show servicestate"}"#),
    };
    assert_eq!(
        admin.request().unwrap(),
        ControlRequest::Admin {
            command: "show servicestate".into(),
            args: BTreeMap::new()
        }
    );
}

#[test]
fn responses_round_trip() {
    let ok = ControlResponse::Ok {
        result: json!({"queue": 7, "created": true}),
    };
    let control = through_the_wire(&Frame::control_response(9, &ok));
    assert!(control.is_response);
    assert_eq!(control.op_id, 9);
    assert_eq!(control.response().unwrap(), ok);
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&control.body).unwrap(),
        json!({"status": "ok", "result": {"queue": 7, "created": true}})
    );

    for code in [
        ErrorCode::AlreadyExists,
        ErrorCode::NotFound,
        ErrorCode::AccessDenied,
        ErrorCode::InvalidParameter,
        ErrorCode::Busy,
        ErrorCode::Internal,
    ] {
        let err = ControlResponse::Error {
            code,
            message: "why".into(),
        };
        let control = through_the_wire(&Frame::control_response(1, &err));
        assert_eq!(control.response().unwrap(), err);
    }
    let err = ControlResponse::Error {
        code: ErrorCode::AlreadyExists,
        message: "taken".into(),
    };
    assert_eq!(
        json_of(&Frame::control_response(1, &err)),
        json!({"status": "error", "code": "already_exists", "message": "taken"})
    );
}

#[test]
fn unknown_error_codes_from_newer_listeners_survive() {
    let control = ControlFrame {
        op_id: 1,
        is_response: true,
        body: Bytes::from_static(br#"{"status":"error","code":"quota_exceeded","message":"m"}"#),
    };
    assert_eq!(
        control.response().unwrap(),
        ControlResponse::Error {
            code: ErrorCode::Unknown,
            message: "m".into()
        }
    );
}

#[test]
fn typed_errors() {
    let request = through_the_wire(&Frame::control(1, &ControlRequest::CloseQueue { queue: 1 }));
    assert!(matches!(
        request.response(),
        Err(ControlError::NotAResponse)
    ));
    let response = through_the_wire(&Frame::control_response(
        1,
        &ControlResponse::Ok { result: json!({}) },
    ));
    assert!(matches!(response.request(), Err(ControlError::NotARequest)));

    for body in [
        &b"not json"[..],
        br#"{"op":"format_disk"}"#,
        br#"[1,2]"#,
        br#"{"op":"close_queue"}"#,
        b"\xff",
    ] {
        let control = ControlFrame {
            op_id: 1,
            is_response: false,
            body: Bytes::from(body.to_vec()),
        };
        let err = control.request().unwrap_err();
        assert!(matches!(err, ControlError::InvalidJson { .. }), "{body:?}");
        assert_eq!(err.code(), ErrorCode::InvalidParameter);
        assert_eq!(
            err.to_string(),
            "control body is not a valid control message"
        );
        assert!(std::error::Error::source(&err).is_some());
    }
}

proptest! {
    #[test]
    fn arbitrary_requests_round_trip(
        op_id in any::<u32>(),
        queue in any::<u64>(),
        prefix in string(),
        name in proptest::option::of(string()),
        limit in proptest::option::of(any::<u32>()),
        retention in proptest::option::of(any::<u64>()),
        args in proptest::collection::btree_map(string(), string(), 0..4),
    ) {
        for request in [
            ControlRequest::CreateQueue {
                name: name.clone(),
                mode: RequestQueueMode::Attach,
                request_queue_limit: limit,
                http503_verbosity: Some(Http503Verbosity::Basic),
                retention_secs: retention,
                max_accepts: limit,
                acl: vec![prefix.clone()],
            },
            ControlRequest::AddUrl { queue, prefix: prefix.clone() },
            ControlRequest::RemoveUrl { queue, prefix: prefix.clone() },
            ControlRequest::Admin { command: prefix.clone(), args: args.clone() },
        ] {
            let control = through_the_wire(&Frame::control(op_id, &request));
            prop_assert_eq!(control.request().unwrap(), request);
        }
    }
}
