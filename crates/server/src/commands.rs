//! The one-shot commands of the binary: migrate, keys, outbox, sms. Like the HTTP adapters, they
//! call the engine.
use crate::cli::KeyScopeArg;
use crate::config::Config;
use anyhow::{Context, bail};
use phonegate_core::apikey::KeyScope;
use phonegate_core::ids::new_id;
use phonegate_core::ports::{MessageSender, NoObserver, Outgoing};
use phonegate_core::{Caller, Core, SystemClock};
use phonegate_providers::Providers;
use secrecy::ExposeSecret;
use std::sync::Arc;

async fn open(config: &Config) -> anyhow::Result<(Core, Providers)> {
    let (core, providers, _) =
        crate::app::engine(config, Arc::new(SystemClock), Arc::new(NoObserver), crate::secret::Loader::Command).await?;
    Ok((core, providers))
}

fn cli() -> Caller {
    Caller::system("cli")
}

pub async fn admin_create(config: &Config, username: &str, phone: &str, json: bool) -> anyhow::Result<()> {
    let (core, _) = open(config).await?;
    let accounts = crate::app::accounts(config, &core).await?;
    let admin = accounts.create_admin(&cli(), username, phone).await?;
    if json {
        println!(
            "{}",
            serde_json::json!({ "id": admin.id, "username": admin.username, "phone_number": admin.phone.as_str(), "roles": admin.roles })
        );
    } else {
        println!("admin {} ({}) created: sign in at /login with the number {}", admin.username, admin.id, admin.phone.as_str());
    }
    Ok(())
}

pub async fn jwt_rotate(config: &Config) -> anyhow::Result<()> {
    let (core, _) = open(config).await?;
    let accounts = crate::app::accounts(config, &core).await?;
    let kid = accounts.rotate_key().await?;
    println!("new signing key {kid}: it signs access tokens from now on (running servers pick it up within a minute)");
    Ok(())
}

pub async fn secret_rotate(config: &Config) -> anyhow::Result<()> {
    let (id, file) = crate::secret::rotate(config).await?;
    println!(
        "new key {id} added to {}: servers started from now on seal with it; the older keys still open what they sealed.\n\
         Restart the server to use it (with several instances: copy the file to each first). The group invite code changes with the key.",
        file.display()
    );
    Ok(())
}

/// Only the schema: the key file is not needed (nor touched) to migrate.
pub async fn migrate(config: &Config) -> anyhow::Result<()> {
    phonegate_store::connect(&config.database_url, config.database_max_connections).await.context("cannot migrate the database")?;
    println!("database is up to date");
    Ok(())
}

/// A new key's Vonage application (`--vonage-application-public-key` and its companions).
pub struct VonageAppArgs {
    pub public_key: Option<std::path::PathBuf>,
    pub status_url: Option<String>,
    pub signature_secret: Option<String>,
}

pub async fn keys_create(
    config: &Config,
    name: &str,
    scope: KeyScopeArg,
    services: Vec<String>,
    app: VonageAppArgs,
    json: bool,
) -> anyhow::Result<()> {
    let scope = match scope {
        KeyScopeArg::Admin if !services.is_empty() => bail!("--service goes with --scope service (an admin key sees every service)"),
        KeyScopeArg::Admin => KeyScope::Admin,
        KeyScopeArg::Service => KeyScope::Services(services),
    };
    // The application's key file is read before the key is made.
    let new_app = match &app.public_key {
        None => None,
        Some(path) => {
            let pem = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
            Some(phonegate_core::vonage::NewApp {
                public_key: pem,
                status_url: app.status_url.clone(),
                signature_secret: app.signature_secret.clone().map(secrecy::SecretString::from),
            })
        }
    };
    let (core, _) = open(config).await?;
    let (key, secret) = core.api_keys.create(&cli(), name, scope).await?;
    let application_id = match new_app {
        None => None,
        Some(new) => match phonegate_core::vonage::VonageV2::new(&core, None).set_app(&cli(), &key.id, new).await {
            Ok(a) => Some(a.id),
            Err(e) => {
                core.api_keys.revoke(&cli(), &key.id).await?;
                bail!("the Vonage application was refused ({e}); the key {} was revoked", key.id);
            }
        },
    };
    // The one place the secret is shown.
    let secret = secret.expose_secret();
    if json {
        let mut out = serde_json::json!({ "id": key.id, "name": key.name, "scope": key.scope.as_str(), "secret": secret });
        if let Some(id) = &application_id {
            out["application_id"] = id.clone().into();
        }
        println!("{out}");
    } else {
        println!(
            "id:     {}\nsecret: {secret}\n\nThe secret is shown only now. Use it as `Authorization: Bearer SECRET`\nor as HTTP Basic credentials `id:secret`.",
            key.id
        );
        if let Some(id) = application_id {
            println!("\napplication_id: {id}\nSign Vonage Verify v2 JWTs with the application's private key and this id.");
        }
    }
    Ok(())
}

