//! `verify`: is the archive intact and complete? Exit 0 only when everything holds. With `--checkpoint FILE
//! --key KEY`, also: the checkpoint's signature holds and the archive's Merkle log is a consistent extension of
//! it (and of every stored checkpoint); what no trusted checkpoint covers yet is reported as the unsigned tail.

use crate::cli::{StatusFormat, VerifyArgs};
use crate::error::{Error, ExitCode, Result};
use crate::output;
use crate::store::read::Verification;
use crate::store::verify::VerifyReport;
use crate::store::verify::log::{Claim, LogFinding, LogFindingKind, LogReport};
use crate::store::{Archive, ArchiveReader};
use crate::time;
use crate::tlog::note::{self, CheckpointError};
use std::path::Path;

/// Verifies the archive and prints what it found.
pub fn run(db: &Path, args: &VerifyArgs) -> Result<ExitCode> {
    let anchor = args
        .anchor
        .as_deref()
        .map(str::trim)
        .map(str::to_ascii_lowercase);
    if let Some(a) = &anchor
        && (a.len() != 64 || !a.bytes().all(|b| b.is_ascii_hexdigit()))
    {
        return Err(Error::Usage(format!(
            "--anchor must be a 64-digit hex chain head, got '{a}'"
        )));
    }
    let reader = ArchiveReader::open(db)?;
    // The checkpoint is checked first (a bad one stops here); then the log pass runs beside the other checks,
    // on its own read-only connection (each pass is one core's work).
    let claims = match &args.checkpoint {
        Some(path) => Some(claims(&reader, path, &args.keys)?),
        None => None,
    };
    let (report, log) = std::thread::scope(|scope| {
        let log = claims.map(|(claims, origins, bad)| {
            scope.spawn(move || -> Result<LogReport> {
                let mut log =
                    ArchiveReader::open(db)?.check_log(&claims, &origins, !args.log_only)?;
                log.findings.extend(bad);
                Ok(log)
            })
        });
        let report = (!args.log_only).then(|| reader.verify(anchor.as_deref()));
        let log = log.map(|h| h.join().expect("the log pass does not panic"));
        (report, log)
    });
    let log = log.transpose()?;
    let Some(report) = report.transpose()? else {
        return log_only(args, log.as_ref());
    };
    let text = match args.format {
        StatusFormat::Text => {
            output::verify_text(&report) + &log.as_ref().map(output::log_text).unwrap_or_default()
        }
        StatusFormat::Json => {
            let mut value = serde_json::to_value(&report)?;
            if let (Some(log), Some(object)) = (&log, value.as_object_mut()) {
                object.insert("log".into(), serde_json::to_value(log)?);
            }
            serde_json::to_string_pretty(&value)? + "\n"
        }
    };
    super::status::print_stdout(&text);
    if args.record {
        record(db, &report)?;
    }
    if let Some(log) = &log {
        warn_unsigned(log);
    }
    Ok(outcome(
        report.intact(),
        report.complete(),
        log.as_ref(),
        args.require_signed,
    ))
}

/// Warns on stderr of what no signature vouches for: the unsigned tail, and prunes made without the key that
/// signed checkpoints were signed over.
fn warn_unsigned(log: &LogReport) {
    if let Some(tail) = &log.unsigned_tail {
        eprintln!("warning: {}", output::tail_warning(tail));
    }
    if !log.signed_over_unsigned_prunes.is_empty() {
        eprintln!(
            "warning: signed checkpoints were signed over prune(s) {:?} made without the signing key (each \
             says so): check they were yours",
            log.signed_over_unsigned_prunes
        );
    }
}

/// `--log-only`: prints the log's check alone; exit 7 when it does not hold (or, with `--require-signed`, has an
/// unsigned tail).
fn log_only(args: &VerifyArgs, log: Option<&LogReport>) -> Result<ExitCode> {
    let log = log.ok_or_else(|| Error::Internal("--log-only without --checkpoint".into()))?;
    let text = match args.format {
        StatusFormat::Text => output::log_text(log),
        StatusFormat::Json => {
            serde_json::to_string_pretty(&serde_json::json!({ "log": log }))? + "\n"
        }
    };
    super::status::print_stdout(&text);
    warn_unsigned(log);
    Ok(outcome(true, true, Some(log), args.require_signed))
}

/// The exit code: tampering (in the rows, the chain or the log; or, with `--require-signed`, an unsigned tail)
/// is 7; intact but not complete is 9.
pub fn outcome(
    intact: bool,
    complete: bool,
    log: Option<&LogReport>,
    require_signed: bool,
) -> ExitCode {
    let log_holds = log.is_none_or(LogReport::holds);
    let tail =
        log.is_some_and(|l| l.unsigned_tail.is_some() || !l.signed_over_unsigned_prunes.is_empty());
    if !intact || !log_holds || (require_signed && tail) {
        ExitCode::VerifyFailed
    } else if !complete {
        ExitCode::Incomplete
    } else {
        ExitCode::Ok
    }
}

