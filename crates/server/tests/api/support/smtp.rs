//! A real SMTP server for the e-mail tests: `smtp_server.py` (Python's aiosmtpd) in a child
//! process, with a certificate from a private CA made for the test. scripts/test.sh installs
//! aiosmtpd in a virtualenv and names its Python in `SMTP_TEST_PYTHON`.
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use tempfile::TempDir;

pub const USER: &str = "mailer";
pub const PASSWORD: &str = "mail-secret";

pub struct SmtpServer {
    pub port: u16,
    /// The private CA that signed the server's certificate (for 127.0.0.1 and localhost).
    pub ca_pem: String,
    dir: TempDir,
    child: Child,
}

/// The Python with aiosmtpd: `SMTP_TEST_PYTHON`, else the virtualenv scripts/test.sh makes.
fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("SMTP_TEST_PYTHON") {
        return p.into();
    }
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/smtp-venv/bin/python");
    if venv.exists() { venv } else { "python3".into() }
}

/// A CA and a server certificate it signed, as PEM: (CA certificate, server certificate, key).
fn certificates() -> (String, String, String) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, "phonegate test mail CA");
    let ca_key = KeyPair::generate().unwrap();
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let leaf = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = leaf.signed_by(&key, &ca_cert, &ca_key).unwrap();
    (ca_cert.pem(), cert.pem(), key.serialize_pem())
}

impl SmtpServer {
    /// Starts a server on 127.0.0.1: `tls` is `starttls` (required before AUTH and MAIL),
    /// `implicit` or `none`; `auth`: AUTH (PLAIN/LOGIN) with `USER`/`PASSWORD` is required.
    pub async fn start(tls: &'static str, auth: bool) -> Self {
        tokio::task::spawn_blocking(move || Self::start_blocking(tls, auth)).await.unwrap()
    }

    fn start_blocking(tls: &str, auth: bool) -> Self {
        let python = python();
        let found = Command::new(&python).args(["-c", "import aiosmtpd"]).status();
        assert!(
            found.is_ok_and(|s| s.success()),
            "the e-mail tests need Python with aiosmtpd ({}): scripts/test.sh installs it into target/smtp-venv, \
             or set SMTP_TEST_PYTHON to a Python that has it",
            python.display()
        );
        let dir = tempfile::tempdir().unwrap();
        let (ca_pem, cert, key) = certificates();
        let (cert_path, key_path, out) = (dir.path().join("cert.pem"), dir.path().join("key.pem"), dir.path().join("mail"));
        std::fs::write(&cert_path, cert).unwrap();
        std::fs::write(&key_path, key).unwrap();
        std::fs::create_dir(&out).unwrap();
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/api/support/smtp_server.py");
        let mut cmd = Command::new(&python);
        cmd.arg(script).args(["--tls", tls, "--out"]).arg(&out).arg("--cert").arg(&cert_path).arg("--key").arg(&key_path);
        if auth {
            cmd.args(["--user", USER, "--password", PASSWORD]);
        }
        let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn().expect("the SMTP server starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let said: Value = serde_json::from_str(&line).unwrap_or_else(|_| panic!("the SMTP server did not say its port: {line:?}"));
        let port = said["port"].as_u64().expect("a port") as u16;
        Self { port, ca_pem, dir, child }
    }

    /// The messages the server took, oldest first, once there are `n`.
    pub async fn messages(&self, n: usize) -> Vec<Value> {
        let out = self.dir.path().join("mail");
        crate::helpers::eventually(|| {
            let out = out.clone();
            async move {
                let mut files: Vec<PathBuf> = std::fs::read_dir(&out)
                    .unwrap()
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.extension().is_some_and(|x| x == "json"))
                    .collect();
                files.sort();
                (files.len() >= n).then(|| files.iter().map(|f| serde_json::from_slice(&std::fs::read(f).unwrap()).unwrap()).collect())
            }
        })
        .await
    }

    /// How many messages the server took so far.
    pub fn taken(&self) -> usize {
        std::fs::read_dir(self.dir.path().join("mail"))
            .unwrap()
            .filter(|e| e.as_ref().is_ok_and(|e| e.path().extension().is_some_and(|x| x == "json")))
            .count()
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        // Closing its standard input stops it; a kill makes sure.
        drop(self.child.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
