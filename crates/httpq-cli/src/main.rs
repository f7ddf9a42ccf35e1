//! `httpq`: administer the httpq listener the way `netsh http` administers HTTP.sys.
//!
//! ```text
//! httpq add urlacl url=http://+:8080/app/ user=alice [listen=yes|no] [delegate=yes|no]
//! httpq delete urlacl url=http://+:8080/app/
//! httpq show urlacl [url=URL] [--json]
//! httpq add cert certfile=PEM keyfile=PEM
//! httpq add sslcert hostnameport=www.example.com:443 certhash=THUMBPRINT
//! httpq dev-certs [--trust]
//! httpq show servicestate [view=requestq|session] [verbose=yes] [--json]
//! ```
//!
//! The listener is found by `--socket PATH`, then `HTTPQ_SOCKET`, then the default socket.
//! Exit codes: 0 done, 1 refused or failed (the message says why), 2 bad usage.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use httpq_ipc::{FrameReader, FrameWriter};
use httpq_wire::control::{ControlRequest, ControlResponse};
use httpq_wire::{Frame, Hello, Role};
use serde_json::Value;

const COMMANDS: &[(&str, &str)] = &[
    (
        "add urlacl",
        "url=URL (user=NAME | group=NAME) [listen=yes|no] [delegate=yes|no]\n    Reserve URL (and every prefix under it) for a user or group: they may then register it.",
    ),
    (
        "delete urlacl",
        "url=URL\n    Remove the reservation for URL.",
    ),
    ("show urlacl", "[url=URL] [--json]\n    List reservations."),
    (
        "add iplisten",
        "ipaddress=IP\n    Listen only on these addresses for wildcard and host-name prefixes (from the next httpqd start).",
    ),
    (
        "delete iplisten",
        "ipaddress=IP\n    Remove an address from the iplisten list.",
    ),
    (
        "show iplisten",
        "[--json]\n    List the iplisten addresses (empty: every address).",
    ),
    (
        "add timeout",
        "timeouttype=idleconnectiontimeout|headerwaittimeout value=SECONDS\n    Set a global timer (from the next httpqd start).",
    ),
    (
        "delete timeout",
        "timeouttype=idleconnectiontimeout|headerwaittimeout\n    Back to the default (120 s).",
    ),
    ("show timeout", "[--json]\n    Show the global timers."),
    (
        "add cert",
        "certfile=PEM keyfile=PEM\n    Import a certificate chain (leaf first) and its private key (RSA, ECDSA or Ed25519) into the listener's store; prints the SHA-1 thumbprint bindings use.",
    ),
    (
        "show cert",
        "[certhash=THUMBPRINT] [--json]\n    List stored certificates: subject, names, validity, key type, and the bindings that use each.",
    ),
    (
        "delete cert",
        "certhash=THUMBPRINT\n    Remove a certificate and its key (refused while a binding uses it).",
    ),
    (
        "add sslcert",
        "(ipport=IP:PORT | hostnameport=NAME:PORT | ccs=PORT) [certhash=THUMBPRINT] [appid=ID]\n    [clientcertnegotiation=enable|disable] [disablehttp2=..] [disablequic=..] [disablelegacytls=..] [disabletls12=..] [disabletls13=..]\n    [clientcafile=PEM|none] [clientcertrequired=enable|disable]\n    Bind a certificate: to a local address (0.0.0.0 or [::] for any), to a host name by SNI, or to the central store\n    directory <state>/ccs/<host>.pem (chain and key in one file). Applies to the next handshake.\n    clientcafile: the listener verifies client certificates against these CAs (an untrusted one fails the\n    handshake); clientcertrequired: a client without one is refused too (and the binding serves no HTTP/3).",
    ),
    (
        "update sslcert",
        "(ipport= | hostnameport= | ccs=) [certhash=] [appid=] [switches as for add]\n    Change an existing binding; unspecified settings stay.",
    ),
    (
        "delete sslcert",
        "(ipport=IP:PORT | hostnameport=NAME:PORT | ccs=PORT)\n    Remove a binding.",
    ),
    (
        "show sslcert",
        "[ipport= | hostnameport= | ccs=] [--json]\n    List bindings and their switches.",
    ),
    (
        "dev-certs",
        "[--trust] [out=DIR]\n    Make a development certificate for localhost, 127.0.0.1 and ::1 (as dotnet dev-certs https): written to DIR\n    (default ~/.config/httpq, found there by embedded apps serving https://localhost), imported into the listener's\n    store when it runs and you may administer it; --trust adds it to the system trust store (root).",
    ),
    (
        "show servicestate",
        "[view=requestq|session] [verbose=yes|no] [--json]\n    Every request queue (owner, processes, URLs, queued and active requests; limits, retention and ACL with verbose=yes), or every process with its URLs (view=session); the listening sockets.",
    ),
    (
        "add logging",
        "dir=ABSOLUTE-PATH [queue=OWNER/NAME] [rollover=hourly|daily|weekly|monthly|size:BYTES] [localtime=yes|no]\n    [fields=date,time,c-ip,...|default|all]\n    Write a W3C access log of every exchange (refused ones included), for the whole listener or for one named\n    queue (queue logs are not written while a listener-wide log exists). Files u_exYYMMDD.log (and so on by\n    rollover; u_extendN.log by size) each start with #Software, #Version, #Date and #Fields. Applies at once.",
    ),
    (
        "delete logging",
        "[queue=OWNER/NAME]\n    Stop and forget the listener-wide access log, or a queue's.",
    ),
    (
        "show logging",
        "[--json]\n    List the access logs: scope, directory, rollover and fields.",
    ),
    (
        "flush logbuffer",
        "\n    Write the listener's buffered log lines (the httperr error log and the access logs) to their files now.",
    ),
];

