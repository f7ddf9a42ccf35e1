//! HTTP.sys's W3C extended access log: one line per exchange, refused ones included, written
//! by the listener (an app can neither forge nor skip it), for the whole listener
//! (centralized) or for one named queue. The fields are selectable
//! ([`httpq_core::logging::LogFields`]); files roll over by size, hour, day, week or month
//! and start with `#Software`, `#Version`, `#Date` and `#Fields`. Lines are formatted on the
//! writer thread, never on the request's path. Times in lines are UTC.
//!
//! ```text
//! #Software: httpq 0.1.0
//! #Version: 1.0
//! #Date: 2026-12-01 22:00:00
//! #Fields: date time s-ip cs-method cs-uri-stem cs-uri-query s-port cs-username c-ip cs(User-Agent) cs(Referer) sc-status sc-substatus sc-win32-status time-taken s-reason s-queuename s-streamid cs-protocol
//! 2026-12-01 22:00:01 127.0.0.1 GET /a/b q=1 8080 - 127.0.0.1 curl/8.14.1 - 200 0 0 0 - root/web 7 http/tcp
//! ```

use httpq_core::logging::{AccessLogOptions, LogField, LogFields};

use crate::exchange::Record;
use crate::logfile::{Files, Format, LineTime, LogFile, push_field, push_ip, push_u64};

/// The longest URI or header value written, in bytes (HTTP.sys: 4096 for the URI).
const MAX_FIELD: usize = 4096;

/// One access log and its writer thread.
#[derive(Debug)]
pub(crate) struct AccessLog {
    file: LogFile<Box<Record>>,
    options: AccessLogOptions,
}

impl AccessLog {
    /// Starts writing `options.dir`.
    ///
    /// # Errors
    /// The directory cannot be created or written.
    pub(crate) fn start(options: &AccessLogOptions) -> std::io::Result<AccessLog> {
        let fields = options.fields;
        let computer = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .unwrap_or_default();
        let format: Format<Box<Record>> =
            Box::new(move |r, now, out| format_line(fields, &computer, r, now, out));
        let file = LogFile::start(
            "access-log",
            &options.dir,
            Files::w3c(options.rollover, options.local_time),
            fields.header(),
            format,
        )?;
        Ok(AccessLog {
            file,
            options: options.clone(),
        })
    }

    pub(crate) fn log(&self, record: Box<Record>) {
        self.file.log(record);
    }

    pub(crate) fn flush(&self) {
        self.file.flush();
    }

    pub(crate) fn dropped(&self) -> u64 {
        self.file.dropped()
    }

    pub(crate) fn options(&self) -> &AccessLogOptions {
        &self.options
    }
}

/// Splits a target as sent into its stem (the path) and its query: an absolute-form target
/// (`http://host/p?q`) gives `/p` and `q`.
fn stem_and_query(target: &[u8]) -> (&[u8], &[u8]) {
    let path = match target.windows(3).position(|w| w == b"://") {
        Some(i) if target.first() != Some(&b'/') => {
            let rest = &target[i + 3..];
            rest.iter()
                .position(|&b| b == b'/' || b == b'?')
                .map_or(&b""[..], |p| &rest[p..])
        }
        _ => target,
    };
    match path.iter().position(|&b| b == b'?') {
        Some(q) => (&path[..q], &path[q + 1..]),
        None => (path, b""),
    }
}

