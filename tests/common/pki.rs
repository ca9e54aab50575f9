//! The test PKI the client tests share, made with openssl: a CA of the
//! test's own, certificates it issues for a public key whose private key
//! is on a token, and a key and certificate for a loopback TLS server.
#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::*;

/// A P-256 CA made by openssl in a directory (`ca.key`, `ca.pem`); the
/// certificates it issues are written beside them.
pub struct TestCa {
    /// The CA's private key (PEM).
    pub key: PathBuf,
    /// The CA certificate (PEM): what a client or server trusts.
    pub cert: PathBuf,
    /// Where the CA's files and the certificates it issues are.
    pub dir: PathBuf,
}

impl TestCa {
    /// A new self-signed CA `CN=<name>` in `dir`, marked as a CA that signs
    /// certificates (Firefox accepts it as a trust anchor).
    pub fn new(dir: &Path, name: &str) -> TestCa {
        let (key, cert) = (dir.join("ca.key"), dir.join("ca.pem"));
        run_cmd(
            Command::new("openssl")
                .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
                .args(["ec_paramgen_curve:P-256", "-nodes", "-days", "30", "-subj"])
                .arg(format!("/CN={name}"))
                .args(["-addext", "basicConstraints=critical,CA:TRUE"])
                .args(["-addext", "keyUsage=critical,keyCertSign"])
                .arg("-keyout")
                .arg(&key)
                .arg("-out")
                .arg(&cert),
        );
        TestCa {
            key,
            cert,
            dir: dir.to_path_buf(),
        }
    }

    /// A certificate `CN=<cn>` for the public key `public_pem` (PEM SPKI;
    /// the private key can be on a token), with extended key usage `eku`
    /// (`clientAuth`, `serverAuth`, `codeSigning`) and the names localhost
    /// and 127.0.0.1: written as `<cn>.der` and `<cn>.pem`, returns the DER
    /// file.
    pub fn issue(&self, public_pem: &Path, cn: &str, eku: &str) -> PathBuf {
        // `x509 -req` wants a request, and signs it with -force_pubkey's key
        // instead of the request's: any key signs the throwaway request.
        let csr = self.dir.join(format!("{cn}.csr"));
        run_cmd(
            Command::new("openssl")
                .args(["req", "-new", "-key"])
                .arg(&self.key)
                .arg("-subj")
                .arg(format!("/CN={cn}"))
                .arg("-out")
                .arg(&csr),
        );
        let ext = self.dir.join(format!("{cn}.ext"));
        fs::write(
            &ext,
            format!(
                "basicConstraints = CA:FALSE\nkeyUsage = critical, digitalSignature\n\
                 extendedKeyUsage = {eku}\nsubjectAltName = DNS:localhost, IP:127.0.0.1\n"
            ),
        )
        .unwrap();
        let (der, pem) = (
            self.dir.join(format!("{cn}.der")),
            self.dir.join(format!("{cn}.pem")),
        );
        let serial = format!(
            "0x{:x}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        );
        run_cmd(
            Command::new("openssl")
                .args(["x509", "-req", "-days", "30", "-in"])
                .arg(&csr)
                .arg("-CA")
                .arg(&self.cert)
                .arg("-CAkey")
                .arg(&self.key)
                .args(["-set_serial", &serial, "-force_pubkey"])
                .arg(public_pem)
                .arg("-extfile")
                .arg(&ext)
                .arg("-out")
                .arg(&pem),
        );
        run_cmd(
            Command::new("openssl")
                .args(["x509", "-outform", "DER", "-in"])
                .arg(&pem)
                .arg("-out")
                .arg(&der),
        );
        der
    }

    /// A TLS server's P-256 key (`server.key`) and its certificate from
    /// this CA (`CN=localhost`, serverAuth, for localhost and 127.0.0.1):
    /// returns the certificate's PEM file and the key file.
    pub fn server(&self) -> (PathBuf, PathBuf) {
        let key = self.dir.join("server.key");
        run_cmd(
            Command::new("openssl")
                .args(["genpkey", "-algorithm", "EC", "-pkeyopt"])
                .args(["ec_paramgen_curve:P-256", "-out"])
                .arg(&key),
        );
        let public = self.dir.join("server.pub.pem");
        run_cmd(
            Command::new("openssl")
                .args(["pkey", "-pubout", "-in"])
                .arg(&key)
                .arg("-out")
                .arg(&public),
        );
        let cert = self
            .issue(&public, "localhost", "serverAuth")
            .with_extension("pem");
        (cert, key)
    }
}