fn usage() -> String {
    let mut s = String::from(
        "usage: httpq [--socket PATH] <command> [key=value ...] [--json]\n\ncommands:\n",
    );
    for (name, help) in COMMANDS {
        s.push_str(&format!("  httpq {name} {help}\n"));
    }
    s.push_str(
        "\nThe listener is found by --socket, then HTTPQ_SOCKET, then the default socket.\n",
    );
    s
}

struct Invocation {
    socket: PathBuf,
    command: String,
    args: BTreeMap<String, String>,
    json: bool,
}

enum Parsed {
    Run(Invocation),
    Help(String),
}

fn parse(argv: &[String]) -> Result<Parsed, String> {
    let mut socket = std::env::var_os("HTTPQ_SOCKET")
        .filter(|s| !s.is_empty())
        .map(PathBuf::from);
    let mut words = Vec::new();
    let mut args = BTreeMap::new();
    let mut json = false;
    let mut help = false;
    let mut it = argv.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--socket" => socket = Some(it.next().ok_or("--socket needs a path")?.into()),
            "--json" => json = true,
            "--trust" => {
                args.insert("trust".to_owned(), "yes".to_owned());
            }
            "--help" | "-h" | "help" => help = true,
            kv if kv.contains('=') => {
                let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                args.insert(k.to_ascii_lowercase(), v.to_owned());
            }
            word => words.push(word.to_ascii_lowercase()),
        }
    }
    let command = words.join(" ");
    let Some((_, text)) = COMMANDS.iter().find(|(name, _)| *name == command) else {
        if help || command.is_empty() {
            return Ok(Parsed::Help(usage()));
        }
        return Err(format!("httpq: unknown command {command:?}\n\n{}", usage()));
    };
    if help {
        return Ok(Parsed::Help(format!("httpq {command} {text}")));
    }
    Ok(Parsed::Run(Invocation {
        socket: socket.unwrap_or_else(httpq_ipc::default_socket),
        command,
        args,
        json,
    }))
}

/// The largest frame the CLI accepts from the listener (a page of `show servicestate`).
const MAX_REPLY_FRAME: u32 = 4 << 20;

