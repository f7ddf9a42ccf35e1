//! Per-user quotas: how many control connections, request queues, URL prefixes and listening
//! ports one uid may make httpqd hold, so that no local user can exhaust the listener's
//! descriptors or memory for the others (docs/security.md, "Quotas").
//!
//! root and the user running httpqd are exempt. Every count is taken before the resource is
//! created and given back when it goes, whichever way it goes (close, disconnect, expiry).
//!
//! All the other users together are also bounded, at [`GLOBAL_FACTOR`] times each per-user
//! limit: a user who can act as many uids (subordinate uids in a user namespace) still cannot
//! exhaust the listener, and what root and the operators need stays free.

use std::collections::HashMap;
use std::sync::Mutex;

use httpq_core::acl::Caller;

/// The limits, set by httpqd's `--max-*-per-user` flags.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Quotas {
    /// Open control connections (apps and CLI), counted from accept, before HELLO.
    pub(crate) connections: u32,
    /// Request queues created (named queues count while they are retained).
    pub(crate) queues: u32,
    /// Registered URL prefixes.
    pub(crate) prefixes: u32,
    /// Distinct ports among the user's registered prefixes (each may be a listening socket).
    pub(crate) ports: u32,
}

impl Default for Quotas {
    fn default() -> Self {
        Quotas {
            connections: 64,
            queues: 64,
            prefixes: 256,
            ports: 16,
        }
    }
}

/// All non-exempt users together may hold this many times each per-user limit.
pub(crate) const GLOBAL_FACTOR: u32 = 64;

/// Bytes one user's connections may have queued to them, unread, all together.
pub(crate) const USER_QUEUED_BYTES: usize = 64 << 20;

/// Bytes all non-exempt users' connections may have queued, unread, all together.
pub(crate) const GLOBAL_QUEUED_BYTES: usize = 512 << 20;

#[derive(Debug, Default)]
struct PerUid {
    /// Bytes queued to this user's connections and not yet written.
    queued: usize,
    connections: u32,
    queues: u32,
    prefixes: u32,
    /// Port → registered prefixes on it.
    ports: HashMap<u16, u32>,
}

impl PerUid {
    fn is_empty(&self) -> bool {
        self.connections == 0 && self.queues == 0 && self.prefixes == 0 && self.queued == 0
    }
}

/// What all non-exempt users hold together.
#[derive(Debug, Default)]
struct Totals {
    connections: u32,
    queues: u32,
    prefixes: u32,
    queued: usize,
    /// Users with queued bytes now.
    holders: usize,
}

/// What every uid holds now.
#[derive(Debug)]
pub(crate) struct Usage {
    quotas: Quotas,
    exempt: [u32; 2],
    table: Mutex<(HashMap<u32, PerUid>, Totals)>,
}

/// A refusal: names the user, the quota, its value and the flag that raises it.
fn exceeded(caller: &Caller, what: &str, limit: u32, flag: &str, fix: &str) -> String {
    format!(
        "user {} (uid {}) already holds {limit} {what}, httpqd's per-user limit ({flag}); {fix}, or ask the administrator to raise {flag}",
        caller.user, caller.uid
    )
}

impl Usage {
    pub(crate) fn new(quotas: Quotas, own_uid: u32) -> Self {
        Usage {
            quotas,
            exempt: [0, own_uid],
            table: Mutex::new((HashMap::new(), Totals::default())),
        }
    }

    /// Runs `f` on `uid`'s counts and, unless `uid` is exempt, the totals of all non-exempt
    /// users (exempt users get a scratch total that is thrown away).
    fn with<R>(&self, uid: u32, f: impl FnOnce(&mut PerUid, &mut Totals) -> R) -> R {
        let exempt = self.exempt(uid);
        let mut guard = crate::lock(&self.table);
        let (table, totals) = &mut *guard;
        let mut scratch = Totals::default();
        let totals = if exempt { &mut scratch } else { totals };
        let entry = table.entry(uid).or_default();
        let r = f(entry, totals);
        if entry.is_empty() {
            table.remove(&uid);
        }
        r
    }

