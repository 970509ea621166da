//! The benchmark tool must not rot: every scenario runs for about a second on a tiny load and
//! its JSON report parses (on PostgreSQL too when the suite runs there). Not timed.
//!
//! The tool is its own package (`crates/bench`), so cargo does not build it for this one: the
//! test takes the `phonegate-bench` next to the `phonegate` it tests, which `cargo test
//! --workspace` (scripts/test.sh) and `cargo build` put there.
use serde_json::Value;
use std::path::PathBuf;

fn bench_binary() -> PathBuf {
    let server = std::path::Path::new(env!("CARGO_BIN_EXE_phonegate"));
    let bench = server.with_file_name(format!("phonegate-bench{}", std::env::consts::EXE_SUFFIX));
    assert!(bench.exists(), "{} is missing: build it first with `cargo build -p phonegate-bench`", bench.display());
    bench
}

#[test]
fn the_bench_tool_runs_every_scenario_and_reports_json() {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("bench.json");
    let mut cmd = std::process::Command::new(bench_binary());
    cmd.args(["--duration", "1", "--connections", "4", "--json", report.to_str().unwrap()])
        .args(["--server", env!("CARGO_BIN_EXE_phonegate")])
        .env_remove("PHONEGATE_CONFIG");
    if let Some(url) = phonegate_store::testing::postgres_url() {
        cmd.args(["--postgres", &url]);
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let table = String::from_utf8_lossy(&out.stdout);
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let names: Vec<&str> = v["scenarios"].as_array().unwrap().iter().map(|s| s["scenario"].as_str().unwrap()).collect();
    assert_eq!(names, ["baseline", "start", "status", "check", "pair", "compat", "vonage2"]);
    for s in v["scenarios"].as_array().unwrap() {
        let name = s["scenario"].as_str().unwrap();
        assert!(s["operations"].as_u64().unwrap() > 0, "{name}: {s}");
        assert_eq!(s["errors"], 0, "{name}: {s}");
        assert!(s["p99_ms"].as_f64().unwrap() >= s["p50_ms"].as_f64().unwrap(), "{name}");
        assert!(s["ratio_to_baseline"].as_f64().unwrap() > 0.0, "{name}");
        assert!(s["peak_rss_mib"].as_f64().unwrap() > 0.0, "{name}");
        assert!(table.contains(name), "the table lists {name}");
    }
    assert!(v["idle_rss_mib"].as_f64().unwrap() > 1.0);
    assert!(String::from_utf8_lossy(&out.stderr).contains("[pair]"), "progress is shown while it runs");
}

#[test]
fn the_openid_scenarios_run_and_report_json() {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("bench.json");
    let mut cmd = std::process::Command::new(bench_binary());
    cmd.args(["--duration", "1", "--connections", "4", "--json", report.to_str().unwrap()])
        .args(["--scenarios", "userinfo,oidc-refresh,oidc-authorize"])
        .args(["--server", env!("CARGO_BIN_EXE_phonegate")])
        .env_remove("PHONEGATE_CONFIG");
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let names: Vec<&str> = v["scenarios"].as_array().unwrap().iter().map(|s| s["scenario"].as_str().unwrap()).collect();
    assert_eq!(names, ["baseline", "userinfo", "oidc-refresh", "oidc-authorize"]);
    for s in v["scenarios"].as_array().unwrap() {
        let name = s["scenario"].as_str().unwrap();
        assert!(s["operations"].as_u64().unwrap() > 0, "{name}: {s}");
        assert_eq!(s["errors"], 0, "{name}: {s}");
    }
}
