//! OpenSSL with libp11's engine (package libengine-pkcs11-openssl, engine
//! id `pkcs11`), configured in an openssl.cnf engine section as libp11's
//! README tells users: `openssl pkeyutl` and `openssl dgst` sign by
//! `pkcs11:` URI, and a mutual-TLS handshake on loopback (`s_server
//! -Verify` with its key on disk, `s_client` with its key on the token)
//! completes.

#[path = "../common/mod.rs"]
mod common;

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::p11kit::*;
use common::pki::TestCa;
use common::*;

/// How long openssl s_server may take to print its port, and the
/// handshake to end.
const TLS_TIMEOUT: Duration = Duration::from_secs(60);

/// `cmd`'s output; panics with it unless the command succeeded.
fn ok(cmd: &mut Command) -> String {
    text(&run_cmd(cmd))
}

/// Whether `openssl <args>` (a verification) succeeds.
fn verified(args: Vec<String>) -> bool {
    run_allow_fail("openssl", &args).status.success()
}

/// `pkeyutl -verify` of `sig` over the digest `input` with `pem`, with
/// `-pkeyopt` options.
fn pkeyutl_verify(pem: &Path, options: &[&str], input: &Path, sig: &Path) -> Vec<String> {
    let mut a: Vec<String> = ["pkeyutl", "-verify", "-pubin", "-inkey"]
        .map(String::from)
        .to_vec();
    a.push(s(pem));
    for o in options {
        a.extend(["-pkeyopt".to_string(), o.to_string()]);
    }
    a.extend(["-in".into(), s(input), "-sigfile".into(), s(sig)]);
    a
}

/// SHA-256 of `data` in `dir/name`.
fn digest_file(dir: &Path, name: &str, data: &[u8]) -> PathBuf {
    use sha2::Digest;
    let path = dir.join(name);
    fs::write(&path, sha2::Sha256::digest(data)).unwrap();
    path
}

/// A user's openssl.cnf names the module (`MODULE_PATH =
/// libpicohsm_pkcs11.so`) in libp11's engine section; `openssl pkeyutl
/// -sign -engine pkcs11 -keyform engine -inkey 'pkcs11:…'` (PIN with
/// `-passin`) signs a SHA-256 digest with an EC P-256 key and, with
/// `-pkeyopt digest:sha256`, with an RSA-2048 key (PKCS#1 v1.5); `openssl
/// dgst -sha256 -sign` signs a file with each. Every signature verifies
/// with the public key of the certificate issued for that key, and not
/// with the other key's.
#[test]
fn libp11_engine_signs_by_pkcs11_uri_with_the_module_named_in_openssl_cnf() {
    let _s = serial();
    let card = VCard::start();
    let dir = card.dir().to_path_buf();
    let ca = TestCa::new(&dir, "OpenSSL test CA");
    let ec_cert = token_with_certified_key(
        &card,
        "openssl-signer",
        "EC:prime256v1",
        "01",
        &ca,
        "emailProtection",
    );
    let rsa_cert = add_certified_key(
        &card,
        "rsa:2048",
        "02",
        &ca,
        "rsa-signer",
        "emailProtection",
    );
    let ec_pub = cert_public_key(&ec_cert, &dir.join("ec.pub.pem"));
    let rsa_pub = cert_public_key(&rsa_cert, &dir.join("rsa.pub.pem"));
    let conf = engine_conf(&dir, Some(&module_path()));
    let uri = |id: &str| format!("pkcs11:token=openssl-signer;id=%{id};type=private");

    let data = dir.join("data.txt");
    fs::write(&data, b"signed through libp11").unwrap();
    let digest = digest_file(&dir, "data.sha256", b"signed through libp11");

    let sig = dir.join("ec.sig");
    ok(&mut engine_sign(
        Command::new("openssl"),
        &conf,
        &uri("01"),
        PIN,
        &digest,
        &sig,
    ));
    assert!(verified(pkeyutl_verify(&ec_pub, &[], &digest, &sig)));
    assert!(!verified(pkeyutl_verify(&rsa_pub, &[], &digest, &sig)));

    let sig = dir.join("rsa.sig");
    let mut c = engine_sign(
        Command::new("openssl"),
        &conf,
        &uri("02"),
        PIN,
        &digest,
        &sig,
    );
    ok(c.args(["-pkeyopt", "digest:sha256"]));
    let opts = ["digest:sha256"];
    assert!(verified(pkeyutl_verify(&rsa_pub, &opts, &digest, &sig)));
    assert!(
        !verified(pkeyutl_verify(&rsa_pub, &opts, &data, &sig)),
        "over the digest only"
    );

    for (id, public) in [("01", &ec_pub), ("02", &rsa_pub)] {
        let sig = dir.join(format!("dgst{id}.sig"));
        ok(Command::new("openssl")
            .env("OPENSSL_CONF", &conf)
            .args(["dgst", "-sha256", "-engine", "pkcs11", "-keyform", "engine"])
            .args(["-sign", &uri(id), "-passin"])
            .arg(format!("pass:{PIN}"))
            .arg("-out")
            .arg(&sig)
            .arg(&data));
        let check = common::tools::dgst_verify("-sha256", &[], public, &sig, &data);
        assert!(verified(check), "dgst -sign with key {id}");
    }
}