    /// The limit all non-exempt users share for a per-user `limit`.
    fn global(limit: u32) -> u32 {
        limit.saturating_mul(GLOBAL_FACTOR)
    }

    fn exempt(&self, uid: u32) -> bool {
        self.exempt.contains(&uid)
    }

    /// Whether one more of `what` fits for `caller`, who holds `have` of them while all
    /// non-exempt users hold `all_have`: the refusal names the quota and its flag.
    #[allow(clippy::too_many_arguments)]
    fn room(
        &self,
        caller: &Caller,
        have: u32,
        all_have: u32,
        limit: u32,
        what: &str,
        flag: &str,
        fix: &str,
    ) -> Result<(), String> {
        if self.exempt(caller.uid) {
            return Ok(());
        }
        if have >= limit {
            return Err(exceeded(caller, what, limit, flag, fix));
        }
        if all_have >= Self::global(limit) {
            return Err(all_users(what, Self::global(limit)));
        }
        Ok(())
    }

    /// Counts a new control connection; the returned guard gives it back when dropped.
    pub(crate) fn connection(
        self: &std::sync::Arc<Self>,
        caller: &Caller,
    ) -> Result<ConnectionSlot, String> {
        self.with(caller.uid, |u, all| {
            self.room(
                caller,
                u.connections,
                all.connections,
                self.quotas.connections,
                "control connections",
                "--max-connections-per-user",
                "close some of them",
            )?;
            u.connections += 1;
            all.connections += 1;
            Ok::<(), String>(())
        })?;
        Ok(ConnectionSlot {
            usage: self.clone(),
            uid: caller.uid,
        })
    }

    /// Counts a new request queue for `caller`.
    pub(crate) fn take_queue(&self, caller: &Caller) -> Result<(), String> {
        self.with(caller.uid, |u, all| {
            self.room(
                caller,
                u.queues,
                all.queues,
                self.quotas.queues,
                "request queues",
                "--max-queues-per-user",
                "close one",
            )?;
            u.queues += 1;
            all.queues += 1;
            Ok(())
        })
    }

    /// Gives back a request queue of `uid`.
    pub(crate) fn release_queue(&self, uid: u32) {
        self.with(uid, |u, all| {
            u.queues = u.queues.saturating_sub(1);
            all.queues = all.queues.saturating_sub(1);
        });
    }

    /// Counts one more prefix of `caller` on `port` (0: a port not yet chosen, which is a new
    /// one), if the quotas allow it. Check and count are one step, so concurrent
    /// registrations cannot all pass at the limit. Give it back with
    /// [`Usage::release_prefix`] if the registration then fails, and move a port-0
    /// reservation to the port bound with [`Usage::move_prefix`].
    pub(crate) fn take_prefix(&self, caller: &Caller, port: u16) -> Result<(), String> {
        let q = self.quotas;
        let exempt = self.exempt(caller.uid);
        self.with(caller.uid, |u, all| {
            if exempt {
                u.prefixes += 1;
                *u.ports.entry(port).or_default() += 1;
                return Ok(());
            }
            if all.prefixes >= Self::global(q.prefixes) {
                return Err(all_users("URL prefixes", Self::global(q.prefixes)));
            }
            if u.prefixes >= q.prefixes {
                return Err(exceeded(
                    caller,
                    "URL prefixes",
                    q.prefixes,
                    "--max-prefixes-per-user",
                    "remove one",
                ));
            }
            let new_port = port == 0 || !u.ports.contains_key(&port);
            if new_port && u.ports.len() >= q.ports as usize {
                return Err(exceeded(
                    caller,
                    "ports",
                    q.ports,
                    "--max-ports-per-user",
                    "register on a port you already use",
                ));
            }
            u.prefixes += 1;
            all.prefixes += 1;
            *u.ports.entry(port).or_default() += 1;
            Ok(())
        })
    }

