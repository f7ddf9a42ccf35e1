//! The CLI's own behaviour, without a listener: help, usage errors, and an unreachable
//! listener. (`crates/httpqd/tests/daemon.rs` drives it against a real httpqd.)
#![allow(clippy::unwrap_used)]

use std::process::Command;

fn httpq(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_httpq"))
        .args(args)
        .env_remove("HTTPQ_SOCKET")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn help_is_there_for_every_command() {
    let (code, out, _) = httpq(&["--help"]);
    assert_eq!(code, 0);
    for command in [
        "add urlacl",
        "delete urlacl",
        "show urlacl",
        "show servicestate",
    ] {
        assert!(out.contains(command), "{out}");
        let words: Vec<&str> = command.split(' ').collect();
        let (code, out, _) = httpq(&[words[0], words[1], "--help"]);
        assert_eq!(code, 0);
        assert!(out.starts_with(&format!("httpq {command}")), "{out}");
    }
}

#[test]
fn bad_usage_exits_2_and_an_absent_listener_exits_1() {
    let (code, _, err) = httpq(&["frobnicate"]);
    assert_eq!(code, 2);
    assert!(err.contains("unknown command"), "{err}");
    let (code, _, err) = httpq(&["--socket", "/nonexistent/httpq.sock", "show", "urlacl"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("cannot reach the httpq listener at /nonexistent/httpq.sock"),
        "{err}"
    );
    assert!(err.contains("is httpqd running?"), "{err}");
}
