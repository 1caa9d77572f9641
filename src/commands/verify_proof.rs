//! `verify-proof`: checks an evidence bundle without the archive: the checkpoint's signature by a trusted key,
//! the event's leaf (and, for a pruned event, the removal) included in it.

use crate::cli::{StatusFormat, VerifyProofArgs};
use crate::error::{Error, ExitCode, Result};
use crate::tlog::bundle::{self, ProofStatus};
use crate::tlog::note::TrustedKeys;

/// Checks the bundle; exit 0 when it holds, 7 when it does not.
pub fn run(args: &VerifyProofArgs) -> Result<ExitCode> {
    let keys = trusted_keys(&args.keys)?;
    let bytes = std::fs::read(&args.file)
        .map_err(|e| Error::Usage(format!("cannot read {}: {e}", args.file.display())))?;
    // Whatever fails (a checkpoint that is not one, a signature, a proof, the canonical form), the bundle
    // does not verify.
    let proved = bundle::verify_bundle(&bytes, &keys)
        .map_err(|e| Error::Tampered(format!("{} does not verify: {e}", args.file.display())))?;
    let text = match args.format {
        StatusFormat::Json => serde_json::to_string_pretty(&proved)? + "\n",
        StatusFormat::Text => match proved.status {
            ProofStatus::Archived => format!(
                "ok: event {} is in the log {} (leaf of a tree of {} signed by {})\n",
                proved.event_id,
                proved.origin,
                proved.tree_size,
                proved.signed_by.join(", ")
            ),
            ProofStatus::Removed => format!(
                "ok: event {} was logged in {} and removed by prune {} (tree of {} signed by {})\n",
                proved.event_id,
                proved.origin,
                proved.removed_by_prune.unwrap_or_default(),
                proved.tree_size,
                proved.signed_by.join(", ")
            ),
        },
    };
    super::status::print_stdout(&text);
    Ok(ExitCode::Ok)
}

/// The `--key` values: verifier key text, or the path of a file holding one.
pub fn trusted_keys(values: &[String]) -> Result<TrustedKeys> {
    let texts = values
        .iter()
        .map(|v| {
            let path = std::path::Path::new(v);
            if !v.contains('+') && path.is_file() {
                std::fs::read_to_string(path)
                    .map(|t| t.trim().to_string())
                    .map_err(|e| Error::Usage(format!("cannot read the key file {v}: {e}")))
            } else {
                Ok(v.clone())
            }
        })
        .collect::<Result<Vec<_>>>()?;
    TrustedKeys::parse(&texts).map_err(|e| Error::Usage(e.to_string()))
}
