//! An axum `Router` running unchanged on httpq: a path parameter, a JSON body and a streaming
//! response.
//!
//! ```text
//! cargo run --release --example axum                 # http://localhost:5000/
//! curl http://localhost:5000/hello/ada
//! curl -d '{"a":2,"b":3}' -H 'content-type: application/json' http://localhost:5000/sum
//! curl -N http://localhost:5000/count/5
//! ```

use std::time::Duration;

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
fn app() -> Router {
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
                axum::body::Body::from_stream(stream)
            }),
        )
}

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let server = match httpq::Server::builder().bind(app()).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("axum example: {e}");
            std::process::exit(1);
        }
    };
    for url in server.urls() {
        println!("axum example: serving {url}");
    }
    if let Err(e) = server.run().await {
        eprintln!("axum example: {e}");
        std::process::exit(1);
    }
}
