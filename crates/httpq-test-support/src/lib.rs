//! Test harness for httpq: a raw-bytes HTTP/1.1 client over real sockets, `curl` helpers, and
//! a way to run the example binaries. Nothing here is mocked: every helper talks to a real
//! server over a real socket.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A parsed HTTP/1.1 response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawResponse {
    /// Status code.
    pub status: u16,
    /// Header lines, names lowercased, in order.
    pub headers: Vec<(String, String)>,
    /// The body (de-chunked).
    pub body: Vec<u8>,
}

impl RawResponse {
    /// First value of a header.
    #[must_use]
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as text.
    #[must_use]
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A client that writes exactly the bytes it is given.
#[derive(Debug)]
pub struct RawClient {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl RawClient {
    /// Connects, with a 10 s read timeout.
    ///
    /// # Errors
    /// The connection fails.
    pub fn connect(addr: impl ToSocketAddrs) -> io::Result<Self> {
        let stream = TcpStream::connect(addr)?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        stream.set_nodelay(true)?;
        Ok(RawClient {
            stream,
            buf: Vec::new(),
        })
    }

    /// Changes the read timeout.
    ///
    /// # Errors
    /// The socket refuses.
    pub fn set_read_timeout(&self, t: Duration) -> io::Result<()> {
        self.stream.set_read_timeout(Some(t))
    }

    /// Sends raw bytes.
    ///
    /// # Errors
    /// The write fails.
    pub fn send(&mut self, bytes: impl AsRef<[u8]>) -> io::Result<()> {
        self.stream.write_all(bytes.as_ref())
    }

    /// Half-closes the sending side.
    ///
    /// # Errors
    /// The socket refuses.
    pub fn shutdown_write(&self) -> io::Result<()> {
        self.stream.shutdown(std::net::Shutdown::Write)
    }

    fn fill(&mut self) -> io::Result<usize> {
        let mut tmp = [0u8; 65536];
        let n = self.stream.read(&mut tmp)?;
        self.buf.extend_from_slice(&tmp[..n]);
        Ok(n)
    }

    fn take_line(&mut self) -> io::Result<Option<String>> {
        loop {
            if let Some(i) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line = String::from_utf8_lossy(&self.buf[..i]).into_owned();
                self.buf.drain(..i + 2);
                return Ok(Some(line));
            }
            if self.fill()? == 0 {
                return Ok(None);
            }
        }
    }

    fn take_exact(&mut self, n: usize) -> io::Result<Vec<u8>> {
        while self.buf.len() < n {
            if self.fill()? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!(
                        "connection closed after {} of {n} body bytes",
                        self.buf.len()
                    ),
                ));
            }
        }
        Ok(self.buf.drain(..n).collect())
    }

    /// Reads one response (for a request whose method was not HEAD).
    ///
    /// # Errors
    /// The connection closed or broke before a whole response arrived.
    pub fn read_response(&mut self) -> io::Result<RawResponse> {
        self.read_response_for(false)
    }

    /// Reads one response; `head` says the request was HEAD (no body follows).
    ///
    /// # Errors
    /// The connection closed or broke before a whole response arrived.
    pub fn read_response_for(&mut self, head: bool) -> io::Result<RawResponse> {
        let eof = || {
            io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed before a response",
            )
        };
        let status_line = self.take_line()?.ok_or_else(eof)?;
        let status: u16 = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| io::Error::other(format!("bad status line {status_line:?}")))?;
        let mut headers = Vec::new();
        loop {
            let line = self.take_line()?.ok_or_else(eof)?;
            if line.is_empty() {
                break;
            }
            let (n, v) = line.split_once(':').unwrap_or((&line, ""));
            headers.push((n.trim().to_ascii_lowercase(), v.trim().to_owned()));
        }
        let mut resp = RawResponse {
            status,
            headers,
            body: Vec::new(),
        };
        if head || status < 200 || status == 204 || status == 304 {
            return Ok(resp);
        }
        if resp
            .header("transfer-encoding")
            .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
        {
            loop {
                let size_line = self.take_line()?.ok_or_else(eof)?;
                let size =
                    usize::from_str_radix(size_line.split(';').next().unwrap_or("").trim(), 16)
                        .map_err(|_| io::Error::other(format!("bad chunk size {size_line:?}")))?;
                if size == 0 {
                    while let Some(l) = self.take_line()? {
                        if l.is_empty() {
                            break;
                        }
                    }
                    break;
                }
                let data = self.take_exact(size)?;
                resp.body.extend_from_slice(&data);
                self.take_exact(2)?;
            }
        } else if let Some(len) = resp.header("content-length") {
            let n: usize = len
                .parse()
                .map_err(|_| io::Error::other("bad content-length"))?;
            resp.body = self.take_exact(n)?;
        } else {
            while self.fill()? > 0 {}
            resp.body = std::mem::take(&mut self.buf);
        }
        Ok(resp)
    }

    /// Reads until the server closes. `Ok(bytes)` on a clean close (FIN), `Err` on a reset
    /// or timeout.
    ///
    /// # Errors
    /// Reset or timeout.
    pub fn read_to_close(&mut self) -> io::Result<Vec<u8>> {
        while self.fill()? > 0 {}
        Ok(std::mem::take(&mut self.buf))
    }

    /// Whether the server closed the connection (FIN or RST) within the read timeout, with
    /// no further bytes.
    #[must_use]
    pub fn is_closed(&mut self) -> bool {
        match self.fill() {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => matches!(
                e.kind(),
                io::ErrorKind::ConnectionReset
                    | io::ErrorKind::ConnectionAborted
                    | io::ErrorKind::BrokenPipe
            ),
        }
    }
}

