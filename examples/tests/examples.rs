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
}
