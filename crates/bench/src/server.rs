//! The server under test: a `phonegate serve` process on loopback with a fresh database and the
//! dev outbox, and its resident memory read from /proc.
use anyhow::{Context, bail};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

pub struct Server {
    child: Child,
    pub base: String,
    pub key_id: String,
    pub secret: String,
    pub database_url: String,
}

/// The `phonegate` binary next to this one (both are built into the same target directory).
pub fn default_binary() -> PathBuf {
    let me = std::env::current_exe().unwrap_or_default();
    me.with_file_name(format!("phonegate{}", std::env::consts::EXE_SUFFIX))
}

impl Server {
    pub fn start(binary: &Path, database_url: &str) -> anyhow::Result<Server> {
        let key = Command::new(binary)
            .args(["keys", "create", "--name", "bench", "--json"])
            .env("PHONEGATE_DATABASE_URL", database_url)
            .output()
            .with_context(|| format!("cannot run {}", binary.display()))?;
        if !key.status.success() {
            bail!("creating a key failed: {}", String::from_utf8_lossy(&key.stderr));
        }
        let key: Value = serde_json::from_slice(&key.stdout)?;
        let mut serve = Command::new(binary);
        serve
            .args(["serve", "--listen", "127.0.0.1:0", "--log-format", "json"])
            .env("PHONEGATE_DATABASE_URL", database_url)
            .env("PHONEGATE_LOG_LEVEL", "warn,phonegate::app=info")
            .env("PHONEGATE_EXPIRY_SWEEP_SECS", "1")
            .stderr(Stdio::piped());
        // Every scenario sends to fresh numbers of one range from one client: the budgets stay
        // on (their counters are part of what is measured) with limits the load cannot reach.
        // A build from before budgets refuses the unknown keys: it is started without them.
        let budgets =
            [("PHONEGATE_BUDGETS__SENDS_PER_PREFIX", r#"["1000000000/1h"]"#), ("PHONEGATE_BUDGETS__THROTTLE_AFTER", "\"1000000000/1h\"")];
        let mut child = serve.envs(budgets).spawn()?;
        let mut stderr = BufReader::new(child.stderr.take().expect("piped"));
        let mut retried = false;
        let address = loop {
            let mut line = String::new();
            if stderr.read_line(&mut line)? == 0 {
                if retried {
                    bail!("the server exited during start-up");
                }
                retried = true;
                let _ = child.wait();
                child = budgets.iter().fold(&mut serve, |c, (k, _)| c.env_remove(k)).spawn()?;
                stderr = BufReader::new(child.stderr.take().expect("piped"));
                continue;
            }
            if let Some(a) = serde_json::from_str::<Value>(&line).ok().and_then(|v| v["address"].as_str().map(str::to_string)) {
                break a;
            }
        };
        // Keep draining the server's log so it never blocks on a full pipe.
        std::thread::spawn(move || for _ in stderr.lines() {});
        Ok(Server {
            child,
            base: format!("http://{address}"),
            key_id: key["id"].as_str().unwrap_or_default().into(),
            secret: key["secret"].as_str().unwrap_or_default().into(),
            database_url: database_url.into(),
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Resident memory of a process in KiB (`VmRSS`), 0 when unknown.
pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok()))
        .unwrap_or(0)
}
