//! Typed control messages: the JSON carried by `CONTROL` frames (wire-protocol.md §7).
//!
//! Control operations are rare (queue setup, prefix changes, admin commands), so they are
//! JSON for easy evolution and debugging, while the per-request frames stay binary. A request
//! is an object tagged by `"op"`; a response is an object tagged by `"status"`:
//!
//! ```
//! use httpq_wire::control::{ControlRequest, ControlResponse, ErrorCode};
//! use httpq_wire::Frame;
//!
//! let frame = Frame::control(1, &ControlRequest::AddUrl {
//!     queue: 7,
//!     prefix: "http://+:8080/api/".into(),
//! });
//! let Frame::Control(control) = frame else { unreachable!() };
//! assert_eq!(
//!     std::str::from_utf8(&control.body).unwrap(),
//!     r#"{"op":"add_url","queue":7,"prefix":"http://+:8080/api/"}"#,
//! );
//!
//! let answer = Frame::control_response(1, &ControlResponse::Error {
//!     code: ErrorCode::AlreadyExists,
//!     message: "prefix is registered by another queue".into(),
//! });
//! let Frame::Control(answer) = answer else { unreachable!() };
//! assert!(matches!(answer.response(), Ok(ControlResponse::Error { .. })));
//! ```
//!
//! Unknown fields in an object are ignored, so a newer peer may add optional fields;
//! an unknown `"op"` is an error the listener answers with [`ErrorCode::InvalidParameter`].

use std::collections::BTreeMap;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// A control request, app (or admin client) → listener.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
#[non_exhaustive]
pub enum ControlRequest {
    /// Create or attach to a request queue (`HttpCreateRequestQueue`). The result is
    /// `{"queue": <id>, "created": <bool>}`.
    CreateQueue {
        /// The queue's name; `None` for an anonymous queue (only `Create` is valid then).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        /// Create, attach or either.
        #[serde(default)]
        mode: RequestQueueMode,
        /// Most requests waiting in the queue (HTTP.sys default 1000). Creator only.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        request_queue_limit: Option<u32>,
        /// How a full queue answers. Creator only.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        http503_verbosity: Option<Http503Verbosity>,
        /// How long a named queue outlives its last process, holding its requests.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retention_secs: Option<u64>,
        /// Request credits to grant at once, as if a CREDIT frame followed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max_accepts: Option<u32>,
        /// Who besides the creator (and root) may attach to a named queue: `user:NAME` and
        /// `group:NAME` entries. Creator only.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        acl: Vec<String>,
    },
    /// Stop receiving from a queue; the queue itself lives on while others use it (or its
    /// retention lasts). The result is `{}`.
    CloseQueue {
        /// The id CreateQueue returned.
        queue: u64,
    },
    /// Register a URL prefix on a queue (`HttpAddUrlToUrlGroup`). The result is
    /// `{"url_context": <id>}`, the id REQUEST_HEAD carries for requests it matched.
    AddUrl {
        /// The id CreateQueue returned.
        queue: u64,
        /// The prefix, `scheme://host:port/path/`.
        prefix: String,
    },
    /// Remove a URL prefix from a queue. The result is `{}`.
    RemoveUrl {
        /// The id CreateQueue returned.
        queue: u64,
        /// The prefix as registered.
        prefix: String,
    },
    /// An administration command (the CLI's verbs); needs an admin peer (SO_PEERCRED).
    Admin {
        /// The command (`"show servicestate"`).
        command: String,
        /// Its arguments (`url=...`, `user=...`).
        #[serde(default)]
        args: BTreeMap<String, String>,
    },
}

impl ControlRequest {
    pub(crate) fn to_json(&self) -> Bytes {
        Bytes::from(to_json_vec(self))
    }

    pub(crate) fn from_json(body: &[u8]) -> Result<Self, ControlError> {
        serde_json::from_slice(body).map_err(|source| ControlError::InvalidJson { source })
    }
}

/// `RequestQueueMode`: whether CreateQueue creates a queue, attaches to one, or either.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum RequestQueueMode {
    /// Create the queue; fails with `already_exists` if the name is taken (HTTP.sys default).
    #[default]
    Create,
    /// Attach to an existing queue; fails with `not_found` if there is none.
    Attach,
    /// Create the queue, or attach if it exists.
    CreateOrAttach,
}

/// `Http503Verbosity`: how the listener answers when it refuses a request for this queue.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Http503Verbosity {
    /// Reset the connection without a response (HTTP.sys default).
    #[default]
    Basic,
    /// Answer `503 Service Unavailable`.
    Limited,
    /// Answer 503 with the reason in the body.
    Full,
}

/// A control response, listener → app, in a CONTROL frame with the ACK flag.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
#[non_exhaustive]
pub enum ControlResponse {
    /// The operation succeeded.
    Ok {
        /// Operation-specific result (see each [`ControlRequest`] variant).
        #[serde(default)]
        result: serde_json::Value,
    },
    /// The operation failed.
    Error {
        /// What kind of failure, HTTP.sys style.
        code: ErrorCode,
        /// Detail for humans and logs.
        message: String,
    },
}

impl ControlResponse {
    pub(crate) fn to_json(&self) -> Bytes {
        Bytes::from(to_json_vec(self))
    }

    pub(crate) fn from_json(body: &[u8]) -> Result<Self, ControlError> {
        serde_json::from_slice(body).map_err(|source| ControlError::InvalidJson { source })
    }
}

/// Why a control operation failed, mirroring the Win32 errors HTTP.sys returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorCode {
    /// `ERROR_ALREADY_EXISTS`: the queue name or URL prefix is taken.
    AlreadyExists,
    /// `ERROR_FILE_NOT_FOUND` / `ERROR_NOT_FOUND`: no such queue or prefix.
    NotFound,
    /// `ERROR_ACCESS_DENIED`: the peer's credentials (URL ACL, queue ACL, admin group) do
    /// not allow it.
    AccessDenied,
    /// `ERROR_INVALID_PARAMETER`: malformed request, bad prefix, unknown operation.
    InvalidParameter,
    /// `ERROR_BUSY`: the resource is in a state that does not allow it now.
    Busy,
    /// An internal listener error; see the listener's log.
    Internal,
    /// A code this version does not know (from a newer listener). Never sent.
    #[serde(other)]
    Unknown,
}

/// Why a CONTROL frame's body is not the expected message.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ControlError {
    /// `request()` on a frame with the ACK flag.
    #[error("control frame is a response, not a request")]
    NotARequest,
    /// `response()` on a frame without the ACK flag.
    #[error("control frame is a request, not a response")]
    NotAResponse,
    /// The body is not JSON for the expected message type.
    #[error("control body is not a valid control message")]
    InvalidJson {
        /// The parser's error, with line and column.
        source: serde_json::Error,
    },
}

impl ControlError {
    /// The code a listener answers a malformed request with.
    #[must_use]
    pub fn code(&self) -> ErrorCode {
        ErrorCode::InvalidParameter
    }
}

fn to_json_vec<T: Serialize>(value: &T) -> Vec<u8> {
    // Serialising these types into a Vec cannot fail: every map has string keys, and no
    // Serialize impl here returns an error.
    serde_json::to_vec(value).expect("control messages always serialise to JSON")
}
