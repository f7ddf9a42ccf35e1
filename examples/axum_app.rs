//! The axum `Router` of the `axum` example, in the examples' library so that the benchmarks
//! can serve the very same app on hyper (`bench/src/hyper_hello.rs --axum`) for a side-by-side
//! comparison. Nothing here knows about httpq except `/whoami`, which reads the
//! [`httpq::RequestContext`] every request carries.

use std::time::Duration;

use axum::body::Body;
use axum::extract::Path;
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use serde::{Deserialize, Serialize};

#[derive(Deserialize)]
struct SumRequest {
    a: i64,
    b: i64,
}

#[derive(Serialize)]
struct SumResponse {
    sum: i64,
}

/// The app, as any axum user writes it.
pub fn app() -> Router {
    Router::new()
        .route("/", get(|| async { "axum on httpq\n" }))
        .route(
            "/hello/{name}",
            get(|Path(name): Path<String>| async move { format!("hello, {name}!\n") }),
        )
        .route(
            "/sum",
            post(|Json(r): Json<SumRequest>| async move { Json(SumResponse { sum: r.a + r.b }) }),
        )
        .route(
            "/count/{n}",
            get(|Path(n): Path<u32>| async move {
                let n = n.min(1000);
                let stream = futures_util::stream::unfold(0u32, move |i| async move {
                    if i >= n {
                        return None;
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    Some((
                        Ok::<_, std::convert::Infallible>(Bytes::from(format!("{i}\n"))),
                        i + 1,
                    ))
                });
                Body::from_stream(stream)
            }),
        )
        .route(
            "/whoami",
            // What httpq tells the app about the connection (HTTP.sys's request properties).
            get(|request: axum::extract::Request| async move {
                let ctx = request.extensions().get::<httpq::RequestContext>();
                let conn = ctx.map(httpq::RequestContext::connection);
                let tls = conn.and_then(|c| c.tls());
                Json(serde_json::json!({
                    "version": format!("{:?}", request.version()),
                    // Equal to s-streamid in the listener's access and error logs.
                    "request_id": ctx.map(|c| c.id().0),
                    "remote": conn.map(|c| c.remote_addr.to_string()),
                    "prefix": ctx.map(|c| c.prefix().as_str().to_owned()),
                    "uri": request.uri().to_string(),
                    "raw_target": ctx.map(|c| String::from_utf8_lossy(c.raw_target()).into_owned()),
                    // HTTP.sys request timing: the TLS handshake, and routing to delivery.
                    "tls_handshake_ns": ctx.and_then(|c| c.timing().try_get_elapsed(
                        httpq::TimingKind::TLS_HANDSHAKE_LEG1_START,
                        httpq::TimingKind::TLS_HANDSHAKE_LEG1_END,
                    )).map(|d| d.as_nanos()),
                    "routing_to_delivery_ns": ctx.and_then(|c| c.timing().try_get_elapsed(
                        httpq::TimingKind::REQUEST_ROUTING_START,
                        httpq::TimingKind::REQUEST_DELIVERED_FOR_IO,
                    )).map(|d| d.as_nanos()),
                    "tls": tls.map(|t| serde_json::json!({
                        "protocol": t.protocol_name(),
                        "cipher": format!("0x{:04x}", t.cipher),
                        "sni": t.sni,
                        "alpn": t.alpn.as_deref().map(String::from_utf8_lossy),
                        "client_certificates": t.client_certificates.len(),
                    })),
                }))
            }),
        )
        .route(
            "/echo",
            // Streamed back as it arrives: memory stays flat for any size.
            post(|body: Body| async move { Body::from_stream(body.into_data_stream()) })
                .put(|body: Body| async move { Body::from_stream(body.into_data_stream()) }),
        )
        .route(
            "/bytes/{n}",
            get(|Path(n): Path<u64>| async move {
                const CHUNK: u64 = 64 * 1024;
                let block = Bytes::from(vec![b'x'; CHUNK as usize]);
                let stream = futures_util::stream::unfold(n, move |left| {
                    let block = block.clone();
                    async move {
                        if left == 0 {
                            return None;
                        }
                        let take = left.min(CHUNK);
                        Some((
                            Ok::<_, std::convert::Infallible>(block.slice(..take as usize)),
                            left - take,
                        ))
                    }
                });
                Body::from_stream(stream)
            }),
        )
}
