//! Configuration loading: layers, providers, secrets from files, and what is refused.
use super::*;
use figment::Jail;

#[test]
fn layers_apply_in_order_and_unknown_keys_are_refused() {
    Jail::expect_with(|jail| {
        jail.create_file("p.toml", "listen = \"127.0.0.1:9000\"\ndatabase_url = \"sqlite://file.db\"\ndefault_region = \"DE\"")?;
        jail.set_env("PHONEGATE_DATABASE_URL", "sqlite://env.db");
        let c = Config::load(Some(Path::new("p.toml")), &Overrides::default()).unwrap();
        assert_eq!((c.listen.port(), c.database_url.as_str(), c.default_region.as_deref()), (9000, "sqlite://env.db", Some("DE")));
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
            timeout_ms = 800
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
        assert_eq!(tw.timeout_ms, 800);
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
        assert!(matches!(&err, ConfigError::SecretFile { provider, key, .. } if provider == "x" && key == "auth_token_file"), "{err:?}");
        assert!(err.to_string().starts_with("providers.x.auth_token_file: cannot read nope.txt: "), "{err}");
        jail.create_file("not-a-path.toml", "[providers.x]\nkind = \"twilio\"\naccount_sid = \"AC\"\nauth_token_file = 7")?;
        let err = Config::load(Some(Path::new("not-a-path.toml")), &Overrides::default()).unwrap_err();
        assert_eq!(err.to_string(), "providers.x.auth_token_file must be a file path");
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
            silent_timeout_secs = 60
            [silent_providers.truid]
            kind = "truid"
            client_id = "cid"
            client_secret_file = "truid.txt"
            [silent_routing]
            providers = ["truid"]
            routes = [{ prefix = "+44", providers = ["truid"] }]
            "#,
        )?;
        let c = Config::load(Some(Path::new("p.toml")), &Overrides::default()).unwrap();
        let phonegate_providers::silent::SilentProviderSettings::Truid(t) = &c.silent_providers["truid"].kind else { panic!() };
        assert_eq!(t.client_secret.expose(), "tru-secret");
        assert_eq!(c.silent_routing.routes[0].prefix, "+44");

        jail.create_file("nourl.toml", "[silent_providers.t]\nkind = \"truid\"\nclient_id = \"c\"\nclient_secret = \"s\"\n")?;
        let e = Config::load(Some(Path::new("nourl.toml")), &Overrides::default()).unwrap_err();
        assert!(matches!(e, ConfigError::SilentNeedsPublicUrl), "{e}");

        jail.create_file("sim.toml", "silent_simulator = true\n[providers.tw]\nkind = \"twilio\"\naccount_sid = \"AC1\"\nauth_token = \"t\"\nfrom = \"+15005550006\"\n")?;
        let e = Config::load(Some(Path::new("sim.toml")), &Overrides::default()).unwrap_err();
        assert!(matches!(&e, ConfigError::SimulatorWithProviders(names) if names == "tw"), "{e}");
        jail.set_env("PHONEGATE_SILENT_SIMULATOR", "true");
        assert!(Config::load(None, &Overrides::default()).unwrap().silent_simulator, "with the dev outbox it is allowed");
        jail.set_env("PHONEGATE_SILENT_TIMEOUT_SECS", "5");
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
        jail.set_env("PHONEGATE_DEFAULT_REGION", "XX");
        assert_eq!(load().to_string(), "default_region `XX` is not an ISO 3166-1 region code");
        jail.clear_env();
        jail.set_env("PHONEGATE_PUBLIC_URL", "verify.example.com");
        assert!(matches!(load(), ConfigError::PublicUrl { url } if url == "verify.example.com"));
        jail.clear_env();
        jail.set_env("PHONEGATE_TLS_CERT", "cert.pem");
        assert_eq!(load().to_string(), "tls_cert and tls_key must be given together");
        jail.clear_env();
        jail.set_env("PHONEGATE_SEND_LEASE_SECS", "0");
        assert!(matches!(load(), ConfigError::SendIntervals));
        jail.clear_env();
        jail.set_env("PHONEGATE_EXPIRY_SWEEP_SECS", "0");
        assert!(matches!(load(), ConfigError::ExpirySweep));
        jail.clear_env();
        jail.set_env("PHONEGATE_ACCOUNTS__REFRESH_REUSE_SECS", "61");
        assert!(load().to_string().contains("accounts.refresh_reuse_secs must be between 0 and 60"), "{}", load());
        jail.set_env("PHONEGATE_ACCOUNTS__REFRESH_REUSE_SECS", "0");
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
        assert_eq!(Config::load(None, &Overrides::default()).unwrap().client_ip_header, ClientIpHeader::XForwardedFor);
        jail.set_env("PHONEGATE_CLIENT_IP_HEADER", "forwarded");
        assert_eq!(Config::load(None, &Overrides::default()).unwrap().client_ip_header, ClientIpHeader::Forwarded);
        jail.set_env("PHONEGATE_CLIENT_IP_HEADER", "x-real-ip");
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