/// Sends one request on a new connection and reads the response.
///
/// # Errors
/// Connection or read failure.
pub fn request(addr: SocketAddr, raw: impl AsRef<[u8]>) -> io::Result<RawResponse> {
    let mut c = RawClient::connect(addr)?;
    c.send(raw)?;
    c.read_response()
}

/// Runs `curl` with these arguments; returns (exit code, stdout).
///
/// # Panics
/// When curl cannot be started (install curl: `apt-get install -y curl`).
#[must_use]
pub fn curl(args: &[&str]) -> (i32, String) {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "20"])
        .args(args)
        .output()
        .expect("curl must be installed for the tests (apt-get install -y curl)");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// A child process that is killed when dropped.
#[derive(Debug)]
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The workspace's target directory (honours `CARGO_TARGET_DIR`).
#[must_use]
pub fn target_dir() -> std::path::PathBuf {
    if let Ok(d) = std::env::var("CARGO_TARGET_DIR") {
        return d.into();
    }
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target")
}

/// Starts a built example (`target/<profile>/examples/<name>`) with `env`, waits for the line
/// it prints containing `marker`, and returns the process and that line.
///
/// # Panics
/// When the example is missing or exits before printing the marker.
pub fn spawn_example(name: &str, env: &[(&str, &str)], marker: &str) -> (KillOnDrop, String) {
    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    let path = target_dir().join(profile).join("examples").join(name);
    let mut cmd = Command::new(&path);
    cmd.stdout(Stdio::piped()).stderr(Stdio::null());
    for k in httpq_env_vars() {
        cmd.env_remove(k);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap_or_else(|e| {
        panic!(
            "cannot start {}: {e} (build it with cargo build --examples)",
            path.display()
        )
    });
    let stdout = child.stdout.take().expect("piped stdout");
    let mut lines = io::BufRead::lines(io::BufReader::new(stdout));
    let child = KillOnDrop(child);
    for line in lines.by_ref() {
        let line = line.expect("read example stdout");
        if line.contains(marker) {
            std::thread::spawn(move || for _ in lines {});
            return (child, line);
        }
    }
    panic!("example {name} exited before printing {marker:?}");
}

fn httpq_env_vars() -> Vec<String> {
    std::env::vars()
        .map(|(k, _)| k)
        .filter(|k| k.starts_with("HTTPQ_"))
        .collect()
}

/// Whether a real peer the test drives is installed (`check` is a command that succeeds only
/// then). When it is not, the test should skip, saying so; but CI sets
/// `HTTPQ_REQUIRE_PEERS=1`, and then a missing peer fails the test instead of hiding it.
///
/// # Panics
/// The peer is missing and `HTTPQ_REQUIRE_PEERS=1`.
#[must_use]
pub fn peer_available(name: &str, check: &[&str]) -> bool {
    let ok = Command::new(check[0])
        .args(&check[1..])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            std::env::var("HTTPQ_REQUIRE_PEERS").as_deref() != Ok("1"),
            "{name} is required (HTTPQ_REQUIRE_PEERS=1) but `{}` failed; .ci/run installs it",
            check.join(" ")
        );
        eprintln!(
            "skipped: {name} is not installed (`{}` failed)",
            check.join(" ")
        );
    }
    ok
}

/// A built binary of the workspace (`target/<profile>/<name>`, e.g. `httpqd`, `httpq`,
/// `examples/hello`).
#[must_use]
pub fn built(name: &str) -> std::path::PathBuf {
    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    target_dir().join(profile).join(name)
}

