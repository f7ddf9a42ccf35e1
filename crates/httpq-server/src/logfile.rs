//! The log-file writer the error log and the access logs share: a thread behind a bounded
//! queue (a full queue drops the entry and counts it: a request is never slowed by its log),
//! files that roll over by size or by time with a W3C header at the top of each, and a flush.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::time::SystemTime;

use httpq_core::logging::{CivilTime, LogRollover};

/// Entries waiting for the writer before new ones are dropped.
const QUEUE: usize = 8192;

/// How files are named and when the next one starts.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Files {
    /// `{prefix}1.log`, `{prefix}2.log`, ... each at most `limit` bytes.
    Numbered { prefix: &'static str, limit: u64 },
    /// Named by HTTP.sys's rollover (`u_exYYMMDD.log`, ...), in local time if `local_time`.
    Rollover {
        rollover: LogRollover,
        local_time: bool,
    },
}

impl Files {
    /// The W3C access log's files for `rollover` (size rollover numbers `u_extendN.log`).
    pub(crate) fn w3c(rollover: LogRollover, local_time: bool) -> Files {
        match rollover.size_limit() {
            Some(limit) => Files::Numbered {
                prefix: "u_extend",
                limit,
            },
            None => Files::Rollover {
                rollover,
                local_time,
            },
        }
    }
}

/// Turns an entry into its line (CRLF-terminated), written at `now`.
pub(crate) type Format<T> = Box<dyn Fn(&T, &LineTime, &mut Vec<u8>) + Send>;

/// The UTC date and time lines are written at, formatted once a second.
#[derive(Debug)]
pub(crate) struct LineTime {
    secs: i64,
    /// `YYYY-MM-DD`.
    pub(crate) date: String,
    /// `HH:MM:SS`.
    pub(crate) time: String,
}

impl LineTime {
    /// The date and time of `secs` since the epoch.
    pub(crate) fn at(secs: i64) -> LineTime {
        let c = CivilTime::from_unix(secs, 0);
        LineTime {
            secs,
            date: c.date(),
            time: c.time(),
        }
    }
}

fn unix_secs(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0))
}

enum Msg<T> {
    Entry(T),
    Flush(std::sync::mpsc::Sender<()>),
}

/// One log: the sending side of its writer thread.
pub(crate) struct LogFile<T> {
    tx: SyncSender<Msg<T>>,
    dropped: Arc<AtomicU64>,
    dir: PathBuf,
}

impl<T> std::fmt::Debug for LogFile<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogFile")
            .field("dir", &self.dir)
            .field("dropped", &self.dropped.load(Ordering::Relaxed))
            .finish()
    }
}

