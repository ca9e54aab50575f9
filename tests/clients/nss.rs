//! NSS (libnss3-tools) with libpicohsm_pkcs11.so, configured as NSS's
//! documentation tells users: `modutil -add` into a database, then
//! `certutil` on the token.

#[path = "../common/mod.rs"]
mod common;

use std::fs;
use std::path::Path;
use std::process::Command;

use common::tools::*;
use common::*;

/// An NSS tool with `HOME` in the test's directory (NSS writes under ~).
fn nss(program: &str, home: &Path) -> Command {
    let mut c = Command::new(program);
    c.env("HOME", home)
        .env("PICOHSM_PKCS11_CONFIG", harness_settings());
    c
}

/// The token label of `card` as pkcs11-tool shows it through our module.
fn token_label(card: &VCard) -> String {
    let out = text(&run_cmd(
        Command::new("pkcs11-tool")
            .env("PICOHSM_PKCS11_CONFIG", harness_settings())
            .arg("--module")
            .arg(module_path())
            .arg("--list-token-slots"),
    ));
    out.split("\nSlot ")
        .find(|b| {
            b.lines()
                .next()
                .is_some_and(|l| l.ends_with(card.reader_name()))
        })
        .and_then(|b| {
            b.lines()
                .find_map(|l| l.trim().strip_prefix("token label"))
                .and_then(|l| l.split_once(':'))
        })
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_else(|| panic!("no token label for {}: {out}", card.reader_name()))
}

/// A user adds the module to a fresh NSS database (`certutil -N
/// --empty-password`, `modutil -dbdir sql:DIR -add picohsm -libfile
/// libpicohsm_pkcs11.so -force`): `certutil -L -h all` lists the
/// certificate on the token; `certutil -S -h TOKEN ... -x` makes a key on
/// the token and a self-signed certificate for it (PIN from `-f`), which
/// pkcs11-tool then finds on the token under its nickname.
#[test]
fn certutil_makes_a_self_signed_certificate_with_a_key_on_the_token() {
    let card = initialised_card();
    let dir = card.dir().to_path_buf();
    let der = self_signed_cert(&dir, "ca", "/CN=picohsm NSS CA");
    OURS.login().run(
        &card,
        write_object(&der, "cert", &["--label", "nss ca", "--id", "c0"]),
    );
    let token = token_label(&card);

    let db = dir.join("nssdb");
    fs::create_dir_all(&db).unwrap();
    let sql = format!("sql:{}", db.display());
    run_cmd(nss("certutil", &dir).args(["-N", "-d", &sql, "--empty-password"]));
    run_cmd(
        nss("modutil", &dir)
            .args(["-dbdir", &sql, "-add", "picohsm", "-libfile"])
            .arg(module_path())
            .arg("-force"),
    );
    let modules = text(&run_cmd(
        nss("modutil", &dir).args(["-dbdir", &sql, "-list"]),
    ));
    assert!(
        modules.contains("picohsm") && modules.contains(&token),
        "{modules}"
    );

    let listed = text(&run_cmd(
        nss("certutil", &dir).args(["-L", "-d", &sql, "-h", "all"]),
    ));
    assert!(listed.contains(&format!("{token}:nss ca")), "{listed}");

    let pwfile = dir.join("pw.txt");
    fs::write(&pwfile, format!("{PIN}\n")).unwrap();
    let noise = dir.join("noise.bin");
    let mut bytes = [0u8; 64];
    getrandom::fill(&mut bytes).unwrap();
    fs::write(&noise, bytes).unwrap();
    for (nick, kind) in [
        ("nss ec", ["-k", "ec", "-q", "nistp256"]),
        ("nss rsa", ["-k", "rsa", "-g", "2048"]),
    ] {
        let out = run_cmd_allow_fail(
            nss("certutil", &dir)
                .args(["-S", "-d", &sql, "-h", &token, "-f"])
                .arg(&pwfile)
                .args(["-z"])
                .arg(&noise)
                .args(kind)
                .args(["-n", nick, "-s", &format!("CN={nick}"), "-x", "-t", "u,u,u"]),
        );
        assert!(out.status.success(), "certutil -S {nick}: {}", text(&out));
    }

    let listed = text(&run_cmd(
        nss("certutil", &dir)
            .args(["-L", "-d", &sql, "-h", &token, "-f"])
            .arg(&pwfile),
    ));
    let objects = OURS.run(&card, ["--list-objects", "--type", "cert"]);
    for nick in ["nss ec", "nss rsa"] {
        assert!(listed.contains(&format!("{token}:{nick}")), "{listed}");
        let b = listing_block(&objects, "Certificate Object", "label:", nick);
        let b = b.unwrap_or_else(|| panic!("{nick}: {objects}"));
        assert!(
            listing_field(b, "subject:").contains(&format!("CN={nick}")),
            "{b}"
        );
    }
}
