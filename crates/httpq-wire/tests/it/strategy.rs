//! Hand-written proptest strategies for every frame type, covering each field's whole
//! valid range.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use httpq_wire::{
    AuthScheme, CacheFlags, CachePolicy, Cancel, CancelReason, ControlFrame, Credit,
    DEFAULT_MAX_FRAME_SIZE, Data, Delegate, ErrorCode, Flags, Frame, FrameType, Goaway, Hello,
    HelloAck, HttpVersion, Identity, MAX_FRAME_SIZE_LIMIT, Ping, RequestBodyKind, RequestFlags,
    RequestHead, Reset, ResponseFile, ResponseHead, Role, SetLimit, StreamId, Timing, TimingKind,
    TlsInfo, Trailers,
};
use proptest::collection::vec;
use proptest::prelude::*;

/// Header names: HTTP tokens (RFC 9110 §5.6.2), any case.
const NAME: &str = "[-a-zA-Z0-9!#$%&'*+.^_`|~]{1,24}";
/// Methods: HTTP tokens.
const METHOD: &str = "[-a-zA-Z0-9!#$%&'*+.^_`|~]{1,12}";

pub(crate) fn string() -> impl Strategy<Value = String> {
    vec(any::<char>(), 0..16).prop_map(String::from_iter)
}

pub(crate) fn bytes() -> impl Strategy<Value = Bytes> {
    vec(any::<u8>(), 0..48).prop_map(Bytes::from)
}

pub(crate) fn request_stream() -> impl Strategy<Value = StreamId> {
    (1..=u64::MAX).prop_map(StreamId)
}

fn any_stream() -> impl Strategy<Value = StreamId> {
    prop_oneof![Just(StreamId(0)), request_stream()]
}

pub(crate) fn header_name() -> impl Strategy<Value = HeaderName> {
    prop_oneof![
        Just(http::header::CONTENT_TYPE),
        Just(http::header::HOST),
        Just(HeaderName::from_static("grpc-status")),
        NAME.prop_map(|s| HeaderName::from_bytes(s.as_bytes()).unwrap()),
    ]
}

pub(crate) fn header_value() -> impl Strategy<Value = HeaderValue> {
    let byte = prop_oneof![Just(b'\t'), 0x20u8..0x7f, 0x80u8..=0xff];
    vec(byte, 0..32).prop_map(|v| HeaderValue::from_bytes(&v).unwrap())
}

/// Up to six fields, some names repeated (a name's values keep their order on the wire).
pub(crate) fn headers() -> impl Strategy<Value = HeaderMap> {
    vec((header_name(), header_value()), 0..6).prop_map(|pairs| {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(name, value);
        }
        map
    })
}

fn method() -> impl Strategy<Value = Method> {
    prop_oneof![
        Just(Method::GET),
        Just(Method::POST),
        Just(Method::CONNECT),
        METHOD.prop_map(|s| Method::from_bytes(s.as_bytes()).unwrap()),
    ]
}

fn addr() -> impl Strategy<Value = SocketAddr> {
    prop_oneof![
        (any::<[u8; 4]>(), any::<u16>())
            .prop_map(|(ip, port)| SocketAddr::new(IpAddr::V4(Ipv4Addr::from(ip)), port)),
        (any::<[u8; 16]>(), any::<u16>())
            .prop_map(|(ip, port)| SocketAddr::new(IpAddr::V6(Ipv6Addr::from(ip)), port)),
    ]
}

fn version() -> impl Strategy<Value = HttpVersion> {
    prop_oneof![
        Just(HttpVersion::Http10),
        Just(HttpVersion::Http11),
        Just(HttpVersion::Http2),
        Just(HttpVersion::Http3),
    ]
}

fn tls() -> impl Strategy<Value = TlsInfo> {
    (
        any::<u16>(),
        any::<u16>(),
        proptest::option::of(string()),
        proptest::option::of(bytes()),
        vec(bytes(), 0..3),
    )
        .prop_map(|(protocol, cipher, sni, alpn, client_cert_chain)| TlsInfo {
            protocol,
            cipher,
            sni,
            alpn,
            client_cert_chain,
        })
}

fn identity() -> impl Strategy<Value = Identity> {
    let scheme = prop_oneof![
        Just(AuthScheme::Basic),
        Just(AuthScheme::Negotiate),
        Just(AuthScheme::Ntlm),
        Just(AuthScheme::Kerberos),
    ];
    (scheme, string(), proptest::option::of(bytes())).prop_map(|(scheme, user, token)| Identity {
        scheme,
        user,
        token,
    })
}

