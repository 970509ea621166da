//! The key file: the server secrets that seal codes and message bodies and sign tokens, kept
//! outside the database so that a copy of the database (a backup, a dump, a stolen disk) opens
//! nothing. One key per line, oldest first; the newest seals, all of them open. Start-up settles
//! the file against the database (`load`); `phonegate secret rotate` adds a key (`rotate`).
use crate::config::Config;
use anyhow::{Context, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use phonegate_core::code::{ServerKeys, key_id};
use phonegate_core::ports::Store;
use phonegate_core::startup::{self, KeyError};
use rand::TryRngCore;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The file's name next to a SQLite database, and the systemd credential's name.
pub const FILE_NAME: &str = "phonegate-secret";
const HEADER: &str = "# phonegate key file: the keys that seal codes and message bodies and sign tokens.\n\
# Keep it apart from the database and back it up on its own: without it the database opens nothing.\n\
# One key per line, oldest first (`phonegate secret rotate` adds one); the newest seals.\n";
const VERSION: &str = "v1";

/// Where the key file is, and whether the server may write it (a systemd credential is
/// read-only).
#[derive(Debug, Clone)]
pub struct KeyFile {
    pub path: PathBuf,
    pub credential: bool,
}

impl KeyFile {
    /// `secret_file` (or `PHONEGATE_SECRET_FILE`); else the systemd credential
    /// `$CREDENTIALS_DIRECTORY/phonegate-secret` when there is one; else next to the SQLite file.
    pub fn locate(config: &Config) -> anyhow::Result<Self> {
        if let Some(path) = &config.secret_file {
            return Ok(Self { path: path.clone(), credential: false });
        }
        if let Some(dir) = std::env::var_os("CREDENTIALS_DIRECTORY") {
            let path = Path::new(&dir).join(FILE_NAME);
            if path.exists() {
                return Ok(Self { path, credential: true });
            }
        }
        if config.database_url.starts_with("sqlite:") {
            let db = phonegate_store::sqlite_path(&config.database_url)?;
            let dir = db.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
            return Ok(Self { path: dir.join(FILE_NAME), credential: false });
        }
        bail!(
            "set secret_file (or PHONEGATE_SECRET_FILE) to the key file: with PostgreSQL it has no default, and every instance on one database needs the same file (docs/deployment.md)"
        )
    }

    /// The keys, oldest first; `None` when there is no file.
    pub fn read(&self) -> anyhow::Result<Option<Vec<Vec<u8>>>> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("cannot read the key file {}", self.path.display())),
        };
        if !self.credential {
            check_mode(&self.path)?;
        }
        parse(&text).map(Some).with_context(|| format!("the key file {} is damaged", self.path.display()))
    }

    /// Writes `keys` as the whole file: a new file made readable by its owner only, synced,
    /// then renamed over the old one, so a crash leaves either file, never half of one. With
    /// `replace` false, an existing file is left alone and `AlreadyExists` returned.
    fn write(&self, keys: &[Vec<u8>], replace: bool) -> std::io::Result<()> {
        let dir = self.path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir)?;
        // A random name: a file left by a crash (or by a process with the same pid, in a
        // container) is never mistaken for this one.
        let tmp = dir.join(format!(".{FILE_NAME}.{:016x}.tmp", rand::random::<u64>()));
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let written = options.open(&tmp).and_then(|mut f| {
            f.write_all(render(keys).as_bytes())?;
            f.sync_all()
        });
        let placed = written.and_then(|()| if replace { std::fs::rename(&tmp, &self.path) } else { std::fs::hard_link(&tmp, &self.path) });
        let _ = std::fs::remove_file(&tmp);
        placed?;
        std::fs::File::open(dir)?.sync_all()
    }
}

fn new_secret() -> anyhow::Result<Vec<u8>> {
    let mut secret = vec![0u8; 32];
    rand::rngs::OsRng.try_fill_bytes(&mut secret).context("OS random source unavailable")?;
    Ok(secret)
}

fn render(keys: &[Vec<u8>]) -> String {
    let now = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ");
    let lines: String = keys.iter().map(|k| format!("{VERSION} {} {now}\n", STANDARD.encode(k))).collect();
    format!("{HEADER}{lines}")
}

