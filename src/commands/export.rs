//! `export`: events out to NDJSON, CSV or a Parquet dataset, with a manifest.

use crate::cli::ExportArgs;
use crate::error::{Error, ExitCode, Result};
use crate::export::{self, Format, Manifest, Selected, Selection};
use crate::store::{ArchiveRead, ArchiveReader, export::ExportError};
use crate::time;
use std::path::Path;

/// Exports and writes the manifest (or mirrors, or checks a mirror).
pub fn run(db: &Path, args: &ExportArgs) -> Result<ExitCode> {
    if let Some(url) = &args.check {
        return super::mirror::check(db, url, args);
    }
    let Some(format) = args.format else {
        return Err(Error::Usage("pass --format (or --check URL)".into()));
    };
    if args.incremental {
        return super::mirror::run(db, format, args);
    }
    if args.json || args.allow_http {
        return Err(Error::Usage(
            "--json and --allow-http go with --incremental or --check".into(),
        ));
    }
    let events = crate::config::selection(&args.selection)?;
    check_out(args, format)?;
    let now = super::clock()?.now();
    let archive = ArchiveReader::open(db)?;
    let recorded = Selection {
        from: args.selection.from.map(time::to_stored),
        to: args.selection.to.map(time::to_stored),
        category: args.selection.category.clone(),
        action: args.selection.action.clone(),
    };
    let rows = Selected {
        archive: &archive,
        selection: &events,
    };
    let exported = export::export(
        &rows,
        archive.chain_head()?,
        db,
        recorded,
        format,
        args.out.as_deref(),
        now,
    );
    let manifest = match exported {
        Ok(m) => m,
        Err(ExportError::Output(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => {
            return Ok(ExitCode::Ok);
        }
        Err(ExportError::Output(e)) => return Err(Error::io("cannot write the export")(e)),
        Err(ExportError::Store(e)) => return Err(e.into()),
    };
    report(args, format, &manifest)?;
    Ok(ExitCode::Ok)
}

/// Refuses an output that cannot be written as asked, before anything is read.
fn check_out(args: &ExportArgs, format: Format) -> Result<()> {
    if format == Format::Parquet && args.out.is_none() {
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
    Ok(())
}

/// Writes the manifest where it belongs (beside the file, inside the dataset, `--manifest`, or stderr) and
/// says what was exported.
fn report(args: &ExportArgs, format: Format, manifest: &Manifest) -> Result<()> {
    let write = |path: &Path| {
        export::write_manifest(manifest, path).map_err(Error::io(format!(
            "cannot write the manifest {}",
            path.display()
        )))
    };
    if format == Format::Parquet {
        let out = args.out.as_deref().expect("checked before the export");
        if let Some(copy) = &args.manifest {
            write(copy)?;
        }
        eprintln!(
            "exported {} events to {} in {} file(s); manifest {}",
            manifest.rows,
            out.display(),
            manifest.files.len(),
            export::manifest_path_for(out, format).display()
        );
        return Ok(());
    }
    match args
        .manifest
        .clone()
        .or_else(|| args.out.as_deref().map(export::manifest_path))
    {
        Some(path) => {
            write(&path)?;
            eprintln!(
                "exported {} events to {}; manifest {} (sha256 {})",
                manifest.rows,
                manifest.files[0].path,
                path.display(),
                manifest.files[0].sha256
            );
        }
        None => eprintln!("{}", serde_json::to_string(manifest)?),
    }
    Ok(())
}