/// A port that was free a moment ago on 127.0.0.1.
///
/// # Panics
/// No port can be bound.
#[must_use]
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A running `httpqd` with its own state directory and socket, both removed when dropped.
#[derive(Debug)]
pub struct Httpqd {
    /// The process (killed when dropped).
    pub child: KillOnDrop,
    /// Its control socket.
    pub socket: String,
    /// Its directory (state under `state/`).
    pub dir: std::path::PathBuf,
}

impl Drop for Httpqd {
    fn drop(&mut self) {
        let _ = self.child.0.kill();
        let _ = self.child.0.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Httpqd {
    /// Starts httpqd in a fresh directory named after `name` and waits until it is ready.
    ///
    /// # Panics
    /// httpqd cannot start.
    #[must_use]
    pub fn start(name: &str) -> Httpqd {
        let dir = std::env::temp_dir().join(format!("httpqd-test-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("test directory");
        let socket = dir.join("httpq.sock").to_string_lossy().into_owned();
        Httpqd {
            child: Httpqd::launch(&dir, &socket, &[]),
            socket,
            dir,
        }
    }

    /// Runs httpqd on `dir` (state under `dir/state`) and `socket` with `args`, waiting until
    /// it is ready (restarts reuse the same directory).
    ///
    /// # Panics
    /// httpqd cannot start.
    #[must_use]
    pub fn launch(dir: &std::path::Path, socket: &str, args: &[&str]) -> KillOnDrop {
        let mut child = Command::new(built("httpqd"))
            .arg("--state-dir")
            .arg(dir.join("state"))
            .args(["--socket", socket])
            .args(args)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("httpqd is built by cargo test --workspace");
        let mut line = String::new();
        let stdout = child.stdout.take().expect("piped stdout");
        io::BufRead::read_line(&mut io::BufReader::new(stdout), &mut line).expect("read httpqd");
        assert!(
            line.contains("listening on"),
            "httpqd did not start: {line:?}"
        );
        KillOnDrop(child)
    }

    /// Runs the `httpq` CLI against this listener: (exit code, stdout, stderr).
    #[must_use]
    pub fn cli(&self, args: &[&str]) -> (i32, String, String) {
        httpq_cli(&self.socket, args)
    }
}

/// Runs the `httpq` CLI with `--socket socket`: (exit code, stdout, stderr).
///
/// # Panics
/// The CLI is not built.
#[must_use]
pub fn httpq_cli(socket: &str, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(built("httpq"))
        .args(["--socket", socket])
        .args(args)
        .output()
        .expect("the httpq CLI is built by cargo test --workspace");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A self-signed certificate for `name` made by the real `openssl`, with the key type given
/// as `-newkey` arguments (`["rsa:2048"]`, `["ec", "-pkeyopt", "ec_paramgen_curve:P-256"]`):
/// returns (certificate, key) paths in `dir`.
///
/// # Panics
/// openssl is missing or fails.
#[must_use]
pub fn openssl_cert(
    dir: &std::path::Path,
    name: &str,
    key: &[&str],
) -> (std::path::PathBuf, std::path::PathBuf) {
    let cert = dir.join(format!("{name}.crt"));
    let keyfile = dir.join(format!("{name}.key"));
    let out = Command::new("openssl")
        .args(["req", "-x509", "-nodes", "-days", "30", "-newkey"])
        .args(key)
        .arg("-keyout")
        .arg(&keyfile)
        .arg("-out")
        .arg(&cert)
        .args(["-subj", &format!("/CN={name}")])
        .args(["-addext", &format!("subjectAltName=DNS:{name}")])
        .output()
        .expect("openssl runs");
    assert!(
        out.status.success(),
        "openssl req: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (cert, keyfile)
}

/// `program` run as `user` through `setpriv` (that user's primary group, no other groups),
/// with a clean environment (`PATH`, `RUST_LOG=warn`): how the multi-user tests start another
/// user's process.
#[must_use]
pub fn as_user(user: &str, program: impl AsRef<std::ffi::OsStr>) -> Command {
    let group = match user {
        "nobody" => "nogroup",
        other => other,
    };
    let mut c = Command::new("setpriv");
    c.args([
        &format!("--reuid={user}"),
        &format!("--regid={group}"),
        "--clear-groups",
    ])
    .arg(program)
    .env_clear()
    .env("PATH", "/usr/bin:/bin")
    .env("RUST_LOG", "warn");
    c
}

/// Starts the `hello` example as `user` (this process's user when `None`) with a clean
/// environment plus `env`; returns it once it serves (its output is drained from then on, so
/// it never dies of a closed pipe), or its stderr when it exits instead.
///
/// # Errors
/// The example exited before serving: its stderr.
///
/// # Panics
/// The example is not built.
pub fn hello_as(user: Option<&str>, env: &[(&str, &str)]) -> Result<KillOnDrop, String> {
    let mut cmd = match user {
        Some(u) => as_user(u, built("examples/hello")),
        None => {
            let mut c = Command::new(built("examples/hello"));
            c.env_clear().env("RUST_LOG", "warn");
            c
        }
    };
    let mut child = cmd
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the hello example is built by cargo test --workspace");
    let mut line = String::new();
    let mut stdout = io::BufReader::new(child.stdout.take().expect("piped stdout"));
    let _ = io::BufRead::read_line(&mut stdout, &mut line);
    if line.contains(": serving") {
        std::thread::spawn(move || for _ in io::BufRead::lines(stdout) {});
        return Ok(KillOnDrop(child));
    }
    let out = child.wait_with_output().expect("wait for hello");
    Err(String::from_utf8_lossy(&out.stderr).into_owned())
}

/// Whether this process runs as root and `setpriv` is there, as the multi-user tests need;
/// says so when not.
#[must_use]
pub fn can_switch_users() -> bool {
    let root = std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
    });
    let ok = root && Command::new("setpriv").arg("--version").output().is_ok();
    if !ok {
        eprintln!("skipped: needs root and setpriv to run processes as other users");
    }
    ok
}

/// Reading W3C access logs back: by their `#Fields` line, and with goaccess. Each helper
/// panics (failing the test) on a log it cannot read.
#[allow(clippy::unwrap_used)]
pub mod w3c {
    use std::collections::HashMap;

    /// The lines of a W3C log as field maps, by its `#Fields` header.
    pub fn w3c_lines(text: &str) -> Vec<HashMap<String, String>> {
        let fields: Vec<&str> = text
            .lines()
            .find_map(|l| l.strip_prefix("#Fields: "))
            .unwrap()
            .split(' ')
            .collect();
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| {
                let words: Vec<&str> = l.split(' ').collect();
                assert_eq!(words.len(), fields.len(), "one word per field: {l}");
                fields
                    .iter()
                    .zip(words)
                    .map(|(f, w)| ((*f).to_owned(), w.to_owned()))
                    .collect()
            })
            .collect()
    }

    /// goaccess's log format for a `#Fields` list (unknown fields skipped).
    pub fn goaccess_format(fields: &str) -> String {
        fields
            .split(' ')
            .map(|f| match f {
                "date" => "%d",
                "time" => "%t",
                "c-ip" => "%h",
                "cs-method" => "%m",
                "cs-uri-stem" => "%U",
                "cs-uri-query" => "%q",
                "sc-status" => "%s",
                "sc-bytes" => "%b",
                "cs(Referer)" => "%R",
                "cs(User-Agent)" => "%u",
                "time-taken" => "%L",
                "cs-host" => "%v",
                "cs-version" => "%H",
                _ => "%^",
            })
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Runs goaccess on `file` with `format` (`W3C`, or a custom one) and returns
    /// (total, valid, failed) requests from its JSON report.
    pub fn goaccess(file: &std::path::Path, format: &str) -> (u64, u64, u64) {
        let out = file.with_extension("json");
        let mut cmd = std::process::Command::new("goaccess");
        cmd.arg(file).arg("--no-global-config").arg("-o").arg(&out);
        if format == "W3C" {
            cmd.arg("--log-format=W3C");
        } else {
            cmd.arg(format!("--log-format={format}"))
                .arg("--date-format=%Y-%m-%d")
                .arg("--time-format=%H:%M:%S");
        }
        let status = cmd.output().unwrap();
        assert!(
            status.status.success(),
            "goaccess failed: {}",
            String::from_utf8_lossy(&status.stderr)
        );
        let report: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
        let g = &report["general"];
        (
            g["total_requests"].as_u64().unwrap(),
            g["valid_requests"].as_u64().unwrap(),
            g["failed_requests"].as_u64().unwrap(),
        )
    }

    /// The one `u_ex*.log` file in `dir`.
    pub fn log_file(dir: &std::path::Path) -> std::path::PathBuf {
        let files: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "log"))
            .collect();
        assert_eq!(files.len(), 1, "{files:?}");
        files[0].clone()
    }
}

/// Runs `promtool check metrics` on `metrics`: `Err` with what it printed when it fails.
///
/// # Errors
/// promtool found a problem (its output), or could not be run.
pub fn promtool_check(metrics: &str) -> Result<(), String> {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run promtool: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        io::Write::write_all(&mut stdin, metrics.as_bytes())
            .map_err(|e| format!("cannot write to promtool: {e}"))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("promtool: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}
