//! Every limit and timer, proven with a real client over a real socket (short timers
//! configured here), including the HTTP.sys reason phrase in the log.
#![allow(clippy::unwrap_used)]

mod common;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::{addr, builder, echo, wait_log};
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use httpq::Http503Verbosity;
use httpq_test_support::{RawClient, RawResponse, request};

async fn send(a: SocketAddr, raw: String) -> RawResponse {
    tokio::task::spawn_blocking(move || {
        let mut c = RawClient::connect(a).unwrap();
        c.send(&raw).unwrap();
        let r = c.read_response().unwrap();
        assert!(
            c.is_closed(),
            "a refused request must close the connection: {raw:?} -> {}",
            r.text()
        );
        r
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parser_limits_answer_400_close_and_log_the_reason() {
    let server = builder()
        .max_field_length(200)
        .max_request_bytes(600)
        .max_headers(5)
        .url_segment_max_length(10)
        .url_segment_max_count(3)
        .bind(echo())
        .await
        .unwrap();
    let a = addr(&server).await;
    let cases = [
        (
            format!(
                "GET / HTTP/1.1\r\nHost: h\r\nX: {}\r\n\r\n",
                "v".repeat(300)
            ),
            "FieldLength",
        ),
        (
            format!(
                "GET / HTTP/1.1\r\nHost: h\r\nA: {0}\r\nB: {0}\r\nC: {0}\r\nD: {0}\r\n\r\n",
                "v".repeat(180)
            ),
            "RequestLength",
        ),
        (
            "GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 1\r\nC: 1\r\nD: 1\r\nE: 1\r\n\r\n".to_owned(),
            "Header",
        ),
        (
            format!("GET /{} HTTP/1.1\r\nHost: h\r\n\r\n", "s".repeat(11)),
            "URL_Length",
        ),
        (
            "GET /a/b/c/d HTTP/1.1\r\nHost: h\r\n\r\n".to_owned(),
            "URL_Length",
        ),
        ("GET /a%00b HTTP/1.1\r\nHost: h\r\n\r\n".to_owned(), "URL"),
        ("GET /%zz HTTP/1.1\r\nHost: h\r\n\r\n".to_owned(), "URL"),
    ];
    for (raw, reason) in cases {
        let r = send(a, raw).await;
        assert_eq!(r.status, 400, "{reason}: {}", r.text());
        assert!(
            r.text().contains(&format!("({reason})")),
            "{reason}: {}",
            r.text()
        );
        assert!(
            wait_log(&format!("reason=\"{reason}\"")).await,
            "{reason} not logged"
        );
    }
    // Within the limits, the same server answers.
    let r = request(a, "GET /a/b/c HTTP/1.1\r\nHost: h\r\n\r\n").unwrap();
    assert_eq!(r.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ambiguous_framing_and_bad_bytes_are_refused() {
    let server = builder().bind(echo()).await.unwrap();
    let a = addr(&server).await;
    let cases = [
        (
            "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
            400,
            "Number",
        ),
        (
            "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
            400,
            "Number",
        ),
        (
            "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3x\r\n\r\nabc",
            400,
            "Number",
        ),
        (
            "GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n folded\r\n\r\n",
            400,
            "Header",
        ),
        (
            "GET / HTTP/1.1\r\nHost: h\rX: a\r\n\r\n",
            400,
            "Invalid_CR/LF",
        ),
        ("GET / HTTP/1.1\nHost: h\r\n\r\n", 400, "Invalid_CR/LF"),
        (
            "GET / HTTP/1.1\r\nHost: h\r\nX: a\x01b\r\n\r\n",
            400,
            "Header",
        ),
        (
            "GET / HTTP/1.1\r\nHost: h\r\nBad Name: a\r\n\r\n",
            400,
            "Header",
        ),
        ("GET / HTTP/1.1\r\n\r\n", 400, "Hostname"),
        (
            "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
            400,
            "Hostname",
        ),
        ("GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400, "Hostname"),
        (
            "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n",
            501,
            "N/I",
        ),
        ("GET / HTTP/3.0\r\nHost: h\r\n\r\n", 505, "Version_N/S"),
    ];
    for (raw, status, reason) in cases {
        let r = send(a, raw.to_owned()).await;
        assert_eq!(r.status, status, "{raw:?}: {}", r.text());
        assert!(r.text().contains(reason), "{raw:?}: {}", r.text());
    }
    // A bad chunk size inside a body the app reads: refused, connection closed.
    let raw = "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n";
    let r = send(a, raw.into()).await;
    assert!(r.text().contains("ERROR("), "{}", r.text());
}

/// Reads the whole body and reports its size, after optionally raising the limit.
fn sized(
    raise_to: Option<u64>,
) -> impl tower::Service<
    Request<httpq::Body>,
    Response = Response<Full<Bytes>>,
    Error = Infallible,
    Future = impl Send,
> + Clone
+ Send
+ 'static {
    tower::service_fn(move |req: Request<httpq::Body>| async move {
        if let Some(n) = raise_to {
            httpq::RequestContext::of(&req)
                .and_then(httpq::RequestContext::max_request_body_size)
                .unwrap()
                .set(Some(n))
                .unwrap();
        }
        let text = match req.into_body().collect().await {
            Ok(b) => format!("read {}", b.to_bytes().len()),
            Err(e) => format!("error {e}"),
        };
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(text))))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_request_body_size_answers_413() {
    let server = builder()
        .max_request_body_size(Some(10))
        .bind(sized(None))
        .await
        .unwrap();
    let a = addr(&server).await;
    // Declared too large: 413 without a single body byte read (the client never sends it).
    let r = send(
        a,
        "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\nExpect: 100-continue\r\n\r\n".into(),
    )
    .await;
    assert_eq!(r.status, 413, "{}", r.text());
    assert!(r.text().contains("EntityTooLarge"));
    assert!(wait_log("reason=\"EntityTooLarge\"").await);
    // Streaming (chunked): refused when the running total passes the limit.
    let r = send(
        a,
        "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n6\r\n123456\r\n6\r\n123456\r\n0\r\n\r\n".into(),
    )
    .await;
    assert_eq!(r.status, 413);
    // At the limit: fine.
    let r = request(
        a,
        "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\n0123456789",
    )
    .unwrap();
    assert_eq!(r.text(), "read 10");

    // The per-request override, set before the body is read, raises the limit.
    let server = builder()
        .max_request_body_size(Some(10))
        .bind(sized(Some(100)))
        .await
        .unwrap();
    let a = addr(&server).await;
    let body = "x".repeat(50);
    let r = request(
        a,
        format!("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 50\r\n\r\n{body}"),
    )
    .unwrap();
    assert_eq!(r.text(), "read 50");
}

/// The per-request limit works in daemon mode too: the app's `MaxRequestBodySize::set` reaches
/// the listener (SET_LIMIT) before its first read, and the listener enforces it: lowered, a
/// body over it gets the listener's 413; raised, a body over the listener's default (30 MB)
/// gets through. Before, the app had no limit handle at all in daemon mode.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_request_body_size_per_request_in_daemon_mode() {
    let listener = httpq_test_support::Httpqd::start("bodylimit");
    let serve = async |raise: Option<u64>| {
        let server = builder()
            .daemon_socket(&listener.socket)
            .bind(sized(raise))
            .await
            .unwrap();
        let port = server.urls()[0].port();
        (server, SocketAddr::from(([127, 0, 0, 1], port)))
    };
    let post = |a: SocketAddr, len: usize| {
        tokio::task::spawn_blocking(move || {
            let mut c = RawClient::connect(a).unwrap();
            c.send(format!(
                "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: {len}\r\n\r\n"
            ))
            .unwrap();
            // The listener may answer before taking the whole body: ignore a failed send.
            let _ = c.send(vec![b'x'; len]);
            c.read_response().unwrap()
        })
    };
    // Lowered to 100 by the app: 150 bytes are refused by the listener.
    let (_lowered, a) = serve(Some(100)).await;
    let r = post(a, 150).await.unwrap();
    assert_eq!(r.status, 413, "{}", r.text());
    assert!(r.text().contains("EntityTooLarge"), "{}", r.text());
    assert_eq!(post(a, 100).await.unwrap().text(), "read 100");
    // Raised to 40 MB: 31 MB gets through, where the default refuses it.
    let (_raised, a) = serve(Some(40_000_000)).await;
    assert_eq!(post(a, 31_000_000).await.unwrap().text(), "read 31000000");
    let (_default, a) = serve(None).await;
    assert_eq!(post(a, 31_000_000).await.unwrap().status, 413);
}

/// Answers /big with a 70,000-byte header value, /many with 16,385 header fields, /trailers
/// with a body and 16,385 trailer fields at once, /late-trailers with the same after a pause
/// (its head has gone out by then), anything else with "ok".
fn oversized() -> impl tower::Service<
    Request<httpq::Body>,
    Response = Response<http_body_util::combinators::UnsyncBoxBody<Bytes, Infallible>>,
    Error = Infallible,
    Future = impl Send,
> + Clone
+ Send
+ 'static {
    tower::service_fn(|req: Request<httpq::Body>| async move {
        let mut fields = http::HeaderMap::new();
        for _ in 0..=httpq_wire::MAX_HEADER_FIELDS {
            fields.append("x-f", http::HeaderValue::from_static("1"));
        }
        let mut res = Response::new(Full::new(Bytes::from_static(b"ok")).boxed_unsync());
        match req.uri().path() {
            "/big" => {
                let big = http::HeaderValue::from_str(&"v".repeat(70_000)).unwrap();
                res.headers_mut().insert("x-big", big);
            }
            "/many" => *res.headers_mut() = fields,
            path @ ("/trailers" | "/late-trailers") => {
                let pause = path == "/late-trailers";
                let frames = futures_util::stream::unfold(0, move |step| {
                    let fields = fields.clone();
                    async move {
                        let frame = match step {
                            0 => http_body::Frame::data(Bytes::from_static(b"part")),
                            1 => {
                                if pause {
                                    tokio::time::sleep(Duration::from_millis(200)).await;
                                }
                                http_body::Frame::trailers(fields)
                            }
                            _ => return None,
                        };
                        Some((Ok(frame), step + 1))
                    }
                });
                *res.body_mut() = http_body_util::StreamBody::new(frames).boxed_unsync();
            }
            _ => {}
        }
        Ok::<_, Infallible>(res)
    })
}

/// Daemon mode: a response head the wire cannot carry (larger than the connection's frames,
/// or more header fields than a list may hold) gets a 500 for its own request, and the app's
/// connection to the listener goes on serving. Before, the head went out anyway: the listener
/// refused the frame and closed the connection, failing every request on it, and 16,385
/// fields made the app's frame encoder panic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_response_head_the_wire_cannot_carry_fails_only_its_request() {
    let listener = httpq_test_support::Httpqd::start("oversized");
    let server = builder()
        .daemon_socket(&listener.socket)
        .bind(oversized())
        .await
        .unwrap();
    let a = SocketAddr::from(([127, 0, 0, 1], server.urls()[0].port()));
    let get = |path: &'static str| {
        tokio::task::spawn_blocking(move || {
            request(a, format!("GET {path} HTTP/1.1\r\nHost: h\r\n\r\n")).unwrap()
        })
    };
    assert_eq!(get("/ok").await.unwrap().text(), "ok");
    for path in ["/big", "/many"] {
        let r = get(path).await.unwrap();
        assert_eq!(r.status, 500, "{path}: {}", r.text());
        assert!(
            wait_log("the response head cannot cross to the listener").await,
            "{path}: the app must say why"
        );
        // The same connection to the listener serves the next request.
        assert_eq!(get("/ok").await.unwrap().text(), "ok", "after {path}");
    }
    // Trailers that cannot cross: a 500 while nothing of the response has gone out ...
    let r = get("/trailers").await.unwrap();
    assert_eq!(r.status, 500, "/trailers: {}", r.text());
    assert_eq!(get("/ok").await.unwrap().text(), "ok", "after /trailers");
    // ... and a cut response once its head has: the client sees the connection end early
    // (not a read timeout), and the app's connection goes on.
    let cut = tokio::task::spawn_blocking(move || {
        let mut c = RawClient::connect(a).unwrap();
        c.send("GET /late-trailers HTTP/1.1\r\nHost: h\r\n\r\n")
            .unwrap();
        c.read_response().map(|r| r.text())
    })
    .await
    .unwrap();
    match cut {
        Err(e) => assert!(
            !matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
            "the cut must not look like a stalled response: {e}"
        ),
        Ok(text) => panic!("a response whose trailers cannot cross looked complete: {text}"),
    }
    assert_eq!(
        get("/ok").await.unwrap().text(),
        "ok",
        "after /late-trailers"
    );
}

/// HTTP.sys's error log in embedded mode (`error_log_dir`): every refusal the listener made
/// itself gets a line with its reason phrase, written off the request path.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_are_written_to_the_httperr_log() {
    let dir = std::env::temp_dir().join(format!("httpq-httperr-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let server = builder()
        .error_log_dir(dir.clone())
        .bind(echo())
        .await
        .unwrap();
    let a = addr(&server).await;
    let r = send(a, "GET /x HTTP/1.1\r\nHost: bad host\r\n\r\n".into()).await;
    assert_eq!(r.status, 400);
    let r = send(
        a,
        "GET /y HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n"
            .into(),
    )
    .await;
    assert_eq!(r.status, 400);
    let file = dir.join("httperr1.log");
    let mut text = String::new();
    for _ in 0..100 {
        text = std::fs::read_to_string(&file).unwrap_or_default();
        if text.lines().filter(|l| !l.starts_with('#')).count() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(text.starts_with("#Software: httpq "), "{text}");
    assert!(text.contains("#Fields: date time c-ip c-port s-ip s-port cs-version cs-method cs-uri streamid sc-status s-siteid s-reason s-queuename"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.contains(" GET /x - 400 - Hostname -")),
        "{text}"
    );
    // Refused while the head was parsed: method and target are not known yet.
    assert!(
        text.lines()
            .any(|l| l.contains(" HTTP/1.1 - - - 400 - Number -")),
        "{text}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A service that serves one request at a time and holds each for `hold`.
fn one_at_a_time(
    hold: Duration,
) -> impl tower::Service<
    Request<httpq::Body>,
    Response = Response<Full<Bytes>>,
    Error = Infallible,
    Future = impl Send,
> + Clone
+ Send
+ 'static {
    tower::ServiceBuilder::new()
        .concurrency_limit(1)
        .service(tower::service_fn(
            move |_req: Request<httpq::Body>| async move {
                tokio::time::sleep(hold).await;
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"done"))))
            },
        ))
}

