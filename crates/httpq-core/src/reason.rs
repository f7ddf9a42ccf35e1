//! Why the listener answered a request itself, with HTTP.sys's error-log reason phrases.
//!
//! HTTP.sys writes one line to its error log (`httperr*.log`) for every request or connection
//! it refuses, naming a short reason phrase (KB820729). httpq keeps the same vocabulary so an
//! operator used to `httperr.log` reads httpq's logs without a lookup table.

use std::borrow::Cow;
use std::fmt;

/// An HTTP.sys error-log reason phrase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Reason {
    /// A generic parse error the other reasons do not cover.
    BadRequest,
    /// The Host header names no host any registered prefix accepts, or is malformed.
    Hostname,
    /// One header line is longer than `max_field_length`.
    FieldLength,
    /// The request line and headers together exceed `max_request_bytes`.
    RequestLength,
    /// The request target could not be parsed or canonicalised.
    Url,
    /// The request target exceeds a URL limit (segment length or count).
    UrlLength,
    /// A header is malformed (bad name or value bytes, obs-fold, too many headers).
    Header,
    /// The method token is invalid.
    Verb,
    /// The HTTP version is not supported (505).
    VersionNotSupported,
    /// A body-bearing request without a length (411).
    LengthRequired,
    /// An unknown transfer coding (501).
    NotImplemented,
    /// A bare CR or LF where a CRLF is required.
    InvalidCrLf,
    /// Ambiguous or invalid message framing: Content-Length with Transfer-Encoding, or a
    /// duplicate or malformed Content-Length.
    Number,
    /// The body is larger than `max_request_body_size` (413).
    EntityTooLarge,
    /// The request queue is full (503 or reset, per `Http503Verbosity`).
    QueueFull,
    /// `max_connections` was reached; the connection was refused.
    ConnLimit,
    /// No request head arrived within `header_wait`.
    TimerHeaderWait,
    /// A keep-alive connection stayed idle longer than `idle_connection`.
    TimerConnectionIdle,
    /// The request body stalled longer than `entity_body` (or `drain_entity_body` while draining).
    TimerEntityBody,
    /// The client read the response slower than `min_send_bytes_per_second`.
    TimerMinBytesPerSecond,
    /// The request waited in the queue longer than `request_queue`.
    TimerReqQueue,
    /// The application's queue is shutting down or gone.
    AppShutdown,
    /// The host is known but no prefix matches the path (404; not an HTTP.sys log reason,
    /// HTTP.sys answers 400 here, httpq answers 404 as its issue tracker decided).
    NotFound,
    /// The client reset or closed the connection before the response completed.
    ClientReset,
    /// The request names a host whose TLS binding differs from the one the connection's
    /// handshake chose, and one of them has a client-certificate policy (421; not an
    /// HTTP.sys reason).
    Misdirected,
}

impl Reason {
    /// The phrase HTTP.sys writes in its error log.
    #[must_use]
    pub fn phrase(self) -> &'static str {
        match self {
            Reason::BadRequest => "BadRequest",
            Reason::Hostname => "Hostname",
            Reason::FieldLength => "FieldLength",
            Reason::RequestLength => "RequestLength",
            Reason::Url => "URL",
            Reason::UrlLength => "URL_Length",
            Reason::Header => "Header",
            Reason::Verb => "Verb",
            Reason::VersionNotSupported => "Version_N/S",
            Reason::LengthRequired => "LengthRequired",
            Reason::NotImplemented => "N/I",
            Reason::InvalidCrLf => "Invalid_CR/LF",
            Reason::Number => "Number",
            Reason::EntityTooLarge => "EntityTooLarge",
            Reason::QueueFull => "QueueFull",
            Reason::ConnLimit => "ConnLimit",
            Reason::TimerHeaderWait => "Timer_HeaderWait",
            Reason::TimerConnectionIdle => "Timer_ConnectionIdle",
            Reason::TimerEntityBody => "Timer_EntityBody",
            Reason::TimerMinBytesPerSecond => "Timer_MinBytesPerSecond",
            Reason::TimerReqQueue => "Timer_ReqQueue",
            Reason::AppShutdown => "AppShutdown",
            Reason::NotFound => "NotFound",
            Reason::ClientReset => "Client_Reset",
            Reason::Misdirected => "Misdirected",
        }
    }

    /// The status code the listener answers with for this reason (when it answers at all).
    #[must_use]
    pub fn status(self) -> u16 {
        match self {
            Reason::VersionNotSupported => 505,
            Reason::LengthRequired => 411,
            Reason::NotImplemented => 501,
            Reason::EntityTooLarge => 413,
            Reason::QueueFull | Reason::AppShutdown | Reason::ConnLimit => 503,
            Reason::TimerReqQueue => 503,
            Reason::NotFound => 404,
            Reason::Misdirected => 421,
            _ => 400,
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.phrase())
    }
}

/// A request the listener refuses, with the reason logged and the detail for the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// HTTP.sys reason phrase (also picks the status code).
    pub reason: Reason,
    /// Human-readable detail: what exactly was wrong. Sent to the client in the body of
    /// 4xx answers and written to the log.
    pub detail: Cow<'static, str>,
}

impl Rejection {
    /// A rejection with a static or owned detail.
    pub fn new(reason: Reason, detail: impl Into<Cow<'static, str>>) -> Self {
        Rejection {
            reason,
            detail: detail.into(),
        }
    }

    /// The status code to answer with.
    #[must_use]
    pub fn status(&self) -> u16 {
        self.reason.status()
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({}): {}",
            self.reason.status(),
            self.reason,
            self.detail
        )
    }
}

impl std::error::Error for Rejection {}
