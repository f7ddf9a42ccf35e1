//! Request-queue admission: the queue limit and how a full queue answers.
//!
//! HTTP.sys refuses a request when its queue already holds `RequestQueueLimit` requests
//! (default 1000), and answers according to `Http503Verbosity`: Basic resets the connection
//! without a response, Limited sends `503 Service Unavailable`, Full adds the reason. The same
//! rules answer a request that waited longer than the request-queue timer.
//!
//! [`QueueAdmission`] is the decision; the engine keeps the depth (an atomic in embedded mode,
//! the listener's table in daemon mode) and applies the returned [`Refusal`].

use std::fmt;
use std::str::FromStr;

use crate::reason::{Reason, Rejection};

/// How the listener answers when it must refuse a request with 503 (`HTTP_503_RESPONSE_VERBOSITY`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Http503Verbosity {
    /// Reset the connection without a response (HTTP.sys default).
    #[default]
    Basic,
    /// Answer `503 Service Unavailable` with no detail.
    Limited,
    /// Answer 503 with the reason in the body. Discloses queue state: use with care.
    Full,
}

impl FromStr for Http503Verbosity {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s.trim().to_ascii_lowercase().as_str() {
            "basic" | "0" => Ok(Http503Verbosity::Basic),
            "limited" | "1" => Ok(Http503Verbosity::Limited),
            "full" | "2" => Ok(Http503Verbosity::Full),
            _ => Err(()),
        }
    }
}

impl fmt::Display for Http503Verbosity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Http503Verbosity::Basic => "Basic",
            Http503Verbosity::Limited => "Limited",
            Http503Verbosity::Full => "Full",
        })
    }
}

/// Who besides its creator (and root) may attach to a named request queue: HTTP.sys's queue
/// security descriptor, in Linux terms. Written `user:NAME` or `group:NAME`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum QueueAclEntry {
    /// A user, by name.
    User(String),
    /// Every member of a group, by name.
    Group(String),
}

impl FromStr for QueueAclEntry {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let (kind, name) = s
            .split_once(':')
            .ok_or_else(|| format!("queue ACL entry {s:?}: expected user:NAME or group:NAME"))?;
        let name = name.trim();
        if !valid_account_name(name) {
            return Err(format!(
                "queue ACL entry {s:?}: the name after {kind}: must be a user or group name (1 to {MAX_OWNER_NAME} characters from A-Z a-z 0-9 . _ -)"
            ));
        }
        match kind.trim() {
            "user" => Ok(QueueAclEntry::User(name.to_owned())),
            "group" => Ok(QueueAclEntry::Group(name.to_owned())),
            other => Err(format!(
                "queue ACL entry {s:?}: {other:?} is neither user nor group (write user:NAME or group:NAME)"
            )),
        }
    }
}

impl fmt::Display for QueueAclEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QueueAclEntry::User(n) => write!(f, "user:{n}"),
            QueueAclEntry::Group(n) => write!(f, "group:{n}"),
        }
    }
}

/// The name of a named request queue, in its owner's namespace.
///
/// HTTP.sys queue names live inside the creator's session, so one account cannot squat a
/// name another expects. httpq qualifies every name by the uid that created the queue: a
/// process asking for `webq` means *its own* `webq`; to attach to another user's queue it must
/// say whose, `alice/webq`, and the listener refuses if alice does not own such a queue. A
/// queue can only be created in the creator's own namespace.
///
/// Names are 1 to 64 characters from `A-Z a-z 0-9 . _ -`, starting with a letter, a digit or
/// `_`; owners are user names of 1 to 32 such characters. Nothing else is accepted, so a name
/// can be printed and logged as it is (no spaces, newlines or escape sequences).
///
/// ```
/// use httpq_core::queue::QueueName;
/// let own: QueueName = "webq".parse().unwrap();
/// assert_eq!(own.owner(), None);
/// let theirs: QueueName = "alice/webq".parse().unwrap();
/// assert_eq!((theirs.owner(), theirs.name()), (Some("alice"), "webq"));
/// assert!("web\nq".parse::<QueueName>().is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct QueueName {
    owner: Option<String>,
    name: String,
}

