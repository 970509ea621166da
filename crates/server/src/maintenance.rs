//! The operator's commands around the database's life: `backup`, `restore`, `migrate --check`
//! and `config check`. They work on files and the schema, not through the core.
use crate::config::{Config, Overrides};
use crate::secret::KeyFile;
use anyhow::{Context, bail};
use phonegate_store::backup;
use serde_json::Value;
use std::path::Path;

const PG_BACKUP: &str = "with PostgreSQL, back up with pg_dump and restore with pg_restore (docs/deployment.md, Several instances on PostgreSQL): \
pg_dump --format=custom --file phonegate.dump \"$PHONEGATE_DATABASE_URL\"; with every instance stopped, \
pg_restore --clean --if-exists --no-owner --dbname \"$PHONEGATE_DATABASE_URL\" phonegate.dump. Keep the key file's backup apart from the dump";

/// `phonegate backup FILE`: a consistent copy of the live SQLite database.
pub fn backup(config: &Config, dest: &Path) -> anyhow::Result<()> {
    if !config.database_url.starts_with("sqlite:") {
        bail!("{PG_BACKUP}");
    }
    let report = backup::backup(&config.database_url, dest)?;
    let key_file = KeyFile::locate(config).map(|k| k.path.display().to_string()).unwrap_or_else(|_| "the key file".into());
    println!(
        "backed up to {} ({} bytes, schema version {}) in {} ms; the server's writes went on meanwhile.\n\
         The key file {key_file} is not in the backup, and the backup opens nothing without it: back that file up on its own.",
        dest.display(),
        report.bytes,
        report.schema_version,
        report.took.as_millis()
    );
    Ok(())
}

/// `phonegate restore FILE` (server stopped): checks the backup and that the key file in place
/// opens it, then puts it in place of the configured database.
pub fn restore(config: &Config, file: &Path) -> anyhow::Result<()> {
    if !config.database_url.starts_with("sqlite:") {
        bail!("{PG_BACKUP}");
    }
    let found = backup::inspect(file)?;
    let key_file = KeyFile::locate(config)?;
    let Some(keys) = key_file.read()? else {
        bail!(
            "there is no key file at {}: put the backup of the key file there first (the database alone opens nothing)",
            key_file.path.display()
        );
    };
    let missing = phonegate_core::startup::missing_keys(&found.secrets, &keys);
    if !missing.is_empty() {
        bail!(
            "the key file {} does not open this backup (it was sealed with key {}): put the key file that belongs to it in place",
            key_file.path.display(),
            missing.join(", ")
        );
    }
    let aside = backup::restore(file, &config.database_url)?;
    println!("restored {} (schema version {}) as {}", file.display(), found.schema_version, config.database_url);
    if let Some(aside) = aside {
        println!("the database it replaced is kept as {}", aside.display());
    }
    if found.schema_version < phonegate_store::latest_schema_version() {
        println!("its schema is older than this release's: the next start migrates it");
    }
    Ok(())
}

/// `phonegate migrate --check`: Ok(true) when no migration is pending.
pub async fn migrations_pending(config: &Config) -> anyhow::Result<bool> {
    let pending = phonegate_store::backup::pending_migrations(&config.database_url).await.context("cannot read the schema version")?;
    if pending.is_empty() {
        println!("no migration pending (schema version {})", phonegate_store::latest_schema_version());
        return Ok(true);
    }
    let list: Vec<String> = pending.iter().map(i64::to_string).collect();
    println!("{} migration(s) pending: {} (run `phonegate migrate`, or start the server)", pending.len(), list.join(", "));
    Ok(false)
}

/// `phonegate config check FILE`: loads FILE as `serve` would (with the environment on top),
/// validates it, and prints the effective configuration with every secret masked.
pub fn config_check(file: &Path) -> anyhow::Result<()> {
    let config = Config::load(Some(file), &Overrides::default())?;
    // What `serve` builds from it before listening: providers and routing, silent routes, TLS.
    let providers = crate::app::build_providers(&config, std::sync::Arc::new(phonegate_core::ports::NoObserver))?;
    config.outbox_exposure(providers.has_outbox)?;
    crate::app::silent_routes(&config)?;
    if let (Some(cert), Some(key)) = (&config.tls.cert, &config.tls.key) {
        crate::app::tls_config(cert, key)?;
    }
    let mut value = serde_json::to_value(&config).context("cannot show the configuration")?;
    mask(&mut value, "");
    let shown: toml::Value = serde_json::from_value(value).context("cannot show the configuration")?;
    print!("{}", toml::to_string_pretty(&shown).context("cannot show the configuration")?);
    eprintln!("{}: valid", file.display());
    Ok(())
}

/// Replaces secrets by `***` (any value under a key that names a secret, and the credentials in
/// a database URL) and drops unset keys.
fn mask(value: &mut Value, key: &str) {
    const SECRET_ENDINGS: [&str; 5] = ["secret", "token", "password", "private_key", "credentials"];
    if key == "test_numbers" {
        // Each fixed code is the key to its number's account.
        return mask_all(value);
    }
    match value {
        Value::Object(map) => {
            // TOML has no null: an unset key is simply absent.
            map.retain(|_, v| !v.is_null());
            map.iter_mut().for_each(|(k, v)| mask(v, k));
        }
        Value::Array(items) => {
            items.retain(|v| !v.is_null());
            items.iter_mut().for_each(|v| mask(v, key));
        }
        Value::String(s) if key == "database_url" || key.ends_with("url") || key.ends_with("endpoint") => *s = redact_url(s),
        Value::Null => {}
        v if key != "secret_file" && SECRET_ENDINGS.iter().any(|w| key.ends_with(w)) => *v = Value::String("***".into()),
        _ => {}
    }
}

/// Every string below `value` masked (the keys stay: which numbers are test numbers is no secret).
fn mask_all(value: &mut Value) {
    match value {
        Value::Object(map) => map.values_mut().for_each(mask_all),
        Value::String(s) => *s = "***".into(),
        _ => {}
    }
}

/// A URL without its credentials and query: `scheme://***@host/path?***`.
fn redact_url(url: &str) -> String {
    let mut shown = crate::app::redact_url(url);
    if let Some(q) = shown.find('?') {
        shown.truncate(q);
        shown.push_str("?***");
    }
    shown
}

#[cfg(test)]
mod tests {
    #[test]
    fn secrets_are_masked_wherever_they_are() {
        let mut v = serde_json::json!({
            "database_url": "postgres://u:pw@db/x", "secret_file": "/k",
            "providers": { "t": { "auth_token": "tk-1-value", "account_sid": "AC1" } },
            "auth0": { "secret": "s" }, "list": [{ "client_secret": "c" }], "access_token_ttl": "15m",
            "test_numbers": { "+15005550006": "482913", "services": { "Shop": { "+15005550007": "771234" } } },
            "account_webhook": { "url": "https://hook:pw2@app.example/x?sig=abc" }
        });
        super::mask(&mut v, "");
        let shown = v.to_string();
        for secret in ["pw", "tk-1-value", "\"s\"", "\"c\"", "482913", "771234", "pw2", "sig=abc"] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        assert!(shown.contains("AC1") && shown.contains("/k") && shown.contains("15m") && shown.contains("+15005550007"), "{shown}");
    }
}
