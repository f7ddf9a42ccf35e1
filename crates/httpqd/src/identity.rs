//! Who is on the other end of a Unix socket: uid and gid from `SO_PEERCRED` (via tokio), the
//! supplementary groups from `/proc/<pid>/status`, and names from `/etc/passwd`.

use httpq_core::acl::Caller;
use tokio::net::UnixStream;

/// The caller's identity, from the kernel only (never from anything the peer says).
///
/// # Errors
/// The socket has no peer credentials.
pub(crate) fn caller(stream: &UnixStream) -> std::io::Result<(Caller, Option<i32>)> {
    let cred = stream.peer_cred()?;
    let mut gids = vec![cred.gid()];
    if let Some(pid) = cred.pid() {
        if let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
            if let Some(line) = status.lines().find(|l| l.starts_with("Groups:")) {
                gids.extend(
                    line["Groups:".len()..]
                        .split_whitespace()
                        .filter_map(|g| g.parse::<u32>().ok()),
                );
            }
        }
    }
    gids.sort_unstable();
    gids.dedup();
    Ok((
        Caller {
            uid: cred.uid(),
            gids,
            user: user_name(cred.uid()),
        },
        cred.pid(),
    ))
}

/// The name of `uid` from `/etc/passwd`, or the number.
pub(crate) fn user_name(uid: u32) -> String {
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
pub(crate) fn user_id(name: &str) -> Option<u32> {
    lookup_id("/etc/passwd", name)
}

/// The gid of a group name, from `/etc/group`.
pub(crate) fn group_id(name: &str) -> Option<u32> {
    lookup_id("/etc/group", name)
}

fn lookup_id(file: &str, name: &str) -> Option<u32> {
    std::fs::read_to_string(file).ok()?.lines().find_map(|l| {
        let mut f = l.split(':');
        (f.next()? == name).then_some(())?;
        f.nth(1)?.parse().ok()
    })
}
