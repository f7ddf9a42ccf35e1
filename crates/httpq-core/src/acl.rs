//! URL ACLs (HTTP.sys URL reservations): who may register which URL prefixes.
//!
//! HTTP.sys lets a process register a prefix when it runs as an administrator, when the prefix
//! is `http://localhost:<port>/…` with a port above 1024, or when a URL ACL entry with the listen
//! right (`netsh http add urlacl url=… user=… listen=yes`) covers the prefix for the caller's
//! account. httpq keeps the rules with Linux identities: root (uid 0), and entries naming a
//! user (uid) or a group (gid). The caller's identity always comes from the socket's peer
//! credentials (`SO_PEERCRED`), never from anything the caller says.
//!
//! ```
//! use httpq_core::acl::{Caller, Principal, UrlAcl, check_register};
//! let acls = vec![UrlAcl::new("http://+:8080/app/".parse().unwrap(), Principal::User { uid: 1000, name: "alice".into() })];
//! let alice = Caller { uid: 1000, gids: vec![1000], user: "alice".into() };
//! assert!(check_register(&"http://+:8080/app/v1/".parse().unwrap(), &alice, &acls).is_ok());
//! assert!(check_register(&"http://+:8080/other/".parse().unwrap(), &alice, &acls).is_err());
//! ```

use std::fmt;

use crate::router::path_matches;
use crate::url_prefix::{Host, Scheme, UrlPrefix};

/// Whom an entry grants its rights to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Principal {
    /// A user, by uid (the name is kept for display; the uid decides).
    User {
        /// The uid.
        uid: u32,
        /// The user name when the entry was added.
        name: String,
    },
    /// Every member of a group, by gid.
    Group {
        /// The gid.
        gid: u32,
        /// The group name when the entry was added.
        name: String,
    },
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Principal::User { uid, name } => write!(f, "user={name} (uid {uid})"),
            Principal::Group { gid, name } => write!(f, "group={name} (gid {gid})"),
        }
    }
}

/// One URL ACL entry (`netsh http add urlacl`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UrlAcl {
    /// The reserved URL prefix: it covers itself and every prefix below it.
    pub url: UrlPrefix,
    /// Who the entry is for.
    pub principal: Principal,
    /// May register prefixes under `url` (`listen=yes`, the default).
    pub listen: bool,
    /// May delegate requests for prefixes under `url` (`delegate=no` by default).
    pub delegate: bool,
}

impl UrlAcl {
    /// An entry with HTTP.sys's defaults: listen yes, delegate no.
    #[must_use]
    pub fn new(url: UrlPrefix, principal: Principal) -> Self {
        UrlAcl {
            url,
            principal,
            listen: true,
            delegate: false,
        }
    }

    /// Whether this entry's URL covers `prefix`: same scheme and port, a host that grants the
    /// prefix's host, and `prefix`'s path at or below the entry's path on a segment boundary.
    ///
    /// Hosts grant by strength, so that a reservation can never yield a registration that
    /// outranks what it names: `+` (strong) grants every host; `*` (weak) grants `*`, IP
    /// literals and names, which all rank below `+` but never `+` itself (a `+` registration
    /// would take the port's traffic from every explicit host); a name or IP grants only itself.
    #[must_use]
    pub fn covers(&self, prefix: &UrlPrefix) -> bool {
        let r = &self.url;
        r.scheme() == prefix.scheme()
            && r.port() == prefix.port()
            && match (r.host(), prefix.host()) {
                (Host::Strong, _) => true,
                (Host::Weak, Host::Strong) => false,
                (Host::Weak, _) => true,
                (a, b) => a == b,
            }
            && path_matches(prefix.folded_path(), r.folded_path())
    }

    fn applies_to(&self, caller: &Caller) -> bool {
        match &self.principal {
            Principal::User { uid, .. } => *uid == caller.uid,
            Principal::Group { gid, .. } => caller.gids.contains(gid),
        }
    }
}

/// The identity of a process asking for something, from its socket's peer credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// Effective uid.
    pub uid: u32,
    /// Primary and supplementary gids.
    pub gids: Vec<u32>,
    /// The user name, for messages.
    pub user: String,
}

impl Caller {
    /// Whether the caller is root.
    #[must_use]
    pub fn is_root(&self) -> bool {
        self.uid == 0
    }
}

/// Why a registration is refused: names the prefix, the user and the command an admin runs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "user {user} (uid {uid}) may not register url prefix \"{prefix}\": no URL ACL grants it. \
     An administrator can allow it with: httpq add urlacl url={suggested} user={user}"
)]
pub struct AccessDenied {
    /// The refused prefix.
    pub prefix: String,
    /// The caller's name.
    pub user: String,
    /// The caller's uid.
    pub uid: u32,
    /// The reservation an admin would add.
    pub suggested: String,
}

