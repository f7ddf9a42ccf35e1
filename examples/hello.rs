//! The smallest httpq app: answers every request with the URL prefix that matched and the
//! process id, so you can see which prefix (and later, which process) served you.
//!
//! ```text
//! cargo run --release --example hello            # http://localhost:5000/
//! HTTPQ_URLS="http://+:8080/app/" cargo run --release --example hello
//! ```

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, Request, Response, header};
use http_body_util::Full;

#[tokio::main]
async fn main() {
    httpq::init_logs();

    let pid: Arc<str> = format!(" pid={}\n", std::process::id()).into();
    let app = tower::service_fn(move |req: Request<httpq::Body>| {
        let pid = pid.clone();
        async move {
            let prefix = httpq::RequestContext::of(&req).map_or("?", |c| c.prefix().as_str());
            let body = ["Hello from httpq! prefix=", prefix, &pid].concat();
            let response = Response::builder()
                .header(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; charset=utf-8"),
                )
                .body(Full::new(Bytes::from(body)))
                .unwrap_or_default();
            Ok::<_, Infallible>(response)
        }
    });

    let server = match httpq::Server::builder().bind(app).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("hello: {e}");
            std::process::exit(1);
        }
    };
    for url in server.urls() {
        println!("hello: serving {url}");
    }
    if let Err(e) = server.run().await {
        eprintln!("hello: {e}");
        std::process::exit(1);
    }
}
