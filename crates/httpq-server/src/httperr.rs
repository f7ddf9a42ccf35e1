//! HTTP.sys's error log (`httperrN.log`, KB820729): one line for every request or connection
//! the listener refused or closed itself, with its reason phrase, written off the request path.
//!
//! Lines go through a bounded queue to a writer thread; a full queue drops the line and counts
//! it (a request is never slowed by its log). Files are `httperr1.log`, `httperr2.log`, ... in
//! the configured directory; a new file starts when the current one would pass the truncate
//! size (HTTP.sys's `ErrorLogFileTruncateSize`, at least 1 MB), each with W3C-style header
//! lines. Times are UTC.
//!
//! ```text
//! #Software: httpq 0.1.0
//! #Version: 1.0
//! #Date: 2026-12-01 22:00:00
//! #Fields: date time c-ip c-port s-ip s-port cs-version cs-method cs-uri streamid sc-status s-siteid s-reason s-queuename
//! 2026-12-01 22:00:01 127.0.0.1 51234 127.0.0.1 8080 HTTP/1.1 GET /x - 400 - Hostname -
//! ```

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};

/// Lines waiting for the writer before new ones are dropped.
const QUEUE: usize = 8192;
/// The longest `cs-uri` written (HTTP.sys: 4096 bytes).
const MAX_URI: usize = 4096;
/// The smallest truncate size (HTTP.sys's minimum).
pub(crate) const MIN_TRUNCATE_SIZE: u64 = 1 << 20;

const FIELDS: &str = "date time c-ip c-port s-ip s-port cs-version cs-method cs-uri streamid sc-status s-siteid s-reason s-queuename";

/// What one error-log line says; absent fields are written as `-`.
#[derive(Debug, Default)]
pub(crate) struct Entry<'a> {
    pub(crate) client: Option<SocketAddr>,
    pub(crate) server: Option<SocketAddr>,
    pub(crate) version: Option<&'a str>,
    pub(crate) method: Option<&'a str>,
    pub(crate) uri: Option<&'a [u8]>,
    pub(crate) status: Option<u16>,
    pub(crate) reason: &'a str,
    pub(crate) queue: Option<&'a str>,
}

enum Msg {
    Line(String),
    Flush(std::sync::mpsc::Sender<()>),
}

/// The error log of one engine.
#[derive(Debug)]
pub(crate) struct ErrorLog {
    tx: SyncSender<Msg>,
    dropped: Arc<AtomicU64>,
}

impl std::fmt::Debug for Msg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Msg")
    }
}

impl ErrorLog {
    /// Starts the writer for `dir` (created if missing).
    ///
    /// # Errors
    /// The directory cannot be created or its newest file opened.
    pub(crate) fn start(dir: &Path, truncate_size: u64) -> std::io::Result<ErrorLog> {
        std::fs::create_dir_all(dir)?;
        let mut writer = Writer::open(dir, truncate_size.max(MIN_TRUNCATE_SIZE))?;
        let (tx, rx) = sync_channel(QUEUE);
        std::thread::Builder::new()
            .name("httpq-httperr".to_owned())
            .spawn(move || writer.run(&rx))?;
        Ok(ErrorLog {
            tx,
            dropped: Arc::new(AtomicU64::new(0)),
        })
    }

    /// Queues one line; never waits.
    pub(crate) fn log(&self, e: &Entry<'_>) {
        match self.tx.try_send(Msg::Line(format_line(e))) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
            Err(TrySendError::Disconnected(_)) => {}
        }
    }

    /// Waits until every line queued so far is written to the file.
    pub(crate) fn flush(&self) {
        let (done, wait) = std::sync::mpsc::channel();
        if self.tx.send(Msg::Flush(done)).is_ok() {
            let _ = wait.recv();
        }
    }

    /// Lines dropped because the queue was full.
    pub(crate) fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

struct Writer {
    dir: PathBuf,
    index: u64,
    file: std::io::BufWriter<std::fs::File>,
    size: u64,
    limit: u64,
}

impl Writer {
    /// Continues the newest `httperrN.log` of `dir`, or starts `httperr1.log`.
    fn open(dir: &Path, limit: u64) -> std::io::Result<Writer> {
        let newest = std::fs::read_dir(dir)?
            .filter_map(Result::ok)
            .filter_map(|e| {
                e.file_name()
                    .to_str()?
                    .strip_prefix("httperr")?
                    .strip_suffix(".log")?
                    .parse::<u64>()
                    .ok()
            })
            .max()
            .unwrap_or(1);
        Self::start_file(dir, newest, limit)
    }

