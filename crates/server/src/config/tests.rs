//! Configuration loading: layers, providers, secrets from files, and what is refused.
use super::*;
use figment::Jail;

#[test]
fn layers_apply_in_order_and_unknown_keys_are_refused() {
    Jail::expect_with(|jail| {
        jail.create_file("p.toml", "listen = \"127.0.0.1:9000\"\ndatabase_url = \"sqlite://file.db\"\n[phones]\ndefault_region = \"DE\"")?;
        jail.set_env("PHONEGATE_DATABASE_URL", "sqlite://env.db");
        let c = Config::load(Some(Path::new("p.toml")), &Overrides::default()).unwrap();
        assert_eq!((c.listen.port(), c.database_url.as_str(), c.phones.default_region.as_deref()), (9000, "sqlite://env.db", Some("DE")));
        let flags = Overrides { listen: Some("127.0.0.1:9001".parse().unwrap()), ..Default::default() };
        assert_eq!(Config::load(Some(Path::new("p.toml")), &flags).unwrap().listen.port(), 9001);

        jail.create_file("bad.toml", "lissten = \"127.0.0.1:1\"")?;
        let err = Config::load(Some(Path::new("bad.toml")), &Overrides::default()).unwrap_err();
        assert!(matches!(err, ConfigError::Invalid(_)) && err.to_string().contains("lissten"), "{err}");
        jail.set_env("PHONEGATE_DATABSE_URL", "x");
        assert!(Config::load(None, &Overrides::default()).unwrap_err().to_string().contains("databse_url"));
        Ok(())
    });
}

#[test]
fn providers_and_routing_load_with_secrets_from_files() {
    Jail::expect_with(|jail| {
        jail.create_file("token.txt", "s3cret\n")?;
        jail.create_file(
            "p.toml",
            r#"
            [providers.tw]
            kind = "twilio"
            account_sid = "AC1"
            auth_token_file = "token.txt"
            from = "+15005550006"
            timeout = "800ms"
            [providers.sg]
            kind = "sipgate"
            token_id = "token-1"
            token = "t"
            sms_id = "s0"
            [routing]
            providers = ["tw"]
            [[routing.routes]]
            prefix = "+49"
            providers = ["sg", "tw"]
            "#,
        )?;
        jail.set_env("PHONEGATE_PROVIDERS__SG__SMS_ID", "s1");
        let c = Config::load(Some(Path::new("p.toml")), &Overrides::default()).unwrap();
        let tw = &c.providers["tw"];
        assert_eq!(tw.timeout, Duration::from_millis(800));
        match &tw.kind {
            phonegate_providers::ProviderKind::Twilio(t) => assert_eq!(t.auth_token.expose(), "s3cret"),
            other => panic!("{other:?}"),
        }
        match &c.providers["sg"].kind {
            phonegate_providers::ProviderKind::Sipgate(s) => assert_eq!(s.sms_id, "s1"),
            other => panic!("{other:?}"),
        }
        assert_eq!(c.routing.default.routes[0].providers, ["sg", "tw"]);
        assert!(!format!("{c:?}").contains("s3cret"), "secrets are redacted in Debug");

        jail.clear_env();
        jail.create_file("bad.toml", "[providers.x]\nkind = \"twilio\"\naccount_sid = \"AC\"\nauth_token = \"t\"\nauth_tokn = \"t\"")?;
        let err = Config::load(Some(Path::new("bad.toml")), &Overrides::default()).unwrap_err();
        assert!(err.to_string().contains("auth_tokn"), "{err}");

        jail.create_file("missing-secret.toml", "[providers.x]\nkind = \"twilio\"\naccount_sid = \"AC\"\nauth_token_file = \"nope.txt\"")?;
        let err = Config::load(Some(Path::new("missing-secret.toml")), &Overrides::default()).unwrap_err();
        assert!(
            matches!(&err, ConfigError::SecretFile { table, key, .. } if table == "providers.x" && key == "auth_token_file"),
            "{err:?}"
        );
        assert!(err.to_string().starts_with("providers.x.auth_token_file: cannot read nope.txt: "), "{err}");
        jail.create_file("not-a-path.toml", "[providers.x]\nkind = \"twilio\"\naccount_sid = \"AC\"\nauth_token_file = 7")?;
        let err = Config::load(Some(Path::new("not-a-path.toml")), &Overrides::default()).unwrap_err();
        assert_eq!(err.to_string(), "providers.x.auth_token_file must be a file path");
        Ok(())
    });
}

