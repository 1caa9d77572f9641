//! `keygen`: a new Ed25519 signing key for checkpoints, written to a new private file; its verifier key is
//! printed (the signing key never is).

use crate::cli::KeygenArgs;
use crate::error::{Error, ExitCode, Result};
use crate::tlog::note;
use secrecy::ExposeSecret;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;

/// Writes the signing key (mode 0600, refusing to overwrite) and prints the verifier key on stdout.
pub fn run(args: &KeygenArgs) -> Result<ExitCode> {
    let (skey, vkey) = note::generate_key(&args.name).map_err(|e| Error::Usage(e.to_string()))?;
    let what = || format!("cannot write the signing key to {}", args.out.display());
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&args.out)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => Error::Usage(format!(
                "{} already exists: keygen never overwrites a key; pick another --out",
                args.out.display()
            )),
            _ => Error::io(what())(e),
        })?;
    file.write_all(format!("{}\n", skey.expose_secret()).as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(Error::io(what()))?;
    eprintln!(
        "wrote the signing key to {} (mode 600: keep it off the archive's host if you can); its verifier key:",
        args.out.display()
    );
    super::status::print_stdout(&format!("{vkey}\n"));
    Ok(ExitCode::Ok)
}