pub async fn keys_list(config: &Config, json: bool) -> anyhow::Result<()> {
    let keys = open(config).await?.0.api_keys.list(&cli()).await?;
    if json {
        let list: Vec<_> = keys
            .iter()
            .map(|k| {
                let services = match &k.scope {
                    KeyScope::Admin => Vec::new(),
                    KeyScope::Services(ids) => ids.clone(),
                };
                serde_json::json!({ "id": k.id, "name": k.name, "scope": k.scope.as_str(), "services": services, "created_at": k.created_at, "revoked_at": k.revoked_at })
            })
            .collect();
        println!("{}", serde_json::json!({ "keys": list }));
        return Ok(());
    }
    for k in keys {
        let state = k.revoked_at.map(|t| format!("revoked {}", t.to_rfc3339())).unwrap_or_else(|| "active".into());
        println!("{}  {}  {}  created {}  {}", k.id, k.name, k.scope.as_str(), k.created_at.to_rfc3339(), state);
    }
    Ok(())
}

pub async fn keys_revoke(config: &Config, id: &str) -> anyhow::Result<()> {
    if !open(config).await?.0.api_keys.revoke(&cli(), id).await? {
        bail!("no active key with id {id}");
    }
    println!("revoked {id}");
    Ok(())
}

pub async fn outbox(config: &Config, to: Option<&str>, limit: u32, json: bool) -> anyhow::Result<()> {
    if let Some(raw) = to {
        // A test number need not be an assigned number.
        let policy = config.phone_policy();
        if !policy.normalize(raw).is_some_and(|n| config.test_numbers().is_ok_and(|t| t.is_test(&n))) {
            policy.parse(raw).context("--to")?;
        }
    }
    let messages = open(config).await?.0.outbox.messages(&cli(), to, limit).await?;
    if json {
        println!("{}", serde_json::json!({ "messages": messages }));
    } else if messages.is_empty() {
        println!("the outbox is empty");
    }
    for m in messages.iter().filter(|_| !json) {
        let test = if m.test { "  (test number: not sent)" } else { "" };
        println!("{}  to {}{test}\n    {}", m.created_at.to_rfc3339(), m.to, m.body);
    }
    Ok(())
}

pub async fn sms_send(config: &Config, to: &str, body: &str, provider: Option<&str>) -> anyhow::Result<()> {
    let to = config.phone_policy().parse(to).context("--to")?;
    if body.is_empty() {
        bail!("--body must not be empty");
    }
    let (_, providers) = open(config).await?;
    let sms = Outgoing::text(new_id("SM"), to.into(), body.to_string());
    let sent = match provider {
        Some(name) => providers.sender.send_via(name, &sms).await,
        None => providers.sender.send(&sms).await,
    }?;
    if sent.provider == phonegate_core::outbox::PROVIDER {
        bail!("the dev outbox sends nothing and keeps only verification messages: configure a provider to try it");
    }
    println!("sent via {} (provider message id: {})", sent.provider, sent.provider_message_id.as_deref().unwrap_or("none"));
    Ok(())
}

/// `phonegate healthcheck`: `GET /readyz` on the configured listen address. It sends nothing
/// secret and reads only the status, so over HTTPS it accepts the server's certificate as it is
/// (it asks loopback, a name the certificate is rarely for).
pub async fn healthcheck(config: &Config, timeout: std::time::Duration) -> anyhow::Result<()> {
    let url = readyz_url(config);
    let client = reqwest::Client::builder().timeout(timeout).no_proxy().danger_accept_invalid_certs(true).build().context("HTTP client")?;
    let response = client.get(&url).send().await.with_context(|| format!("{url}: no answer"))?;
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    if !status.is_success() {
        bail!("{url} answered {status}: {}", body.chars().take(300).collect::<String>());
    }
    println!("{url}: ready");
    // Whatever `/readyz` wants an operator to know (a reverse proxy that is not trusted…).
    let details = serde_json::from_str::<serde_json::Value>(&body).ok().map(|b| b["details"].clone());
    if let Some(details) = details.filter(|d| d.as_object().is_some_and(|d| !d.is_empty())) {
        eprintln!("details: {details}");
    }
    Ok(())
}

/// Where the server named by `listen` answers: a wildcard address is reached on loopback.
fn readyz_url(config: &Config) -> String {
    let mut address = config.listen;
    if address.ip().is_unspecified() {
        let loopback: std::net::IpAddr = match address {
            std::net::SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            std::net::SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        };
        address.set_ip(loopback);
    }
    let scheme = if config.tls.cert.is_some() { "https" } else { "http" };
    format!("{scheme}://{address}/readyz")
}
