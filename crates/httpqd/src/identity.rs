//! Who is on the other end of a Unix socket: uid and gid from `SO_PEERCRED`, the
//! supplementary groups from `SO_PEERGROUPS` (both recorded by the kernel when the peer
//! connected, never read from `/proc` where a reused pid would lie), and names from
//! `/etc/passwd`.

use httpq_core::acl::Caller;
use tokio::net::UnixStream;

/// The caller's identity, from the kernel only (never from anything the peer says).
///
/// # Errors
/// The socket has no peer credentials, or the kernel cannot report the peer's groups.
pub(crate) fn caller(stream: &UnixStream) -> std::io::Result<(Caller, Option<i32>)> {
    let cred = stream.peer_cred()?;
    let mut gids = httpq_peercred::peer_groups(stream)?;
    gids.push(cred.gid());
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

pub(crate) use httpq_server::trust::{group_id, user_id, user_name};