/// `openssl s_server` on a loopback port of its own choosing (`-accept
/// 127.0.0.1:0`), started with `args`; returns it, its port and the lines
/// it prints.
fn s_server(args: &[&str]) -> (std::process::Child, u16, mpsc::Receiver<String>) {
    let mut child = Command::new("openssl")
        .args(["s_server", "-accept", "127.0.0.1:0", "-naccept", "1"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start openssl s_server");
    let (tx, rx) = mpsc::channel();
    for out in [
        Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
        Box::new(child.stderr.take().unwrap()),
    ] {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
    }
    // "ACCEPT 127.0.0.1:40123"
    let port = loop {
        let line = rx
            .recv_timeout(TLS_TIMEOUT)
            .unwrap_or_else(|e| panic!("s_server printed no ACCEPT line: {e}"));
        if let Some(p) = line.strip_prefix("ACCEPT 127.0.0.1:") {
            break p.trim().parse().expect("a port");
        }
    };
    (child, port, rx)
}

/// One mutual-TLS handshake: a server with its key and certificate on
/// disk, `-Verify 1` against the test CA, and `s_client` with the token's
/// key `uri` and the certificate exported from the token, `extra` client
/// options (a protocol version). Checks the client completes and gets the
/// page only a verified client gets, and the server logs the client's
/// certificate verified.
fn handshake(ca: &TestCa, conf: &Path, uri: &str, client_cert: &Path, cn: &str, extra: &[&str]) {
    let (server_cert, server_key) = ca.server();
    let (ca_file, key_file, cert_file) = (s(&ca.cert), s(&server_key), s(&server_cert));
    let (mut server, port, lines) = s_server(&[
        "-Verify",
        "1",
        "-verify_return_error",
        "-CAfile",
        &ca_file,
        "-cert",
        &cert_file,
        "-key",
        &key_file,
        "-www",
    ]);

    let mut client = Command::new("timeout")
        .arg(TLS_TIMEOUT.as_secs().to_string())
        .arg("openssl")
        .env("OPENSSL_CONF", conf)
        .args(["s_client", "-connect", &format!("127.0.0.1:{port}")])
        .args([
            "-engine", "pkcs11", "-keyform", "engine", "-key", uri, "-pass",
        ])
        .arg(format!("pass:{PIN}"))
        .arg("-cert")
        .arg(client_cert)
        .args(["-CAfile", &ca_file, "-verify_return_error", "-ign_eof"])
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start openssl s_client");
    client
        .stdin
        .take()
        .unwrap()
        .write_all(b"GET / HTTP/1.0\r\n\r\n")
        .unwrap();
    let out = client.wait_with_output().expect("s_client");
    let client_text = text(&out);
    let status = server.wait().expect("s_server");
    let server_log: Vec<String> = lines.try_iter().collect();
    let server_log = server_log.join("\n");
    assert!(
        out.status.success(),
        "s_client failed:\n{client_text}\nserver:\n{server_log}"
    );
    assert!(status.success(), "s_server: {status}\n{server_log}");
    assert_contains(
        &client_text,
        &[
            "Verify return code: 0 (ok)",
            "HTTP/1.0 200 ok",
            "Client certificate",
        ],
    );
    assert!(
        client_text.contains(&format!("Subject: CN={cn}")),
        "the page shows the client's certificate:\n{client_text}"
    );
    let verified_line = format!("depth=0 CN = {cn}");
    let at = server_log
        .lines()
        .position(|l| l == verified_line)
        .unwrap_or_else(|| panic!("the server saw no client certificate:\n{server_log}"));
    assert_eq!(
        server_log.lines().nth(at + 1),
        Some("verify return:1"),
        "the server verified it:\n{server_log}"
    );
    assert_contains(&server_log, &["1 server accepts that finished"]);
}

/// Mutual TLS on loopback: `openssl s_server -Verify 1 -CAfile ca.pem` with
/// its key and certificate from files; `openssl s_client -engine pkcs11
/// -keyform engine -key 'pkcs11:…' -cert <exported>` with the client key
/// on the token and its certificate exported from the token with
/// pkcs11-tool. The handshake completes with an EC P-256 key (TLS 1.3)
/// and with an RSA-2048 key (TLS 1.2); the server logs each client
/// certificate verified, and the client gets the page that shows it.
#[test]
fn mutual_tls_handshake_with_the_client_key_on_the_token_completes() {
    let _s = serial();
    let card = VCard::start();
    let dir = card.dir().to_path_buf();
    let ca = TestCa::new(&dir, "TLS test CA");
    token_with_certified_key(
        &card,
        "tls-client",
        "EC:prime256v1",
        "01",
        &ca,
        "clientAuth",
    );
    add_certified_key(&card, "rsa:2048", "02", &ca, "tls-rsa-client", "clientAuth");
    let conf = engine_conf(&dir, Some(&module_path()));

    for (id, cn, extra) in [
        ("01", "tls-client", &["-tls1_3"][..]),
        ("02", "tls-rsa-client", &["-tls1_2"][..]),
    ] {
        let der = dir.join(format!("exported{id}.der"));
        ok(our_pkcs11_tool_command(&card)
            .args(["--read-object", "--type", "cert", "--id", id, "-o"])
            .arg(&der));
        let pem = dir.join(format!("exported{id}.pem"));
        ok(Command::new("openssl")
            .args(["x509", "-inform", "DER", "-in"])
            .arg(&der)
            .arg("-out")
            .arg(&pem));
        let uri = format!("pkcs11:token=tls-client;id=%{id};type=private");
        handshake(&ca, &conf, &uri, &pem, cn, extra);
    }
}
