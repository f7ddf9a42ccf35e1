//! HTTPS with real peers: certificates made by the real `openssl`, imported and bound with the
//! real `httpq` CLI into a real `httpqd`, served by the example apps as separate processes,
//! and checked with curl (HTTP/1.1 and HTTP/2, verifying the certificate per name),
//! `openssl s_client` (SNI picks the bound certificate; an unbound name is refused), nghttp
//! (HTTP/2 frames) and sslscan (no protocol below TLS 1.2, no weak suite).
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use httpq_test_support::{Httpqd, free_port, openssl_cert, spawn_example};

fn start_listener(name: &str) -> Httpqd {
    Httpqd::start(&format!("tls-{name}"))
}

fn have(tool: &str) -> bool {
    let check: &[&str] = match tool {
        "openssl" => &["openssl", "version"],
        "sslscan" => &["sslscan", "--version"],
        "nghttp" => &["nghttp", "--version"],
        "aioquic" => &["python3", "-c", "import aioquic"],
        "curl_cffi" => &["python3", "-c", "import curl_cffi"],
        "chromium" => &["chromium", "--version"],
        "h2load" => &["h2load", "--version"],
        other => panic!("unknown peer {other}"),
    };
    httpq_test_support::peer_available(tool, check)
}

/// The axum example in embedded mode on `https://localhost:PORT/`, with a fresh openssl-made
/// ECDSA certificate from `HTTPQ_CERT_FILE`/`HTTPQ_KEY_FILE` and `env` besides; its directory
/// goes when it is dropped.
struct EmbeddedHttps {
    _app: httpq_test_support::KillOnDrop,
    dir: std::path::PathBuf,
    crt: std::path::PathBuf,
    port: u16,
}