fn format_line(fields: LogFields, computer: &str, r: &Record, now: &LineTime, out: &mut Vec<u8>) {
    let (stem, query) = stem_and_query(&r.target);
    let header = |v: &Option<http::HeaderValue>, out: &mut Vec<u8>| {
        push_field(
            out,
            v.as_ref().map_or(&b""[..], |v| v.as_bytes()),
            MAX_FIELD,
        );
    };
    let dash_or = |v: Option<u64>, out: &mut Vec<u8>| match v {
        Some(v) => push_u64(out, v),
        None => out.push(b'-'),
    };
    for (i, field) in fields.iter().enumerate() {
        if i > 0 {
            out.push(b' ');
        }
        match field {
            LogField::Date => out.extend_from_slice(now.date.as_bytes()),
            LogField::Time => out.extend_from_slice(now.time.as_bytes()),
            LogField::SiteName | LogField::QueueName => {
                push_field(out, r.queue.as_deref().unwrap_or("").as_bytes(), 64 + 33);
            }
            LogField::ComputerName => push_field(out, computer.as_bytes(), 255),
            LogField::ServerIp => push_ip(out, r.server.ip()),
            LogField::ServerPort => push_u64(out, u64::from(r.server.port())),
            LogField::ClientIp => push_ip(out, r.client.ip()),
            LogField::ClientPort => push_u64(out, u64::from(r.client.port())),
            LogField::Method => push_field(
                out,
                r.method.as_ref().map_or("", |m| m.as_str()).as_bytes(),
                64,
            ),
            LogField::UriStem => push_field(out, stem, MAX_FIELD),
            LogField::UriQuery => push_field(out, query, MAX_FIELD),
            LogField::UserName => out.push(b'-'),
            LogField::Version => out.extend_from_slice(r.version_str().as_bytes()),
            LogField::UserAgent => header(&r.user_agent, out),
            LogField::Cookie => header(&r.cookie, out),
            LogField::Referer => header(&r.referer, out),
            LogField::Host => header(&r.host, out),
            LogField::Status => dash_or((r.status != 0).then_some(u64::from(r.status)), out),
            LogField::SubStatus => out.push(b'0'),
            LogField::Win32Status => dash_or(Some(u64::from(r.win32_status)), out),
            LogField::BytesSent => dash_or(Some(r.bytes_out), out),
            LogField::BytesReceived => dash_or(Some(r.bytes_in), out),
            LogField::TimeTaken => dash_or(Some(r.millis()), out),
            LogField::Reason => push_field(out, r.reason.unwrap_or("").as_bytes(), 64),
            LogField::RequestId => dash_or(r.request_id, out),
            LogField::Transport => out.extend_from_slice(match (r.tls, r.version) {
                (_, http::Version::HTTP_3) => b"https/quic",
                (true, _) => b"https/tcp",
                (false, _) => b"http/tcp",
            }),
            _ => out.push(b'-'),
        }
    }
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn targets_split_into_stem_and_query() {
        assert_eq!(stem_and_query(b"/a/b?x=1&y"), (&b"/a/b"[..], &b"x=1&y"[..]));
        assert_eq!(stem_and_query(b"/a"), (&b"/a"[..], &b""[..]));
        assert_eq!(stem_and_query(b"http://h:80/p?q"), (&b"/p"[..], &b"q"[..]));
        assert_eq!(stem_and_query(b"http://h"), (&b""[..], &b""[..]));
        assert_eq!(
            stem_and_query(b"/x?u=http://y"),
            (&b"/x"[..], &b"u=http://y"[..])
        );
        assert_eq!(stem_and_query(b"*"), (&b"*"[..], &b""[..]));
    }

    #[test]
    fn every_field_is_one_word() {
        let now = LineTime::at(1_764_626_401);
        let mut out = Vec::new();
        format_line(
            LogFields::all(),
            "host1",
            &crate::exchange::sample_record(),
            &now,
            &mut out,
        );
        let line = String::from_utf8(out).unwrap();
        assert!(line.ends_with("\r\n"));
        let words: Vec<&str> = line.trim_end().split(' ').collect();
        assert_eq!(words.len(), LogFields::all().iter().count(), "{line}");
        let get = |f: LogField| words[LogFields::all().iter().position(|x| x == f).unwrap()];
        assert_eq!(get(LogField::Date), "2025-12-01");
        assert_eq!(get(LogField::UriStem), "/a+b/%01");
        assert_eq!(get(LogField::UriQuery), "q=1");
        assert_eq!(get(LogField::UserAgent), "Mozilla/5.0+(X11)");
        assert_eq!(get(LogField::Referer), "-");
        assert_eq!(get(LogField::ServerIp), "::1");
        assert_eq!(get(LogField::Status), "404");
        assert_eq!(get(LogField::TimeTaken), "5");
        assert_eq!(get(LogField::Reason), "NotFound");
        assert_eq!(get(LogField::QueueName), "root/web");
        assert_eq!(get(LogField::RequestId), "7");
        assert_eq!(get(LogField::Transport), "http/tcp");
        assert_eq!(get(LogField::ComputerName), "host1");
    }
}