/// What the log is checked against: the checkpoint in `path` (its signature by one of `keys` must hold) and
/// the stored checkpoints, with their origins, and what is wrong with the stored ones' signatures.
type Claims = (Vec<Claim>, Vec<(String, String)>, Vec<LogFinding>);

/// The claims of `verify --checkpoint`.
fn claims(reader: &ArchiveReader, path: &Path, keys: &[String]) -> Result<Claims> {
    let keys = super::verify_proof::trusted_keys(keys)?;
    let text = std::fs::read_to_string(path).map_err(|e| {
        Error::Usage(format!(
            "cannot read the checkpoint {}: {e}",
            path.display()
        ))
    })?;
    let label = format!("the checkpoint {}", path.display());
    let (facts, _) = note::verify_checkpoint(&text, &keys).map_err(|e| match e {
        CheckpointError::Malformed(_) => Error::Usage(format!("{label}: {e}")),
        e => Error::Tampered(format!("{label}: {e}")),
    })?;
    let mut claims = vec![stored_claim(label.clone(), &facts, true)];
    let mut origins = vec![(label, facts.origin)];
    let mut bad = Vec::new();
    for stored in reader.stored_checkpoints()? {
        let label = format!("stored checkpoint {}", stored.id);
        let verified = note::verify_checkpoint(&stored.text, &keys);
        if let Err(e @ CheckpointError::BadSignature(_)) = &verified {
            bad.push(signature_finding(&label, e));
        }
        let (facts, trusted) = match verified {
            Ok((facts, _)) => (facts, true),
            Err(_) => match note::parse_checkpoint(&stored.text) {
                Ok(facts) => (facts, false),
                Err(e) => {
                    bad.push(signature_finding(&label, &e));
                    continue;
                }
            },
        };
        claims.push(stored_claim(label.clone(), &facts, trusted));
        origins.push((label, facts.origin));
    }
    Ok((claims, origins, bad))
}

fn signature_finding(label: &str, e: &CheckpointError) -> LogFinding {
    LogFinding {
        kind: LogFindingKind::Signature,
        detail: format!("{label}: {e}"),
    }
}

fn stored_claim(label: String, facts: &note::CheckpointFacts, trusted: bool) -> Claim {
    Claim {
        label,
        size: facts.size,
        root: facts.root,
        trusted,
        unsigned_prunes: facts.unsigned_prunes.clone(),
    }
}

/// `--record`: writes what was found into the archive (`verifications`), for `status --check` and the metrics
/// file. Takes the writer's lock: refused (exit 6) while a sync runs.
fn record(db: &Path, report: &VerifyReport) -> Result<()> {
    let now = super::clock()?.now();
    let mut archive = Archive::open_existing(db, now)?;
    archive.record_verification(&Verification {
        verified_at: time::to_stored(now),
        intact: report.intact(),
        complete: report.complete(),
        findings: report.findings.len() as i64,
        chain_head: Some(report.head.clone()),
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::verify::log::UnsignedTail;

    fn log(findings: usize, tail: bool) -> LogReport {
        LogReport {
            origin: "o".into(),
            size: 3,
            root: String::new(),
            checkpoints: Vec::new(),
            findings: (0..findings)
                .map(|_| LogFinding {
                    kind: LogFindingKind::Edited,
                    detail: String::new(),
                })
                .collect(),
            unsigned_tail: tail.then(UnsignedTail::default),
            signed_over_unsigned_prunes: Vec::new(),
        }
    }

    #[test]
    fn exit_codes_of_verify() {
        let cases = [
            (true, true, None, false, ExitCode::Ok),
            (false, true, None, false, ExitCode::VerifyFailed),
            (true, false, None, false, ExitCode::Incomplete),
            (true, true, Some(log(0, false)), true, ExitCode::Ok),
            (
                true,
                true,
                Some(log(1, false)),
                false,
                ExitCode::VerifyFailed,
            ),
            (true, true, Some(log(0, true)), false, ExitCode::Ok),
            (true, true, Some(log(0, true)), true, ExitCode::VerifyFailed),
            (true, false, Some(log(0, true)), false, ExitCode::Incomplete),
        ];
        let signed_over = LogReport {
            signed_over_unsigned_prunes: vec![3],
            ..log(0, false)
        };
        assert_eq!(outcome(true, true, Some(&signed_over), false), ExitCode::Ok);
        assert_eq!(
            outcome(true, true, Some(&signed_over), true),
            ExitCode::VerifyFailed,
            "a prune signed over without the key is as unsigned as a tail"
        );
        for (intact, complete, log, require, want) in cases {
            assert_eq!(
                outcome(intact, complete, log.as_ref(), require),
                want,
                "{intact} {complete} {require}"
            );
        }
    }
}