async fn call(inv: &Invocation) -> Result<Value, String> {
    // The listener is authenticated before anything (a private key, say) is sent to it.
    let stream = httpq_ipc::trust::connect(&inv.socket)
        .await
        .map_err(|e| match e {
            httpq_ipc::trust::ListenerNotTrusted::Connect { source, .. } => format!(
                "cannot reach the httpq listener at {}: {source}; is httpqd running? (--socket or HTTPQ_SOCKET choose another)",
                inv.socket.display()
            ),
            refused => refused.to_string(),
        })?;
    let (rd, wr) = stream.into_split();
    let mut reader = FrameReader::new(rd);
    let writer = FrameWriter::spawn(wr);
    let mut hello = Hello::new(Role::Admin);
    hello.max_frame_size = MAX_REPLY_FRAME;
    writer.send(Frame::Hello(hello));
    match reader.next().await.map_err(|e| e.to_string())? {
        Frame::HelloAck(ack) => reader.set_max_frame_size(ack.max_frame_size.min(MAX_REPLY_FRAME)),
        Frame::Goaway(g) => return Err(g.reason),
        other => {
            return Err(format!(
                "unexpected {:?} from the listener",
                other.frame_type()
            ));
        }
    }
    let mut op = 0;
    let mut ask = async |args: BTreeMap<String, String>| -> Result<Value, String> {
        op += 1;
        writer.send(Frame::control(
            op,
            &ControlRequest::Admin {
                command: inv.command.clone(),
                args,
            },
        ));
        loop {
            match reader.next().await.map_err(|e| e.to_string())? {
                Frame::Control(c) if c.is_response && c.op_id == op => {
                    return match c.response().map_err(|e| e.to_string())? {
                        ControlResponse::Ok { result } => Ok(result),
                        ControlResponse::Error { message, .. } => Err(message),
                        _ => Err("unknown response from the listener".to_owned()),
                    };
                }
                Frame::Goaway(g) => return Err(g.reason),
                _ => {}
            }
        }
    };
    let mut result = ask(inv.args.clone()).await?;
    // show servicestate comes in pages; the CLI joins them.
    while let Some(more) = result.get("more").and_then(Value::as_object).cloned() {
        let mut args = inv.args.clone();
        for (k, v) in &more {
            args.insert(k.clone(), v.to_string());
        }
        let page = ask(args).await?;
        for list in ["queues", "processes"] {
            if let (Some(all), Some(next)) =
                (result[list].as_array_mut(), page[list].as_array().cloned())
            {
                all.extend(next);
            }
        }
        result["more"] = page["more"].clone();
    }
    if let Some(map) = result.as_object_mut() {
        map.remove("more");
    }
    Ok(result)
}

/// Makes text from the listener safe to print on a terminal: control characters (newlines,
/// escape sequences) in client-chosen strings are shown escaped, never interpreted.
fn printable(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            let keep = !unsafe_on_terminal(c);
            let escaped: Vec<char> = if keep {
                vec![c]
            } else {
                c.escape_default().collect()
            };
            escaped
        })
        .collect()
}