fn parse(text: &str) -> anyhow::Result<Vec<Vec<u8>>> {
    let mut keys = Vec::new();
    for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty() && !l.trim_start().starts_with('#')) {
        let mut fields = line.split_whitespace();
        let key = match (fields.next(), fields.next()) {
            (Some(VERSION), Some(key)) => STANDARD.decode(key).ok().filter(|k| k.len() == 32),
            _ => None,
        };
        keys.push(key.with_context(|| format!("line {} is not `{VERSION} KEY [CREATED]` with a 32-byte base64 key", n + 1))?);
    }
    if keys.is_empty() {
        bail!("it holds no key");
    }
    Ok(keys)
}

/// A key file must be the server's own: owned by the user it runs as, and readable by nobody
/// else (another user could otherwise have planted it, and would know the key).
#[cfg(unix)]
fn check_mode(path: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let meta = std::fs::metadata(path)?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        bail!("the key file {} can be read by other users (mode {mode:o}): run `chmod 600 {}`", path.display(), path.display());
    }
    let me = rustix::process::geteuid().as_raw();
    if meta.uid() != me {
        bail!(
            "the key file {} belongs to user {}, not to the user the server runs as ({me}): `chown` it, or use the right file",
            path.display(),
            meta.uid()
        );
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_mode(_: &Path) -> anyhow::Result<()> {
    Ok(())
}

/// Who is loading the keys: only a server moves an earlier release's secret out of the
/// database; a one-shot command (perhaps in a throwaway container) must not carry it off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loader {
    Server,
    Command,
}

/// The server keys for the database: read from the key file, or, on the first start, made and
/// written to a new one. A server on a database from a release that kept its secret inside moves
/// it to the file, records it, and erases it from the database's files. Refuses a key file that
/// does not hold every key the database was sealed with, and a missing one once anything was
/// sealed.
pub async fn load(config: &Config, store: &dyn Store, loader: Loader) -> anyhow::Result<ServerKeys> {
    let file = KeyFile::locate(config)?;
    let shown = file.path.display().to_string();
    let database = startup::inspect(store).await.context("cannot read the database's key records")?;
    if database.erase_pending && loader == Loader::Server {
        startup::erase_legacy(store).await.context("cannot finish erasing the server secret from the database's files")?;
        tracing::warn!("finished erasing the earlier release's server secret from the database's files (an earlier start was interrupted)");
    }
    let keys = match (file.read()?, database.legacy) {
        (Some(keys), Some(legacy)) => {
            if !keys.contains(&legacy) {
                bail!(
                    "the database holds its own server secret (from an earlier release) and it is not in the key file {shown}: move that file away and start the server again to have the secret moved into a new key file"
                );
            }
            if loader == Loader::Server {
                // A move that was interrupted after the file was written.
                let keys = register(store, keys, &shown).await?;
                startup::erase_legacy(store).await.context("cannot erase the server secret from the database")?;
                tracing::warn!(key_file = %shown, "erased the server secret left in the database by an interrupted move to the key file");
                return Ok(keys);
            }
            keys
        }
        (Some(keys), None) => keys,
        (None, Some(_)) if loader == Loader::Command => bail!(
            "this database still holds its server secret (from an earlier release): start `phonegate serve` once, on the machine that keeps the key file {shown}, to move it there; then run this command"
        ),
        (None, Some(legacy)) => {
            if file.credential {
                bail!(
                    "the database holds its server secret and the key file {shown} is a read-only credential: start once without the credential to move the secret into a key file, then load that file as the credential"
                );
            }
            file.write(std::slice::from_ref(&legacy), false).with_context(|| format!("cannot write the key file {shown}"))?;
            // Recorded before it is erased: from here on an instance without this file refuses
            // to start instead of taking the database for a new one.
            let keys = register(store, vec![legacy.clone()], &shown).await?;
            startup::erase_legacy(store).await.context("cannot erase the server secret from the database")?;
            tracing::warn!(key_file = %shown, key = %key_id(&legacy), "moved the server secret out of the database into the key file and erased it from the database's files: back the key file up apart from the database");
            return Ok(keys);
        }
        (None, None) if !database.recorded.is_empty() => bail!(
            "the key file {shown} is missing, and this database was sealed with key {}: put the key file back from its backup (a new key would leave every sealed code, message and signing key unreadable); see docs/deployment.md",
            database.recorded.join(", ")
        ),
        (None, None) => {
            if file.credential {
                bail!("the key file {shown} is missing");
            }
            let secret = new_secret()?;
            match file.write(std::slice::from_ref(&secret), false) {
                Ok(()) => {
                    tracing::info!(key_file = %shown, key = %key_id(&secret), "created the key file: back it up apart from the database")
                }
                // Another process on the same directory made it first: use that one.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e).with_context(|| format!("cannot create the key file {shown}")),
            }
            file.read()?.with_context(|| format!("the key file {shown} vanished"))?
        }
    };
    register(store, keys, &shown).await
}

