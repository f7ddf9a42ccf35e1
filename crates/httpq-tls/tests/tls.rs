//! The certificate store and the binding choice, on real certificates (made with rcgen) and
//! real files; the handshakes themselves are tested against real clients in httpqd's tests.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;

use httpq_tls::{
    BindingFlags, BindingKey, CertStore, SslBinding, Thumbprint, TlsBindings, TlsError, dev_cert,
    parse_pem_pair,
};

fn temp(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("httpq-tls-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

#[test]
fn the_store_imports_lists_and_deletes_by_thumbprint() {
    let dir = temp("store");
    let store = CertStore::new(&dir);
    let a = dev_cert().unwrap();
    let info = store
        .import(a.cert_pem.as_bytes(), a.key_pem.as_bytes())
        .unwrap();
    assert_eq!(info.thumbprint.as_str().len(), 40);
    assert!(info.subject.contains("CN=localhost"), "{}", info.subject);
    assert_eq!(info.key_type, "ECDSA");
    assert!(info.names.contains(&"localhost".to_owned()));
    assert!(info.names.contains(&"127.0.0.1".to_owned()));
    // The key file is private.
    use std::os::unix::fs::PermissionsExt;
    let key_file = dir.join("certs").join(format!("{}.key", info.thumbprint));
    assert_eq!(
        std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(store.list().unwrap(), vec![info.clone()]);
    assert!(store.load(&info.thumbprint).is_ok());
    // Thumbprints are typed as operators type them.
    let lower = info.thumbprint.as_str().to_ascii_lowercase();
    assert_eq!(Thumbprint::parse(&lower).unwrap(), info.thumbprint);
    assert!(Thumbprint::parse("abc").is_err());
    store.delete(&info.thumbprint).unwrap();
    assert!(store.list().unwrap().is_empty());
    assert!(matches!(
        store.load(&info.thumbprint),
        Err(TlsError::NotFound(_))
    ));
}

#[test]
fn a_key_that_is_not_the_certificates_is_refused() {
    let a = dev_cert().unwrap();
    let b = dev_cert().unwrap();
    let err = parse_pem_pair(a.cert_pem.as_bytes(), b.key_pem.as_bytes()).unwrap_err();
    assert!(matches!(err, TlsError::KeyMismatch), "{err}");
    let err = parse_pem_pair(b"not pem", a.key_pem.as_bytes()).unwrap_err();
    assert!(err.to_string().contains("BEGIN CERTIFICATE"), "{err}");
    let err = parse_pem_pair(a.cert_pem.as_bytes(), b"").unwrap_err();
    assert!(err.to_string().contains("PRIVATE KEY"), "{err}");
}

#[test]
fn handshakes_pick_sni_then_ccs_then_ipport_then_wildcard() {
    let dir = temp("select");
    let store = CertStore::new(&dir);
    let mut thumbs = Vec::new();
    for _ in 0..3 {
        let c = dev_cert().unwrap();
        thumbs.push(
            store
                .import(c.cert_pem.as_bytes(), c.key_pem.as_bytes())
                .unwrap()
                .thumbprint,
        );
    }
    let ccs_dir = dir.join("ccs");
    std::fs::create_dir_all(&ccs_dir).unwrap();
    let c = dev_cert().unwrap();
    std::fs::write(
        ccs_dir.join("shop.example.pem"),
        format!("{}{}", c.cert_pem, c.key_pem),
    )
    .unwrap();
    let binding = |key: BindingKey, t: Option<&Thumbprint>, flags| SslBinding {
        key,
        certhash: t.map(|t| t.to_string()),
        appid: None,
        flags,
        client_ca_pem: None,
    };
    let bindings = TlsBindings::new();
    let problems = bindings.replace(
        &[
            binding(
                BindingKey::HostnamePort {
                    host: "api.example".into(),
                    port: 8443,
                },
                Some(&thumbs[0]),
                BindingFlags::default(),
            ),
            binding(
                BindingKey::HostnamePort {
                    host: "*.wild.example".into(),
                    port: 8443,
                },
                Some(&thumbs[0]),
                BindingFlags {
                    disable_http2: true,
                    ..BindingFlags::default()
                },
            ),
            binding(
                BindingKey::Ccs { port: 8443 },
                None,
                BindingFlags::default(),
            ),
            binding(
                BindingKey::IpPort {
                    addr: addr("127.0.0.1:8443"),
                },
                Some(&thumbs[1]),
                BindingFlags::default(),
            ),
            binding(
                BindingKey::IpPort {
                    addr: addr("0.0.0.0:8443"),
                },
                Some(&thumbs[2]),
                BindingFlags::default(),
            ),
            // A binding whose certificate is missing is reported, the others still apply.
            binding(
                BindingKey::IpPort {
                    addr: addr("0.0.0.0:9999"),
                },
                Some(&Thumbprint::parse(&"AB".repeat(20)).unwrap()),
                BindingFlags::default(),
            ),
        ],
        &store,
        &ccs_dir,
    );
    assert_eq!(problems.len(), 1);
    assert!(
        problems[0]
            .1
            .to_string()
            .contains("no certificate with thumbprint")
    );
    let local = addr("127.0.0.1:8443");
    let pick = |sni: Option<&str>, local| bindings.select(sni, local).map(|s| s.key.to_string());
    assert_eq!(
        pick(Some("API.example."), local).unwrap(),
        "hostnameport=api.example:8443"
    );
    let wild = bindings.select(Some("a.wild.example"), local).unwrap();
    assert_eq!(wild.key.to_string(), "hostnameport=*.wild.example:8443");
    assert_eq!(wild.config.alpn_protocols, [b"http/1.1".to_vec()]);
    assert_eq!(pick(Some("shop.example"), local).unwrap(), "ccs=8443");
    // Unknown names and clients without SNI fall back to the address bindings.
    assert_eq!(
        pick(Some("other.example"), local).unwrap(),
        "ipport=127.0.0.1:8443"
    );
    assert_eq!(pick(None, local).unwrap(), "ipport=127.0.0.1:8443");
    assert_eq!(
        pick(None, addr("10.0.0.1:8443")).unwrap(),
        "ipport=0.0.0.0:8443"
    );
    assert_eq!(
        pick(None, addr("[::1]:8443")).unwrap(),
        "ipport=0.0.0.0:8443"
    );
    // Nothing on another port: refused, and the reason says what to add.
    let refused = bindings
        .select(Some("api.example"), addr("127.0.0.1:7443"))
        .unwrap_err();
    let text = refused.to_string();
    assert!(text.contains("\"api.example\""), "{text}");
    assert!(text.contains("httpq add sslcert"), "{text}");
    // HTTP/3: the same certificates per name and per local address; an unknown local
    // address falls back to the port's wildcard binding.
    let quic = |sni: Option<&str>, local: &str| {
        bindings
            .quic_cert(sni, addr(local))
            .map(|c| Thumbprint::of(c.cert[0].as_ref()))
    };
    assert_eq!(
        quic(Some("api.example"), "127.0.0.1:8443"),
        Some(thumbs[0].clone())
    );
    assert_eq!(quic(None, "127.0.0.1:8443"), Some(thumbs[1].clone()));
    assert_eq!(quic(None, "10.0.0.1:8443"), Some(thumbs[2].clone()));
    assert_eq!(quic(None, "0.0.0.0:8443"), Some(thumbs[2].clone()));
    assert_eq!(quic(None, "127.0.0.1:7443"), None);
    // A path-like server name never reaches the file system.
    assert_eq!(
        pick(Some("../ccs/shop.example"), local).unwrap(),
        "ipport=127.0.0.1:8443"
    );
}

#[test]
fn switches_shape_the_configuration() {
    let c = dev_cert().unwrap();
    let (_, key) = parse_pem_pair(c.cert_pem.as_bytes(), c.key_pem.as_bytes()).unwrap();
    let bindings = TlsBindings::new();
    let k = BindingKey::IpPort {
        addr: addr("0.0.0.0:1"),
    };
    let none = BindingFlags {
        disable_tls12: true,
        disable_tls13: true,
        ..BindingFlags::default()
    };
    let err = bindings.insert(k.clone(), key.clone(), none).unwrap_err();
    assert!(err.to_string().contains("no TLS version"), "{err}");
    assert!(
        !bindings.covers_port(1),
        "a refused binding changes nothing"
    );
    bindings.insert(k, key, BindingFlags::default()).unwrap();
    assert!(bindings.covers_port(1));
}

#[test]
fn ed25519_certificates_import() {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    let params = rcgen::CertificateParams::new(vec!["ed.test".to_owned()]).unwrap();
    let cert = params.self_signed(&key).unwrap();
    let dir = temp("ed25519");
    let store = CertStore::new(&dir);
    let info = store
        .import(cert.pem().as_bytes(), key.serialize_pem().as_bytes())
        .unwrap();
    assert_eq!(info.key_type, "Ed25519");
    assert!(store.load(&info.thumbprint).is_ok());
}