fn timings() -> impl Strategy<Value = Vec<Timing>> {
    vec(
        (any::<u8>(), any::<u64>()).prop_map(|(kind, nanos)| Timing {
            kind: TimingKind(kind),
            nanos,
        }),
        0..6,
    )
}

fn body_kind() -> impl Strategy<Value = RequestBodyKind> {
    prop_oneof![
        Just(RequestBodyKind::Empty),
        any::<u64>().prop_map(RequestBodyKind::Length),
        Just(RequestBodyKind::Chunked),
    ]
}

pub(crate) fn request_head() -> impl Strategy<Value = RequestHead> {
    let routing = (
        request_stream(),
        any::<u64>(),
        any::<u64>(),
        method(),
        bytes(),
        string(),
        proptest::option::of(string()),
        version(),
        headers(),
    );
    let connection = (
        any::<u64>(),
        addr(),
        addr(),
        proptest::option::of(tls()),
        proptest::option::of(identity()),
        timings(),
        body_kind(),
        any::<u64>(),
        (0u32..=RequestFlags::KNOWN.0).prop_map(RequestFlags),
    );
    (routing, connection, any::<u64>()).prop_map(
        |(
            (stream, queue, url_context, method, raw_target, path, query, version, headers),
            (connection_id, local, remote, tls, identity, timings, body, max, flags),
            request_id,
        )| RequestHead {
            stream,
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
            max_request_body_size: max,
            flags,
        },
    )
}

fn data() -> impl Strategy<Value = Data> {
    (request_stream(), bytes(), any::<bool>()).prop_map(|(stream, data, end_stream)| Data {
        stream,
        data,
        end_stream,
    })
}

fn trailers() -> impl Strategy<Value = Trailers> {
    (request_stream(), headers()).prop_map(|(stream, headers)| Trailers { stream, headers })
}

fn frame_size() -> impl Strategy<Value = u32> {
    DEFAULT_MAX_FRAME_SIZE..=MAX_FRAME_SIZE_LIMIT
}

pub(crate) fn hello() -> impl Strategy<Value = Frame> {
    let role = prop_oneof![Just(Role::App), Just(Role::Admin)];
    (
        (1..=u16::MAX).prop_flat_map(|min| (Just(min), min..=u16::MAX)),
        role,
        frame_size(),
        any::<u64>(),
    )
        .prop_map(
            |((min_version, max_version), role, max_frame_size, features)| {
                Frame::Hello(Hello {
                    min_version,
                    max_version,
                    role,
                    max_frame_size,
                    features,
                })
            },
        )
}

pub(crate) fn hello_ack() -> impl Strategy<Value = Frame> {
    (1..=u16::MAX, frame_size(), any::<u64>(), string()).prop_map(
        |(version, max_frame_size, features, server)| {
            Frame::HelloAck(HelloAck {
                version,
                max_frame_size,
                features,
                server,
            })
        },
    )
}

pub(crate) fn goaway() -> impl Strategy<Value = Frame> {
    (any::<u64>(), any::<u32>(), string()).prop_map(|(last, code, reason)| {
        Frame::Goaway(Goaway {
            last_stream: StreamId(last),
            code: ErrorCode(code),
            reason,
        })
    })
}

pub(crate) fn ping() -> impl Strategy<Value = Frame> {
    (any::<u64>(), any::<bool>()).prop_map(|(payload, ack)| Frame::Ping(Ping { payload, ack }))
}

pub(crate) fn control() -> impl Strategy<Value = Frame> {
    (any::<u32>(), any::<bool>(), bytes()).prop_map(|(op_id, is_response, body)| {
        Frame::Control(ControlFrame {
            op_id,
            is_response,
            body,
        })
    })
}

pub(crate) fn credit() -> impl Strategy<Value = Frame> {
    (any_stream(), 1..=u32::MAX)
        .prop_map(|(stream, increment)| Frame::Credit(Credit { stream, increment }))
}