#[test]
fn call_and_whatsapp_providers_load_with_keys_and_tokens_from_files() {
    Jail::expect_with(|jail| {
        jail.create_file("app.key", "-----BEGIN PRIVATE KEY-----\nMIIC\n-----END PRIVATE KEY-----\n")?;
        jail.create_file("wa.token", "EAAJB-token\n")?;
        jail.create_file(
            "p.toml",
            r#"
            [providers.vg]
            kind = "vonage"
            api_key = "abcd1234"
            api_secret = "s"
            application_id = "aaaaaaaa-bbbb-cccc-dddd-0123456789ab"
            private_key_file = "app.key"
            voice_from = "447700900001"
            whatsapp_from = "14157386102"
            whatsapp_template = "acme_otp"
            whatsapp_languages = ["en_US", "de"]
            [providers.wa]
            kind = "whatsapp_cloud"
            phone_number_id = "106540352242922"
            access_token_file = "wa.token"
            app_secret = "meta-secret"
            verify_token = "hub-token"
            template = "acme_otp"
            channels = ["whatsapp"]
            "#,
        )?;
        let c = Config::load(Some(Path::new("p.toml")), &Overrides::default()).unwrap();
        match &c.providers["vg"].kind {
            phonegate_providers::ProviderKind::Vonage(v) => {
                assert!(v.private_key.as_ref().unwrap().expose().ends_with("-----END PRIVATE KEY-----"));
                assert_eq!(v.whatsapp_languages.as_deref(), Some(&["en_US".to_string(), "de".to_string()][..]));
            }
            other => panic!("{other:?}"),
        }
        match &c.providers["wa"].kind {
            phonegate_providers::ProviderKind::WhatsappCloud(w) => {
                assert_eq!((w.access_token.expose(), w.template.as_str()), ("EAAJB-token", "acme_otp"));
            }
            other => panic!("{other:?}"),
        }
        assert!(!format!("{c:?}").contains("EAAJB-token") && !format!("{c:?}").contains("meta-secret"));
        Ok(())
    });
}

#[test]
fn an_smtp_provider_reads_its_password_and_private_ca_from_files() {
    Jail::expect_with(|jail| {
        jail.create_file("smtp-password", "mail-pass\n")?;
        jail.create_file("ca.pem", "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")?;
        jail.create_file(
            "p.toml",
            r#"
            [providers.mail]
            kind = "smtp"
            host = "smtp.example.com"
            tls = "implicit"
            ca_file = "ca.pem"
            username = "phonegate"
            password_file = "smtp-password"
            from = "Example <codes@example.com>"
            timeout = "15s"
            "#,
        )?;
        let c = Config::load(Some(Path::new("p.toml")), &Overrides::default()).unwrap();
        let mail = &c.providers["mail"];
        assert_eq!(mail.timeout, Duration::from_secs(15));
        match &mail.kind {
            phonegate_providers::ProviderKind::Smtp(m) => {
                assert_eq!(
                    (m.tls, m.port(), m.password.as_ref().map(|p| p.expose())),
                    (phonegate_providers::SmtpTls::Implicit, 465, Some("mail-pass"))
                );
                assert!(m.ca.as_deref().is_some_and(|ca| ca.starts_with("-----BEGIN CERTIFICATE-----")));
            }
            other => panic!("{other:?}"),
        }
        assert!(!format!("{c:?}").contains("mail-pass"), "secrets are redacted in Debug");
        jail.create_file("bad.toml", "[providers.mail]\nkind = \"smtp\"\nhost = \"h\"\nfrom = \"a@b.c\"\ntls = \"ssl\"")?;
        let err = Config::load(Some(Path::new("bad.toml")), &Overrides::default()).unwrap_err();
        assert!(err.to_string().contains("ssl"), "{err}");
        Ok(())
    });
}