impl<T: Send + 'static> LogFile<T> {
    /// Starts the writer for `dir` (created if missing) with `fields` in each file's header.
    ///
    /// # Errors
    /// The directory cannot be created, or the current file cannot be opened.
    pub(crate) fn start(
        name: &str,
        dir: &Path,
        files: Files,
        fields: String,
        format: Format<T>,
    ) -> std::io::Result<LogFile<T>> {
        std::fs::create_dir_all(dir)?;
        let mut writer = Writer {
            dir: dir.to_owned(),
            files,
            fields,
            format,
            current: None,
            index: newest_index(dir, files)?,
            line: Vec::with_capacity(512),
            now: LineTime::at(i64::MIN),
            wanted: None,
        };
        writer.open(&civil_now(SystemTime::now(), files))?;
        let (tx, rx) = sync_channel(QUEUE);
        std::thread::Builder::new()
            .name(format!("httpq-{name}"))
            .spawn(move || writer.run(&rx))?;
        Ok(LogFile {
            tx,
            dropped: Arc::new(AtomicU64::new(0)),
            dir: dir.to_owned(),
        })
    }

    /// Queues one entry; never waits.
    pub(crate) fn log(&self, entry: T) {
        match self.tx.try_send(Msg::Entry(entry)) {
            Ok(()) | Err(TrySendError::Disconnected(_)) => {}
            Err(TrySendError::Full(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Waits until every entry queued so far is in the file.
    pub(crate) fn flush(&self) {
        let (done, wait) = std::sync::mpsc::channel();
        if self.tx.send(Msg::Flush(done)).is_ok() {
            let _ = wait.recv();
        }
    }

    /// Entries dropped because the queue was full.
    pub(crate) fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// The civil time rollover decisions use: UTC, or local time for a local-time rollover.
fn civil_now(now: SystemTime, files: Files) -> CivilTime {
    let secs = unix_secs(now);
    let offset = match files {
        Files::Rollover {
            local_time: true, ..
        } => local_offset(secs),
        _ => 0,
    };
    CivilTime::from_unix(secs, offset)
}

/// The system time zone's offset from UTC at `secs`, in seconds (0 if it cannot be read).
fn local_offset(secs: i64) -> i32 {
    let Ok(ts) = jiff::Timestamp::from_second(secs) else {
        return 0;
    };
    jiff::tz::TimeZone::system().to_offset(ts).seconds()
}

/// The highest `{prefix}N.log` in `dir`, or 1.
fn newest_index(dir: &Path, files: Files) -> std::io::Result<u64> {
    let Files::Numbered { prefix, .. } = files else {
        return Ok(0);
    };
    Ok(std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .filter_map(|e| {
            e.file_name()
                .to_str()?
                .strip_prefix(prefix)?
                .strip_suffix(".log")?
                .parse::<u64>()
                .ok()
        })
        .max()
        .unwrap_or(1))
}

struct Open {
    name: String,
    file: std::io::BufWriter<std::fs::File>,
    size: u64,
}

struct Writer<T> {
    dir: PathBuf,
    files: Files,
    fields: String,
    format: Format<T>,
    current: Option<Open>,
    index: u64,
    line: Vec<u8>,
    /// The time of the last line (date and time are formatted when the second changes).
    now: LineTime,
    /// For time rollover: the file the current second's lines belong in.
    wanted: Option<String>,
}

impl<T> Writer<T> {
    fn file_name(&self, now: &CivilTime) -> String {
        match self.files {
            Files::Numbered { prefix, .. } => format!("{prefix}{}.log", self.index),
            Files::Rollover { rollover, .. } => rollover.file_name(now, 0),
        }
    }

    /// Opens (appending) the file `now` belongs in; a new file gets the W3C header.
    fn open(&mut self, now: &CivilTime) -> std::io::Result<()> {
        if let Some(mut old) = self.current.take() {
            let _ = old.file.flush();
        }
        let name = self.file_name(now);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(&name))?;
        let mut open = Open {
            name,
            size: file.metadata()?.len(),
            file: std::io::BufWriter::new(file),
        };
        if open.size == 0 {
            let utc = CivilTime::from_unix(unix_secs(SystemTime::now()), 0);
            let header = format!(
                "#Software: httpq {}\r\n#Version: 1.0\r\n#Date: {} {}\r\n#Fields: {}\r\n",
                env!("CARGO_PKG_VERSION"),
                utc.date(),
                utc.time(),
                self.fields
            );
            open.file.write_all(header.as_bytes())?;
            open.size = header.len() as u64;
        }
        self.current = Some(open);
        Ok(())
    }

    fn run(&mut self, rx: &Receiver<Msg<T>>) {
        while let Ok(msg) = rx.recv() {
            self.handle(msg);
            // Write what else is queued, then put it on disk.
            while let Ok(msg) = rx.try_recv() {
                self.handle(msg);
            }
            if let Some(Err(e)) = self.current.as_mut().map(|c| c.file.flush()) {
                tracing::warn!(error = %e, dir = %self.dir.display(), "cannot write a log file");
            }
        }
    }

    fn handle(&mut self, msg: Msg<T>) {
        self.handle_at(msg, SystemTime::now());
    }

    fn handle_at(&mut self, msg: Msg<T>, now_sys: SystemTime) {
        match msg {
            Msg::Entry(entry) => {
                let secs = unix_secs(now_sys);
                if secs != self.now.secs {
                    self.now = LineTime::at(secs);
                    if let Files::Rollover { .. } = self.files {
                        self.wanted = Some(self.file_name(&civil_now(now_sys, self.files)));
                    }
                }
                self.line.clear();
                (self.format)(&entry, &self.now, &mut self.line);
                let len = self.line.len() as u64;
                let roll = match (self.files, &self.current) {
                    (_, None) => true,
                    (Files::Numbered { limit, .. }, Some(c)) => c.size + len > limit,
                    (Files::Rollover { .. }, Some(c)) => {
                        self.wanted.as_ref().is_some_and(|w| *w != c.name)
                    }
                };
                if roll {
                    if matches!(self.files, Files::Numbered { .. }) && self.current.is_some() {
                        self.index += 1;
                    }
                    if let Err(e) = self.open(&civil_now(now_sys, self.files)) {
                        tracing::warn!(error = %e, dir = %self.dir.display(), "cannot start the next log file");
                    }
                }
                if let Some(c) = self.current.as_mut() {
                    if c.file.write_all(&self.line).is_ok() {
                        c.size += len;
                    }
                }
            }
            Msg::Flush(done) => {
                if let Some(c) = self.current.as_mut() {
                    let _ = c.file.flush();
                }
                let _ = done.send(());
            }
        }
    }
}

/// Writes `n` in decimal.
pub(crate) fn push_u64(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// Writes an IP address as `Display` does (IPv4 without the formatting machinery).
pub(crate) fn push_ip(out: &mut Vec<u8>, ip: std::net::IpAddr) {
    match ip {
        std::net::IpAddr::V4(v4) => {
            for (i, o) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push(b'.');
                }
                push_u64(out, u64::from(o));
            }
        }
        std::net::IpAddr::V6(v6) => {
            let _ = write!(out, "{v6}");
        }
    }
}

/// Writes `bytes` as one W3C field: spaces become `+`, bytes outside printable ASCII become
/// `%XX`, at most `max` bytes of input; empty is `-`.
pub(crate) fn push_field(out: &mut Vec<u8>, bytes: &[u8], max: usize) {
    if bytes.is_empty() {
        out.push(b'-');
        return;
    }
    for &b in bytes.iter().take(max) {
        match b {
            b' ' => out.push(b'+'),
            0x21..=0x7e => out.push(b),
            _ => out.extend_from_slice(format!("%{b:02X}").as_bytes()),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn writer(dir: &Path, files: Files) -> Writer<String> {
        std::fs::create_dir_all(dir).unwrap();
        Writer {
            dir: dir.to_owned(),
            files,
            fields: "date time x".to_owned(),
            format: Box::new(|e: &String, now, out| {
                out.extend_from_slice(format!("{} {} {e}\r\n", now.date, now.time).as_bytes());
            }),
            current: None,
            index: newest_index(dir, files).unwrap(),
            line: Vec::new(),
            now: LineTime::at(i64::MIN),
            wanted: None,
        }
    }

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(secs)
    }

    fn read(dir: &Path, name: &str) -> String {
        std::fs::read_to_string(dir.join(name)).unwrap()
    }

    #[test]
    fn time_rollover_starts_a_file_per_period_each_with_a_header() {
        let dir = std::env::temp_dir().join(format!("logfile-time-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut w = writer(&dir, Files::w3c(LogRollover::Hourly, false));
        // 2025-12-01 22:59:59, then 23:00:00 and 23:30:00 UTC.
        w.handle_at(Msg::Entry("a".into()), at(1_764_629_999));
        w.handle_at(Msg::Entry("b".into()), at(1_764_630_000));
        w.handle_at(Msg::Entry("c".into()), at(1_764_631_800));
        let (done, _wait) = std::sync::mpsc::channel();
        w.handle_at(Msg::Flush(done), at(1_764_631_800));
        let first = read(&dir, "u_ex25120122.log");
        let second = read(&dir, "u_ex25120123.log");
        for f in [&first, &second] {
            assert!(f.starts_with("#Software: httpq "), "{f}");
            assert!(f.contains("#Version: 1.0\r\n#Date: "), "{f}");
            assert!(f.contains("#Fields: date time x\r\n"), "{f}");
        }
        assert!(first.ends_with("2025-12-01 22:59:59 a\r\n"), "{first}");
        assert!(second.contains("2025-12-01 23:00:00 b\r\n2025-12-01 23:30:00 c\r\n"));
        // A restart appends to the current period's file without a second header.
        let mut again = writer(&dir, Files::w3c(LogRollover::Hourly, false));
        again.handle_at(Msg::Entry("d".into()), at(1_764_631_900));
        let (done, _wait) = std::sync::mpsc::channel();
        again.handle_at(Msg::Flush(done), at(1_764_631_900));
        let second = read(&dir, "u_ex25120123.log");
        assert_eq!(second.matches("#Fields").count(), 1, "{second}");
        assert!(second.ends_with("23:31:40 d\r\n"), "{second}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn numbers_and_addresses_are_written_as_display_writes_them() {
        let mut out = Vec::new();
        for n in [0, 7, 10, 65_535, u64::MAX] {
            out.clear();
            push_u64(&mut out, n);
            assert_eq!(out, n.to_string().as_bytes());
        }
        for ip in [
            "0.0.0.0",
            "255.255.255.255",
            "10.0.12.3",
            "::1",
            "2001:db8::7",
        ] {
            out.clear();
            push_ip(&mut out, ip.parse().unwrap());
            assert_eq!(out, ip.as_bytes());
        }
    }

    #[test]
    fn size_rollover_numbers_the_files() {
        let dir = std::env::temp_dir().join(format!("logfile-size-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut w = writer(&dir, Files::w3c(LogRollover::Size(0), false));
        let line = "y".repeat(1000);
        for _ in 0..1100 {
            w.handle_at(Msg::Entry(line.clone()), at(0));
        }
        let (done, _wait) = std::sync::mpsc::channel();
        w.handle_at(Msg::Flush(done), at(0));
        let one = read(&dir, "u_extend1.log");
        let two = read(&dir, "u_extend2.log");
        assert!(one.len() as u64 <= httpq_core::logging::MIN_ROLLOVER_SIZE);
        assert!(two.starts_with("#Software: httpq "));
        let lines = |f: &str| f.lines().filter(|l| !l.starts_with('#')).count();
        assert_eq!(lines(&one) + lines(&two), 1100);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
