//! `Router::route` against a plain reference model of HTTP.sys routing, plus the URLP examples.
#![allow(clippy::unwrap_used)]

use std::net::IpAddr;

use httpq_core::router::{Route, RouteRequest, Router};
use httpq_core::url_prefix::{Scheme, UrlPrefix};
use proptest::prelude::*;

const HOSTS: [&str; 6] = ["+", "*", "a.test", "b.test", "127.0.0.1", "[::1]"];
const PORTS: [u16; 3] = [80, 8080, 0];
const SEGS: [&str; 4] = ["a", "b", "ab", "A"];

const REQ_HOSTS: [&str; 8] = [
    "a.test",
    "A.TEST",
    "b.test",
    "c.test",
    "",
    "127.0.0.1",
    "[::1]",
    "aa.test",
];
const REQ_IPS: [&str; 5] = ["127.0.0.1", "::1", "::ffff:127.0.0.1", "10.0.0.1", "::2"];
const REQ_PORTS: [u16; 3] = [80, 8080, 0];
const REQ_SEGS: [&str; 7] = ["a", "b", "ab", "A", "B", "abc", "Ab"];

/// A prefix as the model sees it.
#[derive(Debug, Clone)]
struct Spec {
    https: bool,
    host: &'static str,
    port: u16,
    segs: Vec<&'static str>,
    trailing_slash: bool,
}

impl Spec {
    fn text(&self) -> String {
        let scheme = if self.https { "https" } else { "http" };
        let mut s = format!(
            "{scheme}://{}:{}/{}",
            self.host,
            self.port,
            self.segs.join("/")
        );
        if self.trailing_slash && !self.segs.is_empty() {
            s.push('/');
        }
        s
    }

    /// The path, lowercased, ending with '/'.
    fn path_lower(&self) -> String {
        let mut p = String::from("/");
        for s in &self.segs {
            p.push_str(&s.to_lowercase());
            p.push('/');
        }
        p
    }

    fn class(&self) -> u8 {
        match self.host {
            "+" => 0,
            "a.test" | "b.test" => 1,
            "127.0.0.1" | "[::1]" => 2,
            "*" => 3,
            other => unreachable!("{other}"),
        }
    }

    fn same_prefix(&self, other: &Spec) -> bool {
        self.https == other.https
            && self.host == other.host
            && self.port == other.port
            && self.path_lower() == other.path_lower()
    }

    fn accepts_host(&self, req: &Req) -> bool {
        let local = match req.local_ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(req.local_ip, IpAddr::V4),
            v4 => v4,
        };
        match self.host {
            "+" | "*" => true,
            "a.test" | "b.test" => req.host.to_lowercase() == self.host,
            "127.0.0.1" => local == "127.0.0.1".parse::<IpAddr>().unwrap(),
            "[::1]" => local == "::1".parse::<IpAddr>().unwrap(),
            other => unreachable!("{other}"),
        }
    }

    fn candidate(&self, req: &Req) -> bool {
        self.https == req.https && self.port != 0 && self.port == req.local_port
    }

    fn accepts_path(&self, req: &Req) -> bool {
        let p = self.path_lower();
        let r = req.path.to_lowercase();
        r == p[..p.len() - 1] || r.starts_with(&p)
    }
}

#[derive(Debug, Clone)]
struct Req {
    https: bool,
    host: &'static str,
    local_ip: IpAddr,
    local_port: u16,
    path: String,
}

