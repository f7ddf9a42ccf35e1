//! `kill -9` a process while it commits configuration changes, again and again: every time, the
//! store must load, and must hold every change that was acknowledged before the kill.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn acknowledged_changes_survive_sigkill() {
    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    let writer = httpq_test_support::target_dir()
        .join(profile)
        .join("examples/state_writer");
    let dir = std::env::temp_dir().join(format!("httpq-state-crash-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut acked: Option<usize> = None;
    for round in 0..25u64 {
        let mut child = Command::new(&writer)
            .arg(&dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", writer.display()));
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(n) = line
                    .strip_prefix("ack ")
                    .and_then(|n| n.parse::<usize>().ok())
                {
                    if tx.send(n).is_err() {
                        break;
                    }
                }
            }
        });
        // Let it commit for a varying while (a few ms to ~60 ms), then SIGKILL.
        let until = Instant::now() + Duration::from_millis(3 + (round * 37) % 60);
        while Instant::now() < until {
            if let Ok(n) = rx.recv_timeout(Duration::from_millis(1)) {
                acked = Some(acked.map_or(n, |a| a.max(n)));
            }
        }
        child.kill().unwrap();
        child.wait().unwrap();
        while let Ok(n) = rx.try_recv() {
            acked = Some(acked.map_or(n, |a| a.max(n)));
        }
        let (_, config) = httpq_state::Store::open(&dir).unwrap_or_else(|e| {
            panic!("round {round}: the store does not load after SIGKILL: {e}")
        });
        if let Some(a) = acked {
            assert!(
                config.url_acls.len() > a,
                "round {round}: change {a} was acknowledged but the store holds {}",
                config.url_acls.len()
            );
        }
        // Entries are consecutive: nothing half-applied.
        for (i, e) in config.url_acls.iter().enumerate() {
            assert!(
                e.url.ends_with(&format!("/n{i}/")),
                "round {round}: entry {i} is {}",
                e.url
            );
        }
    }
    assert!(
        acked.is_some_and(|a| a > 0),
        "the writer never acknowledged a change"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
