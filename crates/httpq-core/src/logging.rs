//! HTTP.sys's request logging, without IO: the W3C extended fields an operator selects
//! ([`LogFields`]), when a new file starts ([`LogRollover`]) and what it is called, and the
//! civil date and time of an instant. The engine's writer thread does the writing.
//!
//! ```
//! use httpq_core::logging::{CivilTime, LogFields, LogRollover};
//! let fields: LogFields = "date,time,c-ip,cs-method,cs-uri-stem,sc-status".parse().unwrap();
//! // Written in IIS's order, whatever order they were named in.
//! assert_eq!(fields.header(), "date time cs-method cs-uri-stem c-ip sc-status");
//! let t = CivilTime::from_unix(1_764_626_401, 0);
//! assert_eq!(LogRollover::Daily.file_name(&t, 0), "u_ex251201.log");
//! assert_eq!(LogRollover::Size(1 << 20).file_name(&t, 3), "u_extend3.log");
//! ```

use std::fmt;
use std::str::FromStr;

/// One W3C extended log field (HTTP.sys's `HTTP_LOG_FIELD_*`), in the order they are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum LogField {
    /// `date`: the date the exchange ended.
    Date,
    /// `time`: the time it ended.
    Time,
    /// `s-sitename`: the request queue's name.
    SiteName,
    /// `s-computername`: this host's name.
    ComputerName,
    /// `s-ip`: the local address.
    ServerIp,
    /// `cs-method`.
    Method,
    /// `cs-uri-stem`: the path as the client sent it.
    UriStem,
    /// `cs-uri-query`: the query, without `?`.
    UriQuery,
    /// `s-port`.
    ServerPort,
    /// `cs-username`: the authenticated user.
    UserName,
    /// `c-ip`.
    ClientIp,
    /// `c-port`.
    ClientPort,
    /// `cs-version`: `HTTP/1.1`, `HTTP/2`, `HTTP/3`.
    Version,
    /// `cs(User-Agent)`.
    UserAgent,
    /// `cs(Cookie)`.
    Cookie,
    /// `cs(Referer)`.
    Referer,
    /// `cs-host`.
    Host,
    /// `sc-status`.
    Status,
    /// `sc-substatus`.
    SubStatus,
    /// `sc-win32-status`: 0, or how the connection failed (64: the client went away,
    /// 1236: the exchange was aborted).
    Win32Status,
    /// `sc-bytes`.
    BytesSent,
    /// `cs-bytes`.
    BytesReceived,
    /// `time-taken`, in milliseconds.
    TimeTaken,
    /// `s-reason`: the HTTP.sys reason phrase when the listener refused the request.
    Reason,
    /// `s-queuename`.
    QueueName,
    /// `s-streamid`: the request id, equal to the app's `RequestContext::id`.
    RequestId,
    /// `cs-protocol`: `http` or `https`, and the transport (`tcp`, `quic`).
    Transport,
}

impl LogField {
    /// Every field, in writing order.
    pub const ALL: [LogField; 27] = [
        LogField::Date,
        LogField::Time,
        LogField::SiteName,
        LogField::ComputerName,
        LogField::ServerIp,
        LogField::Method,
        LogField::UriStem,
        LogField::UriQuery,
        LogField::ServerPort,
        LogField::UserName,
        LogField::ClientIp,
        LogField::ClientPort,
        LogField::Version,
        LogField::UserAgent,
        LogField::Cookie,
        LogField::Referer,
        LogField::Host,
        LogField::Status,
        LogField::SubStatus,
        LogField::Win32Status,
        LogField::BytesSent,
        LogField::BytesReceived,
        LogField::TimeTaken,
        LogField::Reason,
        LogField::QueueName,
        LogField::RequestId,
        LogField::Transport,
    ];

    /// The field's name in the `#Fields:` line.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            LogField::Date => "date",
            LogField::Time => "time",
            LogField::SiteName => "s-sitename",
            LogField::ComputerName => "s-computername",
            LogField::ServerIp => "s-ip",
            LogField::Method => "cs-method",
            LogField::UriStem => "cs-uri-stem",
            LogField::UriQuery => "cs-uri-query",
            LogField::ServerPort => "s-port",
            LogField::UserName => "cs-username",
            LogField::ClientIp => "c-ip",
            LogField::ClientPort => "c-port",
            LogField::Version => "cs-version",
            LogField::UserAgent => "cs(User-Agent)",
            LogField::Cookie => "cs(Cookie)",
            LogField::Referer => "cs(Referer)",
            LogField::Host => "cs-host",
            LogField::Status => "sc-status",
            LogField::SubStatus => "sc-substatus",
            LogField::Win32Status => "sc-win32-status",
            LogField::BytesSent => "sc-bytes",
            LogField::BytesReceived => "cs-bytes",
            LogField::TimeTaken => "time-taken",
            LogField::Reason => "s-reason",
            LogField::QueueName => "s-queuename",
            LogField::RequestId => "s-streamid",
            LogField::Transport => "cs-protocol",
        }
    }

    fn bit(self) -> u32 {
        1 << (LogField::ALL.iter().position(|f| *f == self).unwrap_or(0) as u32)
    }
}

