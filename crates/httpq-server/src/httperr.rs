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

use std::net::SocketAddr;
use std::path::Path;

use httpq_core::logging::CivilTime;

use crate::logfile::{Files, Format, LogFile};
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
    /// The request id (`s-streamid` in the access log, the app's request id), once given.
    pub(crate) stream_id: Option<u64>,
}

/// The error log of one engine.
#[derive(Debug)]
pub(crate) struct ErrorLog(LogFile<String>);

impl ErrorLog {
    /// Starts the writer for `dir` (created if missing).
    ///
    /// # Errors
    /// The directory cannot be created or its newest file opened.
    pub(crate) fn start(dir: &Path, truncate_size: u64) -> std::io::Result<ErrorLog> {
        let files = Files::Numbered {
            prefix: "httperr",
            limit: truncate_size.max(MIN_TRUNCATE_SIZE),
        };
        let format: Format<String> =
            Box::new(|line, _, out| out.extend_from_slice(line.as_bytes()));
        LogFile::start("httperr", dir, files, FIELDS.to_owned(), format).map(ErrorLog)
    }

    /// Queues one line; never waits.
    pub(crate) fn log(&self, e: &Entry<'_>) {
        self.0.log(format_line(e));
    }

    /// Waits until every line queued so far is written to the file.
    pub(crate) fn flush(&self) {
        self.0.flush();
    }

    /// Lines dropped because the queue was full.
    pub(crate) fn dropped(&self) -> u64 {
        self.0.dropped()
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
        let mut v = Vec::with_capacity(u.len().min(MAX_URI));
        crate::logfile::push_field(&mut v, u, MAX_URI);
        String::from_utf8_lossy(&v).into_owned()
    });
    format!(
        "{date} {time} {} {} {} {} {} {} {} {} {} - {} {}\r\n",
        dash_or(e.client.map(|a| a.ip())),
        dash_or(e.client.map(|a| a.port())),
        dash_or(e.server.map(|a| a.ip())),
        dash_or(e.server.map(|a| a.port())),
        e.version.unwrap_or("-"),
        e.method.unwrap_or("-"),
        uri.as_deref().unwrap_or("-"),
        dash_or(e.stream_id),
        dash_or(e.status),
        e.reason,
        e.queue.unwrap_or("-"),
    )
}

/// `YYYY-MM-DD` and `HH:MM:SS` in UTC.
fn utc_date_time(t: std::time::SystemTime) -> (String, String) {
    let secs = t
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0));
    let c = CivilTime::from_unix(secs, 0);
    (c.date(), c.time())
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
            stream_id: Some(12),
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
                "12",
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
