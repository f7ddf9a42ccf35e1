//! gRPC on httpq with a real tonic client: unary, server streaming (the status travels in
//! HTTP/2 trailers), an error status, and a stream reset whose code reaches the client, in
//! embedded mode and through the httpqd listener (daemon mode).

use http::uri::PathAndQuery;
use httpq_examples::greeter::{ABORT, COUNT, CountRequest, HelloReply, HelloRequest, SAY_HELLO};
use httpq_test_support::{Httpqd, free_port, spawn_example};
use tonic::codec::ProstCodec;

async fn exercise(port: u16) {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{port}"))
        .expect("endpoint")
        .connect()
        .await
        .expect("connect over h2c");
    let mut grpc = tonic::client::Grpc::new(channel);

    // Unary.
    grpc.ready().await.expect("ready");
    let reply = grpc
        .unary(
            tonic::Request::new(HelloRequest { name: "ada".into() }),
            PathAndQuery::from_static(SAY_HELLO),
            ProstCodec::<HelloRequest, HelloReply>::default(),
        )
        .await
        .expect("SayHello");
    assert_eq!(reply.get_ref().message, "hello, ada!");

    // An error status (sent in trailers-only form).
    grpc.ready().await.expect("ready");
    let err = grpc
        .unary(
            tonic::Request::new(HelloRequest {
                name: String::new(),
            }),
            PathAndQuery::from_static(SAY_HELLO),
            ProstCodec::<HelloRequest, HelloReply>::default(),
        )
        .await
        .expect_err("empty name is refused");
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert_eq!(err.message(), "name must not be empty");

    // Server streaming: every message, then grpc-status 0 in the trailers.
    grpc.ready().await.expect("ready");
    let mut stream = grpc
        .server_streaming(
            tonic::Request::new(CountRequest { n: 20 }),
            PathAndQuery::from_static(COUNT),
            ProstCodec::<CountRequest, HelloReply>::default(),
        )
        .await
        .expect("Count")
        .into_inner();
    let mut got = Vec::new();
    while let Some(msg) = stream.message().await.expect("a message or the end") {
        got.push(msg.message);
    }
    let expected: Vec<String> = (0..20).map(|i| i.to_string()).collect();
    assert_eq!(got, expected);
    let trailers = stream.trailers().await.expect("trailers").expect("some");
    assert_eq!(
        trailers.get("grpc-status").map(|v| v.as_bytes()),
        Some(&b"0"[..])
    );

    // A reset with ENHANCE_YOUR_CALM reaches the client, which maps it (gRPC's HTTP/2 error
    // mapping) to RESOURCE_EXHAUSTED.
    grpc.ready().await.expect("ready");
    let err = grpc
        .unary(
            tonic::Request::new(HelloRequest { name: "x".into() }),
            PathAndQuery::from_static(ABORT),
            ProstCodec::<HelloRequest, HelloReply>::default(),
        )
        .await
        .expect_err("Abort resets its stream");
    assert_eq!(err.code(), tonic::Code::ResourceExhausted, "{err:?}");
    assert!(
        format!("{err:?}").contains("ENHANCE_YOUR_CALM") || err.message().contains("calm"),
        "{err:?}"
    );
}

#[tokio::test]
async fn grpc_embedded() {
    let port = free_port();
    let (_app, _) = spawn_example(
        "grpc",
        &[
            ("HTTPQ_SOCKET", "embedded"),
            ("HTTPQ_URLS", &format!("http://127.0.0.1:{port}/")),
        ],
        ": serving",
    );
    exercise(port).await;
}

#[tokio::test]
async fn grpc_through_the_listener() {
    let listener = Httpqd::start("grpc");
    let socket = listener.socket.clone();
    let port = free_port();
    let (_app, _) = spawn_example(
        "grpc",
        &[
            ("HTTPQ_SOCKET", &socket),
            ("HTTPQ_URLS", &format!("http://127.0.0.1:{port}/")),
        ],
        ": serving",
    );
    exercise(port).await;
}

/// Trailers on HTTP/1.1 (beyond HTTP.sys): a chunked response ends with them.
#[test]
fn trailers_on_http1_chunked() {
    use prost::Message;
    use std::io::{Read, Write};
    let port = free_port();
    let (_app, _) = spawn_example(
        "grpc",
        &[
            ("HTTPQ_SOCKET", "embedded"),
            ("HTTPQ_URLS", &format!("http://127.0.0.1:{port}/")),
        ],
        ": serving",
    );
    let msg = HelloRequest { name: "h1".into() }.encode_to_vec();
    let mut body = vec![0u8];
    body.extend_from_slice(&u32::try_from(msg.len()).expect("small").to_be_bytes());
    body.extend_from_slice(&msg);
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    write!(
        s,
        "POST {SAY_HELLO} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\ncontent-type: application/grpc\r\nte: trailers\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    )
    .expect("write head");
    s.write_all(&body).expect("write body");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read");
    let text = String::from_utf8_lossy(&raw);
    assert!(text.contains("transfer-encoding: chunked"), "{text}");
    // The last chunk, then the trailer section.
    let tail = text.rsplit("\r\n0\r\n").next().expect("a last chunk");
    assert!(tail.contains("grpc-status: 0"), "{text}");
}