/// A selection of [`LogField`]s, written in [`LogField::ALL`]'s order (IIS's order) whatever
/// order they were named in. The default is IIS's default W3C selection (date time s-ip
/// cs-method cs-uri-stem cs-uri-query s-port cs-username c-ip cs(User-Agent) cs(Referer)
/// sc-status sc-substatus sc-win32-status time-taken), which tools such as goaccess read as
/// "W3C", followed by HTTP.sys's s-reason, s-queuename, s-streamid and cs-protocol.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct LogFields(u32);

impl Default for LogFields {
    fn default() -> Self {
        use LogField as F;
        [
            F::Date,
            F::Time,
            F::ServerIp,
            F::Method,
            F::UriStem,
            F::UriQuery,
            F::ServerPort,
            F::UserName,
            F::ClientIp,
            F::UserAgent,
            F::Referer,
            F::Status,
            F::SubStatus,
            F::Win32Status,
            F::TimeTaken,
            F::Reason,
            F::QueueName,
            F::RequestId,
            F::Transport,
        ]
        .into_iter()
        .collect()
    }
}

impl FromIterator<LogField> for LogFields {
    fn from_iter<I: IntoIterator<Item = LogField>>(iter: I) -> Self {
        LogFields(iter.into_iter().fold(0, |acc, f| acc | f.bit()))
    }
}

impl LogFields {
    /// Every field there is.
    #[must_use]
    pub fn all() -> LogFields {
        LogField::ALL.into_iter().collect()
    }

    /// Whether `field` is selected.
    #[must_use]
    pub fn contains(self, field: LogField) -> bool {
        self.0 & field.bit() != 0
    }

    /// The selected fields, in writing order.
    pub fn iter(self) -> impl Iterator<Item = LogField> {
        LogField::ALL.into_iter().filter(move |f| self.contains(*f))
    }

    /// The `#Fields:` line's value: the names, separated by spaces.
    #[must_use]
    pub fn header(self) -> String {
        self.iter()
            .map(LogField::name)
            .collect::<Vec<_>>()
            .join(" ")
    }
}

impl fmt::Debug for LogFields {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.iter().map(LogField::name))
            .finish()
    }
}

impl fmt::Display for LogFields {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            &self
                .iter()
                .map(LogField::name)
                .collect::<Vec<_>>()
                .join(","),
        )
    }
}

/// A field list that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown log field {0:?}: the fields are {names} (or \"all\", or \"default\")",
    names = LogField::ALL.iter().map(|f| f.name()).collect::<Vec<_>>().join(", ")
)]
pub struct UnknownLogField(pub String);

impl FromStr for LogFields {
    type Err = UnknownLogField;

    /// Field names separated by commas or spaces, case-insensitive; `all` and `default`
    /// stand for those selections.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut bits = 0;
        for name in s.split([',', ' ']).filter(|n| !n.is_empty()) {
            bits |= match name.to_ascii_lowercase().as_str() {
                "all" => LogFields::all().0,
                "default" => LogFields::default().0,
                n => LogField::ALL
                    .iter()
                    .find(|f| f.name().eq_ignore_ascii_case(n))
                    .ok_or_else(|| UnknownLogField(name.chars().take(40).collect()))?
                    .bit(),
            };
        }
        if bits == 0 {
            return Err(UnknownLogField(String::new()));
        }
        Ok(LogFields(bits))
    }
}

/// When a log file ends and the next begins (HTTP.sys's `HTTP_LOGGING_ROLLOVER_TYPE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum LogRollover {
    /// When the file would pass this many bytes (at least [`MIN_ROLLOVER_SIZE`]): files
    /// `u_extend1.log`, `u_extend2.log`, ...
    Size(u64),
    /// Every hour: `u_exYYMMDDHH.log`.
    Hourly,
    /// Every day: `u_exYYMMDD.log` (HTTP.sys's default).
    #[default]
    Daily,
    /// Every week (weeks start on Sunday; the week of the month): `u_exYYMMWW.log`.
    Weekly,
    /// Every month: `u_exYYMM.log`.
    Monthly,
}

