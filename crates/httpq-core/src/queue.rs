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
        if name.is_empty() || name.contains(|c: char| c.is_whitespace() || c == ':') {
            return Err(format!(
                "queue ACL entry {s:?}: the name after {kind}: must be a user or group name"
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
