//! HTTP/3 (RFC 9114) with quinn and h3 on the UDP port of every https prefix: the same
//! routing, queues and app as HTTP/1.1 and HTTP/2. The certificate comes from the SSL bindings
//! per handshake ([`httpq_tls::TlsBindings::quic_cert`]); `disablequic` turns a binding off.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, Bytes};
use h3::server::RequestStream;
use http::{Method, Response, Version};
use httpq_core::Scheme;

use crate::Inner;
use crate::app::{ConnectionInfo, Disconnect, DisconnectState, TlsInfo};
use crate::body::{BodyError, BodyTx};
use crate::pipeline::Called;
use crate::stream::{Broken, Place, Pump, Sent, Shape, StreamOut, strip_connection_headers};

type SendStream = RequestStream<h3_quinn::SendStream<Bytes>, Bytes>;
type RecvStream = RequestStream<h3_quinn::RecvStream, Bytes>;

/// H3_REQUEST_REJECTED: the request was not processed (a full queue under Basic verbosity).
const H3_REQUEST_REJECTED: u64 = 0x10b;

/// The quinn server configuration for QUIC handshakes to `local` (certificates chosen per
/// handshake from `inner.tls`).
fn server_config(inner: &Arc<Inner>, local: SocketAddr) -> std::io::Result<quinn::ServerConfig> {
    let tls = inner
        .tls
        .quic_config(local)
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(tls)
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    let mut server = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    let mut transport = quinn::TransportConfig::default();
    transport.max_concurrent_bidi_streams(100u32.into());
    transport.max_concurrent_uni_streams(16u32.into());
    let idle = inner
        .options
        .timeouts
        .idle_connection
        .min(Duration::from_secs(600));
    transport.max_idle_timeout(quinn::IdleTimeout::try_from(idle).ok());
    server.transport_config(Arc::new(transport));
    Ok(server)
}

/// Binds the QUIC endpoint for `addr` (an https port).
pub(crate) fn endpoint(inner: &Arc<Inner>, addr: SocketAddr) -> std::io::Result<quinn::Endpoint> {
    let server = server_config(inner, addr)?;
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    quinn::Endpoint::new(
        quinn::EndpointConfig::default(),
        Some(server),
        socket.into(),
        Arc::new(quinn::TokioRuntime),
    )
}

/// Accepts QUIC connections on `endpoint` until it closes. Each handshake gets the
/// configuration for the local address it arrived on, so `ipport` bindings for one IP apply
/// to HTTP/3 as they do to TCP.
pub(crate) async fn serve_endpoint(
    inner: Arc<Inner>,
    endpoint: quinn::Endpoint,
    listen: SocketAddr,
) {
    let mut by_ip: std::collections::HashMap<std::net::IpAddr, Arc<quinn::ServerConfig>> =
        std::collections::HashMap::new();
    while let Some(incoming) = endpoint.accept().await {
        if *inner.shutdown.borrow() {
            incoming.refuse();
            continue;
        }
        let connecting = match incoming.local_ip() {
            Some(ip) if listen.ip().is_unspecified() => {
                let config = match by_ip.get(&ip) {
                    Some(c) => Some(c.clone()),
                    None => server_config(&inner, SocketAddr::new(ip, listen.port()))
                        .ok()
                        .map(Arc::new)
                        .inspect(|c| {
                            by_ip.insert(ip, c.clone());
                        }),
                };
                match config {
                    Some(c) => incoming.accept_with(c),
                    None => incoming.accept(),
                }
            }
            _ => incoming.accept(),
        };
        let inner = inner.clone();
        if let Some(m) = &inner.observers.metrics {
            m.accepted("quic");
        }
        // The QUIC handshake carries the first data and the TLS handshake together.
        let mut timing = crate::timing::ConnStamps::default();
        timing.stamp(crate::timing::TimingKind::CONNECTION_START);
        tokio::spawn(async move {
            let start = crate::timing::monotonic_nanos();
            timing.stamp_at(crate::timing::TimingKind::DATA_START, start);
            timing.stamp_at(crate::timing::TimingKind::TLS_HANDSHAKE_LEG1_START, start);
            match connecting {
                Ok(connecting) => match connecting.await {
                    Ok(conn) => {
                        timing.stamp(crate::timing::TimingKind::TLS_HANDSHAKE_LEG1_END);
                        serve_connection(inner, conn, listen, timing).await;
                    }
                    Err(e) => tracing::debug!(error = %e, "QUIC handshake failed"),
                },
                Err(e) => tracing::debug!(error = %e, "QUIC connection refused"),
            }
        });
    }
}

