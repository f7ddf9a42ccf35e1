//! Whether the process answering on a control socket is a listener this process may trust,
//! checked by the app library and the CLI before they send anything (a request queue's
//! traffic, a certificate's private key).
//!
//! A socket path proves nothing by itself: whoever can create the path first can answer on
//! it. So the client checks, before its first byte:
//! 1. the socket's directory and every directory above it: each is owned by a trusted user
//!    and writable by nobody else, except sticky directories such as `/tmp` (where others
//!    cannot remove or rename what a trusted user created);
//! 2. the listening process's credentials, from the kernel (`SO_PEERCRED` on the connected
//!    socket: who called `listen`): root, this process's own user (a per-user listener), or
//!    the user named by `HTTPQ_LISTENER_USER`.
//!
//! A refusal names the socket, the owner found and the fix ([`ListenerNotTrusted`]).

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Why a listener was not trusted, or could not be reached.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ListenerNotTrusted {
    /// Nothing answers on the socket.
    #[error("cannot connect to the httpq listener at {}: {source}", socket.display())]
    Connect {
        /// The socket path.
        socket: PathBuf,
        /// The error from `connect`.
        source: std::io::Error,
    },
    /// A directory on the way to the socket could be changed by another user.
    #[error(
        "refusing the httpq listener socket {}: {} is {what} (owner uid {owner}, mode {mode:o}), so another user could have put this socket there. Put the socket in a directory only root or the listener's user can write (the default is /run/httpq/httpq.sock), or set HTTPQ_LISTENER_USER if the listener runs as that owner",
        socket.display(), dir.display()
    )]
    UnsafeDirectory {
        /// The socket path.
        socket: PathBuf,
        /// The directory found unsafe.
        dir: PathBuf,
        /// What is wrong with it.
        what: &'static str,
        /// Its owner.
        owner: u32,
        /// Its permission bits.
        mode: u32,
    },
    /// The process listening on the socket runs as a user this process does not trust.
    #[error(
        "refusing the httpq listener at {}: it is run by user {user} (uid {uid}{}), not by root, by you (uid {own}), or by HTTPQ_LISTENER_USER; nothing was sent to it. If {user} runs your listener, set HTTPQ_LISTENER_USER={user}; otherwise another local user may be impersonating the listener: remove {} or point HTTPQ_SOCKET at the real one",
        socket.display(),
        pid.map(|p| format!(", pid {p}")).unwrap_or_default(),
        socket.display()
    )]
    UntrustedPeer {
        /// The socket path.
        socket: PathBuf,
        /// The listening process's uid.
        uid: u32,
        /// Its user name (or the number).
        user: String,
        /// Its pid, when the kernel reports one.
        pid: Option<i32>,
        /// This process's uid.
        own: u32,
    },
    /// `HTTPQ_LISTENER_USER` names no user.
    #[error("HTTPQ_LISTENER_USER={0:?}: no such user in /etc/passwd (give a user name or a uid)")]
    UnknownListenerUser(String),
}

/// The uids whose listener this process trusts: root, itself, and `HTTPQ_LISTENER_USER`.
///
/// # Errors
/// `HTTPQ_LISTENER_USER` names no user.
pub fn trusted_uids() -> Result<Vec<u32>, ListenerNotTrusted> {
    let mut uids = vec![0];
    if let Some(own) = crate::own_uid() {
        uids.push(own);
    }
    if let Ok(user) = std::env::var("HTTPQ_LISTENER_USER") {
        let user = user.trim();
        if !user.is_empty() {
            let uid = user
                .parse::<u32>()
                .ok()
                .or_else(|| user_id(user))
                .ok_or_else(|| ListenerNotTrusted::UnknownListenerUser(user.to_owned()))?;
            uids.push(uid);
        }
    }
    Ok(uids)
}

