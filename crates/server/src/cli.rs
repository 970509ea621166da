//! The command line: `phonegate serve | migrate | keys … | outbox`.
use crate::config::LogFormat;
use clap::{Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// phonegate proves that a person holds a phone number: it sends one-time codes and checks them.
#[derive(Debug, Parser)]
#[command(name = "phonegate", version, about, long_about = None)]
pub struct Cli {
    /// TOML configuration file (keys as in docs/configuration.md); environment variables PHONEGATE_* and
    /// flags override it.
    #[arg(long, global = true, env = "PHONEGATE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Database URL, e.g. sqlite://phonegate.db [config: database_url]
    #[arg(long, global = true)]
    pub database: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP server (creates and migrates the database, creates the default service).
    Serve {
        /// Address to listen on, e.g. 127.0.0.1:8080 [config: listen]
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// Log format [config: [log] format]
        #[arg(long, value_enum)]
        log_format: Option<LogFormat>,
        /// PEM certificate chain: serve HTTPS (with --tls-key) [config: [tls] cert]
        #[arg(long, requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// PEM private key for --tls-cert [config: [tls] key]
        #[arg(long, requires = "tls_cert")]
        tls_key: Option<PathBuf>,
    },
    /// Create the database if needed and apply pending migrations, then exit.
    Migrate {
        /// Apply nothing: exit 0 when no migration is pending, 1 (naming them) when some are.
        #[arg(long)]
        check: bool,
    },
    /// Copy the live SQLite database into a new FILE while the server runs (the key file is not
    /// in it: back that up on its own). With PostgreSQL, says how to use pg_dump.
    Backup {
        /// The new backup file.
        file: PathBuf,
    },
    /// Put a backup FILE in place of the configured SQLite database (server stopped), after
    /// checking the file, its schema version and that the key file in place opens it.
    Restore {
        /// The backup to restore.
        file: PathBuf,
    },
    /// Check a configuration.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Manage API keys (they authenticate every API request).
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Send SMS directly through the configured providers (to try a provider's settings).
    Sms {
        #[command(subcommand)]
        command: SmsCommand,
    },
    /// Manage admins (members with the admin role).
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Manage the keys access tokens (JWTs) are signed with.
    Jwt {
        #[command(subcommand)]
        command: JwtCommand,
    },
    /// Manage the key file: the secrets that seal codes and message bodies and sign tokens.
    Secret {
        #[command(subcommand)]
        command: SecretCommand,
    },
    /// Ask the server at the configured `listen` address whether it is ready (`GET /readyz`, over
    /// HTTPS when `[tls]` is set; a wildcard address is asked on loopback): exit 0 when it answers
    /// 200, 1 otherwise. For service managers, container and load-balancer health checks.
    Healthcheck {
        /// How long to wait for the answer, e.g. 5s or 500ms.
        #[arg(long, default_value = "5s", value_parser = phonegate_core::duration::parse)]
        timeout: Duration,
    },
    /// Show the messages the dev outbox provider stored instead of sending, newest first.
    Outbox {
        /// Only messages to this number (E.164 or national format with [phones] default_region).
        #[arg(long)]
        to: Option<String>,
        /// How many messages to show.
        #[arg(long, default_value_t = 20)]
        limit: u32,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create an admin account; its holder then signs in by code on the login page.
    Create {
        #[arg(long)]
        username: String,
        /// E.164, e.g. +4915123456789.
        #[arg(long)]
        phone: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum JwtCommand {
    /// Make a new signing key: it signs from now on (every instance within a minute); tokens
    /// signed by earlier keys stay valid until they expire.
    Rotate,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate FILE (with PHONEGATE_* on top, as `serve` reads it) and print the effective
    /// configuration with secrets masked; exit 2 when it is invalid.
    Check {
        /// The TOML configuration file.
        file: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum SecretCommand {
    /// Add a new key to the key file: servers started from then on seal with it, and older keys
    /// still open what they sealed. With several instances, copy the file to each before
    /// restarting it.
    Rotate,
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create a key and print its id and secret. The secret is shown only this once.
    Create {
        /// A name to recognise the key by.
        #[arg(long)]
        name: String,
        /// `admin` (services, keys, every verification) or `service` (only the `--service`s).
        #[arg(long, value_enum, default_value_t = KeyScopeArg::Admin)]
        scope: KeyScopeArg,
        /// A service (name or id) a `service` key may use; repeat for several.
        #[arg(long = "service")]
        services: Vec<String>,
        /// Give the key a Vonage application: the file with its RSA public key (PEM). Requests
        /// with a JWT signed by the application's private key then authenticate as this key
        /// (Vonage Verify v2); the application id is printed.
        #[arg(long, value_name = "FILE")]
        vonage_application_public_key: Option<PathBuf>,
        /// Where the application's status callbacks go (Vonage Verify v2 `summary` and `event`).
        #[arg(long, value_name = "URL", requires = "vonage_application_public_key")]
        vonage_status_url: Option<String>,
        /// The secret (32+ characters) the application's callbacks are signed with (HS256); also
        /// read from PHONEGATE_VONAGE_SIGNATURE_SECRET, which keeps it out of the process list.
        #[arg(long, value_name = "SECRET", env = "PHONEGATE_VONAGE_SIGNATURE_SECRET", hide_env_values = true)]
        vonage_signature_secret: Option<String>,
        /// Print {"id":…,"secret":…} as JSON.
        #[arg(long)]
        json: bool,
    },
    /// List keys (ids, names, creation and revocation times; never secrets).
    List {
        #[arg(long)]
        json: bool,
    },
    /// Revoke a key; requests using it are refused from then on.
    Revoke {
        /// The key id (SK…).
        id: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum KeyScopeArg {
    Admin,
    Service,
}

#[derive(Debug, Subcommand)]
pub enum SmsCommand {
    /// Send one message now, through the routing or through one named provider.
    Send {
        /// Recipient (E.164, or national format with [phones] default_region).
        #[arg(long)]
        to: String,
        /// Message text.
        #[arg(long)]
        body: String,
        /// Use only this provider (a name under [providers]) instead of the routing.
        #[arg(long)]
        provider: Option<String>,
    },
}