#[test]
fn silent_providers_load_with_secrets_from_files_and_bad_combinations_are_refused() {
    Jail::expect_with(|jail| {
        jail.create_file("truid.txt", "tru-secret\n")?;
        jail.create_file(
            "p.toml",
            r#"
            public_url = "https://verify.example.com"
            [silent]
            timeout = "1m"
            [silent.providers.truid]
            kind = "truid"
            client_id = "cid"
            client_secret_file = "truid.txt"
            [silent.routing]
            providers = ["truid"]
            routes = [{ prefix = "+44", providers = ["truid"] }]
            "#,
        )?;
        let c = Config::load(Some(Path::new("p.toml")), &Overrides::default()).unwrap();
        let phonegate_providers::silent::SilentProviderSettings::Truid(t) = &c.silent.providers["truid"].kind else { panic!() };
        assert_eq!(t.client_secret.expose(), "tru-secret");
        assert_eq!((c.silent.routing.routes[0].prefix.as_str(), c.silent.timeout), ("+44", Duration::from_secs(60)));

        jail.create_file("nourl.toml", "[silent.providers.t]\nkind = \"truid\"\nclient_id = \"c\"\nclient_secret = \"s\"\n")?;
        let e = Config::load(Some(Path::new("nourl.toml")), &Overrides::default()).unwrap_err();
        assert!(matches!(e, ConfigError::SilentNeedsPublicUrl), "{e}");

        jail.create_file("sim.toml", "[silent]\nsimulator = true\n[providers.tw]\nkind = \"twilio\"\naccount_sid = \"AC1\"\nauth_token = \"t\"\nfrom = \"+15005550006\"\n")?;
        let e = Config::load(Some(Path::new("sim.toml")), &Overrides::default()).unwrap_err();
        assert!(matches!(&e, ConfigError::SimulatorWithProviders(names) if names == "tw"), "{e}");
        jail.set_env("PHONEGATE_SILENT__SIMULATOR", "true");
        assert!(Config::load(None, &Overrides::default()).unwrap().silent.simulator, "with the dev outbox it is allowed");
        jail.set_env("PHONEGATE_SILENT__TIMEOUT", "5s");
        assert!(matches!(Config::load(None, &Overrides::default()).unwrap_err(), ConfigError::SilentTimeout));
        Ok(())
    });
}

#[test]
fn auth0_and_redirect_clients_load_with_secrets_from_files_and_bad_targets_are_refused() {
    Jail::expect_with(|jail| {
        jail.create_file("auth0.txt", "tenant-secret\n")?;
        jail.create_file(
            "p.toml",
            r#"
            [auth0]
            domain = "acme.eu.auth0.com"
            secret_file = "auth0.txt"
            [redirect_clients.shop]
            secret = "s"
            issuer = "shop"
            return_urls = ["https://shop.example/done"]
            "#,
        )?;
        let c = Config::load(Some(Path::new("p.toml")), &Overrides::default()).unwrap();
        let clients = c.redirect_clients();
        assert_eq!(clients[0].name, "auth0");
        assert_eq!(clients[0].secret, b"tenant-secret");
        assert_eq!(clients[0].return_urls, ["https://acme.eu.auth0.com/continue"]);
        assert_eq!(clients[1].return_urls, ["https://shop.example/done"]);

        jail.set_env("PHONEGATE_AUTH0__DOMAIN", "env.auth0.com");
        jail.set_env("PHONEGATE_AUTH0__SECRET", "from-env");
        let c = Config::load(None, &Overrides::default()).unwrap();
        assert_eq!(
            c.auth0.as_ref().map(|a| (a.domain.as_str(), a.secret.expose(), a.phone_claim.as_str())),
            Some(("env.auth0.com", "from-env", "phone_number"))
        );
        for bad in ["evil.example/continue", "a@b.example", "//x", "x.example:443", ""] {
            jail.set_env("PHONEGATE_AUTH0__DOMAIN", bad);
            assert!(matches!(Config::load(None, &Overrides::default()).unwrap_err(), ConfigError::Integration(_)), "{bad}");
        }
        jail.clear_env();
        for bad in ["http://shop.example/done", "https://user@shop.example/", "https://shop.example/#x", "shop.example"] {
            jail.create_file("c.toml", &format!("[redirect_clients.shop]\nsecret = \"s\"\nissuer = \"i\"\nreturn_urls = [\"{bad}\"]\n"))?;
            assert!(
                matches!(Config::load(Some(Path::new("c.toml")), &Overrides::default()).unwrap_err(), ConfigError::Integration(_)),
                "{bad}"
            );
        }
        Ok(())
    });
}