/// The longest queue name (without its owner).
pub const MAX_QUEUE_NAME: usize = 64;
/// The longest owner (user) name in a qualified queue name.
pub const MAX_OWNER_NAME: usize = 32;

fn valid_word(s: &str, max: usize) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric() || c == '_')
        && s.len() <= max
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// Whether `s` is a user or group name httpq accepts in queue names and ACL entries: 1 to 32
/// characters from `A-Z a-z 0-9 . _ -`, not starting with `.` or `-`.
#[must_use]
pub fn valid_account_name(s: &str) -> bool {
    valid_word(s, MAX_OWNER_NAME)
}

impl QueueName {
    /// The owner named in the queue name (`alice` in `alice/webq`), if any.
    #[must_use]
    pub fn owner(&self) -> Option<&str> {
        self.owner.as_deref()
    }

    /// The name within the owner's namespace.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl FromStr for QueueName {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (owner, name) = match s.split_once('/') {
            Some((o, n)) => (Some(o), n),
            None => (None, s),
        };
        if let Some(o) = owner {
            if !valid_account_name(o) {
                return Err(format!(
                    "request queue name {s:?}: the owner before '/' must be a user name (1 to {MAX_OWNER_NAME} characters from A-Z a-z 0-9 . _ -)"
                ));
            }
        }
        if !valid_word(name, MAX_QUEUE_NAME) {
            return Err(format!(
                "request queue name {s:?}: expected NAME or OWNER/NAME, where NAME is 1 to {MAX_QUEUE_NAME} characters from A-Z a-z 0-9 . _ - starting with a letter, digit or _"
            ));
        }
        Ok(QueueName {
            owner: owner.map(str::to_owned),
            name: name.to_owned(),
        })
    }
}

impl fmt::Display for QueueName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.owner {
            Some(o) => write!(f, "{o}/{}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

/// How a process gets its request queue (HTTP.sys `RequestQueueMode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RequestQueueMode {
    /// Create the queue; an existing queue with the name is an error (the default).
    #[default]
    Create,
    /// Attach to an existing named queue; a missing one is an error.
    Attach,
    /// Create the queue, or attach when it exists.
    CreateOrAttach,
}

impl FromStr for RequestQueueMode {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s
            .trim()
            .to_ascii_lowercase()
            .replace(['_', '-'], "")
            .as_str()
        {
            "create" | "0" => Ok(RequestQueueMode::Create),
            "attach" | "1" => Ok(RequestQueueMode::Attach),
            "createorattach" | "2" => Ok(RequestQueueMode::CreateOrAttach),
            _ => Err(()),
        }
    }
}

/// What to do with a request the queue refuses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Close the connection abruptly (TCP RST), sending nothing.
    Reset(Rejection),
    /// Send this 503 and close the connection. `detail` is `None` for Limited.
    Respond {
        /// Why, for the log.
        rejection: Rejection,
        /// Whether to include the reason in the body (Full).
        with_detail: bool,
    },
}

impl Refusal {
    /// Builds the refusal for `rejection` under `verbosity`.
    #[must_use]
    pub fn new(verbosity: Http503Verbosity, rejection: Rejection) -> Self {
        match verbosity {
            Http503Verbosity::Basic => Refusal::Reset(rejection),
            Http503Verbosity::Limited => Refusal::Respond {
                rejection,
                with_detail: false,
            },
            Http503Verbosity::Full => Refusal::Respond {
                rejection,
                with_detail: true,
            },
        }
    }

    /// The rejection inside, for logging.
    #[must_use]
    pub fn rejection(&self) -> &Rejection {
        match self {
            Refusal::Reset(r) | Refusal::Respond { rejection: r, .. } => r,
        }
    }
}

/// Queue admission: decides whether one more request fits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueAdmission {
    /// Most requests waiting at once (HTTP.sys `HttpServerQueueLengthProperty`, default 1000).
    pub limit: u32,
    /// How refusals answer.
    pub verbosity: Http503Verbosity,
}

