//! `export`: events out to NDJSON or CSV, with a manifest.

use crate::cli::ExportArgs;
use crate::error::{Error, ExitCode, Result};
use crate::export::{self, Selection};
use crate::store::{ArchiveReader, export::ExportError};
use crate::time;
use std::path::Path;

/// Exports and writes the manifest.
pub fn run(db: &Path, args: &ExportArgs) -> Result<ExitCode> {
    let filter = crate::config::selection(&args.selection)?;
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
    let archive = ArchiveReader::open(db)?;
    let selection = Selection {
        from: args.selection.from.map(time::to_stored),
        to: args.selection.to.map(time::to_stored),
        category: args.selection.category.clone(),
        action: args.selection.action.clone(),
    };
    let manifest = match export::export(
        &archive,
        db,
        &filter,
        selection,
        args.format,
        args.out.as_deref(),
    ) {
        Ok(m) => m,
        Err(ExportError::Output(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => {
            return Ok(ExitCode::Ok);
        }
        Err(ExportError::Output(e)) => {
            return Err(Error::io("cannot write the export")(e));
        }
        Err(ExportError::Store(e)) => return Err(e.into()),
    };
    if args.format == export::Format::Parquet {
        let out = args.out.as_deref().expect("checked above");
        if let Some(copy) = &args.manifest {
            export::write_manifest(&manifest, copy).map_err(Error::io(format!(
                "cannot write the manifest {}",
                copy.display()
            )))?;
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
            export::write_manifest(&manifest, &path).map_err(Error::io(format!(
                "cannot write the manifest {}",
                path.display()
            )))?;
            eprintln!(
                "exported {} events to {}; manifest {} (sha256 {})",
                manifest.rows,
                manifest.files[0].path,
                path.display(),
                manifest.files[0].sha256
            );
        }
        None => eprintln!("{}", serde_json::to_string(&manifest)?),
    }
    Ok(ExitCode::Ok)
}
