//! The command line stays what docs/performance.md describes. (Running every scenario against a
//! real server is the smoke test in crates/server/tests/api/bench.rs, which needs this binary:
//! having a test here makes `cargo test --workspace` build it.)
use std::process::Command;

#[test]
fn help_lists_every_option() {
    let out = Command::new(env!("CARGO_BIN_EXE_phonegate-bench")).arg("--help").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let help = String::from_utf8_lossy(&out.stdout);
    for option in [
        "--duration",
        "--connections",
        "--scenarios",
        "--postgres",
        "--growth-rows",
        "--json",
        "--server",
        "--compare-oidc-provider",
        "--oidc-provider",
        "--oidc-provider-dir",
        "--node",
        "--id-token-alg",
    ] {
        assert!(help.contains(option), "{option} in\n{help}");
    }
}

#[test]
fn scenarios_are_checked_before_anything_starts() {
    let out = Command::new(env!("CARGO_BIN_EXE_phonegate-bench"))
        .args(["--scenarios", "me_bearer,nope", "--server", "/nonexistent/phonegate"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("nope") && !err.contains("cannot run"), "{err}");
    let help = Command::new(env!("CARGO_BIN_EXE_phonegate-bench")).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    for name in ["start", "status", "check", "pair", "compat", "me_bearer", "me_cookie", "refresh", "password_login"] {
        assert!(help.contains(name), "{name} in\n{help}");
    }
}

#[test]
fn a_missing_server_binary_is_reported() {
    let out = Command::new(env!("CARGO_BIN_EXE_phonegate-bench"))
        .args(["--duration", "1", "--server", "/nonexistent/phonegate"])
        .env_remove("PHONEGATE_CONFIG")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot run /nonexistent/phonegate"), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn the_oidc_provider_comparison_needs_the_openid_scenarios() {
    let out = Command::new(env!("CARGO_BIN_EXE_phonegate-bench"))
        .args(["--scenarios", "start", "--compare-oidc-provider", "--server", "/nonexistent/phonegate"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("userinfo,oidc-refresh,oidc-authorize") && !err.contains("cannot run"), "{err}");
    let help = Command::new(env!("CARGO_BIN_EXE_phonegate-bench")).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    for name in ["userinfo", "oidc-refresh", "oidc-authorize"] {
        assert!(help.contains(name), "{name} in\n{help}");
    }
}
