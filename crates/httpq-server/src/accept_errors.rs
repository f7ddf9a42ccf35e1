//! What an accept loop does when `accept` fails: wait before trying again (so a descriptor
//! shortage, `EMFILE`/`ENFILE`, does not spin a core), and log the failure once, then at most
//! one summary line per interval instead of one line per attempt.

use std::time::{Duration, Instant};

/// How long between two log lines about failing accepts on one socket.
const LOG_INTERVAL: Duration = Duration::from_secs(10);

/// The state of one accept loop's failures.
#[derive(Debug)]
pub struct AcceptErrors {
    what: String,
    last_log: Option<Instant>,
    suppressed: u64,
}

impl AcceptErrors {
    /// For the accept loop of `what` (a listening address, "the control socket").
    #[must_use]
    pub fn new(what: impl Into<String>) -> Self {
        AcceptErrors {
            what: what.into(),
            last_log: None,
            suppressed: 0,
        }
    }

    /// How long to wait after `e`: longer when descriptors or memory ran out, since only
    /// another connection closing helps then.
    #[must_use]
    pub fn delay(e: &std::io::Error) -> Duration {
        match e.raw_os_error() {
            // EMFILE, ENFILE, ENOBUFS, ENOMEM
            Some(24 | 23 | 105 | 12) => Duration::from_millis(200),
            _ => Duration::from_millis(20),
        }
    }

    /// Records a failure, logs it unless one was logged within the interval, and waits.
    pub async fn failed(&mut self, e: &std::io::Error) {
        let now = Instant::now();
        if self
            .last_log
            .is_none_or(|t| now.duration_since(t) >= LOG_INTERVAL)
        {
            let hint = if matches!(e.raw_os_error(), Some(24 | 23)) {
                "; out of file descriptors: raise LimitNOFILE (systemd) or ulimit -n, or lower the per-user quotas"
            } else {
                ""
            };
            tracing::warn!(
                on = %self.what,
                error = %e,
                more_since_last_report = self.suppressed,
                "accept failed; retrying after a pause{hint}"
            );
            self.last_log = Some(now);
            self.suppressed = 0;
        } else {
            self.suppressed += 1;
        }
        tokio::time::sleep(Self::delay(e)).await;
    }
}
