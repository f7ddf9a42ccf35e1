//! A small gRPC service written against tonic's server API directly (what `tonic-build`
//! generates from a `.proto`, written out so the examples need no `protoc`):
//!
//! ```text
//! package demo;
//! service Greeter {
//!   rpc SayHello (HelloRequest) returns (HelloReply);              // unary
//!   rpc Count (CountRequest) returns (stream HelloReply);          // server streaming
//!   rpc Abort (HelloRequest) returns (HelloReply);                 // resets its stream
//! }
//! ```

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::Stream;
use tonic::codec::ProstCodec;
use tonic::codegen::{Body, BoxFuture, Service, StdError, http};
use tonic::{Request, Response, Status};

/// `demo.HelloRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct HelloRequest {
    /// Who to greet.
    #[prost(string, tag = "1")]
    pub name: String,
}

/// `demo.HelloReply`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct HelloReply {
    /// The greeting.
    #[prost(string, tag = "1")]
    pub message: String,
}

/// `demo.CountRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct CountRequest {
    /// How many replies to stream.
    #[prost(uint32, tag = "1")]
    pub n: u32,
}

/// `/demo.Greeter/SayHello`.
pub const SAY_HELLO: &str = "/demo.Greeter/SayHello";
/// `/demo.Greeter/Count`.
pub const COUNT: &str = "/demo.Greeter/Count";
/// `/demo.Greeter/Abort`.
pub const ABORT: &str = "/demo.Greeter/Abort";
/// The HTTP/2 code `Abort` resets its stream with: `ENHANCE_YOUR_CALM`, which gRPC clients
/// report as `RESOURCE_EXHAUSTED`.
pub const ABORT_CODE: u32 = 0xb;

/// The Greeter service, a `tower::Service` any httpq server runs.
#[derive(Debug, Clone, Default)]
pub struct GreeterServer;

struct SayHello;

impl tonic::server::UnaryService<HelloRequest> for SayHello {
    type Response = HelloReply;
    type Future = BoxFuture<Response<HelloReply>, Status>;

    fn call(&mut self, request: Request<HelloRequest>) -> Self::Future {
        Box::pin(async move {
            let name = request.into_inner().name;
            if name.is_empty() {
                return Err(Status::invalid_argument("name must not be empty"));
            }
            Ok(Response::new(HelloReply {
                message: format!("hello, {name}!"),
            }))
        })
    }
}

type ReplyStream = Pin<Box<dyn Stream<Item = Result<HelloReply, Status>> + Send>>;

struct Count;

impl tonic::server::ServerStreamingService<CountRequest> for Count {
    type Response = HelloReply;
    type ResponseStream = ReplyStream;
    type Future = BoxFuture<Response<ReplyStream>, Status>;

    fn call(&mut self, request: Request<CountRequest>) -> Self::Future {
        Box::pin(async move {
            let n = request.into_inner().n.min(1000);
            let stream = futures_util::stream::unfold(0u32, move |i| async move {
                if i >= n {
                    return None;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
                Some((
                    Ok(HelloReply {
                        message: format!("{i}"),
                    }),
                    i + 1,
                ))
            });
            Ok(Response::new(Box::pin(stream) as ReplyStream))
        })
    }
}

struct Abort;

impl tonic::server::UnaryService<HelloRequest> for Abort {
    type Response = HelloReply;
    type Future = BoxFuture<Response<HelloReply>, Status>;

    fn call(&mut self, request: Request<HelloRequest>) -> Self::Future {
        // httpq's ResetStream (HTTP.sys's IHttpResetFeature) is in the request extensions on
        // HTTP/2: the client sees RST_STREAM with this code instead of a response.
        let reset = request.extensions().get::<httpq::ResetStream>().cloned();
        Box::pin(async move {
            match reset {
                Some(reset) => {
                    reset.reset(ABORT_CODE);
                    Err(Status::aborted("the stream was reset"))
                }
                None => Err(Status::failed_precondition(
                    "stream reset needs HTTP/2: this request has no ResetStream",
                )),
            }
        })
    }
}

impl<B> Service<http::Request<B>> for GreeterServer
where
    B: Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        match request.uri().path() {
            SAY_HELLO => Box::pin(async move {
                let mut grpc = tonic::server::Grpc::new(ProstCodec::default());
                Ok(grpc.unary(SayHello, request).await)
            }),
            COUNT => Box::pin(async move {
                let mut grpc = tonic::server::Grpc::new(ProstCodec::default());
                Ok(grpc.server_streaming(Count, request).await)
            }),
            ABORT => Box::pin(async move {
                let mut grpc = tonic::server::Grpc::new(ProstCodec::default());
                Ok(grpc.unary(Abort, request).await)
            }),
            other => {
                let status = Status::unimplemented(format!("no method {other}"));
                Box::pin(async move { Ok(status.into_http()) })
            }
        }
    }
}