#[test]
fn bad_values_are_refused() {
    Jail::expect_with(|jail| {
        let load = || Config::load(None, &Overrides::default()).unwrap_err();
        jail.set_env("PHONEGATE_PHONES__DEFAULT_REGION", "XX");
        assert_eq!(load().to_string(), "phones.default_region `XX` is not an ISO 3166-1 region code");
        jail.set_env("PHONEGATE_PHONES__DEFAULT_REGION", "DE");
        jail.set_env("PHONEGATE_PHONES__DENIED_COUNTRIES", "[\"ZZ\"]");
        assert_eq!(load().to_string(), "phones.denied_countries `ZZ` is not an ISO 3166-1 region code");
        jail.clear_env();
        jail.set_env("PHONEGATE_PUBLIC_URL", "verify.example.com");
        assert!(matches!(load(), ConfigError::PublicUrl { url } if url == "verify.example.com"));
        jail.clear_env();
        jail.set_env("PHONEGATE_TLS__CERT", "cert.pem");
        assert_eq!(load().to_string(), "tls.cert and tls.key must be given together");
        jail.clear_env();
        jail.set_env("PHONEGATE_DELIVERY__LEASE", "0s");
        assert!(matches!(load(), ConfigError::SendIntervals));
        jail.clear_env();
        jail.set_env("PHONEGATE_RETENTION__SWEEP_INTERVAL", "0s");
        assert!(matches!(load(), ConfigError::ExpirySweep));
        jail.clear_env();
        // Months (`M`) where minutes were meant, and durations beyond any date: refused.
        jail.set_env("PHONEGATE_API_KEY_CACHE", "5M");
        assert_eq!(load().to_string(), "api_key_cache must be at most 5m");
        jail.set_env("PHONEGATE_API_KEY_CACHE", "5m");
        jail.set_env("PHONEGATE_RETENTION__KEEP", "1000000y");
        assert_eq!(load().to_string(), "retention.keep must be at most 3650d");
        jail.clear_env();
        jail.set_env("PHONEGATE_ACCOUNTS__REFRESH_REUSE", "61s");
        assert!(load().to_string().contains("accounts.refresh_reuse must be between 0s and 60s"), "{}", load());
        jail.set_env("PHONEGATE_ACCOUNTS__REFRESH_REUSE", "0s");
        assert_eq!(Config::load(None, &Overrides::default()).unwrap().accounts.refresh_reuse_secs, 0);
        jail.clear_env();
        assert_eq!(Config::load(None, &Overrides::default()).unwrap().accounts.refresh_reuse_secs, 10);
        let err = Config::load(Some(Path::new("absent.toml")), &Overrides::default()).unwrap_err();
        assert_eq!(err.to_string(), "configuration file absent.toml does not exist");
        Ok(())
    });
}

#[test]
fn client_ip_header_is_one_of_two() {
    Jail::expect_with(|jail| {
        assert_eq!(Config::load(None, &Overrides::default()).unwrap().http.client_ip_header, ClientIpHeader::XForwardedFor);
        jail.set_env("PHONEGATE_HTTP__CLIENT_IP_HEADER", "forwarded");
        assert_eq!(Config::load(None, &Overrides::default()).unwrap().http.client_ip_header, ClientIpHeader::Forwarded);
        jail.set_env("PHONEGATE_HTTP__CLIENT_IP_HEADER", "x-real-ip");
        let err = Config::load(None, &Overrides::default()).unwrap_err();
        assert!(err.to_string().contains("x-real-ip"), "{err}");
        Ok(())
    });
}