/// Whether a character must not reach a terminal as it is: controls (C0, DEL, C1) and the
/// bidirectional formatting characters that reorder what is displayed.
fn unsafe_on_terminal(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// Serialised JSON with every character [`unsafe_on_terminal`] written as a JSON `\u` escape
/// of four hex digits
/// (such characters only occur inside strings, where the escape means the same).
fn json_terminal_safe(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        if unsafe_on_terminal(c) {
            out.push_str(&format!("\\u{:04x}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    out
}

/// [`printable`] on every string in `v`.
fn printable_json(v: &mut Value) {
    match v {
        Value::String(s) => *s = printable(s),
        Value::Array(a) => a.iter_mut().for_each(printable_json),
        Value::Object(o) => o.values_mut().for_each(printable_json),
        _ => {}
    }
}

fn print_human(command: &str, v: &Value, args: &BTreeMap<String, String>) {
    match command {
        "show urlacl" => {
            let list = v["urlacls"].as_array().cloned().unwrap_or_default();
            if list.is_empty() {
                println!("No URL ACL entries.");
            }
            for e in list {
                println!("    Reserved URL : {}", e["url"].as_str().unwrap_or(""));
                if let Some(u) = e["user"].as_str() {
                    println!("        User     : {u}");
                }
                if let Some(g) = e["group"].as_str() {
                    println!("        Group    : {g}");
                }
                println!(
                    "        Listen   : {}",
                    if e["listen"] == true { "Yes" } else { "No" }
                );
                println!(
                    "        Delegate : {}",
                    if e["delegate"] == true { "Yes" } else { "No" }
                );
                println!();
            }
        }
        "show servicestate" => print_service_state(v, args),
        "show cert" => {
            let list = v["certificates"].as_array().cloned().unwrap_or_default();
            if list.is_empty() {
                println!("No certificates in the store (httpq add cert certfile=PEM keyfile=PEM).");
            }
            for c in list {
                print_cert(&c);
            }
        }
        "add cert" => {
            println!("Certificate imported.");
            print_cert(v);
        }
        "show sslcert" => {
            let list = v["bindings"].as_array().cloned().unwrap_or_default();
            if list.is_empty() {
                println!("No SSL certificate bindings.");
            }
            for b in list {
                print_binding(&b);
            }
        }
        "add sslcert" | "update sslcert" => {
            println!(
                "SSL certificate binding {}; it applies to the next handshake.",
                if command == "add sslcert" {
                    "added"
                } else {
                    "updated"
                }
            );
            print_binding(&v["binding"]);
        }
        "show iplisten" => {
            let list = v["iplisten"].as_array().cloned().unwrap_or_default();
            if list.is_empty() {
                println!("IP listen list is empty: every address.");
            }
            for ip in list {
                println!("    {}", ip.as_str().unwrap_or(""));
            }
        }
        "show timeout" => {
            let show = |k: &str| {
                v[k].as_u64()
                    .map_or_else(|| "120 (default)".to_owned(), |n| n.to_string())
            };
            println!(
                "    Idle connection timeout (secs): {}",
                show("idleconnectiontimeout")
            );
            println!(
                "    Header wait timeout (secs)    : {}",
                show("headerwaittimeout")
            );
        }
        "flush logbuffer" => {
            println!("Log buffers flushed.");
            if let Some(n) = v["dropped"].as_u64().filter(|n| *n > 0) {
                println!(
                    "{n} log lines were dropped since the listener started (a log queue was full)."
                );
            }
        }
        "show logging" | "add logging" => {
            let list = match v["logging"].as_array() {
                Some(l) => l.clone(),
                None => vec![v.clone()],
            };
            if list.is_empty() {
                println!("No access logs.");
            }
            for e in list {
                let s = |k: &str| printable(e[k].as_str().unwrap_or(""));
                println!("    Queue     : {}", s("queue"));
                println!("    Directory : {}", s("dir"));
                println!(
                    "    Rollover  : {} (local time: {})",
                    s("rollover"),
                    s("localtime")
                );
                println!("    Fields    : {}", s("fields"));
                println!();
            }
        }
        _ => {
            println!("{command}: done.");
            if let Some(a) = v["applies"].as_str() {
                println!("The change applies {a}.");
            }
            if let Some(w) = v["warning"].as_str() {
                eprintln!("warning: {w}");
            }
        }
    }
}

fn print_cert(c: &Value) {
    let s = |k: &str| c[k].as_str().unwrap_or("").to_owned();
    println!("    Certificate Hash : {}", s("certhash"));
    println!("        Subject      : {}", s("subject"));
    println!("        Issuer       : {}", s("issuer"));
    let names: Vec<String> = c["names"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter_map(|n| n.as_str().map(str::to_owned))
        .collect();
    println!("        Names        : {}", names.join(", "));
    println!("        Valid from   : {}", s("not_before"));
    println!("        Valid until  : {}", s("not_after"));
    println!("        Key          : {}", s("key_type"));
    let bindings: Vec<String> = c["bindings"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter_map(|n| n.as_str().map(str::to_owned))
        .collect();
    if !bindings.is_empty() {
        println!("        Bound to     : {}", bindings.join(", "));
    }
    println!();
}

fn print_binding(b: &Value) {
    let s = |k: &str| b[k].as_str().unwrap_or("").to_owned();
    println!("    {}", s("key"));
    println!(
        "        Certificate Hash             : {}",
        b["certhash"].as_str().unwrap_or("(central store)")
    );
    println!(
        "        Application ID               : {}",
        b["appid"].as_str().unwrap_or("-")
    );
    for (label, key) in [
        ("Negotiate Client Certificate", "clientcertnegotiation"),
        ("Disable HTTP/2              ", "disablehttp2"),
        ("Disable QUIC                ", "disablequic"),
        ("Disable Legacy TLS Versions ", "disablelegacytls"),
        ("Disable TLS 1.2             ", "disabletls12"),
        ("Disable TLS 1.3             ", "disabletls13"),
        ("Client Certificate Required ", "clientcertrequired"),
    ] {
        println!("        {label} : {}", s(key));
    }
    println!(
        "        Client CA                    : {}",
        b["clientca"]
            .as_str()
            .unwrap_or("(none: client certificates are not verified)")
    );
    println!();
}

fn print_service_state(v: &Value, args: &BTreeMap<String, String>) {
    let verbose = args.get("verbose").is_some_and(|v| v == "yes");
    let str_of = |v: &Value| v.as_str().unwrap_or("").to_owned();
    let who = |p: &Value| {
        format!(
            "pid {}, user {} (uid {})",
            p["pid"],
            p["user"].as_str().unwrap_or("?"),
            p["uid"]
        )
    };
    let list = |v: &Value| v.as_array().cloned().unwrap_or_default();
    if args.get("view").is_some_and(|v| v == "session") {
        println!("Service state (session view):\n");
        for p in list(&v["processes"]) {
            println!("Process {}", who(&p));
            println!("    Registered URLs:");
            for prefix in list(&p["prefixes"]) {
                println!("        {}", str_of(&prefix));
            }
            println!();
        }
    } else {
        println!("Service state (request queue view):\n");
        for q in list(&v["queues"]) {
            match q["name"].as_str() {
                Some(name) => println!("Request queue \"{name}\""),
                None => println!("Request queue (unnamed, id {})", q["id"]),
            }
            println!(
                "    Owner           : {} (uid {})",
                q["owner"]["user"].as_str().unwrap_or("?"),
                q["owner"]["uid"]
            );
            let procs = list(&q["processes"]);
            println!("    Processes       : {}", procs.len());
            for p in procs {
                println!("        {}", who(&p));
            }
            println!("    Registered URLs :");
            for prefix in list(&q["prefixes"]) {
                println!("        {}", str_of(&prefix));
            }
            println!("    Queued requests : {}", q["queued"]);
            println!("    Active requests : {}", q["active"]);
            if verbose {
                println!("    Max requests    : {}", q["limit"]);
                println!("    503 verbosity   : {}", str_of(&q["http503_verbosity"]));
                println!("    Retention (s)   : {}", q["retention_secs"]);
                let acl: Vec<String> = list(&q["acl"]).iter().map(str_of).collect();
                println!(
                    "    Queue ACL       : {}",
                    if acl.is_empty() {
                        "owner and root only".to_owned()
                    } else {
                        acl.join(", ")
                    }
                );
            }
            println!();
        }
    }
    let listening: Vec<String> = list(&v["listening"]).iter().map(str_of).collect();
    println!("Listening on      : {}", listening.join(", "));
    println!("Client connections: {}", v["connections"]);
}

/// `add cert`: the CLI reads the files (the listener may not be able to) and sends the PEM.
fn read_cert_files(args: &mut BTreeMap<String, String>) -> Result<(), String> {
    let (Some(cert), Some(key)) = (args.remove("certfile"), args.remove("keyfile")) else {
        return Err("needs certfile=PEM and keyfile=PEM".to_owned());
    };
    let read = |p: &str| std::fs::read_to_string(p).map_err(|e| format!("cannot read {p}: {e}"));
    args.insert("cert_pem".to_owned(), read(&cert)?);
    args.insert("key_pem".to_owned(), read(&key)?);
    if let Some(other) = args
        .keys()
        .find(|k| !matches!(k.as_str(), "cert_pem" | "key_pem"))
    {
        return Err(format!(
            "unknown argument {other}=; add cert takes certfile= and keyfile="
        ));
    }
    Ok(())
}

/// Where `dev-certs` writes, and where embedded apps look for the development certificate.
fn dev_cert_dir() -> PathBuf {
    httpq_ipc::dev_cert_dir()
}

async fn dev_certs(inv: &Invocation) -> Result<(), String> {
    let dir = inv.args.get("out").map_or_else(dev_cert_dir, PathBuf::from);
    let cert = httpq_tls::dev_cert().map_err(|e| e.to_string())?;
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let cert_path = dir.join("localhost.crt");
    let key_path = dir.join("localhost.key");
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&key_path)
            .map_err(|e| format!("cannot write {}: {e}", key_path.display()))?;
        f.write_all(cert.key_pem.as_bytes())
            .map_err(|e| format!("cannot write {}: {e}", key_path.display()))?;
    }
    std::fs::write(&cert_path, &cert.cert_pem)
        .map_err(|e| format!("cannot write {}: {e}", cert_path.display()))?;
    let info = httpq_tls::parse_pem_pair(cert.cert_pem.as_bytes(), cert.key_pem.as_bytes())
        .and_then(|(chain, _)| httpq_tls::CertInfo::of(&chain))
        .map_err(|e| e.to_string())?;
    println!("Development certificate for localhost, 127.0.0.1 and ::1 (valid one year):");
    println!("    Certificate : {}", cert_path.display());
    println!("    Private key : {} (mode 0600)", key_path.display());
    println!("    Thumbprint  : {}", info.thumbprint);
    println!("Embedded apps serving https://localhost use it when no binding covers their port.");
    // Into the listener's store too, when one runs and this user administers it.
    let mut import = Invocation {
        socket: inv.socket.clone(),
        command: "add cert".to_owned(),
        args: BTreeMap::from([
            ("cert_pem".to_owned(), cert.cert_pem.clone()),
            ("key_pem".to_owned(), cert.key_pem.clone()),
        ]),
        json: false,
    };
    match call(&import).await {
        Ok(_) => {
            println!("Imported into the listener's store. Bind it with:");
            println!(
                "    httpq add sslcert ipport=0.0.0.0:PORT certhash={}",
                info.thumbprint
            );
        }
        Err(e) => println!("Not imported into a listener's store ({e})."),
    }
    import.args.clear();
    if inv.args.get("trust").is_some_and(|v| v == "yes") {
        trust(&cert_path)?;
    }
    Ok(())
}

/// Adds the certificate to Debian's system trust store (what curl, OpenSSL and most Linux
/// programs read).
fn trust(cert: &std::path::Path) -> Result<(), String> {
    let target = PathBuf::from("/usr/local/share/ca-certificates/httpq-localhost.crt");
    std::fs::copy(cert, &target).map_err(|e| {
        format!(
            "cannot write {}: {e} (--trust needs root: sudo httpq dev-certs --trust)",
            target.display()
        )
    })?;
    let status = std::process::Command::new("update-ca-certificates")
        .status()
        .map_err(|e| format!("cannot run update-ca-certificates: {e} (install ca-certificates)"))?;
    if !status.success() {
        return Err("update-ca-certificates failed".to_owned());
    }
    println!("Trusted: {} (update-ca-certificates).", target.display());
    Ok(())
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let inv = match parse(&argv) {
        Ok(Parsed::Run(i)) => i,
        Ok(Parsed::Help(text)) => {
            println!("{text}");
            return ExitCode::SUCCESS;
        }
        Err(text) => {
            eprintln!("{text}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("httpq: {e}");
            return ExitCode::FAILURE;
        }
    };
    if inv.command == "dev-certs" {
        return match runtime.block_on(dev_certs(&inv)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(message) => {
                eprintln!("httpq dev-certs: {message}");
                ExitCode::FAILURE
            }
        };
    }
    let mut inv = inv;
    if matches!(inv.command.as_str(), "add sslcert" | "update sslcert") {
        // The CLI reads the CA file (the listener may not be able to) and sends the PEM.
        if let Some(path) = inv.args.remove("clientcafile") {
            let pem = if path.eq_ignore_ascii_case("none") {
                String::new()
            } else {
                match std::fs::read_to_string(&path) {
                    Ok(pem) => pem,
                    Err(e) => {
                        eprintln!(
                            "httpq {}: cannot read clientcafile={path}: {e}",
                            inv.command
                        );
                        return ExitCode::FAILURE;
                    }
                }
            };
            inv.args.insert("client_ca_pem".to_owned(), pem);
        }
    }
    if inv.command == "add cert" {
        if let Err(message) = read_cert_files(&mut inv.args) {
            eprintln!("httpq add cert: {message}");
            return ExitCode::FAILURE;
        }
    }
    match runtime.block_on(call(&inv)) {
        Ok(mut v) => {
            if inv.json {
                // JSON escapes C0 controls itself; C1 controls and bidirectional overrides
                // are escaped too, so the output is safe on a terminal and means the same.
                println!("{}", json_terminal_safe(&v.to_string()));
            } else {
                printable_json(&mut v);
                print_human(&inv.command, &v, &inv.args);
            }
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("httpq {}: {}", inv.command, printable(&message));
            ExitCode::FAILURE
        }
    }
}
