//! The one conversion between the `http` crate's heads and the wire's, which both ends use:
//! the listener (httpqd) turns the request it parsed into `REQUEST_HEAD` and the app's
//! `RESPONSE_HEAD` into an `http` response; the app library does the reverse. What a request
//! carries beyond its method, URI, version and headers (the target as sent, the ids, the
//! addresses, TLS, the timing stamps, the body limit) travels as [`RequestMeta`].
//!
//! ```
//! use httpq_wire::{Decoder, Frame, RequestBodyKind, RequestHeadRef, RequestMeta};
//!
//! // The listener encodes the request it parsed, borrowed.
//! let (parts, ()) = http::Request::get("/a/b?q=1")
//!     .header("host", "example.com")
//!     .body(())
//!     .unwrap()
//!     .into_parts();
//! let meta = RequestMeta::new(
//!     "127.0.0.1:80".parse().unwrap(),
//!     "127.0.0.1:5000".parse().unwrap(),
//! );
//! let mut head = RequestHeadRef::from_http(&parts, &meta, 1, 7, RequestBodyKind::Empty);
//! head.stream = httpq_wire::StreamId(1);
//! let mut bytes = bytes::BytesMut::new();
//! head.try_encode(&mut bytes, httpq_wire::DEFAULT_MAX_FRAME_SIZE).unwrap();
//! // The app decodes it and rebuilds the request.
//! let Some(Frame::RequestHead(head)) =
//!     Decoder::new(httpq_wire::DEFAULT_MAX_FRAME_SIZE).decode(&mut bytes).unwrap()
//! else {
//!     panic!()
//! };
//! assert_eq!((head.path.as_str(), head.query.as_deref()), ("/a/b", Some("q=1")));
//! let (back, meta) = head.into_http();
//! assert_eq!(back.uri, "/a/b?q=1");
//! assert_eq!(back.headers["host"], "example.com");
//! assert_eq!(meta.max_request_body_size, None);
//! ```

use std::net::SocketAddr;

use bytes::Bytes;
use http::Uri;

use crate::{
    HttpVersion, RequestBodyKind, RequestFlags, RequestHead, RequestHeadRef, ResponseHead,
    StreamId, Timing, TlsInfo,
};

impl HttpVersion {
    /// The wire's name for an `http` version (anything before HTTP/1.1 but 1.0 is 1.1).
    #[must_use]
    pub fn from_http(version: http::Version) -> Self {
        match version {
            http::Version::HTTP_10 => HttpVersion::Http10,
            http::Version::HTTP_2 => HttpVersion::Http2,
            http::Version::HTTP_3 => HttpVersion::Http3,
            _ => HttpVersion::Http11,
        }
    }

    /// The `http` version.
    #[must_use]
    pub fn to_http(self) -> http::Version {
        match self {
            HttpVersion::Http10 => http::Version::HTTP_10,
            HttpVersion::Http11 => http::Version::HTTP_11,
            HttpVersion::Http2 => http::Version::HTTP_2,
            HttpVersion::Http3 => http::Version::HTTP_3,
        }
    }
}

/// What the listener knows of a request beyond its method, URI, version and headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestMeta {
    /// The request target exactly as the client sent it (HTTP.sys's RawUrl).
    pub raw_target: Bytes,
    /// The listener's id for the request (`s-streamid` in its logs).
    pub request_id: u64,
    /// The client connection's id.
    pub connection_id: u64,
    /// The listener's address the client connected to.
    pub local: SocketAddr,
    /// The client's address.
    pub remote: SocketAddr,
    /// TLS details, when the connection is TLS.
    pub tls: Option<TlsInfo>,
    /// The request's timing stamps, in the order taken.
    pub timings: Vec<Timing>,
    /// The request-body limit in force; `None`: unlimited.
    pub max_request_body_size: Option<u64>,
}

impl RequestMeta {
    /// Meta with the two addresses, everything else empty.
    #[must_use]
    pub fn new(local: SocketAddr, remote: SocketAddr) -> Self {
        RequestMeta {
            raw_target: Bytes::new(),
            request_id: 0,
            connection_id: 0,
            local,
            remote,
            tls: None,
            timings: Vec::new(),
            max_request_body_size: None,
        }
    }
}

impl<'a> RequestHeadRef<'a> {
    /// `REQUEST_HEAD` for a request the listener parsed and routed, borrowed from it: `parts`
    /// with the canonical URI the router matched, delivered from `queue` for the prefix
    /// registered as `url_context`. The stream id is set when the head goes out (it is 0
    /// here).
    #[must_use]
    pub fn from_http(
        parts: &'a http::request::Parts,
        meta: &'a RequestMeta,
        queue: u64,
        url_context: u64,
        body: RequestBodyKind,
    ) -> Self {
        let expect_continue = body != RequestBodyKind::Empty
            && parts
                .headers
                .get(http::header::EXPECT)
                .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
        RequestHeadRef {
            stream: StreamId(0),
            queue,
            url_context,
            method: &parts.method,
            raw_target: &meta.raw_target,
            path: parts.uri.path(),
            query: parts.uri.query(),
            version: HttpVersion::from_http(parts.version),
            headers: &parts.headers,
            connection_id: meta.connection_id,
            request_id: meta.request_id,
            local: meta.local,
            remote: meta.remote,
            tls: meta.tls.as_ref(),
            identity: None,
            timings: &meta.timings,
            body,
            max_request_body_size: meta.max_request_body_size.unwrap_or(u64::MAX),
            flags: if expect_continue {
                RequestFlags::EXPECT_CONTINUE
            } else {
                RequestFlags::empty()
            },
        }
    }
}