impl EmbeddedHttps {
    fn start(name: &str, env: &[(&str, &str)]) -> Self {
        let dir = std::env::temp_dir().join(format!("{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let (crt, key) = openssl_cert(
            &dir,
            "localhost",
            &["ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
        );
        let port = free_port();
        let url = format!("https://localhost:{port}/");
        let (crt_s, key_s) = (crt.to_string_lossy(), key.to_string_lossy());
        let mut all = vec![
            ("HTTPQ_SOCKET", "embedded"),
            ("HTTPQ_URLS", url.as_str()),
            ("HTTPQ_CERT_FILE", &*crt_s),
            ("HTTPQ_KEY_FILE", &*key_s),
        ];
        all.extend_from_slice(env);
        let (app, _) = spawn_example("axum", &all, ": serving");
        EmbeddedHttps {
            _app: app,
            dir,
            crt,
            port,
        }
    }
}

impl Drop for EmbeddedHttps {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// An HTTP/3 request with aioquic (tests/h3/client.py): `sni` is the server name, `ca` the
/// certificate to trust.
fn h3(port: u16, sni: &str, ca: &Path, method: &str, path: &str, body: usize) -> serde_json::Value {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/h3/client.py");
    let out = Command::new("python3")
        .arg(script)
        .args(["127.0.0.1", &port.to_string(), sni])
        .arg(ca)
        .args([method, path, &body.to_string()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.trim()).unwrap_or_else(|_| {
        panic!(
            "client.py printed {text:?}; stderr {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn cli(socket: &str, args: &[&str]) -> (i32, String, String) {
    httpq_test_support::httpq_cli(socket, args)
}

fn import(socket: &str, cert: &Path, key: &Path) -> String {
    let (code, out, err) = cli(
        socket,
        &[
            "add",
            "cert",
            &format!("certfile={}", cert.display()),
            &format!("keyfile={}", key.display()),
            "--json",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    v["certhash"].as_str().unwrap().to_owned()
}

/// curl against `name:port` resolved to 127.0.0.1, trusting only `ca`; returns (exit code,
/// body, HTTP version).
fn curl_tls(name: &str, port: u16, ca: &Path, path: &str, http: &str) -> (i32, String, String) {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "10", http])
        .args(["--resolve", &format!("{name}:{port}:127.0.0.1")])
        .arg("--cacert")
        .arg(ca)
        .args(["-w", "\n%{http_version}"])
        .arg(format!("https://{name}:{port}{path}"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, version) = text.rsplit_once('\n').unwrap_or((&text, ""));
    (
        out.status.code().unwrap_or(-1),
        body.to_owned(),
        version.to_owned(),
    )
}

/// The subject openssl s_client saw for server name `sni`, or its error output.
fn s_client(port: u16, sni: &str) -> Result<String, String> {
    let mut child = Command::new("openssl")
        .args(["s_client", "-connect", &format!("127.0.0.1:{port}")])
        .args(["-servername", sni])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    match text.lines().find(|l| l.starts_with("subject=")) {
        Some(s) => Ok(s.to_owned()),
        None => Err(format!("{text}{}", String::from_utf8_lossy(&out.stderr))),
    }
}

#[test]
fn two_names_two_certificates_two_processes_http1_and_http2() {
    if !have("openssl") {
        return;
    }
    let listener = start_listener("sni");
    let sock = listener.socket.as_str();
    let port = free_port();
    // An operator imports two certificates (RSA and ECDSA) and binds a name to each.
    let (a_crt, a_key) = openssl_cert(&listener.dir, "a.test", &["rsa:2048"]);
    let (b_crt, b_key) = openssl_cert(
        &listener.dir,
        "b.test",
        &["ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
    );
    let a = import(sock, &a_crt, &a_key);
    let b = import(sock, &b_crt, &b_key);
    assert_ne!(a, b);
    for (name, hash) in [("a.test", &a), ("b.test", &b)] {
        let (code, _, err) = cli(
            sock,
            &[
                "add",
                "sslcert",
                &format!("hostnameport={name}:{port}"),
                &format!("certhash={hash}"),
                "appid={00112233-4455-6677-8899-AABBCCDDEEFF}",
            ],
        );
        assert_eq!(code, 0, "{err}");
    }
    // A mismatched key is refused at import, naming the problem.
    let (code, _, err) = cli(
        sock,
        &[
            "add",
            "cert",
            &format!("certfile={}", a_crt.display()),
            &format!("keyfile={}", b_key.display()),
        ],
    );
    assert_eq!(code, 1);
    assert!(err.contains("does not belong to the certificate"), "{err}");
    // A bound certificate cannot be deleted.
    let (code, _, err) = cli(sock, &["delete", "cert", &format!("certhash={a}")]);
    assert_eq!(code, 1);
    assert!(err.contains("in use by hostnameport=a.test"), "{err}");

    // Two apps in two processes, one per name, same port.
    let (app_a, _) = spawn_example(
        "hello",
        &[
            ("HTTPQ_SOCKET", sock),
            ("HTTPQ_URLS", &format!("https://a.test:{port}/")),
        ],
        ": serving",
    );
    let (_app_b, _) = spawn_example(
        "axum",
        &[
            ("HTTPQ_SOCKET", sock),
            ("HTTPQ_URLS", &format!("https://b.test:{port}/")),
        ],
        ": serving",
    );
    for http in ["--http1.1", "--http2"] {
        let (code, body, version) = curl_tls("a.test", port, &a_crt, "/", http);
        assert_eq!(code, 0, "{http} a.test: {body}");
        assert!(body.contains(&format!("pid={}", app_a.0.id())), "{body}");
        assert_eq!(version, if http == "--http2" { "2" } else { "1.1" });
        let (code, body, version) = curl_tls("b.test", port, &b_crt, "/whoami", http);
        assert_eq!(code, 0, "{http} b.test: {body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        // The app learns the protocol and the TLS details across the IPC.
        assert_eq!(
            v["version"],
            if http == "--http2" {
                "HTTP/2.0"
            } else {
                "HTTP/1.1"
            }
        );
        assert_eq!(v["tls"]["sni"], "b.test");
        assert_eq!(v["tls"]["protocol"], "TLSv1.3");
        assert_eq!(
            v["tls"]["alpn"],
            if http == "--http2" { "h2" } else { "http/1.1" }
        );
        assert_eq!(version, if http == "--http2" { "2" } else { "1.1" });
        // a.test's certificate does not verify b.test: each name got its own.
        let (code, _, _) = curl_tls("b.test", port, &a_crt, "/", http);
        assert_ne!(
            code, 0,
            "b.test must not be served with a.test's certificate"
        );
    }
    // HTTP/3 on the same port (UDP), with the certificate bound to each name.
    if have("aioquic") {
        let r = h3(port, "a.test", &a_crt, "GET", "/", 0);
        assert_eq!(r["status"], 200, "{r}");
        assert!(
            r["body"]
                .as_str()
                .unwrap()
                .contains(&format!("pid={}", app_a.0.id())),
            "{r}"
        );
        let r = h3(port, "b.test", &b_crt, "GET", "/whoami", 0);
        let v: serde_json::Value = serde_json::from_str(r["body"].as_str().unwrap()).unwrap();
        assert_eq!(
            (v["version"].as_str(), v["tls"]["sni"].as_str()),
            (Some("HTTP/3.0"), Some("b.test"))
        );
        let r = h3(port, "b.test", &b_crt, "POST", "/echo", 1_000_000);
        assert_eq!(
            (r["status"].as_u64(), r["length"].as_u64()),
            (Some(200), Some(1_000_000)),
            "{r}"
        );
        // disablequic on b.test: its QUIC handshakes are refused, a.test's are not.
        let (code, _, err) = cli(
            sock,
            &[
                "update",
                "sslcert",
                &format!("hostnameport=b.test:{port}"),
                "disablequic=enable",
            ],
        );
        assert_eq!(code, 0, "{err}");
        assert!(
            h3(port, "b.test", &b_crt, "GET", "/", 0)
                .get("error")
                .is_some()
        );
        assert_eq!(h3(port, "a.test", &a_crt, "GET", "/", 0)["status"], 200);
        let (code, _, _) = cli(
            sock,
            &[
                "update",
                "sslcert",
                &format!("hostnameport=b.test:{port}"),
                "disablequic=disable",
            ],
        );
        assert_eq!(code, 0);
    }
    // The binding switches, changed live on b.test and seen by a real client.
    let set = |switches: &[&str]| {
        let mut args = vec![
            "update".to_owned(),
            "sslcert".to_owned(),
            format!("hostnameport=b.test:{port}"),
        ];
        args.extend(switches.iter().map(|s| (*s).to_owned()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (code, _, err) = cli(sock, &args);
        assert_eq!(code, 0, "{err}");
    };
    // curl to b.test's /whoami: the JSON, or curl's complaint.
    let try_whoami = |extra: &[&str], http: &str| -> Result<serde_json::Value, String> {
        let out = Command::new("curl")
            .args(["-sS", "--max-time", "10", http])
            .args(["--resolve", &format!("b.test:{port}:127.0.0.1")])
            .arg("--cacert")
            .arg(&b_crt)
            .args(extra)
            .arg(format!("https://b.test:{port}/whoami"))
            .output()
            .unwrap();
        serde_json::from_slice(&out.stdout)
            .map_err(|_| String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let whoami = |extra: &[&str], http: &str| -> serde_json::Value {
        try_whoami(extra, http).unwrap_or_else(|e| panic!("{e}"))
    };
    // Request timing crosses the IPC: the listener's TLS handshake and routing stamps.
    let who = whoami(&[], "--http2");
    assert!(
        who["tls_handshake_ns"].as_u64().is_some_and(|n| n > 0),
        "{who}"
    );
    assert!(who["routing_to_delivery_ns"].as_u64().is_some(), "{who}");
    set(&["disablehttp2=enable"]);
    assert_eq!(whoami(&[], "--http2")["version"], "HTTP/1.1");
    set(&["disablehttp2=disable", "disabletls13=enable"]);
    assert_eq!(whoami(&[], "--http2")["tls"]["protocol"], "TLSv1.2");
    set(&["disabletls13=disable", "clientcertnegotiation=enable"]);
    let (client_crt, client_key) = openssl_cert(
        &listener.dir,
        "client",
        &["ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
    );
    let client = [
        "--cert",
        &client_crt.to_string_lossy(),
        "--key",
        &client_key.to_string_lossy(),
    ]
    .map(str::to_owned);
    let client: Vec<&str> = client.iter().map(String::as_str).collect();
    assert_eq!(whoami(&client, "--http2")["tls"]["client_certificates"], 1);
    assert_eq!(whoami(&[], "--http2")["tls"]["client_certificates"], 0);
    set(&["clientcertnegotiation=disable"]);

    // clientcafile: the listener verifies client chains against a CA, so apps need not. A
    // certificate the CA signed gets through; a self-signed one fails the handshake; none is
    // fine until clientcertrequired.
    let (ca_crt, good_crt, good_key) = client_ca(&listener.dir);
    set(&[&format!("clientcafile={}", ca_crt.display())]);
    let try_whoami = |extra: &[&str]| try_whoami(extra, "--http2").ok();
    let good = [
        "--cert".to_owned(),
        good_crt.to_string_lossy().into_owned(),
        "--key".to_owned(),
        good_key.to_string_lossy().into_owned(),
    ];
    let good: Vec<&str> = good.iter().map(String::as_str).collect();
    assert_eq!(
        try_whoami(&good).expect("a certificate the CA signed is accepted")["tls"]["client_certificates"],
        1
    );
    assert!(
        try_whoami(&client).is_none(),
        "a self-signed client certificate must fail the handshake"
    );
    assert_eq!(try_whoami(&[]).unwrap()["tls"]["client_certificates"], 0);
    set(&["clientcertrequired=enable"]);
    assert!(
        try_whoami(&[]).is_none(),
        "a client without a certificate is refused"
    );
    assert!(try_whoami(&good).is_some());
    // Nor can a client skip the requirement by opening the connection for a.test (which
    // asks for no certificate) and then asking for b.test: 421, over HTTP/1.1 and HTTP/2.
    for http in ["--http1.1", "--http2"] {
        let out = Command::new("curl")
            .args(["-sS", "--max-time", "10", http])
            .args(["--resolve", &format!("a.test:{port}:127.0.0.1")])
            .arg("--cacert")
            .arg(&a_crt)
            .args([
                "-H",
                "Host: b.test",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
            ])
            .arg(format!("https://a.test:{port}/whoami"))
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "421", "{http}");
    }
    let (_, shown, _) = cli(sock, &["show", "sslcert"]);
    assert!(
        shown.contains("Client CA                    : 1 CA certificate"),
        "{shown}"
    );
    // A CA file that holds no certificate is refused with the reason.
    let (code, _, err) = cli(
        sock,
        &[
            "update",
            "sslcert",
            &format!("hostnameport=b.test:{port}"),
            &format!("clientcafile={}", good_key.display()),
        ],
    );
    assert_eq!(code, 1);
    assert!(err.contains("no CERTIFICATE block"), "{err}");
    set(&["clientcertrequired=disable", "clientcafile=none"]);
    assert!(try_whoami(&client).is_some());

    // openssl s_client: SNI picks the bound certificate; an unbound name is refused.
    assert!(s_client(port, "a.test").unwrap().contains("CN = a.test"));
    assert!(s_client(port, "b.test").unwrap().contains("CN = b.test"));
    let refused = s_client(port, "c.test").unwrap_err();
    assert!(!refused.contains("subject="), "{refused}");

    // Changes apply to the next handshake, without a restart: a.test now gets b's certificate.
    let (code, _, err) = cli(
        sock,
        &[
            "update",
            "sslcert",
            &format!("hostnameport=a.test:{port}"),
            &format!("certhash={b}"),
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(s_client(port, "a.test").unwrap().contains("CN = b.test"));
    let (code, out, _) = cli(sock, &["show", "sslcert", "--json"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("00112233-4455-6677-8899-AABBCCDDEEFF"),
        "{out}"
    );
    // Deleting the binding refuses a.test again; now a's certificate may go.
    let (code, _, err) = cli(
        sock,
        &["delete", "sslcert", &format!("hostnameport=a.test:{port}")],
    );
    assert_eq!(code, 0, "{err}");
    assert!(s_client(port, "a.test").is_err());
    let (code, _, err) = cli(sock, &["delete", "cert", &format!("certhash={a}")]);
    assert_eq!(code, 0, "{err}");
    let (_, out, _) = cli(sock, &["show", "cert"]);
    assert!(!out.contains(&a) && out.contains(&b), "{out}");
}

#[test]
fn dev_certs_makes_a_localhost_certificate_and_imports_it() {
    let listener = start_listener("devcerts");
    let out_dir = listener.dir.join("dev");
    let (code, out, err) = cli(
        &listener.socket,
        &["dev-certs", &format!("out={}", out_dir.display())],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("Imported into the listener's store"), "{out}");
    use std::os::unix::fs::PermissionsExt;
    let key_mode = std::fs::metadata(out_dir.join("localhost.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(key_mode & 0o777, 0o600);
    let (_, shown, _) = cli(&listener.socket, &["show", "cert"]);
    assert!(
        shown.contains("CN=localhost") && shown.contains("127.0.0.1"),
        "{shown}"
    );
}

#[test]
fn embedded_https_with_a_certificate_from_the_environment() {
    if !have("openssl") {
        return;
    }
    let server = EmbeddedHttps::start("httpq-embedded-tls", &[("HTTPQ_ALT_SVC", "true")]);
    let (dir, crt, port) = (server.dir.clone(), server.crt.clone(), server.port);
    // HTTPQ_ALT_SVC adds Alt-Svc to HTTPS responses, pointing browsers at HTTP/3.
    let head = Command::new("curl")
        .args(["-sS", "--http2", "-o", "/dev/null", "-D", "-", "--cacert"])
        .arg(&crt)
        .arg(format!("https://localhost:{port}/hello/x"))
        .output()
        .unwrap();
    let head = String::from_utf8_lossy(&head.stdout).to_ascii_lowercase();
    assert!(
        head.contains(&format!("alt-svc: h3=\":{port}\"; ma=86400")),
        "{head}"
    );
    // HTTP/3 with two independent clients: aioquic and curl (curl_cffi's libcurl with ngtcp2).
    if have("aioquic") {
        let r = h3(port, "localhost", &crt, "GET", "/whoami", 0);
        assert!(r["body"].as_str().unwrap().contains("HTTP/3.0"), "{r}");
        let r = h3(port, "localhost", &crt, "POST", "/echo", 3_000_000);
        assert_eq!(r["length"], 3_000_000, "{r}");
    }
    if have("curl_cffi") {
        let out = Command::new("python3")
            .args(["-c", &format!(
                "from curl_cffi import requests, CurlHttpVersion as V\n\
                 r = requests.get('https://localhost:{port}/hello/cffi', http_version=V.V3ONLY, verify='{}', timeout=10)\n\
                 print(r.status_code, r.http_version, r.text.strip())",
                crt.display()
            )])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            text.trim(),
            "200 30 hello, cffi!",
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    for http in ["--http1.1", "--http2"] {
        let (code, body, _) = curl_tls("localhost", port, &crt, "/whoami", http);
        assert_eq!(code, 0, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["tls"]["sni"], "localhost");
        assert_eq!(
            v["version"],
            if http == "--http2" {
                "HTTP/2.0"
            } else {
                "HTTP/1.1"
            }
        );
    }
    // A large body both ways over HTTP/2 flow control.
    let input = dir.join("up.bin");
    let data: Vec<u8> = (0..3u32 << 20).map(|i| (i % 253) as u8).collect();
    std::fs::write(&input, &data).unwrap();
    let output = dir.join("down.bin");
    let out = Command::new("curl")
        .args(["-sS", "--http2", "--max-time", "20", "--cacert"])
        .arg(&crt)
        .arg("--data-binary")
        .arg(format!("@{}", input.display()))
        .arg("-o")
        .arg(&output)
        .arg(format!("https://localhost:{port}/echo"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        std::fs::read(&output).unwrap() == data,
        "the echoed body differs"
    );
    // TLS 1.2 only, no weak suites (sslscan, when installed).
    if have("sslscan") {
        let out = Command::new("sslscan")
            .args(["--no-colour", &format!("127.0.0.1:{port}")])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        for old in [
            "SSLv2     enabled",
            "SSLv3     enabled",
            "TLSv1.0   enabled",
            "TLSv1.1   enabled",
        ] {
            assert!(!text.contains(old), "{old}:\n{text}");
        }
        assert!(
            text.contains("TLSv1.2   enabled") && text.contains("TLSv1.3   enabled"),
            "{text}"
        );
        for weak in ["RC4", "3DES", "NULL", "EXPORT", "CBC", "MD5"] {
            let accepted = text
                .lines()
                .filter(|l| l.starts_with("Preferred") || l.starts_with("Accepted"))
                .any(|l| l.contains(weak));
            assert!(!accepted, "weak suite {weak} accepted:\n{text}");
        }
    }
    // h2load under load: 20,000 requests on 20 connections, 10 streams each, all answered.
    if have("h2load") {
        let out = Command::new("h2load")
            .args(["-n", "20000", "-c", "20", "-m", "10"])
            .arg(format!("https://localhost:{port}/hello/load"))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("requests: 20000 total, 20000 started, 20000 done, 20000 succeeded, 0 failed, 0 errored"),
            "{text}"
        );
        assert!(text.contains("status codes: 20000 2xx"), "{text}");
    }
    // nghttp shows a real HTTP/2 exchange: SETTINGS from the server, a HEADERS answer.
    if have("nghttp") {
        let out = Command::new("nghttp")
            .args(["-nv", &format!("https://localhost:{port}/hello/h2")])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("recv SETTINGS frame"), "{text}");
        assert!(
            text.contains("SETTINGS_MAX_CONCURRENT_STREAMS(0x03):100"),
            "{text}"
        );
        // The header list limit is MaxRequestBytes (16 KiB by default).
        assert!(
            text.contains("SETTINGS_MAX_HEADER_LIST_SIZE(0x06):16384"),
            "{text}"
        );
        assert!(
            text.lines()
                .any(|l| l.contains("recv (stream_id=") && l.contains(":status: 200")),
            "{text}"
        );
    }
}

#[test]
fn chromium_loads_a_page_over_http2_and_http3() {
    if !have("openssl") || !have("chromium") {
        return;
    }
    let server = EmbeddedHttps::start("httpq-chromium", &[]);
    let (dir, crt, port) = (server.dir.clone(), server.crt.clone(), server.port);
    // Chromium trusts the certificate by its public key hash, as QUIC requires.
    let spki = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "openssl x509 -in {} -pubkey -noout | openssl pkey -pubin -outform der | openssl dgst -sha256 -binary | base64",
            crt.display()
        ))
        .output()
        .unwrap();
    let spki = String::from_utf8_lossy(&spki.stdout).trim().to_owned();
    let load = |profile: &str, extra: &[String]| -> String {
        let out = Command::new("chromium")
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ])
            .arg(format!("--user-data-dir={}", dir.join(profile).display()))
            .arg(format!("--ignore-certificate-errors-spki-list={spki}"))
            .args(extra)
            .arg("--dump-dom")
            .arg(format!("https://localhost:{port}/whoami"))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let h2 = load("h2", &["--disable-quic".to_owned()]);
    assert!(
        h2.contains("\"version\":\"HTTP/2.0\"") && h2.contains("\"alpn\":\"h2\""),
        "{h2}"
    );
    let h3 = load(
        "h3",
        &[
            "--enable-quic".to_owned(),
            format!("--origin-to-force-quic-on=localhost:{port}"),
        ],
    );
    assert!(
        h3.contains("\"version\":\"HTTP/3.0\"") && h3.contains("\"alpn\":\"h3\""),
        "{h3}"
    );
}

#[test]
fn httpsys_answers_hold_over_http2_and_http3() {
    if !have("openssl") {
        return;
    }
    let server = EmbeddedHttps::start(
        "httpq-limits-h2h3",
        &[("HTTPQ_MAX_REQUEST_BODY_SIZE", "1000")],
    );
    let (dir, crt, port) = (server.dir.clone(), server.crt.clone(), server.port);
    let body = dir.join("body.bin");
    std::fs::write(&body, vec![b'b'; 2000]).unwrap();
    let curl_h2 = |extra: &[&str], path: &str| -> (String, String) {
        let out = Command::new("curl")
            .args([
                "-sS",
                "--http2",
                "--max-time",
                "10",
                "-w",
                "\n%{http_code}",
                "--cacert",
            ])
            .arg(&crt)
            .args(extra)
            .arg(format!("https://localhost:{port}{path}"))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (b, code) = text.rsplit_once('\n').unwrap_or((&text, ""));
        (code.to_owned(), b.to_owned())
    };
    // max_request_body_size: 413 with HTTP.sys's reason, over HTTP/2.
    let (code, text) = curl_h2(&["--data-binary", &format!("@{}", body.display())], "/echo");
    assert_eq!(code, "413", "{text}");
    assert!(text.contains("EntityTooLarge"), "{text}");
    // Within the limit the echo works.
    let (code, text) = curl_h2(&["--data-binary", "small"], "/echo");
    assert_eq!((code.as_str(), text.as_str()), ("200", "small"));
    // A host no prefix accepts: 400 Hostname, as for HTTP/1.1.
    let out = Command::new("curl")
        .args(["-sS", "--http2", "-k", "-w", "\n%{http_code}"])
        .args(["-H", "Host: other.example"])
        .arg(format!("https://localhost:{port}/"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.ends_with("\n400") && text.contains("Hostname"),
        "{text}"
    );
    // The same over HTTP/3.
    if have("aioquic") {
        let r = h3(port, "localhost", &crt, "POST", "/echo", 2000);
        assert_eq!(r["status"], 413, "{r}");
        assert!(
            r["body"].as_str().unwrap().contains("EntityTooLarge"),
            "{r}"
        );
        let r = h3(port, "localhost", &crt, "POST", "/echo", 500);
        assert_eq!(
            (r["status"].as_u64(), r["length"].as_u64()),
            (Some(200), Some(500)),
            "{r}"
        );
    }
}

/// A test CA, and a client certificate (with its key) the CA signed for client
/// authentication, made by the real openssl: (ca.crt, client.crt, client.key).
fn client_ca(dir: &std::path::Path) -> (PathBuf, PathBuf, PathBuf) {
    let ca_key = dir.join("ca.key");
    let ca_crt = dir.join("ca.crt");
    let key = dir.join("alice.key");
    let csr = dir.join("alice.csr");
    let crt = dir.join("alice.crt");
    let ext = dir.join("alice.ext");
    std::fs::write(&ext, "extendedKeyUsage=clientAuth\n").unwrap();
    let run = |args: &[&std::ffi::OsStr]| {
        let out = Command::new("openssl").args(args).output().unwrap();
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let s = |v: &str| std::ffi::OsString::from(v);
    run(&[
        &s("req"),
        &s("-x509"),
        &s("-nodes"),
        &s("-days"),
        &s("30"),
        &s("-newkey"),
        &s("ec"),
        &s("-pkeyopt"),
        &s("ec_paramgen_curve:P-256"),
        &s("-keyout"),
        ca_key.as_os_str(),
        &s("-out"),
        ca_crt.as_os_str(),
        &s("-subj"),
        &s("/CN=httpq test client CA"),
        &s("-addext"),
        &s("basicConstraints=critical,CA:TRUE"),
        &s("-addext"),
        &s("keyUsage=critical,keyCertSign"),
    ]);
    run(&[
        &s("req"),
        &s("-new"),
        &s("-nodes"),
        &s("-newkey"),
        &s("ec"),
        &s("-pkeyopt"),
        &s("ec_paramgen_curve:P-256"),
        &s("-keyout"),
        key.as_os_str(),
        &s("-out"),
        csr.as_os_str(),
        &s("-subj"),
        &s("/CN=alice"),
    ]);
    run(&[
        &s("x509"),
        &s("-req"),
        &s("-in"),
        csr.as_os_str(),
        &s("-CA"),
        ca_crt.as_os_str(),
        &s("-CAkey"),
        ca_key.as_os_str(),
        &s("-CAcreateserial"),
        &s("-days"),
        &s("30"),
        &s("-extfile"),
        ext.as_os_str(),
        &s("-out"),
        crt.as_os_str(),
    ]);
    (ca_crt, crt, key)
}
