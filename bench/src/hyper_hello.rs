//! `hyper-hello`: the "in-process hyper" baseline for `bench/run.sh`.
//!
//! A minimal, idiomatic hyper 1.x HTTP/1.1 server: one tokio multi-thread
//! runtime (one worker per available core), one task per connection,
//! `hyper::server::conn::http1` with keep-alive on (or, with `--h2c`,
//! `hyper::server::conn::http2` over cleartext with prior knowledge, which
//! `bench/idle.sh` uses to show what the h2 crate itself holds per idle
//! connection). Every request is answered `200 OK`,
//! `content-type: text/plain; charset=utf-8`, with exactly the configured body
//! bytes, built per request as `examples/hello` builds its own: the body's three
//! parts concatenated into a new buffer, the response with `Response::builder`.
//! So the handler's work is the same on both sides of a comparison, and the
//! difference is the server's.
//!
//! With `--axum`, it serves the `axum` example's `Router` (`examples/axum_app.rs`) on the
//! same `http1` connections instead, as `axum::serve` runs a router (one clone and call per
//! request), so an axum app can be compared on hyper and on httpq.
//!
//! ```text
//! hyper-hello --addr 127.0.0.1:18082 --body-file FILE
//! hyper-hello --addr 127.0.0.1:18082 --body TEXT
//! hyper-hello --addr 127.0.0.1:18082 --body TEXT --h2c
//! hyper-hello --addr 127.0.0.1:18082 --axum
//! ```

use std::convert::Infallible;
use std::net::SocketAddr;
use std::process::ExitCode;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::{TcpListener, TcpStream};
use tower::ServiceExt;

const USAGE: &str =
    "usage: hyper-hello --addr HOST:PORT (--body-file FILE | --body TEXT) [--h2c] | --axum";

struct Args {
    addr: SocketAddr,
    /// The hello body; `None` with `--axum`.
    body: Option<Bytes>,
    h2c: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut addr = None;
    let mut body = None;
    let mut h2c = false;
    let mut axum = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--addr" => {
                let v = value("--addr")?;
                addr = Some(v.parse().map_err(|e| format!("bad --addr {v:?}: {e}"))?);
            }
            "--body-file" => {
                let path = value("--body-file")?;
                let bytes = std::fs::read(&path).map_err(|e| format!("reading {path}: {e}"))?;
                body = Some(Bytes::from(bytes));
            }
            "--body" => body = Some(Bytes::from(value("--body")?)),
            "--h2c" => h2c = true,
            "--axum" => axum = true,
            "-h" | "--help" => return Err(USAGE.to_owned()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if axum && (body.is_some() || h2c) {
        return Err(
            "--axum serves the axum example's router: no --body, --body-file or --h2c".into(),
        );
    }
    if !axum && body.is_none() {
        return Err("--body-file or --body is required".into());
    }
    Ok(Args {
        addr: addr.ok_or("--addr is required")?,
        body,
        h2c,
    })
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(msg) => {
            eprintln!("hyper-hello: {msg}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .expect("building the tokio runtime");
    match runtime.block_on(serve(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hyper-hello: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(Args { addr, body, h2c }: Args) -> std::io::Result<()> {
    let listener = TcpListener::bind(addr).await?;
    println!("listening on http://{}/", listener.local_addr()?);
    let router = httpq_examples::axum_app::app();

    loop {
        let (stream, _peer) = match listener.accept().await {
            Ok(conn) => conn,
            // EMFILE and friends: keep serving the connections we have.
            Err(e) => {
                eprintln!("hyper-hello: accept: {e}");
                continue;
            }
        };
        // Same as the other targets: no Nagle delay on small responses.
        let _ = stream.set_nodelay(true);
        let io = TokioIo::new(stream);
        let Some(body) = body.clone() else {
            // As axum::serve: the router cloned per connection, and per request for its call.
            let router = router.clone();
            let service = service_fn(move |req: Request<Incoming>| router.clone().oneshot(req));
            tokio::spawn(serve_connection(io, service, false));
            continue;
        };
        let service = service_fn(move |_req: Request<Incoming>| {
            // As examples/hello: greeting, prefix and pid joined per request.
            let third = body.len() / 3;
            let parts = [&body[..third], &body[third..2 * third], &body[2 * third..]];
            let res = Response::builder()
                .header(
                    CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; charset=utf-8"),
                )
                .body(Full::new(Bytes::from(parts.concat())))
                .unwrap_or_default();
            async move { Ok::<_, Infallible>(res) }
        });
        tokio::spawn(serve_connection(io, service, h2c));
    }
}

/// One connection: HTTP/1.1 with keep-alive, or HTTP/2 with prior knowledge.
async fn serve_connection<S, B>(io: TokioIo<TcpStream>, service: S, h2c: bool)
where
    S: hyper::service::Service<Request<Incoming>, Response = Response<B>> + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let served = if h2c {
        http2::Builder::new(TokioExecutor::new())
            .serve_connection(io, service)
            .await
    } else {
        // Keep-alive is hyper's default; spelled out because the benchmark relies on it.
        http1::Builder::new()
            .keep_alive(true)
            .serve_connection(io, service)
            .await
    };
    if let Err(e) = served {
        // Clients (wrk) drop connections mid-request at the end of a run; that is noise.
        if !e.is_incomplete_message() {
            eprintln!("hyper-hello: connection: {e}");
        }
    }
}
