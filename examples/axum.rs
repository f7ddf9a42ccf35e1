//! An axum `Router` running unchanged on httpq: a path parameter, a JSON body, a streaming
//! response, and bodies of any size streamed both ways.
//!
//! ```text
//! cargo run --release --example axum                 # http://localhost:5000/
//! curl http://localhost:5000/hello/ada
//! curl -d '{"a":2,"b":3}' -H 'content-type: application/json' http://localhost:5000/sum
//! curl -N http://localhost:5000/count/5
//! curl -T big.iso http://localhost:5000/echo | sha256sum   # the body, streamed back
//! curl http://localhost:5000/bytes/1000000 | wc -c          # n bytes, streamed
//! curl http://localhost:5000/whoami                        # protocol, TLS, client address
//! ```
//!
//! The `Router` is an ordinary axum app, in [`axum_app.rs`](../axum_app.rs) (the examples'
//! library, so the benchmarks can run the same app on hyper); this file only serves it.

use httpq_examples::axum_app::app;

#[tokio::main]
async fn main() {
    httpq::init_logs();
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
