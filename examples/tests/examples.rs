//! The first-contact examples, run as real processes and called by real curl.
#![allow(clippy::unwrap_used)]

use httpq_test_support::{curl, spawn_example};

fn url_from(line: &str) -> String {
    line.split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap()
        .to_owned()
}

#[test]
fn hello_answers_with_its_prefix_and_pid() {
    let (child, line) = spawn_example(
        "hello",
        &[("HTTPQ_URLS", "http://localhost:0/")],
        ": serving",
    );
    let url = url_from(&line);
    assert!(
        url.starts_with("http://localhost:") && !url.contains(":0/"),
        "{url}"
    );
    let (code, body) = curl(&[&url]);
    assert_eq!(code, 0);
    assert_eq!(
        body,
        format!("Hello from httpq! prefix={url} pid={}\n", child.0.id())
    );
}

#[test]
fn hello_reports_a_bad_environment_value() {
    let out = std::process::Command::new(
        httpq_test_support::target_dir()
            .join(if cfg!(debug_assertions) {
                "debug"
            } else {
                "release"
            })
            .join("examples/hello"),
    )
    .env("HTTPQ_URLS", "http://localhost:0/")
    .env("HTTPQ_REQUEST_QUEUE_LIMIT", "many")
    .output()
    .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("HTTPQ_REQUEST_QUEUE_LIMIT"), "{err}");
}

#[test]
fn axum_example_serves_params_json_and_streams() {
    let (_child, line) = spawn_example(
        "axum",
        &[("HTTPQ_URLS", "http://127.0.0.1:0/")],
        ": serving",
    );
    let url = url_from(&line);
    assert_eq!(curl(&[&format!("{url}hello/ada")]).1, "hello, ada!\n");
    let (_, sum) = curl(&[
        "-H",
        "content-type: application/json",
        "-d",
        r#"{"a":2,"b":40}"#,
        &format!("{url}sum"),
    ]);
    assert_eq!(sum, r#"{"sum":42}"#);
    assert_eq!(curl(&["-N", &format!("{url}count/3")]).1, "0\n1\n2\n");
    // The canonical URI, and the target as the client sent it (RequestContext::raw_target).
    let (_, who) = curl(&["--path-as-is", &format!("{url}x/..//who%61mi?q=1")]);
    assert!(who.contains(r#""uri":"/whoami?q=1""#), "{who}");
    assert!(
        who.contains(r#""raw_target":"/x/..//who%61mi?q=1""#),
        "{who}"
    );
}

/// Logs for humans: no colour escape codes when stderr is not a terminal (a file, a pipe, the
/// journal), and `HTTPQ_LOG` filters before `RUST_LOG`. The example serves a bad request so
/// that it logs something, then is stopped with SIGTERM and its stderr read.
#[test]
fn logs_have_no_escape_codes_off_a_terminal_and_httpq_log_filters() {
    let run = |env: &[(&str, &str)]| -> String {
        let mut cmd = std::process::Command::new(httpq_test_support::built("examples/hello"));
        for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("HTTPQ_") || k == "RUST_LOG") {
            cmd.env_remove(k);
        }
        let mut child = cmd
            .env("HTTPQ_URLS", "http://localhost:0/")
            .envs(env.iter().copied())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.take().unwrap()),
            &mut line,
        )
        .unwrap();
        let url = url_from(&line);
        // A request the listener refuses itself (bad Host), which it logs.
        let _ = curl(&["-H", "Host: bad host", &url]);
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let out = child.wait_with_output().unwrap();
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let logs = run(&[("RUST_LOG", "info")]);
    assert!(logs.contains("INFO"), "{logs}");
    assert!(
        !logs.contains('\u{1b}'),
        "escape codes in a log file: {logs:?}"
    );
    // HTTPQ_LOG wins over RUST_LOG.
    let logs = run(&[("RUST_LOG", "info"), ("HTTPQ_LOG", "error")]);
    assert!(!logs.contains("INFO"), "{logs}");
}
