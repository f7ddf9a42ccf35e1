//! Shared setup for the integration tests: a real embedded server on a free port, and a log
//! capture so tests can assert the HTTP.sys reason phrase of a refusal.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};

/// Everything the tests' tracing subscriber wrote.
pub fn logs() -> String {
    String::from_utf8_lossy(&LOG.get_or_init(Default::default).lock().unwrap()).into_owned()
}

static LOG: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();

#[derive(Clone)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

pub fn init_logs() {
    static INIT: OnceLock<()> = OnceLock::new();
    INIT.get_or_init(|| {
        let buf = LOG.get_or_init(Default::default).clone();
        let _ = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_env_filter("info")
            .with_writer(move || Capture(buf.clone()))
            .try_init();
    });
}

/// Waits until the log contains `needle` (logging happens on the server's tasks).
pub async fn wait_log(needle: &str) -> bool {
    for _ in 0..100 {
        if logs().contains(needle) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

/// A builder on `http://127.0.0.1:0/`, isolated from the environment.
pub fn builder() -> httpq::ServerBuilder {
    init_logs();
    httpq::Server::builder()
        .ignore_environment()
        .url_prefix("http://127.0.0.1:0/")
}

/// The address of the first listening socket.
pub async fn addr(server: &httpq::Server) -> SocketAddr {
    server.local_addrs().await[0]
}

/// Echoes the method, path, matched prefix and the body it read.
pub fn echo() -> impl tower::Service<
    Request<httpq::Body>,
    Response = Response<Full<Bytes>>,
    Error = Infallible,
    Future = impl Send,
> + Clone
+ Send
+ 'static {
    tower::service_fn(|req: Request<httpq::Body>| async move {
        let prefix = httpq::RequestContext::of(&req)
            .map(|c| c.prefix().to_string())
            .unwrap_or_default();
        let head = format!("{} {} prefix={prefix} body=", req.method(), req.uri());
        let body = match req.into_body().collect().await {
            Ok(b) => String::from_utf8_lossy(&b.to_bytes()).into_owned(),
            Err(e) => format!("ERROR({e})"),
        };
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(head + &body))))
    })
}

/// A service that answers every request with the text `f` makes of it (its body unread).
pub fn text_of(
    f: fn(&Request<httpq::Body>) -> String,
) -> impl tower::Service<
    Request<httpq::Body>,
    Response = Response<Full<Bytes>>,
    Error = Infallible,
    Future = impl Send,
> + Clone
+ Send
+ 'static {
    tower::service_fn(move |req: Request<httpq::Body>| async move {
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(f(&req)))))
    })
}
