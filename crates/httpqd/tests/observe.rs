//! What operators see in daemon mode: access logs configured with the CLI (per queue and
//! centralized, stored across restarts), written by the listener and read back by goaccess;
//! request ids equal in the listener's log and the app; metrics checked by promtool. Real
//! httpqd, real example apps as separate processes, real curl.
#![allow(clippy::unwrap_used)]

use httpq_test_support::w3c::{goaccess, goaccess_format, log_file, w3c_lines};
use httpq_test_support::{
    Httpqd, KillOnDrop, curl, free_port, peer_available, promtool_check, spawn_example,
};

fn me() -> String {
    let out = std::process::Command::new("id")
        .arg("-un")
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn request_id(whoami_json: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(whoami_json).unwrap();
    v["request_id"].as_u64().unwrap().to_string()
}

#[test]
#[allow(clippy::too_many_lines)]
fn the_listener_logs_every_exchange_and_serves_metrics() {
    if !peer_available("goaccess", &["goaccess", "--version"])
        || !peer_available("promtool", &["promtool", "--version"])
    {
        return;
    }
    let dir = std::env::temp_dir().join(format!("httpqd-test-observe-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let socket = dir.join("httpq.sock").to_string_lossy().into_owned();
    let metrics = free_port();
    let metrics_arg = format!("127.0.0.1:{metrics}");
    let args = ["--metrics-address", metrics_arg.as_str()];
    let mut listener = Httpqd {
        child: Httpqd::launch(&dir, &socket, &args),
        socket: socket.clone(),
        dir: dir.clone(),
    };
    let qlog = dir.join("queue-log");
    let clog = dir.join("central-log");
    let web = format!("{}/web", me());

    // A log for one named queue, added before its queue exists.
    let (code, out, err) = listener.cli(&[
        "add",
        "logging",
        &format!("dir={}", qlog.display()),
        &format!("queue={web}"),
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let port = free_port();
    let env_web = [
        ("HTTPQ_SOCKET", socket.as_str()),
        ("HTTPQ_URLS", &format!("http://localhost:{port}/")),
        ("HTTPQ_REQUEST_QUEUE_NAME", "web"),
    ];
    let (_axum, _) = spawn_example("axum", &env_web, ": serving");
    let (_hello, _) = spawn_example(
        "hello",
        &[
            ("HTTPQ_SOCKET", socket.as_str()),
            ("HTTPQ_URLS", &format!("http://localhost:{port}/b/")),
        ],
        ": serving",
    );
    let base = format!("http://localhost:{port}");
    let (_, h1) = curl(&["-s", &format!("{base}/whoami")]);
    let (_, h2) = curl(&["-s", "--http2-prior-knowledge", &format!("{base}/whoami")]);
    let (_, hello) = curl(&["-s", "-A", "ua/1", &format!("{base}/hello/ada")]);
    assert_eq!(hello, "hello, ada!\n");
    let (_, other) = curl(&["-s", &format!("{base}/b/x")]);
    assert!(other.starts_with("Hello from httpq!"), "{other}");
    let (code, _, err) = listener.cli(&["flush", "logbuffer"]);
    assert_eq!(code, 0, "{err}");

    let qfile = log_file(&qlog);
    let text = std::fs::read_to_string(&qfile).unwrap();
    let lines = w3c_lines(&text);
    // Only the queue's exchanges, with its name, and the request ids the app saw.
    assert_eq!(lines.len(), 3, "{text}");
    assert!(lines.iter().all(|l| l["s-queuename"] == web), "{text}");
    assert!(!text.contains("/b/x"), "{text}");
    let whoami: Vec<_> = lines
        .iter()
        .filter(|l| l["cs-uri-stem"] == "/whoami")
        .collect();
    assert_eq!(whoami.len(), 2, "{text}");
    assert_eq!(whoami[0]["s-streamid"], request_id(&h1), "{text}\n{h1}");
    assert_eq!(whoami[1]["s-streamid"], request_id(&h2), "{text}\n{h2}");
    let ada = lines
        .iter()
        .find(|l| l["cs-uri-stem"] == "/hello/ada")
        .unwrap();
    assert_eq!(ada["cs(User-Agent)"], "ua/1");
    assert_eq!(ada["sc-status"], "200");
    // goaccess reads the default fields as IIS's W3C format.
    assert_eq!(goaccess(&qfile, "W3C"), (3, 3, 0));

    // A centralized log takes every exchange; queue logs stop while it exists.
    let (code, out, err) = listener.cli(&[
        "add",
        "logging",
        &format!("dir={}", clog.display()),
        "fields=all",
        "rollover=hourly",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let (_, _) = curl(&["-s", &format!("{base}/b/y")]);
    let (_, _) = curl(&["-s", &format!("{base}/hello/bob")]);
    let (_, refused) = curl(&["-s", "-H", "Host: nobody.example", &format!("{base}/b/")]);
    assert!(refused.starts_with("400"), "{refused}");
    let (code, _, err) = listener.cli(&["flush", "logbuffer"]);
    assert_eq!(code, 0, "{err}");
    let cfile = log_file(&clog);
    let name = cfile.file_name().unwrap().to_string_lossy().into_owned();
    assert_eq!(name.len(), "u_exYYMMDDHH.log".len(), "hourly: {name}");
    let ctext = std::fs::read_to_string(&cfile).unwrap();
    let clines = w3c_lines(&ctext);
    assert_eq!(clines.len(), 3, "{ctext}");
    let stem = |s: &str| clines.iter().find(|l| l["cs-uri-stem"] == s).unwrap();
    assert_eq!(stem("/b/y")["s-queuename"], "-");
    assert_eq!(stem("/hello/bob")["s-queuename"], web);
    assert_eq!(stem("/b/")["s-reason"], "Hostname");
    assert_eq!(stem("/b/")["sc-status"], "400");
    assert_eq!(
        w3c_lines(&std::fs::read_to_string(&qfile).unwrap()).len(),
        3,
        "the queue log gets nothing while the centralized one runs"
    );
    let fields = ctext
        .lines()
        .find_map(|l| l.strip_prefix("#Fields: "))
        .unwrap()
        .to_owned();
    assert_eq!(goaccess(&cfile, &goaccess_format(&fields)), (3, 3, 0));

    // Metrics, as promtool wants them, counting by queue, protocol, status and reason.
    let (_, m) = curl(&["-s", &format!("http://127.0.0.1:{metrics}/metrics")]);
    if let Err(e) = promtool_check(&m) {
        panic!("promtool: {e}\n{m}");
    }
    for want in [
        format!("httpq_requests_total{{queue=\"{web}\",protocol=\"http1\",status=\"2xx\"}} 3"),
        format!("httpq_requests_total{{queue=\"{web}\",protocol=\"http2\",status=\"2xx\"}} 1"),
        "httpq_requests_total{queue=\"-\",protocol=\"http1\",status=\"2xx\"} 2".to_owned(),
        "httpq_refusals_total{reason=\"Hostname\"} 1".to_owned(),
        format!("httpq_queue_depth{{queue=\"{web}\"}} 0"),
    ] {
        assert!(m.contains(&want), "{want} missing:\n{m}");
    }

    // Mistakes are refused, naming the fix, and change nothing.
    let (code, _, err) = listener.cli(&["add", "logging", "dir=relative/logs"]);
    assert_ne!(code, 0);
    assert!(err.contains("absolute path"), "{err}");
    let (code, _, err) = listener.cli(&["add", "logging", &format!("dir={}", dir.display())]);
    assert_ne!(code, 0);
    assert!(err.contains("delete it first"), "{err}");
    let (code, _, err) = listener.cli(&[
        "add",
        "logging",
        "dir=/proc/httpq-cannot-write",
        &format!("queue={}/other", me()),
    ]);
    assert_ne!(code, 0);
    assert!(err.contains("cannot write the access log"), "{err}");
    let (code, _, err) = listener.cli(&["add", "logging", "dir=/tmp/x", "queue=web"]);
    assert_ne!(code, 0);
    assert!(err.contains("OWNER/NAME"), "{err}");
    let (code, _, err) = listener.cli(&["add", "logging", "dir=/tmp/x", "fields=date,bogus"]);
    assert_ne!(code, 0);
    assert!(err.contains("\"bogus\""), "{err}");

    // Stored: a restarted listener has both logs, and writes them.
    drop(std::mem::replace(
        &mut listener.child,
        KillOnDrop(std::process::Command::new("true").spawn().unwrap()),
    ));
    listener.child = Httpqd::launch(&dir, &socket, &args);
    let (code, out, err) = listener.cli(&["show", "logging", "--json"]);
    assert_eq!(code, 0, "{err}");
    let shown: serde_json::Value = serde_json::from_str(&out).unwrap();
    let list = shown["logging"].as_array().unwrap();
    assert_eq!(list.len(), 2, "{out}");
    assert!(out.contains(&web) && out.contains("hourly"), "{out}");
    let (code, out, _) = listener.cli(&["show", "logging"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("Directory : ") && out.contains(&clog.display().to_string()),
        "{out}"
    );
    let (code, _, err) = listener.cli(&["delete", "logging"]);
    assert_eq!(code, 0, "{err}");
    let (_, out, _) = listener.cli(&["show", "logging", "--json"]);
    let shown: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(shown["logging"].as_array().unwrap().len(), 1, "{out}");
    let (code, _, err) = listener.cli(&["delete", "logging"]);
    assert_ne!(code, 0);
    assert!(err.contains("no access log"), "{err}");
}