impl QueueAdmission {
    /// Decides for a request arriving when `depth` requests already wait.
    ///
    /// # Errors
    /// A [`Refusal`] with reason `QueueFull` when `depth >= limit`.
    pub fn admit(&self, depth: u32) -> Result<(), Refusal> {
        if depth < self.limit {
            Ok(())
        } else {
            Err(Refusal::new(
                self.verbosity,
                Rejection::new(
                    Reason::QueueFull,
                    format!(
                        "the request queue is full ({depth} requests waiting, request_queue_limit is {})",
                        self.limit
                    ),
                ),
            ))
        }
    }

    /// The refusal for a request that waited longer than the request-queue timer.
    #[must_use]
    pub fn expired(&self, waited_secs: u64) -> Refusal {
        Refusal::new(
            self.verbosity,
            Rejection::new(
                Reason::TimerReqQueue,
                format!(
                    "the request waited {waited_secs} s in the request queue without being received by the application"
                ),
            ),
        )
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod name_tests {
    use super::QueueName;

    #[test]
    fn queue_names_are_plain_words_optionally_qualified_by_owner() {
        for ok in [
            "webq",
            "web.q-1",
            "_x",
            "9",
            &"a".repeat(64),
            "www-data/webq",
        ] {
            assert!(ok.parse::<QueueName>().is_ok(), "{ok}");
        }
        for bad in [
            "",
            "a b",
            "web\nOwner: root",
            "\u{1b}]0;pwned\u{7}",
            ".hidden",
            "-x",
            &"a".repeat(65),
            "a/b/c",
            "/webq",
            "alice/",
            "caf\u{e9}",
        ] {
            let Err(e) = bad.parse::<QueueName>() else {
                panic!("{bad:?} must be refused");
            };
            assert!(e.contains("request queue name"), "{e}");
            assert!(!e.contains('\n'), "the error quotes the name escaped: {e}");
        }
        assert_eq!(
            "alice/webq".parse::<QueueName>().unwrap().to_string(),
            "alice/webq"
        );
    }
}

#[cfg(test)]
mod acl_entry_tests {
    use super::QueueAclEntry;

    #[test]
    fn queue_acl_entries_parse_and_print() {
        assert_eq!(
            "user:www-data".parse::<QueueAclEntry>(),
            Ok(QueueAclEntry::User("www-data".into()))
        );
        assert_eq!(
            " group:web ".parse::<QueueAclEntry>(),
            Ok(QueueAclEntry::Group("web".into()))
        );
        assert_eq!(QueueAclEntry::Group("web".into()).to_string(), "group:web");
        for bad in ["www-data", "uid:5", "user:", "user:a b"] {
            let Err(e) = bad.parse::<QueueAclEntry>() else {
                panic!("{bad} must be refused");
            };
            assert!(e.contains("queue ACL entry"), "{bad}: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admits_below_limit_and_refuses_at_it() {
        let q = QueueAdmission {
            limit: 2,
            verbosity: Http503Verbosity::Limited,
        };
        assert!(q.admit(0).is_ok());
        assert!(q.admit(1).is_ok());
        let refusal = q.admit(2).expect_err("full");
        assert_eq!(refusal.rejection().reason, Reason::QueueFull);
        assert!(matches!(
            refusal,
            Refusal::Respond {
                with_detail: false,
                ..
            }
        ));
    }

    #[test]
    fn verbosity_picks_the_answer() {
        let r = Rejection::new(Reason::QueueFull, "x");
        assert!(matches!(
            Refusal::new(Http503Verbosity::Basic, r.clone()),
            Refusal::Reset(_)
        ));
        assert!(matches!(
            Refusal::new(Http503Verbosity::Full, r),
            Refusal::Respond {
                with_detail: true,
                ..
            }
        ));
        assert_eq!("FULL".parse(), Ok(Http503Verbosity::Full));
        assert_eq!("1".parse(), Ok(Http503Verbosity::Limited));
        assert!("x".parse::<Http503Verbosity>().is_err());
    }
}
