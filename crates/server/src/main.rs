//! The `phonegate` binary: parses the command line and runs the chosen command.
use clap::Parser;
use phonegate::cli::{AdminCommand, Cli, Command, ConfigCommand, JwtCommand, KeysCommand, SecretCommand, SmsCommand};
use phonegate::config::{Config, Overrides};
use phonegate::{app, commands, maintenance, telemetry};
use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let overrides = match &cli.command {
        Command::Serve { listen, log_format, tls_cert, tls_key } => Overrides {
            listen: *listen,
            database_url: cli.database.clone(),
            log_format: *log_format,
            tls_cert: tls_cert.clone(),
            tls_key: tls_key.clone(),
        },
        _ => Overrides { database_url: cli.database.clone(), ..Default::default() },
    };
    if let Command::Config { command: ConfigCommand::Check { file } } = &cli.command {
        return match maintenance::config_check(file) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("phonegate: {e:#}");
                ExitCode::from(2)
            }
        };
    }
    let config = match Config::load(cli.config.as_deref(), &overrides) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("phonegate: {e}");
            return ExitCode::from(2);
        }
    };
    let result = match cli.command {
        Command::Serve { .. } => match telemetry::init(&config) {
            Ok(()) => app::serve(config).await,
            Err(e) => Err(e),
        },
        Command::Migrate { check: false } => commands::migrate(&config).await,
        Command::Migrate { check: true } => match maintenance::migrations_pending(&config).await {
            Ok(true) => Ok(()),
            Ok(false) => return ExitCode::FAILURE,
            Err(e) => Err(e),
        },
        Command::Backup { file } => maintenance::backup(&config, &file),
        Command::Restore { file } => maintenance::restore(&config, &file),
        Command::Config { command: ConfigCommand::Check { file } } => maintenance::config_check(&file),
        Command::Keys { command } => match command {
            KeysCommand::Create {
                name,
                scope,
                services,
                vonage_application_public_key,
                vonage_status_url,
                vonage_signature_secret,
                json,
            } => {
                let app = commands::VonageAppArgs {
                    public_key: vonage_application_public_key,
                    status_url: vonage_status_url,
                    signature_secret: vonage_signature_secret,
                };
                commands::keys_create(&config, &name, scope, services, app, json).await
            }
            KeysCommand::List { json } => commands::keys_list(&config, json).await,
            KeysCommand::Revoke { id } => commands::keys_revoke(&config, &id).await,
        },
        Command::Sms { command: SmsCommand::Send { to, body, provider } } => {
            commands::sms_send(&config, &to, &body, provider.as_deref()).await
        }
        Command::Admin { command: AdminCommand::Create { username, phone, json } } => {
            commands::admin_create(&config, &username, &phone, json).await
        }
        Command::Jwt { command: JwtCommand::Rotate } => commands::jwt_rotate(&config).await,
        Command::Secret { command: SecretCommand::Rotate } => commands::secret_rotate(&config).await,
        Command::Healthcheck { timeout } => commands::healthcheck(&config, timeout).await,
        Command::Outbox { to, limit, json } => commands::outbox(&config, to.as_deref(), limit, json).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("phonegate: {e:#}");
            ExitCode::FAILURE
        }
    }
}