async fn fill_queue(a: SocketAddr, n: usize) -> Vec<tokio::task::JoinHandle<RawResponse>> {
    let mut v = Vec::new();
    for _ in 0..n {
        v.push(tokio::task::spawn_blocking(move || {
            request(a, "GET / HTTP/1.1\r\nHost: h\r\n\r\n").unwrap()
        }));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_limit_with_each_503_verbosity() {
    for verbosity in [
        Http503Verbosity::Limited,
        Http503Verbosity::Full,
        Http503Verbosity::Basic,
    ] {
        let server = builder()
            .request_queue_limit(1)
            .http503_verbosity(verbosity)
            .bind(one_at_a_time(Duration::from_millis(1500)))
            .await
            .unwrap();
        let a = addr(&server).await;
        let h = server.handle();
        // One request in the app, one waiting in the queue: the queue is full.
        let busy = fill_queue(a, 2).await;
        assert_eq!(h.queue_depth(), 1);
        let third = tokio::task::spawn_blocking(move || {
            let mut c = RawClient::connect(a).unwrap();
            c.send("GET / HTTP/1.1\r\nHost: h\r\n\r\n").unwrap();
            (c.read_to_close(), c)
        })
        .await
        .unwrap();
        match verbosity {
            Http503Verbosity::Basic => assert!(
                third
                    .0
                    .as_ref()
                    .is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionReset),
                "Basic must reset the connection: {:?}",
                third.0
            ),
            Http503Verbosity::Limited => {
                let out = String::from_utf8(third.0.unwrap()).unwrap();
                assert!(out.starts_with("HTTP/1.1 503 "), "{out}");
                assert!(out.ends_with("\r\n\r\n503 Service Unavailable\n"), "{out}");
            }
            Http503Verbosity::Full => {
                let out = String::from_utf8(third.0.unwrap()).unwrap();
                assert!(out.starts_with("HTTP/1.1 503 "), "{out}");
                assert!(
                    out.contains("(QueueFull): the request queue is full"),
                    "{out}"
                );
            }
        }
        // Nothing queued was lost: both earlier requests complete.
        for b in busy {
            assert_eq!(b.await.unwrap().text(), "done");
        }
        assert!(wait_log("reason=\"QueueFull\"").await);
        h.shutdown(Duration::from_secs(1)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_queue_timeout_answers_503() {
    let server = builder()
        .request_queue_timeout(Duration::from_millis(500))
        .http503_verbosity(Http503Verbosity::Full)
        .bind(one_at_a_time(Duration::from_secs(2)))
        .await
        .unwrap();
    let a = addr(&server).await;
    let mut both = fill_queue(a, 2).await;
    let second = both.pop().unwrap().await.unwrap();
    assert_eq!(second.status, 503);
    assert!(
        second.text().contains("Timer_ReqQueue"),
        "{}",
        second.text()
    );
    assert_eq!(both.pop().unwrap().await.unwrap().text(), "done");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_connections_refuses_with_503() {
    let server = builder()
        .max_connections(Some(1))
        .bind(echo())
        .await
        .unwrap();
    let a = addr(&server).await;
    tokio::task::spawn_blocking(move || {
        let mut first = RawClient::connect(a).unwrap();
        first.send("GET / HTTP/1.1\r\nHost: h\r\n\r\n").unwrap();
        assert_eq!(first.read_response().unwrap().status, 200);
        let mut second = RawClient::connect(a).unwrap();
        let out = String::from_utf8(second.read_to_close().unwrap()).unwrap();
        assert!(out.starts_with("HTTP/1.1 503 "), "{out}");
        assert!(out.contains("ConnLimit"), "{out}");
        drop(first);
        std::thread::sleep(Duration::from_millis(200));
        assert_eq!(
            request(a, "GET / HTTP/1.1\r\nHost: h\r\n\r\n")
                .unwrap()
                .status,
            200
        );
    })
    .await
    .unwrap();
    assert!(wait_log("reason=\"ConnLimit\"").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_wait_and_idle_connection_timers_close_slow_clients() {
    let server = builder()
        .header_wait_timeout(Duration::from_millis(600))
        .idle_connection_timeout(Duration::from_millis(600))
        .bind(echo())
        .await
        .unwrap();
    let a = addr(&server).await;
    tokio::task::spawn_blocking(move || {
        // Slowloris: a head that never completes.
        let mut c = RawClient::connect(a).unwrap();
        c.send("GET / HTTP/1.1\r\nHost: h\r\nX-Slow: ").unwrap();
        std::thread::sleep(Duration::from_millis(300));
        c.send("a").unwrap();
        assert!(c.is_closed(), "header_wait must close the connection");
        // Idle keep-alive connection.
        let mut c = RawClient::connect(a).unwrap();
        c.send("GET / HTTP/1.1\r\nHost: h\r\n\r\n").unwrap();
        assert_eq!(c.read_response().unwrap().status, 200);
        assert!(c.is_closed(), "idle_connection must close the connection");
    })
    .await
    .unwrap();
    assert!(wait_log("reason=\"Timer_HeaderWait\"").await);
    assert!(wait_log("reason=\"Timer_ConnectionIdle\"").await);
}

/// Bytes of a next request (even a bare CRLF, which a client may send between requests)
/// start header_wait, and later ones do not restart it: the connection closes header_wait
/// after the first, however the idle wait between requests is organised.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_wait_runs_from_the_first_byte_between_requests() {
    let server = builder()
        .header_wait_timeout(Duration::from_millis(800))
        .idle_connection_timeout(Duration::from_secs(30))
        .bind(echo())
        .await
        .unwrap();
    let a = addr(&server).await;
    tokio::task::spawn_blocking(move || {
        let mut c = RawClient::connect(a).unwrap();
        c.send("GET / HTTP/1.1\r\nHost: h\r\n\r\n").unwrap();
        assert_eq!(c.read_response().unwrap().status, 200);
        let first = std::time::Instant::now();
        c.send("\r\n").unwrap();
        std::thread::sleep(Duration::from_millis(600));
        c.send("\r\n").unwrap();
        c.set_read_timeout(Duration::from_secs(5)).unwrap();
        assert!(c.is_closed(), "header_wait must close the connection");
        let took = first.elapsed();
        assert!(
            took < Duration::from_millis(1300),
            "closed {took:?} after the first byte: the second CRLF restarted header_wait"
        );
    })
    .await
    .unwrap();
}

/// HTTP/2 keeps a connection open while streams come and go, and closes it (GOAWAY)
/// idle_connection after the last one, as HTTP.sys's idle timer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http2_connection_idles_out_after_its_last_stream() {
    let server = builder()
        .idle_connection_timeout(Duration::from_millis(600))
        .bind(echo())
        .await
        .unwrap();
    let a = addr(&server).await;
    let tcp = tokio::net::TcpStream::connect(a).await.unwrap();
    let (client, conn) = h2::client::handshake(tcp).await.unwrap();
    let conn = tokio::spawn(conn);
    let mut client = client.ready().await.unwrap();
    let started = tokio::time::Instant::now();
    let mut answered = started;
    // A request every 300 ms for 1.5 s: each stream moves the idle deadline.
    while started.elapsed() < Duration::from_millis(1500) {
        let req = Request::builder()
            .uri(format!("http://{a}/"))
            .body(())
            .unwrap();
        let (resp, _) = client.send_request(req, true).unwrap();
        assert_eq!(resp.await.unwrap().status(), 200);
        answered = tokio::time::Instant::now();
        assert!(!conn.is_finished(), "closed while streams kept coming");
        tokio::time::sleep(Duration::from_millis(300)).await;
        client = client.ready().await.unwrap();
    }
    // Then nothing: the listener says GOAWAY and the connection ends.
    tokio::time::timeout(Duration::from_secs(5), conn)
        .await
        .expect("the idle connection was not closed")
        .unwrap()
        .ok();
    assert!(
        answered.elapsed() >= Duration::from_millis(550),
        "closed {:?} after the last answer, before idle_connection",
        answered.elapsed()
    );
    assert!(wait_log("reason=\"Timer_ConnectionIdle\"").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entity_body_and_drain_timers() {
    let server = builder()
        .entity_body_timeout(Duration::from_millis(500))
        .drain_entity_body_timeout(Duration::from_millis(500))
        .bind(sized(None))
        .await
        .unwrap();
    let a = addr(&server).await;
    // The app reads a body that stalls: the app sees a timeout error, the connection closes.
    let r = send(
        a,
        "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\nab".into(),
    )
    .await;
    assert!(r.text().contains("timed out"), "{}", r.text());
    assert!(wait_log("reason=\"Timer_EntityBody\"").await);

    // An app that ignores the body: the listener drains it and keeps the connection; a
    // stalled body is dropped after drain_entity_body.
    let ignore = tower::service_fn(|_req: Request<httpq::Body>| async move {
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ignored"))))
    });
    let server = builder()
        .drain_entity_body_timeout(Duration::from_millis(500))
        .bind(ignore)
        .await
        .unwrap();
    let a = addr(&server).await;
    tokio::task::spawn_blocking(move || {
        let mut c = RawClient::connect(a).unwrap();
        c.send("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello")
            .unwrap();
        assert_eq!(c.read_response().unwrap().text(), "ignored");
        c.send("GET / HTTP/1.1\r\nHost: h\r\n\r\n").unwrap();
        assert_eq!(c.read_response().unwrap().text(), "ignored");
        c.send("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5000\r\n\r\nhel")
            .unwrap();
        assert_eq!(c.read_response().unwrap().text(), "ignored");
        assert!(
            c.is_closed(),
            "a stalled unread body must close the connection"
        );
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn min_send_rate_drops_a_client_that_does_not_read() {
    const SIZE: usize = 64 * 1024 * 1024;
    let big = Bytes::from(vec![b'z'; SIZE]);
    let app = tower::service_fn(move |_req: Request<httpq::Body>| {
        let big = big.clone();
        async move {
            // Sent in 1 MiB frames so each write is bounded.
            let frames = (0..SIZE / (1 << 20)).map(move |i| {
                Ok::<_, Infallible>(http_body::Frame::data(big.slice(i << 20..(i + 1) << 20)))
            });
            let body = http_body_util::StreamBody::new(futures_util::stream::iter(frames));
            Ok::<_, Infallible>(Response::new(body))
        }
    });
    let server = builder()
        .min_send_bytes_per_second(10_000_000)
        .bind(app)
        .await
        .unwrap();
    let a = addr(&server).await;
    let got = tokio::task::spawn_blocking(move || {
        let mut c = RawClient::connect(a).unwrap();
        c.send("GET / HTTP/1.1\r\nHost: h\r\n\r\n").unwrap();
        // Read nothing for a while: the server's writes stall.
        std::thread::sleep(Duration::from_secs(4));
        // Whatever was sent before the server gave up, then FIN (or a reset).
        c.set_read_timeout(Duration::from_secs(20)).unwrap();
        c.read_to_close().map_or(0, |v| v.len())
    })
    .await
    .unwrap();
    assert!(
        got < SIZE,
        "the server must give up on a client reading slower than the minimum rate"
    );
    assert!(wait_log("reason=\"Timer_MinBytesPerSecond\"").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn environment_configures_and_code_wins() {
    let env = |k: &str| match k {
        "HTTPQ_URLS" => Some("http://127.0.0.1:0/env/".to_owned()),
        "HTTPQ_MAX_REQUEST_BODY_SIZE" => Some("5".to_owned()),
        "HTTPQ_REQUEST_QUEUE_LIMIT" => Some("7".to_owned()),
        _ => None,
    };
    common::init_logs();
    let b = httpq::Server::builder()
        .environment(env)
        .request_queue_limit(9);
    let (options, urls) = b.resolve().unwrap();
    assert_eq!(options.max_request_body_size, Some(5));
    assert_eq!(
        options.request_queue_limit, 9,
        "code wins over the environment"
    );
    assert_eq!(urls[0].to_string(), "http://127.0.0.1:0/env/");

    let bad = httpq::Server::builder()
        .environment(|k| (k == "HTTPQ_HEADER_WAIT_TIMEOUT").then(|| "soon".to_owned()))
        .resolve()
        .unwrap_err();
    assert!(
        bad.to_string().contains("HTTPQ_HEADER_WAIT_TIMEOUT"),
        "{bad}"
    );

    let bad = httpq::Server::builder()
        .environment(|k| (k == "HTTPQ_URLS").then(|| "http://localhost:99999/".to_owned()))
        .resolve()
        .unwrap_err();
    assert!(bad.to_string().contains("HTTPQ_URLS"), "{bad}");

    let ports = httpq::Server::builder()
        .environment(|k| (k == "HTTPQ_HTTP_PORTS").then(|| "8080;8081".to_owned()))
        .resolve()
        .unwrap();
    assert_eq!(
        ports.1.iter().map(ToString::to_string).collect::<Vec<_>>(),
        ["http://*:8080/", "http://*:8081/"]
    );
    let default = httpq::Server::builder()
        .environment(|_| None)
        .resolve()
        .unwrap();
    assert_eq!(default.1[0].to_string(), "http://localhost:5000/");
    let _ = Arc::new(());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_from_many_clients_never_takes_the_server_down() {
    let server = builder()
        .header_wait_timeout(Duration::from_secs(2))
        .bind(echo())
        .await
        .unwrap();
    let a = addr(&server).await;
    let h = server.handle();
    tokio::task::spawn_blocking(move || {
        // A fixed xorshift stream: random-looking, the same on every run.
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let prefixes: [&[u8]; 4] = [
            b"",
            b"GET / HTTP/1.1\r\nHost: h\r\n",
            b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"GET /%",
        ];
        for i in 0..200 {
            let mut bytes = prefixes[i % prefixes.len()].to_vec();
            let len = (next() % 1500) as usize;
            bytes.extend((0..len).map(|_| {
                let b = next() as u8;
                // Mostly printable, some CR/LF/NUL/high bytes.
                if b % 5 == 0 { b } else { b' ' + b % 95 }
            }));
            let Ok(mut c) = RawClient::connect(a) else {
                continue;
            };
            c.set_read_timeout(Duration::from_millis(300)).unwrap();
            let _ = c.send(&bytes);
            let _ = c.read_to_close();
        }
        // Still serving normally.
        let r = request(a, "GET /ok HTTP/1.1\r\nHost: h\r\n\r\n").unwrap();
        assert_eq!(r.status, 200);
    })
    .await
    .unwrap();
    for _ in 0..100 {
        if h.connections() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(h.connections(), 0, "every garbage connection was closed");
}
