//! The supplementary groups of the process at the other end of a Unix socket, as the kernel
//! recorded them when that process connected (or listened): `SO_PEERGROUPS`, Linux ≥ 4.13.
//!
//! Reading `/proc/<pid>/status` instead is racy: the pid from `SO_PEERCRED` may have exited
//! and been reused by another process, whose groups would then be credited to the peer.
//! `SO_PEERGROUPS` comes from the same credentials as `SO_PEERCRED`, taken from the socket.
//! `rustix` and `nix` wrap `SO_PEERCRED` but not this option, so this crate holds the one
//! `getsockopt` call httpq makes by hand.
//!
//! ```
//! let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
//! let groups = httpq_peercred::peer_groups(&a).unwrap();
//! // The peer is this process: its groups are ours.
//! assert!(groups.iter().all(|g| *g < u32::MAX));
//! ```

use std::os::fd::{AsFd, AsRawFd};

/// The supplementary group ids of the socket's peer.
///
/// # Errors
/// The socket is not a connected Unix socket, or the kernel does not support the option
/// (before Linux 4.13: `ENOPROTOOPT`).
pub fn peer_groups(socket: &impl AsFd) -> std::io::Result<Vec<u32>> {
    let fd = socket.as_fd().as_raw_fd();
    // Start with room for 64 groups; the kernel says how much it needs when that is short.
    let mut groups: Vec<libc::gid_t> = vec![0; 64];
    loop {
        let mut len = libc::socklen_t::try_from(groups.len() * size_of::<libc::gid_t>())
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
        // SAFETY: `fd` is a descriptor borrowed for the duration of the call; the buffer
        // pointer and `len` describe `groups`' initialised, writable memory exactly, and the
        // kernel writes at most `len` bytes into it and stores the size it used in `len`.
        let rc = unsafe {
            libc::getsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_PEERGROUPS,
                groups.as_mut_ptr().cast(),
                &mut len,
            )
        };
        let len = len as usize / size_of::<libc::gid_t>();
        if rc == 0 {
            groups.truncate(len);
            return Ok(groups);
        }
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() == Some(libc::ERANGE) && len > groups.len() {
            // NGROUPS_MAX is 65536 on Linux: the loop ends.
            groups.resize(len, 0);
            continue;
        }
        return Err(err);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_peer_groups_are_this_process_groups() -> std::io::Result<()> {
        let (a, _b) = std::os::unix::net::UnixStream::pair()?;
        let mut got = super::peer_groups(&a)?;
        got.sort_unstable();
        let status = std::fs::read_to_string("/proc/self/status")?;
        let mut want: Vec<u32> = status
            .lines()
            .find(|l| l.starts_with("Groups:"))
            .map(|l| {
                l["Groups:".len()..]
                    .split_whitespace()
                    .filter_map(|g| g.parse().ok())
                    .collect()
            })
            .unwrap_or_default();
        want.sort_unstable();
        assert_eq!(got, want);
        Ok(())
    }
}