#[test]
fn the_dev_outbox_listens_beyond_loopback_only_when_told() {
    Jail::expect_with(|jail| {
        let local = Config::load(None, &Overrides::default()).unwrap();
        assert!(!local.outbox_exposure(true).unwrap(), "loopback is always allowed");
        jail.set_env("PHONEGATE_LISTEN", "0.0.0.0:8080");
        let open = Config::load(None, &Overrides::default()).unwrap();
        let err = open.outbox_exposure(true).unwrap_err();
        assert!(matches!(err, ConfigError::OutboxNotLocal { .. }) && err.to_string().contains("outbox_public = true"), "{err}");
        assert!(!open.outbox_exposure(false).unwrap(), "real providers may listen anywhere");
        jail.set_env("PHONEGATE_LISTEN", "[::ffff:127.0.0.1]:8080");
        assert!(!Config::load(None, &Overrides::default()).unwrap().outbox_exposure(true).unwrap());
        jail.set_env("PHONEGATE_LISTEN", "0.0.0.0:8080");
        jail.set_env("PHONEGATE_OUTBOX_PUBLIC", "true");
        assert!(Config::load(None, &Overrides::default()).unwrap().outbox_exposure(true).unwrap(), "allowed, and reported exposed");
        Ok(())
    });
}

#[test]
fn no_configuration_at_all_is_the_defaults() {
    Jail::expect_with(|_| {
        let c = Config::load(None, &Overrides::default()).unwrap();
        assert_eq!(c, Config::default());
        assert_eq!((c.listen.port(), c.database_url.as_str(), c.log.level.as_str()), (8080, "sqlite://phonegate.db", "info"));
        assert_eq!(
            (c.delivery.send_wait, c.delivery.lease, c.retention.keep),
            (Duration::from_secs(5), Duration::from_secs(60), Duration::from_secs(30 * 86_400))
        );
        assert_eq!((c.accounts.code_ttl_secs, c.accounts.session_idle_days, c.accounts.invite_ttl_hours), (600, 30, 72));
        Ok(())
    });
}

#[test]
fn each_group_loads_from_the_file_and_the_environment_and_flags_win() {
    Jail::expect_with(|jail| {
        jail.create_file(
            "p.toml",
            r#"
            public_url = "https://verify.example.com"
            api_key_cache = "500ms"
            [tls]
            cert = "c.pem"
            key = "k.pem"
            [log]
            format = "json"
            level = "debug"
            [http]
            max_body_bytes = 1024
            trusted_proxies = ["10.0.0.0/8"]
            client_ip_header = "forwarded"
            [phones]
            default_region = "DE"
            allowed_countries = ["DE", "AT"]
            denied_prefixes = ["+881"]
            [delivery]
            send_wait = "2s"
            dispatch_interval = "250ms"
            lease = "2m"
            [retention]
            keep = "7d"
            sweep_interval = "1m"
            [compat]
            vonage_min_cancel = "0s"
            [connections]
            idle = "90s"
            [accounts]
            code_ttl = "5m"
            session_idle = "14d"
            session_max = "30d"
            invite_ttl = "2d"
            access_token_ttl = "15m"
            "#,
        )?;
        jail.set_env("PHONEGATE_DELIVERY__SEND_WAIT", "3s");
        jail.set_env("PHONEGATE_ACCOUNTS__REAUTH", "1h");
        let flags = Overrides { log_format: Some(LogFormat::Human), tls_cert: Some("flag.pem".into()), ..Default::default() };
        let c = Config::load(Some(Path::new("p.toml")), &flags).unwrap();
        assert_eq!((c.public_url.as_deref(), c.api_key_cache), (Some("https://verify.example.com"), Duration::from_millis(500)));
        assert_eq!(c.tls, TlsSettings { cert: Some("flag.pem".into()), key: Some("k.pem".into()) });
        assert_eq!(c.log, LogSettings { format: LogFormat::Human, level: "debug".into() });
        assert_eq!((c.http.max_body_bytes, c.http.client_ip_header, c.http.trusted_proxies.len()), (1024, ClientIpHeader::Forwarded, 1));
        assert_eq!((c.phones.default_region.as_deref(), c.phones.allowed_countries.len()), (Some("DE"), 2));
        assert_eq!(
            c.delivery,
            DeliverySettings {
                send_wait: Duration::from_secs(3),
                dispatch_interval: Duration::from_millis(250),
                lease: Duration::from_secs(120)
            }
        );
        assert_eq!(c.delivery_times().lease, chrono::Duration::seconds(120));
        assert_eq!((c.retention(), c.retention.sweep_interval), (Some(chrono::Duration::days(7)), Duration::from_secs(60)));
        assert_eq!((c.compat.vonage_min_cancel, c.connections.idle), (Duration::ZERO, Duration::from_secs(90)));
        let a = &c.accounts;
        assert_eq!((a.code_ttl_secs, a.session_idle_days, a.session_max_days, a.invite_ttl_hours), (300, 14, 30, 48));
        assert_eq!((a.access_token_secs, a.reauth_secs, a.resend_cooldown_secs), (900, 3600, 30));

        jail.clear_env();
        jail.set_env("PHONEGATE_RETENTION__KEEP", "0s");
        assert_eq!(Config::load(None, &Overrides::default()).unwrap().retention(), None, "0s keeps everything");
        Ok(())
    });
}