async fn serve_connection(
    inner: Arc<Inner>,
    conn: quinn::Connection,
    listen: SocketAddr,
    timing: crate::timing::ConnStamps,
) {
    let remote = conn.remote_address();
    let local = SocketAddr::new(conn.local_ip().unwrap_or(listen.ip()), listen.port());
    let sni = conn
        .handshake_data()
        .and_then(|d| d.downcast::<quinn::crypto::rustls::HandshakeData>().ok())
        .and_then(|d| d.server_name);
    let state = Arc::new(DisconnectState::default());
    let mut info = ConnectionInfo::new(
        local,
        remote,
        inner.next_conn_id(),
        Disconnect::new(state.clone()),
    );
    info.timing = Arc::new(timing);
    let info = info.with_tls(TlsInfo {
        protocol: 0x0304,
        // quinn does not report the suite; 0 means "not known".
        cipher: 0,
        sni,
        alpn: Some(b"h3".to_vec()),
        client_certificates: Vec::new(),
    });
    let max_field_section =
        u64::try_from(inner.options.parser.max_request_bytes).unwrap_or(u64::MAX);
    let built = h3::server::builder()
        .max_field_section_size(max_field_section)
        .build::<_, Bytes>(h3_quinn::Connection::new(conn))
        .await;
    let mut h3c = match built {
        Ok(c) => c,
        Err(e) => {
            tracing::debug!(client = %remote, error = %e, "HTTP/3 connection setup failed");
            state.fire();
            return;
        }
    };
    let mut shutdown = inner.shutdown.subscribe();
    loop {
        tokio::select! {
            next = h3c.accept() => match next {
                Ok(Some(resolver)) => {
                    let inner = inner.clone();
                    let info = info.clone();
                    // Boxed before it is spawned, as HTTP/2's streams (h2conn.rs).
                    tokio::spawn(Box::pin(async move {
                        match resolver.resolve_request().await {
                            Ok((request, stream)) => handle(inner, info, request, stream).await,
                            Err(e) => tracing::debug!(error = %e, "HTTP/3 request head refused"),
                        }
                    }));
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::debug!(client = %remote, error = %e, "HTTP/3 connection ended");
                    break;
                }
            },
            _ = shutdown.changed() => {
                // GOAWAY: no new requests, those under way finish.
                let _ = h3c.shutdown(0).await;
            }
        }
    }
    state.fire();
}

async fn handle(
    inner: Arc<Inner>,
    info: ConnectionInfo,
    request: http::Request<()>,
    stream: RequestStream<h3_quinn::BidiStream<Bytes>, Bytes>,
) {
    let (parts, ()) = request.into_parts();
    let head_only = parts.method == Method::HEAD;
    // HTTP/3 has no END_STREAM on the head: a body is expected unless the request says it has
    // none (content-length: 0, or a method that carries none without a content-length).
    let declared = crate::stream::declared_length(&parts.headers);
    let has_body = match declared {
        Some(n) => n > 0,
        None => !matches!(
            parts.method,
            Method::GET | Method::HEAD | Method::OPTIONS | Method::DELETE | Method::TRACE
        ),
    };
    let (timing, mut ex) = crate::stream::begin(
        &inner,
        &info,
        Version::HTTP_3,
        crate::timing::TimingKind::HTTP3_STREAM_START,
    );
    // The request half stays open until the answer is out: dropping it unread would send
    // STOP_SENDING, which clients take for a reset.
    let (send, recv) = stream.split();
    let mut out = H3Out { send };
    let table = inner.routes_snapshot();
    let req = crate::stream::incoming(parts, Version::HTTP_3, has_body);
    let admitted =
        crate::pipeline::admit_stream(&inner, &info, Scheme::Https, &table, req, timing, &mut ex)
            .await;
    let Called { call, body_tx, .. } = match admitted {
        Ok(called) => called,
        Err(early) => {
            crate::stream::early(&mut out, &mut ex, early, head_only).await;
            return;
        }
    };
    // Without a body, the request side is read to its end (the FIN usually came with the
    // head): a receiving half dropped unread sends STOP_SENDING, which clients take for a reset.
    let (pump, _recv) = match body_tx {
        Some(tx) => (Some(Pump::spawn(pump_body(recv, tx, declared), true)), None),
        None => {
            let mut recv = recv;
            let _ = tokio::time::timeout(Duration::from_millis(50), async {
                while let Ok(Some(_)) = recv.recv_data().await {}
            })
            .await;
            (None, Some(recv))
        }
    };
    let at = Place {
        inner: &inner,
        info: &info,
        scheme: Scheme::Https,
        protocol: "HTTP/3",
        head_only,
    };
    crate::stream::respond(at, &mut out, &mut ex, call, pump).await;
}