    /// A prefix counted on port `from` (0) was bound on port `to`.
    pub(crate) fn move_prefix(&self, uid: u32, from: u16, to: u16) {
        if from == to {
            return;
        }
        self.with(uid, |u, _| {
            if let Some(n) = u.ports.get_mut(&from) {
                *n -= 1;
                if *n == 0 {
                    u.ports.remove(&from);
                }
            }
            *u.ports.entry(to).or_default() += 1;
        });
    }

    /// Gives back a prefix of `uid` on `port`.
    pub(crate) fn release_prefix(&self, uid: u32, port: u16) {
        self.with(uid, |u, all| {
            u.prefixes = u.prefixes.saturating_sub(1);
            all.prefixes = all.prefixes.saturating_sub(1);
            if let Some(n) = u.ports.get_mut(&port) {
                *n -= 1;
                if *n == 0 {
                    u.ports.remove(&port);
                }
            }
        });
    }
}

/// One counted control connection; given back when dropped.
#[derive(Debug)]
pub(crate) struct ConnectionSlot {
    usage: std::sync::Arc<Usage>,
    uid: u32,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.usage.with(self.uid, |u, all| {
            u.connections = u.connections.saturating_sub(1);
            all.connections = all.connections.saturating_sub(1);
        });
    }
}

/// The memory budget of one user's connections ([`USER_QUEUED_BYTES`], and
/// [`GLOBAL_QUEUED_BYTES`] for all users together); `None` for exempt users.
pub(crate) fn queue_budget(
    usage: &std::sync::Arc<Usage>,
    uid: u32,
) -> Option<std::sync::Arc<dyn httpq_server::ipc::QueueBudget>> {
    if usage.exempt(uid) {
        return None;
    }
    Some(std::sync::Arc::new(UserBudget {
        usage: usage.clone(),
        uid,
    }))
}

#[derive(Debug)]
struct UserBudget {
    usage: std::sync::Arc<Usage>,
    uid: u32,
}

impl httpq_server::ipc::QueueBudget for UserBudget {
    /// Over the user's own budget: refused. Over the budget of all users together: refused
    /// only to a user holding more than an equal share of it, so that those who fill it are
    /// the ones disconnected, never a user with little queued.
    fn take(&self, n: usize) -> bool {
        self.usage.with(self.uid, |u, all| {
            if u.queued + n > USER_QUEUED_BYTES {
                return false;
            }
            if all.queued + n > GLOBAL_QUEUED_BYTES {
                let holders = all.holders + usize::from(u.queued == 0);
                if u.queued + n > GLOBAL_QUEUED_BYTES / holders.max(1) {
                    return false;
                }
            }
            if u.queued == 0 && n > 0 {
                all.holders += 1;
            }
            u.queued += n;
            all.queued += n;
            true
        })
    }

    fn give(&self, n: usize) {
        self.usage.with(self.uid, |u, all| {
            let before = u.queued;
            u.queued = u.queued.saturating_sub(n);
            all.queued = all.queued.saturating_sub(n);
            if before > 0 && u.queued == 0 {
                all.holders = all.holders.saturating_sub(1);
            }
        });
    }
}