#[test]
fn durations_are_strings_with_a_unit_and_bad_ones_are_named() {
    Jail::expect_with(|jail| {
        let load = |toml: &str| {
            jail.create_file("d.toml", toml).unwrap();
            Config::load(Some(Path::new("d.toml")), &Overrides::default())
        };
        let c = load("[silent]\ntimeout = \"1h 30m\"").unwrap_err();
        assert!(matches!(c, ConfigError::SilentTimeout), "1h30m is over the silent timeout's bound: {c}");
        let good = load("[delivery]\nsend_wait = \"1m 30s\"\n[accounts]\nrefresh_reuse = \"0s\"").unwrap();
        assert_eq!((good.delivery.send_wait, good.accounts.refresh_reuse_secs), (Duration::from_secs(90), 0));
        for (toml, key, says) in [
            ("[delivery]\nsend_wait = 5000", "send_wait", "`5000` has no unit: write a duration like \"30s\""),
            (
                "[delivery]\nsend_wait = \"5 parsecs\"",
                "send_wait",
                "`5 parsecs` is not a duration like \"30s\", \"10m\", \"24h\" or \"30d\"",
            ),
            ("[accounts]\nsession_idle = \"36h\"", "session_idle", "`36h` is not a whole number of days"),
            ("[accounts]\ncode_ttl = \"1500ms\"", "code_ttl", "`1500ms` is not a whole number of seconds"),
            ("[providers.tw]\nkind = \"outbox\"\ntimeout = 3", "timeout", "`3` has no unit"),
        ] {
            let err = load(toml).unwrap_err().to_string();
            assert!(err.contains(says) && err.contains(key), "{toml}: {err}");
        }
        jail.set_env("PHONEGATE_DELIVERY__LEASE", "60");
        let err = Config::load(None, &Overrides::default()).unwrap_err().to_string();
        assert!(err.contains("`60` has no unit") && err.contains("DELIVERY.LEASE"), "{err}");
        Ok(())
    });
}

#[test]
fn old_names_are_refused_with_their_new_place() {
    Jail::expect_with(|jail| {
        let load = |toml: &str| {
            jail.create_file("old.toml", toml).unwrap();
            Config::load(Some(Path::new("old.toml")), &Overrides::default()).unwrap_err().to_string()
        };
        assert_eq!(
            load("silent_timeout_secs = 120"),
            "invalid configuration: `silent_timeout_secs` has moved: use `[silent] timeout = \"2m\"` (environment: PHONEGATE_SILENT__TIMEOUT)"
        );
        assert_eq!(
            load("api_key_cache_ms = 0"),
            "invalid configuration: `api_key_cache_ms` has moved: use `api_key_cache = \"0s\"` (environment: PHONEGATE_API_KEY_CACHE)"
        );
        assert!(load("[accounts]\ncode_ttl_secs = 300").contains("`accounts.code_ttl_secs` has moved: use `[accounts] code_ttl = \"5m\"`"));
        assert!(load("[accounts]\ninvite_ttl_hours = 48").contains("use `[accounts] invite_ttl = \"2d\"`"));
        assert!(load("[connections]\nidle_secs = 90").contains("use `[connections] idle = \"90s\"`"));
        assert!(load("[providers.tw]\nkind = \"outbox\"\ntimeout_ms = 800").contains(
            "`providers.tw.timeout_ms` has moved: use `[providers.tw] timeout = \"800ms\"` (environment: PHONEGATE_PROVIDERS__TW__TIMEOUT)"
        ));
        assert!(load("[silent_routing]\nproviders = []").contains("`[silent_routing]` has moved: use `[silent.routing]`"));
        let secret = load("[silent_providers.t]\nkind = \"truid\"\nclient_id = \"c\"\nclient_secret = \"hush\"\ntimeout_ms = 1");
        assert!(secret.contains("`[silent_providers]` has moved: use `[silent.providers]`") && !secret.contains("hush"), "{secret}");
        let both = load("default_region = \"DE\"\nretention_days = 7\n");
        assert!(
            both.contains("`default_region` has moved: use `[phones] default_region` (environment: PHONEGATE_PHONES__DEFAULT_REGION)"),
            "{both}"
        );
        assert!(both.contains("; `retention_days` has moved: use `[retention] keep = \"7d\"`"), "every old name at once: {both}");

        for (var, value, says) in [
            ("PHONEGATE_SEND_WAIT_MS", "100", "`send_wait_ms` has moved: use `[delivery] send_wait = \"100ms\"`"),
            ("PHONEGATE_LOG_LEVEL", "debug", "`log_level` has moved: use `[log] level` (environment: PHONEGATE_LOG__LEVEL)"),
            ("PHONEGATE_SILENT_SIMULATOR", "true", "`silent_simulator` has moved: use `[silent] simulator`"),
            ("PHONEGATE_ACCOUNTS__CODE_TTL_SECS", "60", "use `[accounts] code_ttl = \"1m\"` (environment: PHONEGATE_ACCOUNTS__CODE_TTL)"),
        ] {
            jail.clear_env();
            jail.set_env(var, value);
            let err = Config::load(None, &Overrides::default()).unwrap_err();
            assert!(matches!(err, ConfigError::Moved(_)) && err.to_string().contains(says), "{var}: {err}");
        }
        jail.clear_env();
        jail.set_env("PHONEGATE_SILENT__TIMEOUT_SECS", "60");
        assert!(Config::load(None, &Overrides::default()).unwrap_err().to_string().contains("timeout_secs"), "unknown keys stay errors");
        Ok(())
    });
}