/// Checks the directories that lead to `socket` (see the module docs).
///
/// # Errors
/// [`ListenerNotTrusted::UnsafeDirectory`] for the first unsafe directory.
pub fn check_socket_path(socket: &Path, trusted: &[u32]) -> Result<(), ListenerNotTrusted> {
    let absolute = if socket.is_absolute() {
        socket.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|d| d.join(socket))
            .unwrap_or_else(|_| socket.to_path_buf())
    };
    let Some(parent) = absolute.parent() else {
        return Ok(());
    };
    // Symbolic links are resolved: the directories checked are the ones really used (and
    // `connect` uses the resolved path, so nothing can be re-pointed in between). What
    // cannot be inspected is refused.
    let parent = parent
        .canonicalize()
        .map_err(|source| ListenerNotTrusted::Connect {
            socket: socket.to_path_buf(),
            source,
        })?;
    let mut first = true;
    for dir in parent.ancestors() {
        let meta = std::fs::metadata(dir).map_err(|source| ListenerNotTrusted::Connect {
            socket: socket.to_path_buf(),
            source,
        })?;
        let mode = meta.mode() & 0o7777;
        let owner = meta.uid();
        let unsafe_dir = |what| ListenerNotTrusted::UnsafeDirectory {
            socket: socket.to_path_buf(),
            dir: dir.to_path_buf(),
            what,
            owner,
            mode,
        };
        if !trusted.contains(&owner) {
            return Err(unsafe_dir("owned by another user"));
        }
        let others_write = mode & 0o022 != 0;
        let sticky = mode & 0o1000 != 0;
        // The socket's own directory must be private to trusted users; above it, a sticky
        // directory (such as /tmp) is safe, since nobody else can replace what it holds.
        if others_write && (first || !sticky) {
            return Err(unsafe_dir("writable by other users"));
        }
        first = false;
    }
    Ok(())
}

/// Connects to the listener at `socket` and checks that it is trusted before returning the
/// connection: nothing has been sent on it yet.
///
/// # Errors
/// See [`ListenerNotTrusted`].
pub async fn connect(socket: &Path) -> Result<tokio::net::UnixStream, ListenerNotTrusted> {
    let trusted = trusted_uids()?;
    // The path is resolved once: the directories checked are the ones connected through (a
    // symbolic link as the last component is followed, and its target's directories checked).
    let resolved = std::fs::canonicalize(socket).map_err(|source| ListenerNotTrusted::Connect {
        socket: socket.to_path_buf(),
        source,
    })?;
    check_socket_path(&resolved, &trusted).map_err(|e| match e {
        ListenerNotTrusted::UnsafeDirectory {
            dir,
            what,
            owner,
            mode,
            ..
        } => ListenerNotTrusted::UnsafeDirectory {
            socket: socket.to_path_buf(),
            dir,
            what,
            owner,
            mode,
        },
        other => other,
    })?;
    let stream = tokio::net::UnixStream::connect(&resolved)
        .await
        .map_err(|source| ListenerNotTrusted::Connect {
            socket: socket.to_path_buf(),
            source,
        })?;
    let cred = stream
        .peer_cred()
        .map_err(|source| ListenerNotTrusted::Connect {
            socket: socket.to_path_buf(),
            source,
        })?;
    if !trusted.contains(&cred.uid()) {
        return Err(ListenerNotTrusted::UntrustedPeer {
            socket: socket.to_path_buf(),
            uid: cred.uid(),
            user: user_name(cred.uid()),
            pid: cred.pid(),
            own: crate::own_uid().unwrap_or(u32::MAX),
        });
    }
    Ok(stream)
}

/// The name of `uid` from `/etc/passwd`, or the number.
#[must_use]
pub fn user_name(uid: u32) -> String {
    std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|p| {
            p.lines().find_map(|l| {
                let mut f = l.split(':');
                let name = f.next()?;
                let id = f.nth(1)?.parse::<u32>().ok()?;
                (id == uid).then(|| name.to_owned())
            })
        })
        .unwrap_or_else(|| uid.to_string())
}

/// The uid of a user name, from `/etc/passwd`.
#[must_use]
pub fn user_id(name: &str) -> Option<u32> {
    lookup_id("/etc/passwd", name)
}

/// The gid of a group name, from `/etc/group`.
#[must_use]
pub fn group_id(name: &str) -> Option<u32> {
    lookup_id("/etc/group", name)
}

fn lookup_id(file: &str, name: &str) -> Option<u32> {
    std::fs::read_to_string(file).ok()?.lines().find_map(|l| {
        let mut f = l.split(':');
        (f.next()? == name).then_some(())?;
        f.nth(1)?.parse().ok()
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_world_writable_socket_directory_is_refused_and_named() {
        let dir = std::env::temp_dir().join(format!("httpq-trust-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let own = crate::own_uid().unwrap();
        let socket = dir.join("httpq.sock");
        std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        check_socket_path(&socket, &[0, own]).unwrap();
        std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o777))
            .unwrap();
        let err = check_socket_path(&socket, &[0, own])
            .unwrap_err()
            .to_string();
        assert!(err.contains("writable by other users"), "{err}");
        assert!(err.contains(&dir.display().to_string()), "{err}");
        // A directory owned by someone untrusted is refused too.
        std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let err = check_socket_path(&socket, &[4242]).unwrap_err().to_string();
        assert!(err.contains("owned by another user"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