/// Whether `caller` may register `prefix`, by HTTP.sys's rules.
///
/// # Errors
/// [`AccessDenied`] when the caller is not root, the prefix is not an `http://localhost`
/// prefix above port 1024, and no entry with the listen right covers it for the caller.
pub fn check_register(
    prefix: &UrlPrefix,
    caller: &Caller,
    acls: &[UrlAcl],
) -> Result<(), AccessDenied> {
    if caller.is_root() || is_free_localhost(prefix) {
        return Ok(());
    }
    if acls
        .iter()
        .any(|a| a.listen && a.applies_to(caller) && a.covers(prefix))
    {
        return Ok(());
    }
    Err(AccessDenied {
        prefix: prefix.to_string(),
        user: caller.user.clone(),
        uid: caller.uid,
        suggested: prefix.to_string(),
    })
}

/// `http://localhost:<port>/…` with a port above 1024 needs no reservation (as HTTP.sys).
#[must_use]
pub fn is_free_localhost(prefix: &UrlPrefix) -> bool {
    prefix.scheme() == Scheme::Http
        && prefix.port() > 1024
        && matches!(prefix.host(), Host::Name(n) if n == "localhost")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn p(s: &str) -> UrlPrefix {
        s.parse().unwrap()
    }

    fn caller(uid: u32, gids: &[u32]) -> Caller {
        Caller {
            uid,
            gids: gids.to_vec(),
            user: format!("u{uid}"),
        }
    }

    fn user(uid: u32) -> Principal {
        Principal::User {
            uid,
            name: format!("u{uid}"),
        }
    }

    #[test]
    fn root_and_free_localhost_need_no_entry() {
        assert!(check_register(&p("http://+:80/"), &caller(0, &[0]), &[]).is_ok());
        assert!(check_register(&p("http://localhost:8080/x/"), &caller(7, &[7]), &[]).is_ok());
        assert!(check_register(&p("http://localhost:80/"), &caller(7, &[7]), &[]).is_err());
        assert!(check_register(&p("https://localhost:8443/"), &caller(7, &[7]), &[]).is_err());
        assert!(check_register(&p("http://127.0.0.1:8080/"), &caller(7, &[7]), &[]).is_err());
    }

    #[test]
    fn entries_cover_their_namespace_by_segment() {
        let acls = [UrlAcl::new(p("http://+:8080/app/"), user(7))];
        let c = caller(7, &[7]);
        assert!(check_register(&p("http://+:8080/app/"), &c, &acls).is_ok());
        assert!(check_register(&p("http://www.x.test:8080/APP/v1/"), &c, &acls).is_ok());
        assert!(check_register(&p("http://+:8080/apple/"), &c, &acls).is_err());
        assert!(check_register(&p("http://+:8081/app/"), &c, &acls).is_err());
        assert!(check_register(&p("https://+:8080/app/"), &c, &acls).is_err());
        // Another user is not covered.
        assert!(check_register(&p("http://+:8080/app/"), &caller(8, &[8]), &acls).is_err());
    }

    #[test]
    fn explicit_hosts_cover_only_themselves_and_groups_work() {
        let acls = [UrlAcl::new(
            p("http://api.test:80/"),
            Principal::Group {
                gid: 50,
                name: "web".into(),
            },
        )];
        assert!(check_register(&p("http://api.test:80/v1/"), &caller(9, &[9, 50]), &acls).is_ok());
        assert!(check_register(&p("http://other.test:80/"), &caller(9, &[9, 50]), &acls).is_err());
        assert!(check_register(&p("http://+:80/"), &caller(9, &[9, 50]), &acls).is_err());
        assert!(check_register(&p("http://api.test:80/"), &caller(9, &[9]), &acls).is_err());
    }

    #[test]
    fn a_weak_reservation_never_grants_a_strong_registration() {
        let acls = [UrlAcl::new(p("http://*:18084/"), user(7))];
        let c = caller(7, &[7]);
        assert!(check_register(&p("http://*:18084/"), &c, &acls).is_ok());
        assert!(check_register(&p("http://api.example:18084/x/"), &c, &acls).is_ok());
        assert!(check_register(&p("http://+:18084/"), &c, &acls).is_err());
        assert!(check_register(&p("http://+:18084/deep/"), &c, &acls).is_err());
        // A strong reservation grants all three classes.
        let strong = [UrlAcl::new(p("http://+:18084/"), user(7))];
        assert!(check_register(&p("http://+:18084/"), &c, &strong).is_ok());
        assert!(check_register(&p("http://*:18084/"), &c, &strong).is_ok());
    }

    #[test]
    fn listen_no_grants_nothing_and_the_refusal_says_what_to_run() {
        let mut acl = UrlAcl::new(p("http://+:8080/"), user(7));
        acl.listen = false;
        let err = check_register(&p("http://+:8080/"), &caller(7, &[7]), &[acl]).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("u7 (uid 7)"), "{msg}");
        assert!(
            msg.contains("httpq add urlacl url=http://+:8080/ user=u7"),
            "{msg}"
        );
    }
}