async fn register(store: &dyn Store, keys: Vec<Vec<u8>>, shown: &str) -> anyhow::Result<ServerKeys> {
    match startup::register(store, keys).await {
        Ok(keys) => Ok(keys),
        Err(KeyError::Unknown { missing }) => bail!(
            "the key file {shown} does not hold key {} that this database was sealed with: use the key file this database was made with (every instance on one database needs the same file; after `phonegate secret rotate`, copy the new file to every instance before restarting it)",
            missing.join(", ")
        ),
        Err(KeyError::Store(e)) => Err(e).context("cannot record the server keys"),
    }
}

/// `phonegate secret rotate`: adds a new key to the key file and records it; a server started
/// from then on seals with it, and every older key still opens what it sealed.
pub async fn rotate(config: &Config) -> anyhow::Result<(String, PathBuf)> {
    let file = KeyFile::locate(config)?;
    if file.credential {
        bail!(
            "the key file {} is a read-only systemd credential: rotate the file it is loaded from (PHONEGATE_SECRET_FILE=/etc/credstore/phonegate-secret phonegate secret rotate)",
            file.path.display()
        );
    }
    // One rotation at a time, from reading the file to recording the new key: two at once would
    // each write a file without the other's key, or read the file before the other's write.
    let dir = file.path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("cannot make {}", dir.display()))?;
    let mut options = std::fs::OpenOptions::new();
    options.create(true).truncate(false).write(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let lock = options.open(dir.join(format!(".{FILE_NAME}.lock"))).context("cannot lock the key file")?;
    let lock = tokio::task::spawn_blocking(move || lock.lock().map(|()| lock)).await.context("cannot lock the key file")?;
    let _lock = lock.context("cannot lock the key file")?;
    let store =
        phonegate_store::connect(&config.database_url, config.database_max_connections).await.context("cannot open the database")?;
    load(config, store.as_ref(), Loader::Command).await?;
    let mut keys = file.read()?.context("the key file vanished")?;
    let secret = new_secret()?;
    let id = key_id(&secret);
    keys.push(secret);
    file.write(&keys, true).with_context(|| format!("cannot write the key file {}", file.path.display()))?;
    register(store.as_ref(), keys, &file.path.display().to_string()).await?;
    Ok((id, file.path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_written_file_reads_back_and_only_its_owner_may_read_it() {
        let dir = tempfile::tempdir().unwrap();
        let file = KeyFile { path: dir.path().join(FILE_NAME), credential: false };
        let keys = vec![vec![1u8; 32], vec![2u8; 32]];
        file.write(&keys, false).unwrap();
        assert_eq!(file.read().unwrap(), Some(keys.clone()));
        assert_eq!(file.write(&keys, false).unwrap_err().kind(), std::io::ErrorKind::AlreadyExists);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&file.path).unwrap().permissions().mode() & 0o777, 0o600);
            std::fs::set_permissions(&file.path, std::fs::Permissions::from_mode(0o644)).unwrap();
            assert!(file.read().unwrap_err().to_string().contains("chmod 600"));
            std::fs::set_permissions(&file.path, std::fs::Permissions::from_mode(0o600)).unwrap();
            // Another user's file (only root can make one here; CI runs as root).
            if rustix::process::geteuid().is_root() {
                std::os::unix::fs::chown(&file.path, Some(65534), None).unwrap();
                assert!(file.read().unwrap_err().to_string().contains("belongs to user 65534"));
            }
        }
    }

    #[test]
    fn damaged_files_are_refused_with_the_line() {
        assert!(parse("# nothing\n").is_err());
        let e = parse(&format!("v1 {}\nv1 short\n", STANDARD.encode([7u8; 32]))).unwrap_err();
        assert!(e.to_string().contains("line 2"), "{e}");
        assert_eq!(parse(&render(&[vec![9u8; 32]])).unwrap(), vec![vec![9u8; 32]]);
    }
}