    fn start_file(dir: &Path, index: u64, limit: u64) -> std::io::Result<Writer> {
        let path = dir.join(format!("httperr{index}.log"));
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)?;
        let size = file.metadata()?.len();
        let mut w = Writer {
            dir: dir.to_owned(),
            index,
            file: std::io::BufWriter::new(file),
            size,
            limit,
        };
        if size == 0 {
            let (date, time) = utc_date_time(std::time::SystemTime::now());
            let header = format!(
                "#Software: httpq {}\r\n#Version: 1.0\r\n#Date: {date} {time}\r\n#Fields: {FIELDS}\r\n",
                env!("CARGO_PKG_VERSION")
            );
            w.file.write_all(header.as_bytes())?;
            w.size = header.len() as u64;
        }
        Ok(w)
    }

    fn run(&mut self, rx: &Receiver<Msg>) {
        while let Ok(msg) = rx.recv() {
            self.handle(msg);
            // Drain what else is queued, then put it on disk.
            while let Ok(msg) = rx.try_recv() {
                self.handle(msg);
            }
            if let Err(e) = self.file.flush() {
                tracing::warn!(error = %e, dir = %self.dir.display(), "cannot write the error log");
            }
        }
    }

    fn handle(&mut self, msg: Msg) {
        match msg {
            Msg::Line(line) => {
                if self.size + line.len() as u64 > self.limit && self.size > 0 {
                    let _ = self.file.flush();
                    match Self::start_file(&self.dir, self.index + 1, self.limit) {
                        Ok(next) => *self = next,
                        Err(e) => {
                            tracing::warn!(error = %e, "cannot start the next error log file");
                        }
                    }
                }
                if self.file.write_all(line.as_bytes()).is_ok() {
                    self.size += line.len() as u64;
                }
            }
            Msg::Flush(done) => {
                let _ = self.file.flush();
                let _ = done.send(());
            }
        }
    }
}

fn dash_or<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| v.to_string())
}

/// One line, CRLF-terminated, fields separated by spaces (spaces inside the URI become `+`,
/// any other byte outside the printable ASCII range is written as `%XX`).
fn format_line(e: &Entry<'_>) -> String {
    let (date, time) = utc_date_time(std::time::SystemTime::now());
    let uri = e.uri.map(|u| {
        let mut s = String::with_capacity(u.len().min(MAX_URI));
        for &b in u.iter().take(MAX_URI) {
            match b {
                b' ' => s.push('+'),
                0x21..=0x7e => s.push(char::from(b)),
                _ => s.push_str(&format!("%{b:02X}")),
            }
        }
        s
    });
    format!(
        "{date} {time} {} {} {} {} {} {} {} - {} - {} {}\r\n",
        dash_or(e.client.map(|a| a.ip())),
        dash_or(e.client.map(|a| a.port())),
        dash_or(e.server.map(|a| a.ip())),
        dash_or(e.server.map(|a| a.port())),
        e.version.unwrap_or("-"),
        e.method.unwrap_or("-"),
        uri.as_deref().unwrap_or("-"),
        dash_or(e.status),
        e.reason,
        e.queue.unwrap_or("-"),
    )
}

/// `YYYY-MM-DD` and `HH:MM:SS` in UTC.
fn utc_date_time(t: std::time::SystemTime) -> (String, String) {
    let secs = t
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (
        format!("{y:04}-{m:02}-{d:02}"),
        format!("{:02}:{:02}:{:02}", rem / 3600, rem % 3600 / 60, rem % 60),
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_utc_civil_dates() {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_764_626_401);
        assert_eq!(
            utc_date_time(t),
            ("2025-12-01".to_owned(), "22:00:01".to_owned())
        );
        assert_eq!(
            utc_date_time(std::time::UNIX_EPOCH),
            ("1970-01-01".to_owned(), "00:00:00".to_owned())
        );
    }

    #[test]
    fn lines_have_every_field_and_no_spaces_or_controls_inside_one() {
        let line = format_line(&Entry {
            client: Some("127.0.0.1:5000".parse().unwrap()),
            server: Some("[::1]:80".parse().unwrap()),
            version: Some("HTTP/1.1"),
            method: Some("GET"),
            uri: Some(b"/a b\x01\xff?q"),
            status: Some(400),
            reason: "Hostname",
            queue: None,
        });
        let fields: Vec<&str> = line.trim_end().split(' ').collect();
        assert_eq!(fields.len(), 14, "{line}");
        assert_eq!(
            &fields[2..],
            [
                "127.0.0.1",
                "5000",
                "::1",
                "80",
                "HTTP/1.1",
                "GET",
                "/a+b%01%FF?q",
                "-",
                "400",
                "-",
                "Hostname",
                "-"
            ]
        );
        assert!(line.ends_with("\r\n"));
    }

    #[test]
    fn files_roll_over_at_the_truncate_size_each_with_a_header() {
        let dir = std::env::temp_dir().join(format!("httperr-unit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let log = ErrorLog::start(&dir, 0).unwrap();
        let entry = Entry {
            reason: "Timer_ConnectionIdle",
            ..Entry::default()
        };
        let line_len = format_line(&entry).len() as u64;
        let n = MIN_TRUNCATE_SIZE / line_len + 10;
        for i in 0..n {
            log.log(&entry);
            if i % 1000 == 0 {
                log.flush();
            }
        }
        log.flush();
        assert_eq!(log.dropped(), 0);
        let first = std::fs::read_to_string(dir.join("httperr1.log")).unwrap();
        let second = std::fs::read_to_string(dir.join("httperr2.log")).unwrap();
        assert!(first.len() as u64 <= MIN_TRUNCATE_SIZE);
        for f in [&first, &second] {
            assert!(f.starts_with("#Software: httpq "), "{}", &f[..80]);
            assert!(f.contains(&format!("#Fields: {FIELDS}\r\n")));
        }
        let lines = |f: &str| f.lines().filter(|l| !l.starts_with('#')).count() as u64;
        assert_eq!(lines(&first) + lines(&second), n);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
