//! What operators see in embedded mode: the W3C access log (read back by goaccess) and the
//! Prometheus metrics (checked by promtool), driven by real curl over real sockets.
#![allow(clippy::unwrap_used)]

mod common;

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use common::{addr, builder};
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use httpq::{AccessLogOptions, LogFields};
use httpq_test_support::w3c::{goaccess, goaccess_format, log_file, w3c_lines};
use httpq_test_support::{curl, free_port, peer_available, promtool_check};

/// Reads the body, then answers with the request id the app sees.
fn id_app() -> impl tower::Service<
    Request<httpq::Body>,
    Response = Response<Full<Bytes>>,
    Error = Infallible,
    Future = impl Send,
> + Clone
+ Send
+ 'static {
    tower::service_fn(|req: Request<httpq::Body>| async move {
        let id = httpq::RequestContext::of(&req).unwrap().id().0;
        let _ = req.into_body().collect().await;
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(id.to_string()))))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_access_log_and_metrics_see_every_exchange() {
    if !peer_available("goaccess", &["goaccess", "--version"])
        || !peer_available("promtool", &["promtool", "--version"])
    {
        return;
    }
    let dir = std::env::temp_dir().join(format!("httpq-access-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let metrics = free_port();
    let server = builder()
        .access_log(AccessLogOptions {
            fields: LogFields::all(),
            ..AccessLogOptions::new(&dir)
        })
        .metrics_address(([127, 0, 0, 1], metrics).into())
        .bind(id_app())
        .await
        .unwrap();
    let a = addr(&server).await;
    let base = format!("http://{a}");
    let (ids, bad) = tokio::task::spawn_blocking(move || {
        let get = curl(&[
            "-s",
            "-A",
            "agent 1",
            "-e",
            "http://ref.example/",
            &format!("{base}/x/y?q=1"),
        ]);
        let h2 = curl(&["-s", "--http2-prior-knowledge", &format!("{base}/h2")]);
        let post = curl(&[
            "-s",
            "--data-binary",
            &"p".repeat(1000),
            &format!("{base}/post"),
        ]);
        let bad = curl(&["-s", "-H", "Host: bad host", &format!("{base}/refused")]);
        ([get.1, h2.1, post.1], bad.1)
    })
    .await
    .unwrap();
    assert!(bad.starts_with("400 Bad Request (Hostname)"), "{bad}");
    server.flush_logs();

    let file = log_file(&dir);
    let name = file.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        name.starts_with("u_ex") && name.len() == "u_exYYMMDD.log".len(),
        "{name}"
    );
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.starts_with("#Software: httpq "), "{text}");
    assert!(text.contains("\r\n#Version: 1.0\r\n#Date: "), "{text}");
    assert!(
        text.contains(&format!("#Fields: {}\r\n", LogFields::all().header())),
        "{text}"
    );
    let lines = w3c_lines(&text);
    assert_eq!(lines.len(), 4, "{text}");
    let by_stem = |s: &str| lines.iter().find(|l| l["cs-uri-stem"] == s).unwrap();
    let get = by_stem("/x/y");
    assert_eq!(get["cs-method"], "GET");
    assert_eq!(get["cs-uri-query"], "q=1");
    assert_eq!(get["sc-status"], "200");
    assert_eq!(get["cs(User-Agent)"], "agent+1");
    assert_eq!(get["cs(Referer)"], "http://ref.example/");
    assert_eq!(get["cs-version"], "HTTP/1.1");
    assert_eq!(get["c-ip"], "127.0.0.1");
    assert_eq!(get["s-port"], a.port().to_string());
    assert_eq!(get["cs-protocol"], "http/tcp");
    assert_eq!(get["sc-win32-status"], "0");
    assert_eq!(get["s-reason"], "-");
    assert_eq!(by_stem("/h2")["cs-version"], "HTTP/2");
    // The log's request id is the one the app saw.
    for (stem, id) in ["/x/y", "/h2", "/post"].iter().zip(&ids) {
        assert_eq!(&by_stem(stem)["s-streamid"], id, "{text}");
    }
    let post = by_stem("/post");
    assert!(post["cs-bytes"].parse::<u64>().unwrap() > 1000, "{text}");
    let refused = by_stem("/refused");
    assert_eq!(refused["sc-status"], "400");
    assert_eq!(refused["s-reason"], "Hostname");
    assert_eq!(refused["cs-host"], "bad+host");
    assert_eq!(refused["s-streamid"], "-");
    for l in &lines {
        assert!(l["sc-bytes"].parse::<u64>().unwrap() > 0, "{l:?}");
    }
    // goaccess reads every line.
    let fields = LogFields::all().header();
    assert_eq!(goaccess(&file, &goaccess_format(&fields)), (4, 4, 0));

    // Metrics: promtool accepts them, and they count what happened.
    let m = tokio::task::spawn_blocking(move || {
        curl(&["-s", &format!("http://127.0.0.1:{metrics}/metrics")]).1
    })
    .await
    .unwrap();
    if let Err(e) = promtool_check(&m) {
        panic!("promtool: {e}\n{m}");
    }
    for want in [
        "httpq_requests_total{queue=\"-\",protocol=\"http1\",status=\"2xx\"} 2",
        "httpq_requests_total{queue=\"-\",protocol=\"http2\",status=\"2xx\"} 1",
        "httpq_requests_total{queue=\"-\",protocol=\"http1\",status=\"4xx\"} 1",
        "httpq_refusals_total{reason=\"Hostname\"} 1",
        "httpq_request_duration_seconds_count{protocol=\"http1\"} 3",
        "httpq_connections_accepted_total{transport=\"tcp\"} 4",
        "# TYPE httpq_queue_depth gauge",
        "httpq_active_requests{queue=\"-\"} 0",
    ] {
        assert!(m.contains(want), "{want} missing:\n{m}");
    }
    // OpenMetrics for a scraper that asks for it; a wrong path gets 404.
    let (om, missing) = tokio::task::spawn_blocking(move || {
        (
            curl(&[
                "-s",
                "-H",
                "Accept: application/openmetrics-text; version=1.0.0",
                &format!("http://127.0.0.1:{metrics}/metrics"),
            ])
            .1,
            curl(&["-s", &format!("http://127.0.0.1:{metrics}/other")]).1,
        )
    })
    .await
    .unwrap();
    assert!(om.ends_with("# EOF\n"), "{om}");
    assert!(missing.starts_with("404"), "{missing}");

    server.handle().shutdown(Duration::from_secs(1)).await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// The error resolving the options gives with these environment variables.
fn resolve_error(vars: &'static [(&'static str, &'static str)]) -> String {
    httpq::Server::builder()
        .environment(move |k: &str| {
            vars.iter()
                .find(|(name, _)| *name == k)
                .map(|(_, v)| (*v).to_owned())
        })
        .resolve()
        .unwrap_err()
        .to_string()
}

/// Bad logging options are refused with the variable and what it takes.
#[test]
fn bad_access_log_settings_are_named() {
    let e = resolve_error(&[
        ("HTTPQ_ACCESS_LOG_DIR", "/tmp/x"),
        ("HTTPQ_ACCESS_LOG_ROLLOVER", "yearly"),
    ]);
    assert!(
        e.contains("HTTPQ_ACCESS_LOG_ROLLOVER") && e.contains("hourly, daily, weekly, monthly"),
        "{e}"
    );
    let e = resolve_error(&[
        ("HTTPQ_ACCESS_LOG_DIR", "/tmp/x"),
        ("HTTPQ_ACCESS_LOG_FIELDS", "date,cs-uri-stemm"),
    ]);
    assert!(
        e.contains("HTTPQ_ACCESS_LOG_FIELDS") && e.contains("cs-uri-stemm"),
        "{e}"
    );
    let e = resolve_error(&[("HTTPQ_METRICS_ADDRESS", "localhost")]);
    assert!(e.contains("HTTPQ_METRICS_ADDRESS"), "{e}");
}
