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

/// Budgets the bench's load would exhaust, kept on with limits out of reach (figment reads
/// lists from the environment as TOML). The new ones keep their default's windows, so they cost
/// what they cost by default (the prefix's one window is what earlier figures were measured with).
const BUDGETS: [(&str, &str); 5] = [
    ("PHONEGATE_BUDGETS__SENDS_PER_PREFIX", r#"["1000000000/1h"]"#),
    ("PHONEGATE_BUDGETS__THROTTLE_AFTER", r#""1000000000/1h""#),
    // Password logins send a code to the same few numbers every time; sign-ups and logins
    // start and verify from the bench's one address.
    ("PHONEGATE_BUDGETS__SENDS_PER_NUMBER", r#"["1000000000/10m", "1000000000/1h", "1000000000/1d"]"#),
    ("PHONEGATE_BUDGETS__STARTS_PER_IP", r#"["1000000000/1h", "1000000000/1d"]"#),
    ("PHONEGATE_BUDGETS__CHECKS_PER_IP", r#"["1000000000/1h", "1000000000/1d"]"#),
];

/// The silent-verification simulator (docs/silent.md), for the `silent` scenario, in builds
/// with silent verification.
const SILENT: [(&str, &str); 1] = [("PHONEGATE_SILENT__SIMULATOR", "true")];

/// Quiet logs (only the line with the address) and a sweep every second.
const BASE: [(&str, &str); 2] = [("PHONEGATE_LOG__LEVEL", "warn,phonegate::app=info"), ("PHONEGATE_RETENTION__SWEEP_INTERVAL", "1s")];

/// The same, and the simulator, in the names of builds before configuration tables.
const OLD_BASE: [(&str, &str); 2] = [("PHONEGATE_LOG_LEVEL", "warn,phonegate::app=info"), ("PHONEGATE_EXPIRY_SWEEP_SECS", "1")];
const OLD_SILENT: [(&str, &str); 1] = [("PHONEGATE_SILENT_SIMULATOR", "true")];

/// The login budgets (docs/accounts.md), in builds with accounts.
const ACCOUNT_BUDGETS: [(&str, &str); 2] = [
    ("PHONEGATE_BUDGETS__LOGINS_PER_IP", r#"["1000000000/15m", "1000000000/1d"]"#),
    ("PHONEGATE_BUDGETS__FAILED_LOGINS_PER_ACCOUNT", r#"["1000000000/15m", "1000000000/1d"]"#),
];

/// The `phonegate` binary next to this one (both are built into the same target directory).
pub fn default_binary() -> PathBuf {
    let me = std::env::current_exe().unwrap_or_default();
    me.with_file_name(format!("phonegate{}", std::env::consts::EXE_SUFFIX))
}

impl Server {
    /// Starts the server; with `oidc_dir`, it also writes a configuration file there with
    /// `public_url` and the bench's OpenID client ([`crate::oidc::phonegate_config`]) and listens
    /// on a port chosen beforehand (the issuer names it); its ID tokens are signed with
    /// `id_token_alg`.
    pub fn start(binary: &Path, database_url: &str, oidc_dir: Option<&Path>, id_token_alg: &str) -> anyhow::Result<Server> {
        let key = Command::new(binary)
            .args(["keys", "create", "--name", "bench", "--json"])
            .env("PHONEGATE_DATABASE_URL", database_url)
            .envs(phonegate_store::testing::secret_file(database_url).map(|f| ("PHONEGATE_SECRET_FILE", f)))
            .output()
            .with_context(|| format!("cannot run {}", binary.display()))?;
        if !key.status.success() {
            bail!("creating a key failed: {}", String::from_utf8_lossy(&key.stderr));
        }
        let key: Value = serde_json::from_slice(&key.stdout)?;
        let mut serve = Command::new(binary);
        let mut listen = "127.0.0.1:0".to_string();
        if let Some(dir) = oidc_dir {
            listen = free_loopback_address()?;
            let config = dir.join("phonegate-bench.toml");
            std::fs::write(&config, crate::oidc::phonegate_config(&format!("http://{listen}"), id_token_alg))?;
            serve.arg("--config").arg(config);
        }
        serve
            .args(["serve", "--listen", &listen, "--log-format", "json"])
            .env("PHONEGATE_DATABASE_URL", database_url)
            .envs(phonegate_store::testing::secret_file(database_url).map(|f| ("PHONEGATE_SECRET_FILE", f)))
            .stderr(Stdio::piped());
        // Every scenario sends to fresh numbers of one range from one client, and the accounts
        // scenarios log in again and again from one address to the same accounts: the budgets
        // stay on (their counters are part of what is measured), with each default's windows
        // but limits the load cannot reach. A build that does not know a key refuses it: it is
        // started again with the keys of the build before (old names; then no silent
        // verification; no accounts), then with none.
        let mut tiers: Vec<Vec<(&str, &str)>> = vec![
            [&BASE[..], &BUDGETS[..], &ACCOUNT_BUDGETS[..], &SILENT[..]].concat(),
            [&OLD_BASE[..], &BUDGETS[..], &ACCOUNT_BUDGETS[..], &OLD_SILENT[..]].concat(),
            [&OLD_BASE[..], &BUDGETS[..], &ACCOUNT_BUDGETS[..]].concat(),
            [&OLD_BASE[..], &BUDGETS[..]].concat(),
            OLD_BASE.to_vec(),
        ];
        tiers.reverse();
        let mut tier = tiers.pop().unwrap_or_default();
        let mut child = serve.envs(tier.iter().copied()).spawn()?;
        let mut stderr = BufReader::new(child.stderr.take().expect("piped"));
        let mut said = String::new();
        let address = loop {
            let mut line = String::new();
            if stderr.read_line(&mut line)? == 0 {
                let _ = child.wait();
                let Some(next) = tiers.pop() else { bail!("the server exited during start-up; it said last: {}", said.trim()) };
                eprintln!("phonegate-bench: the server did not start with {} keys; trying {}", tier.len(), next.len());
                for (k, _) in tier.iter().filter(|(k, _)| !next.iter().any(|(n, _)| n == k)) {
                    serve.env_remove(k);
                }
                tier = next;
                child = serve.spawn()?;
                stderr = BufReader::new(child.stderr.take().expect("piped"));
                continue;
            }
            if let Some(a) = serde_json::from_str::<Value>(&line).ok().and_then(|v| v["address"].as_str().map(str::to_string)) {
                break a;
            }
            said = line;
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

/// A loopback address with a port free at the moment (the kernel's choice, released at once).
fn free_loopback_address() -> anyhow::Result<String> {
    let socket = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(socket.local_addr()?.to_string())
}

/// Resident memory of a process in KiB (`VmRSS`), 0 when unknown.
pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok()))
        .unwrap_or(0)
}

/// CPU time a process used so far (user and system), in seconds; 0 when unknown.
pub fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // After the command name (in parentheses, maybe with spaces): state is field 3, utime and
    // stime are fields 14 and 15, in clock ticks of 1/100 s.
    let fields: Vec<&str> = stat.rsplit_once(')').map(|(_, rest)| rest.split_whitespace().collect()).unwrap_or_default();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
    (ticks(11) + ticks(12)) as f64 / 100.0
}

/// CPU time the whole machine used so far (every core, not idle or waiting), in seconds.
pub fn machine_cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let cpu: Vec<u64> = stat.lines().next().unwrap_or_default().split_whitespace().skip(1).filter_map(|f| f.parse().ok()).collect();
    // user, nice, system, (idle, iowait,) irq, softirq, steal
    [0, 1, 2, 5, 6, 7].iter().filter_map(|&i| cpu.get(i)).sum::<u64>() as f64 / 100.0
}

/// What other processes (not the server, not the bench) use of the machine over a stretch of
/// time: on a shared machine, what says whether a measurement had the cores to itself.
pub struct Others {
    pid: u32,
    at: std::time::Instant,
    machine: f64,
    ours: f64,
}

impl Others {
    pub fn start(server_pid: u32) -> Others {
        Others { pid: server_pid, at: std::time::Instant::now(), machine: machine_cpu_secs(), ours: Self::ours(server_pid) }
    }

    fn ours(pid: u32) -> f64 {
        cpu_secs(pid) + cpu_secs(std::process::id())
    }

    /// Cores the others used on average since the start.
    pub fn cores(&self) -> f64 {
        let others = (machine_cpu_secs() - self.machine) - (Self::ours(self.pid) - self.ours);
        (others / self.at.elapsed().as_secs_f64()).max(0.0)
    }
}