#[test]
fn the_well_known_environment_variables_still_apply() {
    Jail::expect_with(|jail| {
        jail.set_env("PHONEGATE_LISTEN", "127.0.0.1:9100");
        jail.set_env("PHONEGATE_DATABASE_URL", "sqlite://env.db");
        jail.set_env("PHONEGATE_PUBLIC_URL", "https://id.example.com");
        jail.set_env("PHONEGATE_DATABASE_MAX_CONNECTIONS", "4");
        let c = Config::load(None, &Overrides::default()).unwrap();
        assert_eq!(
            (c.listen.port(), c.database_url.as_str(), c.public_url.as_deref(), c.database_max_connections),
            (9100, "sqlite://env.db", Some("https://id.example.com"), 4)
        );
        Ok(())
    });
}

/// Every TOML example in the README and docs/ uses today's names and types (secrets from files
/// are not read: each `KEY_file` stands for its `KEY`).
#[test]
fn the_documented_examples_are_valid_configuration() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut files = vec![root.join("README.md"), root.join("examples/auth0/README.md")];
    files.extend(std::fs::read_dir(root.join("docs")).unwrap().map(|e| e.unwrap().path()));
    let mut checked = 0;
    for file in files.iter().filter(|f| f.extension().is_some_and(|e| e == "md")) {
        let text = std::fs::read_to_string(file).unwrap();
        for block in text.split("```toml\n").skip(1).map(|b| b.split("```").next().unwrap()) {
            let mut tree: Value =
                Figment::from(Toml::string(block)).extract().unwrap_or_else(|e| panic!("{}: {e}\n{block}", file.display()));
            assert_eq!(moved::find(&tree), Vec::<String>::new(), "{}:\n{block}", file.display());
            stand_in_for_files(&mut tree);
            let merged = Figment::from(Serialized::defaults(Config::default())).merge(Serialized::defaults(tree));
            if let Err(e) = merged.extract::<Config>() {
                panic!("{}: {e}\n{block}", file.display());
            }
            checked += 1;
        }
    }
    assert!(checked >= 7, "{checked} examples");
}

fn stand_in_for_files(value: &mut Value) {
    let Value::Dict(_, dict) = value else { return };
    for key in dict.keys().filter(|k| k.ends_with("_file")).cloned().collect::<Vec<_>>() {
        dict.remove(&key);
        dict.insert(key.trim_end_matches("_file").into(), Value::from("from a file".to_string()));
    }
    dict.values_mut().for_each(stand_in_for_files);
}
