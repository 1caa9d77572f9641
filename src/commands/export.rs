//! `export`: events out to NDJSON or CSV, with a manifest.

use crate::cli::ExportArgs;
use crate::error::{Error, ExitCode, Result};
use crate::export::{self, Selection};
use crate::store::{self, export::ExportError};
use crate::time;
use std::path::Path;

/// Exports and writes the manifest.
pub fn run(db: &Path, args: &ExportArgs) -> Result<ExitCode> {
    if let (Some(from), Some(to)) = (args.selection.from, args.selection.to)
        && from >= to
    {
        return Err(Error::Usage(format!(
            "the range is empty: --from {} is not before --to {}",
            time::to_api(from),
            time::to_api(to)
        )));
    }
    if args.format == export::Format::Parquet && args.out.is_none() {
        return Err(Error::Usage(
            "a Parquet dataset is a folder: pass --out DIR".into(),
        ));
    }
    if let Some(out) = &args.out
        && (out.exists() || export::manifest_path(out).exists())
    {
        return Err(Error::Usage(format!(
            "{} or its manifest already exists; pass a new path to --out",
            out.display()
        )));
    }
    let now = crate::config::now(&super::process_env)?;
    let conn = store::open_read_only(db)?;
    let filter = args.selection.condition();
    let selection = Selection {
        from: args.selection.from.map(time::to_stored),
        to: args.selection.to.map(time::to_stored),
        category: args.selection.category.clone(),
        action: args.selection.action.clone(),
    };
    let manifest = match export::export(
        &conn,
        db,
        &filter,
        selection,
        args.format,
        args.out.as_deref(),
        now,
    ) {
        Ok(m) => m,
        Err(ExportError::Output(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => {
            return Ok(ExitCode::Ok);
        }
        Err(ExportError::Output(e)) => {
            return Err(Error::Internal(format!("cannot write the export: {e}")));
        }
        Err(ExportError::Store(e)) => return Err(e.into()),
    };
    if args.format == export::Format::Parquet {
        let out = args.out.as_deref().expect("checked above");
        if let Some(copy) = &args.manifest {
            export::write_manifest(&manifest, copy).map_err(|e| {
                Error::Internal(format!("cannot write the manifest {}: {e}", copy.display()))
            })?;
        }
        eprintln!(
            "exported {} events to {} in {} file(s); manifest {}",
            manifest.rows,
            out.display(),
            manifest.files.len(),
            export::manifest_path_for(out, args.format).display()
        );
        return Ok(ExitCode::Ok);
    }
    let target = args
        .manifest
        .clone()
        .or_else(|| args.out.as_deref().map(export::manifest_path));
    match target {
        Some(path) => {
            export::write_manifest(&manifest, &path).map_err(|e| {
                Error::Internal(format!("cannot write the manifest {}: {e}", path.display()))
            })?;
            eprintln!(
                "exported {} events to {}; manifest {} (sha256 {})",
                manifest.rows,
                manifest.files[0].path,
                path.display(),
                manifest.files[0].sha256
            );
        }
        None => eprintln!(
            "{}",
            serde_json::to_string(&manifest).map_err(|e| Error::Internal(e.to_string()))?
        ),
    }
    Ok(ExitCode::Ok)
}
