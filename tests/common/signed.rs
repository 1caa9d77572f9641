//! Helpers of the tests of signed checkpoints and proofs: keys, a signed archive with its shipped checkpoint,
//! `verify --checkpoint`, and the independent checker.

use super::*;
use std::path::{Path, PathBuf};

/// Events of the signed archives: `FROM`..`TO`.
pub const FROM: &str = "2024-01-01";
pub const TO: &str = "2024-01-07";

/// `keygen --name NAME`: the key file and the verifier key printed.
pub fn keygen(sb: &Sandbox, name: &str) -> (PathBuf, String) {
    let path = sb.dir.path().join(format!("{name}.key"));
    let run = sb.run(&["keygen", "--out", path.to_str().unwrap(), "--name", name]);
    run.expect(0);
    (path, run.stdout.trim().to_string())
}

/// The independent checker (`tests/independent/tlog_check.py`) on a checkpoint or a bundle.
pub fn python_check(kind: &str, file: &Path, vkey: &str) -> Run {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/independent/tlog_check.py");
    Run::of(std::process::Command::new("python3").args([
        script.to_str().unwrap(),
        kind,
        file.to_str().unwrap(),
        vkey,
    ]))
}

/// `verify --format json --checkpoint CP --key ...` on `db`: the run and its report.
pub fn verify_cp(
    sb: &Sandbox,
    db: &Path,
    cp: &Path,
    keys: &[&str],
    extra: &[&str],
) -> (Run, serde_json::Value) {
    let mut args = vec![
        "verify",
        "--format",
        "json",
        "--checkpoint",
        cp.to_str().unwrap(),
    ];
    for k in keys {
        args.extend(["--key", k]);
    }
    args.extend(extra);
    let mut cmd = sb.command();
    cmd.env("ELEVATE_DB", db).args(&args);
    let run = Run::of(&mut cmd);
    let report = serde_json::from_str(&run.stdout).unwrap_or(serde_json::Value::Null);
    (run, report)
}

/// The kinds of the log's findings in a `verify` report.
pub fn log_finding_kinds(report: &serde_json::Value) -> Vec<String> {
    report["log"]["findings"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|f| f["kind"].as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// A sync of `from`..`to` against `base` with the simulator's credentials, signed with `key` and shipping its
/// checkpoint to `cp`, with `extra` after those arguments; the run, its exit not checked.
pub fn signed_sync(
    sb: &Sandbox,
    base: &str,
    from: &str,
    to: &str,
    key: &Path,
    cp: &Path,
    extra: &[&str],
) -> Run {
    let mut args = vec![
        "sync",
        "--base-url",
        base,
        "--from",
        from,
        "--to",
        to,
        "--signing-key",
        key.to_str().unwrap(),
        "--checkpoint-out",
        cp.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    sb.run_env(&args, &SIM_CREDS)
}

/// A signed sync of `FROM`..`to` shipping its checkpoint (the one in its `--json` summary):
/// (simulator, sandbox, key file, verifier key, shipped checkpoint).
pub fn signed_archive_to(events: u64, to: &str) -> (Served, Sandbox, PathBuf, String, PathBuf) {
    let config = elevate_archive::simulator::SimConfig::new(
        events,
        elevate_archive::time::parse_time_arg(FROM).unwrap(),
        elevate_archive::time::parse_time_arg(TO).unwrap(),
    );
    let served = serve(config);
    let sb = Sandbox::new();
    let (key, vkey) = keygen(&sb, "auditor-test");
    let cp = sb.dir.path().join("shipped.checkpoint");
    let run = signed_sync(&sb, &served.base, FROM, to, &key, &cp, &["--json"]);
    run.expect(0);
    let summary: serde_json::Value = serde_json::from_str(run.stdout.trim()).unwrap();
    assert_eq!(
        summary["checkpoint"].as_str().unwrap(),
        std::fs::read_to_string(&cp).unwrap()
    );
    (served, sb, key, vkey, cp)
}

/// [`signed_archive_to`] `TO`.
pub fn signed_archive(events: u64) -> (Served, Sandbox, PathBuf, String, PathBuf) {
    signed_archive_to(events, TO)
}