fn all_users(what: &str, limit: u32) -> String {
    format!(
        "all users together already hold {limit} {what}, httpqd's limit for users other than root ({GLOBAL_FACTOR} times the per-user limit); try again later, or ask the administrator to raise the per-user limit"
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn caller(uid: u32) -> Caller {
        Caller {
            uid,
            gids: vec![uid],
            user: format!("u{uid}"),
        }
    }

    #[test]
    fn quotas_refuse_at_the_limit_name_the_flag_and_come_back() {
        let usage = std::sync::Arc::new(Usage::new(
            Quotas {
                connections: 2,
                queues: 1,
                prefixes: 3,
                ports: 2,
            },
            1000,
        ));
        let c = caller(7);
        let a = usage.connection(&c).unwrap();
        let _b = usage.connection(&c).unwrap();
        let err = usage.connection(&c).unwrap_err();
        assert!(err.contains("--max-connections-per-user"), "{err}");
        drop(a);
        assert!(usage.connection(&c).is_ok());
        // root and httpqd's own user are exempt.
        for uid in [0, 1000] {
            let slots: Vec<_> = (0..5)
                .map(|_| usage.connection(&caller(uid)).unwrap())
                .collect();
            assert_eq!(slots.len(), 5);
        }

        usage.take_queue(&c).unwrap();
        assert!(
            usage
                .take_queue(&c)
                .unwrap_err()
                .contains("--max-queues-per-user")
        );
        usage.release_queue(7);
        usage.take_queue(&c).unwrap();

        usage.take_prefix(&c, 80).unwrap();
        usage.take_prefix(&c, 81).unwrap();
        // A third port is refused, another prefix on a used port is not.
        assert!(
            usage
                .take_prefix(&c, 82)
                .unwrap_err()
                .contains("--max-ports-per-user")
        );
        assert!(usage.take_prefix(&c, 0).is_err());
        usage.take_prefix(&c, 80).unwrap();
        assert!(
            usage
                .take_prefix(&c, 80)
                .unwrap_err()
                .contains("--max-prefixes-per-user")
        );
        usage.release_prefix(7, 81);
        usage.take_prefix(&c, 0).unwrap();
        usage.move_prefix(7, 0, 82);
        assert!(
            usage.take_prefix(&c, 83).is_err(),
            "82 and 80 are the two ports"
        );
    }

    #[test]
    fn many_uids_together_are_bounded_and_exempt_users_are_not() {
        let usage = std::sync::Arc::new(Usage::new(
            Quotas {
                connections: 1,
                ..Quotas::default()
            },
            1000,
        ));
        // One connection each for 64 uids (as subordinate uids would be), then no more.
        let slots: Vec<_> = (0..GLOBAL_FACTOR)
            .map(|i| usage.connection(&caller(100_000 + i)).unwrap())
            .collect();
        let err = usage.connection(&caller(200_000)).unwrap_err();
        assert!(err.contains("all users together"), "{err}");
        assert!(usage.connection(&caller(0)).is_ok());
        drop(slots);
        assert!(usage.connection(&caller(200_000)).is_ok());
    }

    #[test]
    fn queued_bytes_are_bounded_per_user_and_given_back() {
        let usage = std::sync::Arc::new(Usage::new(Quotas::default(), 1000));
        assert!(queue_budget(&usage, 0).is_none());
        let a = queue_budget(&usage, 7).unwrap();
        let b = queue_budget(&usage, 7).unwrap();
        assert!(a.take(USER_QUEUED_BYTES - 10));
        assert!(!b.take(11), "two connections of one user share the budget");
        assert!(b.take(10));
        a.give(USER_QUEUED_BYTES - 10);
        b.give(10);
        assert!(a.take(USER_QUEUED_BYTES));
        a.give(USER_QUEUED_BYTES);
    }

    #[test]
    fn the_all_users_budget_cuts_the_big_holders_not_the_small_ones() {
        let usage = std::sync::Arc::new(Usage::new(Quotas::default(), 1000));
        // Eight uids fill the budget of all users together.
        let big: Vec<_> = (0..8)
            .map(|i| queue_budget(&usage, 100 + i).unwrap())
            .collect();
        for b in &big {
            assert!(b.take(GLOBAL_QUEUED_BYTES / 8));
        }
        // Another user with little queued still gets its bytes through...
        let small = queue_budget(&usage, 7).unwrap();
        assert!(small.take(4096));
        // ...while a big holder asking for more is the one refused.
        assert!(!big[0].take(4096));
    }
}
