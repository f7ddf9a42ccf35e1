//! HTTP/2 at the frame level: `tests/h2/negative.py` (Python `h2`'s HPACK encoder and
//! hand-built frames) sends 68 malformed or hostile sequences covering RFC 9113 §3–§8, RFC 7541
//! and the known flood attacks, and checks that each gets the RFC's GOAWAY or RST_STREAM code
//! (or, for floods, bounded memory), against the axum example over h2c (prior knowledge) and
//! over TLS with ALPN h2.

use httpq_test_support::{free_port, peer_available, spawn_example};

fn run_suite(port: u16, tls: bool) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/h2/negative.py");
    let mut cmd = std::process::Command::new("python3");
    cmd.arg(script).arg("127.0.0.1").arg(port.to_string());
    if tls {
        cmd.arg("--tls");
    }
    let out = cmd.output().expect("python3 runs");
    let report = String::from_utf8_lossy(&out.stdout);
    eprintln!("{report}{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        out.status.success(),
        "HTTP/2 negative cases failed:\n{report}"
    );
    assert!(report.contains("0 unexpected"), "{report}");
}

#[test]
fn http2_negative_cases_over_h2c_and_tls() {
    if !peer_available("Python h2", &["python3", "-c", "import h2, hpack"]) {
        return;
    }
    let port = free_port();
    let (_app, _) = spawn_example(
        "axum",
        &[
            ("HTTPQ_SOCKET", "embedded"),
            ("HTTPQ_URLS", &format!("http://127.0.0.1:{port}/")),
        ],
        ": serving",
    );
    run_suite(port, false);

    if !peer_available("openssl", &["openssl", "version"]) {
        return;
    }
    let dir = std::env::temp_dir().join(format!("httpq-h2neg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let (crt, key) = (dir.join("c.pem"), dir.join("k.pem"));
    let made = std::process::Command::new("openssl")
        .args(["req", "-x509", "-nodes", "-days", "2", "-newkey", "ec"])
        .args([
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-subj",
            "/CN=localhost",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&crt)
        .output()
        .expect("openssl runs");
    assert!(made.status.success());
    let port = free_port();
    let (_tls_app, _) = spawn_example(
        "axum",
        &[
            ("HTTPQ_SOCKET", "embedded"),
            ("HTTPQ_URLS", &format!("https://+:{port}/")),
            ("HTTPQ_CERT_FILE", &crt.to_string_lossy()),
            ("HTTPQ_KEY_FILE", &key.to_string_lossy()),
        ],
        ": serving",
    );
    run_suite(port, true);
    let _ = std::fs::remove_dir_all(&dir);
}