/// An HTTP/3 request stream's sending half.
struct H3Out {
    send: SendStream,
}

impl StreamOut for H3Out {
    async fn send_head(&mut self, head: Response<()>, shape: Shape) -> Result<bool, Broken> {
        let (mut parts, ()) = head.into_parts();
        strip_connection_headers(&mut parts.headers);
        self.send
            .send_response(Response::from_parts(parts, ()))
            .await
            .map_err(|_| Broken::ClientGone)?;
        if shape.end {
            let _ = self.send.finish().await;
        }
        Ok(!shape.end)
    }

    async fn send_data(&mut self, data: Bytes, end: bool) -> Sent {
        if !data.is_empty() {
            self.send
                .send_data(data)
                .await
                .map_err(|_| Broken::ClientGone)?;
        }
        if end {
            let _ = self.send.finish().await;
        }
        Ok(())
    }

    async fn send_trailers(&mut self, trailers: http::HeaderMap) -> Sent {
        let _ = self.send.send_trailers(trailers).await;
        Ok(())
    }

    async fn finish(&mut self) -> Sent {
        let _ = self.send.finish().await;
        Ok(())
    }

    fn reset(&mut self, code: Option<u32>) {
        // H3_INTERNAL_ERROR when the app gave no code.
        let code = code.map_or(0x102, u64::from);
        self.send.stop_stream(h3::error::Code::from(code));
    }

    fn refuse(&mut self) {
        self.send
            .stop_stream(h3::error::Code::from(H3_REQUEST_REJECTED));
    }

    async fn client_reset(&mut self) {
        // A client's reset reaches the app as a failed body read; the sending side learns of
        // it when a write fails.
        std::future::pending::<()>().await;
    }
}

/// Keeps the receiving side until the 413 is sent (the handler aborts this task then).
async fn hold(recv: RecvStream, limit: u64) -> Option<u64> {
    let _keep = recv;
    std::future::pending::<()>().await;
    Some(limit)
}

/// Moves request-body bytes to the app as it reads them; QUIC flow control slows the client.
/// Returns the limit when the body is larger than it.
async fn pump_body(mut recv: RecvStream, tx: BodyTx, declared: Option<u64>) -> Option<u64> {
    let mut received = 0u64;
    loop {
        if !std::future::poll_fn(|cx| tx.poll_want(cx)).await {
            return None;
        }
        if received == 0 {
            if let Some(limit) = tx.check_limit(0, declared) {
                return hold(recv, limit).await;
            }
        }
        match recv.recv_data().await {
            Ok(None) => {
                let trailers = recv.recv_trailers().await.ok().flatten();
                tx.finish(trailers);
                return None;
            }
            Ok(Some(mut chunk)) => {
                let data = chunk.copy_to_bytes(chunk.remaining());
                received += data.len() as u64;
                if let Some(limit) = tx.check_limit(received, None) {
                    return hold(recv, limit).await;
                }
                tx.push(data);
            }
            Err(e) => {
                tracing::debug!(error = %e, "HTTP/3 request body failed");
                tx.fail(BodyError::Incomplete);
                return None;
            }
        }
    }
}