impl RequestHead {
    /// The request as the app sees it: the canonical URI the listener routed on (`path` and
    /// `query`), and its meta. The client's own target is [`RequestMeta::raw_target`].
    #[must_use]
    pub fn into_http(self) -> (http::request::Parts, RequestMeta) {
        let (mut parts, ()) = http::Request::new(()).into_parts();
        let uri = match &self.query {
            Some(q) => Uri::try_from(format!("{}?{q}", self.path)),
            None => Uri::try_from(self.path),
        };
        // The decoder checked the path's bytes; a URI the http crate still refuses becomes
        // "/" rather than failing the request.
        parts.uri = uri.unwrap_or_else(|_| Uri::from_static("/"));
        parts.method = self.method;
        parts.version = self.version.to_http();
        parts.headers = self.headers;
        let meta = RequestMeta {
            raw_target: self.raw_target,
            request_id: self.request_id,
            connection_id: self.connection_id,
            local: self.local,
            remote: self.remote,
            tls: self.tls,
            timings: self.timings,
            max_request_body_size: (self.max_request_body_size != u64::MAX)
                .then_some(self.max_request_body_size),
        };
        (parts, meta)
    }
}

impl ResponseHead {
    /// `RESPONSE_HEAD` for the app's response on `stream`, taking its headers over.
    /// `body_length`: the body's length when known; `end_stream`: no body follows.
    #[must_use]
    pub fn from_http(
        stream: StreamId,
        parts: http::response::Parts,
        body_length: Option<u64>,
        end_stream: bool,
    ) -> Self {
        ResponseHead {
            stream,
            status: parts.status,
            headers: parts.headers,
            cache: None,
            body_length,
            end_stream,
        }
    }

    /// The response head as the listener passes it to its client.
    #[must_use]
    pub fn into_http(self) -> http::response::Parts {
        let (mut parts, ()) = http::Response::new(()).into_parts();
        parts.status = self.status;
        parts.headers = self.headers;
        parts
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // Tests fail loudly on purpose.
    use super::*;
    use crate::{DEFAULT_MAX_FRAME_SIZE, Decoder, Frame};

    /// Encodes the borrowed head and decodes it as the app does.
    fn through_the_wire(head: &RequestHeadRef<'_>) -> RequestHead {
        let mut bytes = bytes::BytesMut::new();
        head.try_encode(&mut bytes, DEFAULT_MAX_FRAME_SIZE).unwrap();
        match Decoder::new(DEFAULT_MAX_FRAME_SIZE)
            .decode(&mut bytes)
            .unwrap()
        {
            Some(Frame::RequestHead(h)) => *h,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_request_crosses_and_comes_back_the_same() {
        let (parts, ()) = http::Request::post("/caf%C3%A9?x=1&y")
            .version(http::Version::HTTP_2)
            .header("host", "example.com")
            .header("expect", "100-continue")
            .header("x-two", "a")
            .header("x-two", "b")
            .body(())
            .unwrap()
            .into_parts();
        let mut meta =
            RequestMeta::new("[::1]:443".parse().unwrap(), "[::1]:50000".parse().unwrap());
        meta.raw_target = Bytes::from_static(b"/caf%c3%a9?x=1&y");
        meta.request_id = 42;
        meta.max_request_body_size = Some(10);
        meta.timings = vec![Timing {
            kind: crate::TimingKind(1),
            nanos: 7,
        }];
        meta.tls = Some(TlsInfo {
            protocol: 0x0304,
            cipher: 0x1301,
            sni: Some("example.com".to_owned()),
            alpn: Some(Bytes::from_static(b"h2")),
            client_cert_chain: vec![Bytes::from_static(b"der")],
        });
        let mut head = RequestHeadRef::from_http(&parts, &meta, 3, 4, RequestBodyKind::Length(5));
        head.stream = StreamId(1);
        assert!(head.flags.contains(RequestFlags::EXPECT_CONTINUE));
        let head = through_the_wire(&head);
        assert_eq!((head.queue, head.url_context), (3, 4));
        let (back, meta_back) = head.into_http();
        assert_eq!(back.uri, parts.uri);
        assert_eq!(back.method, parts.method);
        assert_eq!(back.version, http::Version::HTTP_2);
        assert_eq!(back.headers, parts.headers);
        assert_eq!(meta_back, meta);
    }

    #[test]
    fn no_body_means_no_expect_continue_and_unlimited_is_none() {
        let (parts, ()) = http::Request::get("/")
            .header("expect", "100-continue")
            .body(())
            .unwrap()
            .into_parts();
        let meta = RequestMeta::new(
            "127.0.0.1:1".parse().unwrap(),
            "127.0.0.1:2".parse().unwrap(),
        );
        let mut head = RequestHeadRef::from_http(&parts, &meta, 0, 0, RequestBodyKind::Empty);
        head.stream = StreamId(1);
        assert!(!head.flags.contains(RequestFlags::EXPECT_CONTINUE));
        let head = through_the_wire(&head);
        assert_eq!(head.max_request_body_size, u64::MAX);
        assert_eq!(head.into_http().1.max_request_body_size, None);
    }

    #[test]
    fn a_response_head_crosses_and_comes_back_the_same() {
        let (parts, ()) = http::Response::builder()
            .status(404)
            .header("content-type", "text/plain")
            .body(())
            .unwrap()
            .into_parts();
        let (status, headers) = (parts.status, parts.headers.clone());
        let head = ResponseHead::from_http(StreamId(9), parts, Some(3), false);
        assert_eq!((head.body_length, head.end_stream), (Some(3), false));
        let back = head.into_http();
        assert_eq!(back.status, status);
        assert_eq!(back.headers, headers);
    }
}