/// HTTP.sys's smallest size rollover: 1 MB.
pub const MIN_ROLLOVER_SIZE: u64 = 1 << 20;

impl LogRollover {
    /// The name of the file a line written at `t` goes to; `index` numbers size-rolled files.
    #[must_use]
    pub fn file_name(self, t: &CivilTime, index: u64) -> String {
        let yy = t.year.rem_euclid(100);
        match self {
            LogRollover::Size(_) => format!("u_extend{index}.log"),
            LogRollover::Hourly => {
                format!("u_ex{yy:02}{:02}{:02}{:02}.log", t.month, t.day, t.hour)
            }
            LogRollover::Daily => format!("u_ex{yy:02}{:02}{:02}.log", t.month, t.day),
            LogRollover::Weekly => {
                // The week of the month, weeks starting on Sunday: the first (partial) week is 01.
                let first_weekday = (i64::from(t.weekday) - i64::from(t.day - 1)).rem_euclid(7);
                let week = (i64::from(t.day) - 1 + first_weekday) / 7 + 1;
                format!("u_ex{yy:02}{:02}{week:02}.log", t.month)
            }
            LogRollover::Monthly => format!("u_ex{yy:02}{:02}.log", t.month),
        }
    }

    /// The size limit of a size-rolled file.
    #[must_use]
    pub fn size_limit(self) -> Option<u64> {
        match self {
            LogRollover::Size(n) => Some(n.max(MIN_ROLLOVER_SIZE)),
            _ => None,
        }
    }
}

impl fmt::Display for LogRollover {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LogRollover::Size(n) => write!(f, "size:{n}"),
            LogRollover::Hourly => f.write_str("hourly"),
            LogRollover::Daily => f.write_str("daily"),
            LogRollover::Weekly => f.write_str("weekly"),
            LogRollover::Monthly => f.write_str("monthly"),
        }
    }
}

/// A rollover that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid log rollover {0:?}: use hourly, daily, weekly, monthly or size:BYTES (at least 1048576)"
)]
pub struct InvalidRollover(pub String);

impl FromStr for LogRollover {
    type Err = InvalidRollover;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || InvalidRollover(s.chars().take(40).collect());
        Ok(match s.to_ascii_lowercase().as_str() {
            "hourly" => LogRollover::Hourly,
            "daily" => LogRollover::Daily,
            "weekly" => LogRollover::Weekly,
            "monthly" => LogRollover::Monthly,
            other => {
                let n: u64 = other
                    .strip_prefix("size:")
                    .and_then(|n| n.parse().ok())
                    .ok_or_else(bad)?;
                if n < MIN_ROLLOVER_SIZE {
                    return Err(bad());
                }
                LogRollover::Size(n)
            }
        })
    }
}

/// A civil date and time (proleptic Gregorian), in UTC or at a fixed offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CivilTime {
    /// The year.
    pub year: i64,
    /// 1–12.
    pub month: u8,
    /// 1–31.
    pub day: u8,
    /// 0–23.
    pub hour: u8,
    /// 0–59.
    pub minute: u8,
    /// 0–59.
    pub second: u8,
    /// 0 = Sunday … 6 = Saturday.
    pub weekday: u8,
}

impl CivilTime {
    /// The civil time of `unix_secs` seconds since 1970-01-01 UTC, shifted by
    /// `offset_secs` (0 for UTC, the local offset for local time).
    #[must_use]
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    pub fn from_unix(unix_secs: i64, offset_secs: i32) -> CivilTime {
        let secs = unix_secs + i64::from(offset_secs);
        let days = secs.div_euclid(86_400);
        let rem = secs.rem_euclid(86_400);
        // Howard Hinnant's days-to-civil algorithm.
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe + era * 400 + i64::from(month <= 2);
        CivilTime {
            year,
            month: month as u8,
            day: day as u8,
            hour: (rem / 3600) as u8,
            minute: (rem % 3600 / 60) as u8,
            second: (rem % 60) as u8,
            // 1970-01-01 was a Thursday.
            weekday: (days + 4).rem_euclid(7) as u8,
        }
    }

