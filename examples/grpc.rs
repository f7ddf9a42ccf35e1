//! A gRPC service (tonic) on httpq: unary, server-streaming with trailers, and a call that
//! resets its HTTP/2 stream. gRPC needs HTTP/2: over TLS (an https prefix) or h2c with prior
//! knowledge (http), which tonic clients use for `http://` endpoints.
//!
//! ```text
//! cargo run --release --example grpc                      # http://localhost:5000/ (h2c)
//! grpcurl -plaintext -d '{"name":"ada"}' localhost:5000 demo.Greeter/SayHello   # with a .proto
//! ```

use httpq_examples::greeter::GreeterServer;

#[tokio::main]
async fn main() {
    httpq::init_logs();
    let server = match httpq::Server::builder().bind(GreeterServer).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("grpc example: {e}");
            std::process::exit(1);
        }
    };
    for url in server.urls() {
        println!("grpc example: serving {url}");
    }
    if let Err(e) = server.run().await {
        eprintln!("grpc example: {e}");
        std::process::exit(1);
    }
}