pub(crate) fn response_head() -> impl Strategy<Value = Frame> {
    let cache =
        (any::<u32>(), 0u32..=CacheFlags::KNOWN.0).prop_map(|(ttl_secs, flags)| CachePolicy {
            ttl_secs,
            flags: CacheFlags(flags),
        });
    (
        request_stream(),
        (100u16..=999).prop_map(|s| StatusCode::from_u16(s).unwrap()),
        headers(),
        proptest::option::of(cache),
        proptest::option::of(any::<u64>()),
        any::<bool>(),
    )
        .prop_map(
            |(stream, status, headers, cache, body_length, end_stream)| {
                Frame::ResponseHead(ResponseHead {
                    stream,
                    status,
                    headers,
                    cache,
                    body_length,
                    end_stream,
                })
            },
        )
}

pub(crate) fn response_file() -> impl Strategy<Value = Frame> {
    (
        request_stream(),
        any::<u16>(),
        any::<u64>(),
        any::<u64>(),
        any::<bool>(),
    )
        .prop_map(|(stream, fd_index, offset, length, end_stream)| {
            Frame::ResponseFile(ResponseFile {
                stream,
                fd_index,
                offset,
                length,
                end_stream,
            })
        })
}

pub(crate) fn reset() -> impl Strategy<Value = Frame> {
    (request_stream(), any::<u32>(), string()).prop_map(|(stream, code, reason)| {
        Frame::Reset(Reset {
            stream,
            code: ErrorCode(code),
            reason,
        })
    })
}

pub(crate) fn cancel() -> impl Strategy<Value = Frame> {
    let reason = prop_oneof![
        Just(CancelReason::ClientDisconnected),
        Just(CancelReason::RequestTimedOut),
        Just(CancelReason::ListenerShutdown),
    ];
    (request_stream(), reason).prop_map(|(stream, reason)| Frame::Cancel(Cancel { stream, reason }))
}

pub(crate) fn set_limit() -> impl Strategy<Value = Frame> {
    (request_stream(), any::<u64>()).prop_map(|(stream, max)| {
        Frame::SetLimit(SetLimit {
            stream,
            max_request_body_size: max,
        })
    })
}

pub(crate) fn delegate() -> impl Strategy<Value = Frame> {
    (request_stream(), string(), proptest::option::of(string())).prop_map(
        |(stream, queue_name, url)| {
            Frame::Delegate(Delegate {
                stream,
                queue_name,
                url,
            })
        },
    )
}

/// An ignorable frame of a type version 1 does not define.
pub(crate) fn unknown() -> impl Strategy<Value = Frame> {
    (
        any::<u8>().prop_filter("unknown type", |ty| !FrameType(*ty).is_known()),
        0u8..=3,
        any_stream(),
        bytes(),
    )
        .prop_map(|(ty, flags, stream, payload)| Frame::Unknown {
            ty: FrameType(ty),
            flags: Flags(flags) | Flags::IGNORABLE,
            stream,
            payload,
        })
}

/// One frame of every type (and an ignorable unknown one), in a fixed order.
pub(crate) fn one_of_each() -> impl Strategy<Value = Vec<Frame>> {
    let connection = (hello(), hello_ack(), goaway(), ping(), control(), credit());
    let request = (
        request_head().prop_map(|h| Frame::RequestHead(Box::new(h))),
        data().prop_map(Frame::RequestBody),
        trailers().prop_map(Frame::RequestTrailers),
        response_head(),
        data().prop_map(Frame::ResponseBody),
        response_file(),
        trailers().prop_map(Frame::ResponseTrailers),
    );
    let other = (
        reset(),
        cancel(),
        set_limit(),
        data().prop_map(Frame::UpgradedData),
        delegate(),
        unknown(),
    );
    (connection, request, other).prop_map(|(c, r, o)| {
        vec![
            c.0, c.1, c.2, c.3, c.4, c.5, r.0, r.1, r.2, r.3, r.4, r.5, r.6, o.0, o.1, o.2, o.3,
            o.4, o.5,
        ]
    })
}

/// Any single frame.
pub(crate) fn frame() -> impl Strategy<Value = Frame> {
    prop_oneof![
        hello(),
        hello_ack(),
        goaway(),
        ping(),
        control(),
        credit(),
        request_head().prop_map(|h| Frame::RequestHead(Box::new(h))),
        data().prop_map(Frame::RequestBody),
        trailers().prop_map(Frame::RequestTrailers),
        response_head(),
        data().prop_map(Frame::ResponseBody),
        response_file(),
        trailers().prop_map(Frame::ResponseTrailers),
        reset(),
        cancel(),
        set_limit(),
        data().prop_map(Frame::UpgradedData),
        delegate(),
        unknown(),
    ]
}
