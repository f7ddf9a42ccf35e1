//! Test helper for `tests/crash.rs`: applies one URL ACL change after another to the store in
//! the directory given as the first argument, printing `ack N` after each durable commit.
//! The test kills it with SIGKILL at random moments and checks no acknowledged change is lost.

use std::io::Write;

fn main() {
    let Some(dir) = std::env::args().nth(1) else {
        eprintln!("usage: state_writer STATE_DIR");
        std::process::exit(2);
    };
    let (mut store, mut config) = match httpq_state::Store::open(&dir) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("state_writer: {e}");
            std::process::exit(1);
        }
    };
    let mut stdout = std::io::stdout().lock();
    for n in config.url_acls.len().. {
        let url = format!("http://+:{}/n{n}/", 10_000 + n % 50_000);
        let entry = match httpq_state::UrlAclEntry::user(&url, 1000, "writer") {
            Ok(e) => e,
            Err(e) => {
                eprintln!("state_writer: {e}");
                std::process::exit(1);
            }
        };
        if let Err(e) = config.add_url_acl(entry) {
            eprintln!("state_writer: {e}");
            std::process::exit(1);
        }
        if let Err(e) = store.commit(&config) {
            eprintln!("state_writer: {e}");
            std::process::exit(1);
        }
        if writeln!(stdout, "ack {n}")
            .and_then(|()| stdout.flush())
            .is_err()
        {
            return;
        }
    }
}