impl Req {
    fn as_route_request(&self) -> RouteRequest<'_> {
        RouteRequest {
            scheme: if self.https {
                Scheme::Https
            } else {
                Scheme::Http
            },
            host: self.host,
            local_ip: self.local_ip,
            local_port: self.local_port,
            path: &self.path,
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Expected {
    Matched(usize),
    UnknownHost,
    NoPrefix,
}

/// HTTP.sys routing written plainly: per class in precedence order, the longest matching path.
fn model(entries: &[(Spec, usize)], req: &Req) -> Expected {
    for class in 0..4 {
        let best = entries
            .iter()
            .filter(|(s, _)| {
                s.class() == class && s.candidate(req) && s.accepts_host(req) && s.accepts_path(req)
            })
            .max_by_key(|(s, _)| s.path_lower().len());
        if let Some((_, owner)) = best {
            return Expected::Matched(*owner);
        }
    }
    if entries
        .iter()
        .any(|(s, _)| s.candidate(req) && s.accepts_host(req))
    {
        Expected::NoPrefix
    } else {
        Expected::UnknownHost
    }
}

fn observed(router: &Router<usize>, req: &Req) -> Expected {
    match router.route(&req.as_route_request()) {
        Route::Matched { prefix, owner } => {
            // The prefix handed back is the owner's prefix.
            assert_eq!(router.get(prefix), Some(owner));
            Expected::Matched(*owner)
        }
        Route::UnknownHost => Expected::UnknownHost,
        Route::NoPrefix => Expected::NoPrefix,
    }
}

fn spec_strategy() -> impl Strategy<Value = Spec> {
    (
        any::<bool>(),
        prop::sample::select(HOSTS.to_vec()),
        prop::sample::select(PORTS.to_vec()),
        prop::collection::vec(prop::sample::select(SEGS.to_vec()), 0..=3),
        any::<bool>(),
    )
        .prop_map(|(https, host, port, segs, trailing_slash)| Spec {
            // https with port 0 is not a valid prefix.
            https: https && port != 0,
            host,
            port,
            segs,
            trailing_slash,
        })
}

fn req_strategy() -> impl Strategy<Value = Req> {
    (
        any::<bool>(),
        prop::sample::select(REQ_HOSTS.to_vec()),
        prop::sample::select(REQ_IPS.to_vec()),
        prop::sample::select(REQ_PORTS.to_vec()),
        prop::collection::vec(prop::sample::select(REQ_SEGS.to_vec()), 0..=4),
        any::<bool>(),
    )
        .prop_map(|(https, host, ip, local_port, segs, trailing)| {
            let mut path = format!("/{}", segs.join("/"));
            if trailing && !segs.is_empty() {
                path.push('/');
            }
            Req {
                https,
                host,
                local_ip: ip.parse().unwrap(),
                local_port,
                path,
            }
        })
}

/// Builds the router and the model's list from specs, skipping (and checking) duplicates.
fn build(specs: &[Spec]) -> (Router<usize>, Vec<(Spec, usize)>) {
    let mut router = Router::new();
    let mut entries: Vec<(Spec, usize)> = Vec::new();
    for (owner, spec) in specs.iter().enumerate() {
        let prefix = UrlPrefix::parse(&spec.text()).unwrap();
        let existing = entries.iter().find(|(s, _)| s.same_prefix(spec));
        match (router.add(prefix, owner), existing) {
            (Ok(()), None) => entries.push((spec.clone(), owner)),
            (Err(dup), Some((_, first))) => assert_eq!(dup.owner, *first),
            (result, existing) => panic!("add {}: {result:?}, model: {existing:?}", spec.text()),
        }
    }
    assert_eq!(router.len(), entries.len());
    (router, entries)
}

fn flip_case(s: &str, mask: &[bool]) -> String {
    s.chars()
        .zip(mask.iter().cycle())
        .map(|(c, &up)| {
            if up {
                c.to_ascii_uppercase()
            } else {
                c.to_ascii_lowercase()
            }
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn route_agrees_with_the_model(
        specs in prop::collection::vec(spec_strategy(), 0..12),
        reqs in prop::collection::vec(req_strategy(), 1..24),
    ) {
        let (router, entries) = build(&specs);
        for req in &reqs {
            prop_assert_eq!(observed(&router, req), model(&entries, req), "{:?} with {:?}", req, entries);
        }
    }

    #[test]
    fn add_then_remove_leaves_routing_unchanged(
        specs in prop::collection::vec(spec_strategy(), 0..10),
        extra in spec_strategy(),
        reqs in prop::collection::vec(req_strategy(), 1..24),
    ) {
        let (router, _) = build(&specs);
        let before: Vec<Expected> = reqs.iter().map(|r| observed(&router, r)).collect();
        let mut changed = router.clone();
        let prefix = UrlPrefix::parse(&extra.text()).unwrap();
        if changed.add(prefix.clone(), usize::MAX).is_ok() {
            prop_assert_eq!(changed.len(), router.len() + 1);
            prop_assert_eq!(changed.remove(&prefix), Some(usize::MAX));
        }
        prop_assert_eq!(changed.len(), router.len());
        let after: Vec<Expected> = reqs.iter().map(|r| observed(&changed, r)).collect();
        prop_assert_eq!(before, after);
    }

    #[test]
    fn case_variants_are_duplicates(
        specs in prop::collection::vec(spec_strategy(), 1..10),
        mask in prop::collection::vec(any::<bool>(), 1..16),
    ) {
        let (mut router, entries) = build(&specs);
        for (spec, owner) in &entries {
            let variant = flip_case(&spec.text(), &mask);
            let prefix = UrlPrefix::parse(&variant).unwrap();
            let dup = router.add(prefix.clone(), usize::MAX).unwrap_err();
            prop_assert_eq!(dup.owner, *owner);
            prop_assert_eq!(&dup.prefix, &prefix);
        }
        prop_assert_eq!(router.len(), entries.len());
        // Removing by a case variant removes the original.
        for (spec, owner) in &entries {
            let variant = UrlPrefix::parse(&flip_case(&spec.text(), &mask)).unwrap();
            prop_assert_eq!(router.remove(&variant), Some(*owner));
        }
        prop_assert!(router.is_empty());
        prop_assert_eq!(router.endpoints().count(), 0);
    }
}

fn req(host: &'static str, local_ip: &str, path: &str) -> Req {
    Req {
        https: false,
        host,
        local_ip: local_ip.parse().unwrap(),
        local_port: 80,
        path: path.to_owned(),
    }
}

fn router(prefixes: &[&str]) -> Router<usize> {
    let mut r = Router::new();
    for (owner, p) in prefixes.iter().enumerate() {
        r.add(p.parse().unwrap(), owner).unwrap();
    }
    r
}

#[test]
fn urlp_whole_segment_example() {
    // UrlPrefix Strings: "/dir/app.htm" does not match the prefix "/dir/sna/".
    let r = router(&["http://www.adatum.com:80/dir/sna/"]);
    let host = "www.adatum.com";
    assert_eq!(
        observed(&r, &req(host, "10.0.0.1", "/dir/app.htm")),
        Expected::NoPrefix
    );
    assert_eq!(
        observed(&r, &req(host, "10.0.0.1", "/dir/sna/app.htm")),
        Expected::Matched(0)
    );
    assert_eq!(
        observed(&r, &req(host, "10.0.0.1", "/dir/snapshot.htm")),
        Expected::NoPrefix
    );
}

#[test]
fn strong_beats_explicit() {
    let r = router(&["http://www.adatum.com:80/vroot/", "http://+:80/vroot/"]);
    assert_eq!(
        observed(&r, &req("www.adatum.com", "10.0.0.1", "/vroot/x")),
        Expected::Matched(1)
    );
}

#[test]
fn explicit_beats_ip_bound_beats_weak() {
    let r = router(&[
        "http://*:80/vroot/",
        "http://10.0.0.1:80/vroot/",
        "http://www.adatum.com:80/vroot/",
    ]);
    assert_eq!(
        observed(&r, &req("www.adatum.com", "10.0.0.1", "/vroot/x")),
        Expected::Matched(2)
    );
    assert_eq!(
        observed(&r, &req("other.com", "10.0.0.1", "/vroot/x")),
        Expected::Matched(1)
    );
    assert_eq!(
        observed(&r, &req("other.com", "10.0.0.2", "/vroot/x")),
        Expected::Matched(0)
    );
    assert_eq!(
        observed(&r, &req("other.com", "10.0.0.2", "/elsewhere")),
        Expected::NoPrefix
    );
}

#[test]
fn explicit_and_strong_with_the_same_path_coexist() {
    let mut r = router(&["http://www.x.com:80/vroot/"]);
    r.add("http://+:80/vroot/".parse().unwrap(), 1).unwrap();
    assert_eq!(r.len(), 2);
}
