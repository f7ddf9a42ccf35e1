//! The app side of daemon mode checks the listener's frames against the wire spec's stream
//! rules, as the listener checks the app's. The real httpqd keeps the rules, so the peer here
//! is a listener that breaks them on purpose (`tests/peers/rule_breaking_listener.py`, written
//! from the spec): nothing real can misbehave this way. The apps are the real examples. So
//! are the credit tests' (`tests/peers/credit_counting_listener.py`).
#![allow(clippy::unwrap_used)]

use std::io::BufRead;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};

use httpq_test_support::{free_port, spawn_example};

/// Runs the fake listener `tests/peers/SCRIPT` (with `extra` arguments after its socket and
/// port) against the real `example` app, with `env` added to the app's, and returns the JSON
/// line the listener prints when it is done.
fn against_fake_listener(
    name: &str,
    script: &str,
    extra: &[&str],
    example: &str,
    env: &[(&str, &str)],
) -> serde_json::Value {
    let dir = std::env::temp_dir().join(format!("httpq-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    let socket = dir.join("httpq.sock").to_string_lossy().into_owned();
    let port = free_port();
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/peers")
        .join(script);
    let mut fake = Command::new("python3")
        .arg(script)
        .arg(&socket)
        .arg(port.to_string())
        .args(extra)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(fake.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert!(line.contains("listening"), "{line}");

    let urls = format!("http://localhost:{port}/");
    let mut app_env = vec![
        ("HTTPQ_SOCKET", socket.as_str()),
        ("HTTPQ_URLS", urls.as_str()),
    ];
    app_env.extend_from_slice(env);
    let (_app, _) = spawn_example(example, &app_env, ": serving");
    let mut report = String::new();
    out.read_line(&mut report).unwrap();
    let _ = fake.wait();
    let _ = std::fs::remove_dir_all(&dir);
    serde_json::from_str(&report).unwrap()
}

#[test]
fn the_app_resets_a_stream_the_listener_breaks_and_refuses_a_reused_id() {
    let r = against_fake_listener("rules", "rule_breaking_listener.py", &[], "axum", &[]);
    // A body before the app's first CREDIT under 100-continue: PROTOCOL_ERROR, naming the rule.
    assert_eq!(r["resets"]["1"]["code"], 1, "{r}");
    assert!(
        r["resets"]["1"]["reason"]
            .as_str()
            .unwrap()
            .contains("no request body before the app's first CREDIT"),
        "{r}"
    );
    // A reused stream id: a connection error, GOAWAY PROTOCOL_ERROR and close.
    assert_eq!(r["goaway"], 1, "{r}");
    assert_eq!(r["closed"], true, "{r}");
}

/// Request credits (wire spec §8): the app grants one per REQUEST_HEAD as it arrives, and the
/// heads of one read share one CREDIT. The peer is a listener that counts them
/// (`tests/peers/credit_counting_listener.py`): httpqd does not report what it was granted
/// frame by frame. The app is the real hello example.
#[test]
fn the_heads_of_one_read_are_credited_together_and_a_split_head_still_earns_its_credit() {
    let r = against_fake_listener(
        "credits",
        "credit_counting_listener.py",
        &[],
        "hello",
        &[("HTTPQ_MAX_ACCEPTS", "16")],
    );
    assert_eq!(r["first"], 16, "max_accepts granted at start: {r}");
    assert_eq!(r["answers"], 9, "{r}");
    // Eight heads in one write: eight credits back, in one CREDIT (one per head before).
    let batch: Vec<u64> = serde_json::from_value(r["batch"].clone()).unwrap();
    assert_eq!(batch.iter().sum::<u64>(), 8, "{r}");
    assert_eq!(
        batch.len(),
        1,
        "the heads of one read share one CREDIT: {r}"
    );
    // A head that arrived in two reads is credited once it is whole.
    assert_eq!(r["split"], serde_json::json!([1]), "{r}");
}

/// A listener that sends one REQUEST_HEAD more than the app's credits allow gets GOAWAY
/// FLOW_CONTROL_ERROR (wire spec §8) naming the rule, and the app closes the connection at
/// once (§5.3), though a 10-second streamed answer was still under way on it. Only a listener
/// written to break the rule can do this (`credit_counting_listener.py overrun`); the app is
/// the real axum example.
#[test]
fn a_request_head_beyond_the_apps_credits_is_a_flow_control_error() {
    let r = against_fake_listener(
        "overrun",
        "credit_counting_listener.py",
        &["overrun"],
        "axum",
        &[("HTTPQ_MAX_ACCEPTS", "4")],
    );
    assert_eq!(r["first"], 4, "{r}");
    // The four credited heads are served; the fifth is not: the GOAWAY names stream 4 as the
    // last the app started (wire spec §5.3).
    assert_eq!(r["answers"], 4, "{r}");
    assert_eq!(r["goaway"]["last_stream"], 4, "{r}");
    // FLOW_CONTROL_ERROR is 3 (wire spec §9).
    assert_eq!(r["goaway"]["code"], 3, "{r}");
    assert!(
        r["goaway"]["reason"]
            .as_str()
            .unwrap()
            .contains("stream 5 without a request credit"),
        "{r}"
    );
    // Closed without waiting for /count/1000's ten seconds: at most what was already queued
    // when the GOAWAY went out follows it (one frame per 10 ms of that answer otherwise).
    assert_eq!(r["closed"], true, "{r}");
    assert!(r["after_goaway"].as_u64().unwrap() < 20, "{r}");
}