    /// `YYYY-MM-DD`.
    #[must_use]
    pub fn date(&self) -> String {
        format!("{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }

    /// `HH:MM:SS`.
    #[must_use]
    pub fn time(&self) -> String {
        format!("{:02}:{:02}:{:02}", self.hour, self.minute, self.second)
    }
}

/// Where and how a W3C access log is written (HTTP.sys's `HTTP_LOGGING_INFO`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessLogOptions {
    /// The directory of the files (created if missing).
    pub dir: std::path::PathBuf,
    /// When a new file starts.
    pub rollover: LogRollover,
    /// Roll over on local-time boundaries and name files by local time
    /// (`HTTP_LOGGING_FLAG_LOCAL_TIME_ROLLOVER`); lines stay in UTC, as W3C wants.
    pub local_time: bool,
    /// The fields written.
    pub fields: LogFields,
}

impl AccessLogOptions {
    /// Daily files of the default fields in `dir`, rolled over at UTC midnight.
    #[must_use]
    pub fn new(dir: impl Into<std::path::PathBuf>) -> Self {
        AccessLogOptions {
            dir: dir.into(),
            rollover: LogRollover::Daily,
            local_time: false,
            fields: LogFields::default(),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn civil_times_and_weekdays() {
        let t = CivilTime::from_unix(1_764_626_401, 0);
        assert_eq!(
            (t.date(), t.time()),
            ("2025-12-01".into(), "22:00:01".into())
        );
        assert_eq!(t.weekday, 1, "2025-12-01 is a Monday");
        let epoch = CivilTime::from_unix(0, 0);
        assert_eq!((epoch.date(), epoch.weekday), ("1970-01-01".into(), 4));
        // An offset moves the date: 22:00 UTC is 00:00 the next day at +02:00.
        let east = CivilTime::from_unix(1_764_626_401, 7200);
        assert_eq!(
            (east.date(), east.time()),
            ("2025-12-02".into(), "00:00:01".into())
        );
        let leap = CivilTime::from_unix(951_782_400, 0);
        assert_eq!(leap.date(), "2000-02-29");
    }

    #[test]
    fn file_names_follow_httpsys() {
        let t = CivilTime::from_unix(1_764_626_401, 0); // Monday 2025-12-01 22:00:01
        assert_eq!(LogRollover::Hourly.file_name(&t, 0), "u_ex25120122.log");
        assert_eq!(LogRollover::Daily.file_name(&t, 0), "u_ex251201.log");
        assert_eq!(LogRollover::Monthly.file_name(&t, 0), "u_ex2512.log");
        assert_eq!(LogRollover::Size(0).file_name(&t, 7), "u_extend7.log");
        // December 2025 starts on a Monday: the 1st–6th are week 1, Sunday the 7th starts week 2.
        assert_eq!(LogRollover::Weekly.file_name(&t, 0), "u_ex251201.log");
        let sunday = CivilTime::from_unix(1_764_626_401 + 6 * 86_400, 0);
        assert_eq!(sunday.weekday, 0);
        assert_eq!(LogRollover::Weekly.file_name(&sunday, 0), "u_ex251202.log");
        let saturday = CivilTime::from_unix(1_764_626_401 + 5 * 86_400, 0);
        assert_eq!(
            LogRollover::Weekly.file_name(&saturday, 0),
            "u_ex251201.log"
        );
    }

    #[test]
    fn rollovers_parse_and_refuse_small_sizes() {
        assert_eq!(
            "Hourly".parse::<LogRollover>().unwrap(),
            LogRollover::Hourly
        );
        assert_eq!(
            "size:2000000".parse::<LogRollover>().unwrap(),
            LogRollover::Size(2_000_000)
        );
        let e = "size:10".parse::<LogRollover>().unwrap_err();
        assert!(e.to_string().contains("at least 1048576"), "{e}");
        assert!("yearly".parse::<LogRollover>().is_err());
        assert_eq!(LogRollover::Size(10).size_limit(), Some(MIN_ROLLOVER_SIZE));
    }

    #[test]
    fn fields_parse_in_any_order_and_write_in_one() {
        let f: LogFields = "sc-status, date cs(User-Agent)".parse().unwrap();
        assert_eq!(f.header(), "date cs(User-Agent) sc-status");
        assert_eq!(f.to_string().parse::<LogFields>().unwrap(), f);
        let e = "date,bogus".parse::<LogFields>().unwrap_err();
        assert!(e.to_string().contains("\"bogus\"") && e.to_string().contains("sc-bytes"));
        assert!("".parse::<LogFields>().is_err());
        assert_eq!("all".parse::<LogFields>().unwrap().iter().count(), 27);
        assert!(LogFields::default().contains(LogField::RequestId));
        assert!(!LogFields::default().contains(LogField::Cookie));
        // IIS's default selection comes first, in IIS's order (what goaccess reads as W3C).
        assert!(LogFields::default().header().starts_with(
            "date time s-ip cs-method cs-uri-stem cs-uri-query s-port cs-username c-ip cs(User-Agent) cs(Referer) sc-status sc-substatus sc-win32-status time-taken "
        ));
    }
}
