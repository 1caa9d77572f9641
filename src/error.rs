//! The crate's top-level error and the one table of exit codes.
//!
//! Each layer has its own error enum (`api::ApiError`, `store::StoreError`); this module folds them into
//! [`Error`] and maps every outcome to a documented [`ExitCode`]. The README's table is this table.

use crate::export::mirror::MirrorError;
use crate::{api::ApiError, store::StoreError};

/// Process exit codes. Scripts and schedulers rely on them: extend, never renumber.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitCode {
    /// Everything asked for was done.
    Ok,
    /// An unexpected internal failure (a bug: please report it).
    Internal,
    /// Bad flags, bad configuration or missing credentials: nothing was fetched.
    Usage,
    /// The run finished, but some items could not be archived: they are in the `rejects` table.
    Partial,
    /// The API or the network failed after retries, or refused the credentials or permission.
    Api,
    /// The archive file could not be opened, read or written.
    Archive,
    /// Another `sync` holds the archive; nothing was done.
    Busy,
    /// `verify` found tampering, damage or coverage gaps (or `prune` met a window that no longer matches its seal).
    VerifyFailed,
    /// `reconcile` found the source disagreeing with the archive (late, changed or deleted events).
    SourceDisagrees,
    /// Incomplete: some windows failed (recorded, the others archived) or, for `verify`, some asked-for
    /// ranges are not fetched yet; the next plain `sync` fetches them.
    Incomplete,
    /// Stopped by SIGINT or SIGTERM; committed pages are kept and the next run resumes.
    Interrupted,
    /// `export --incremental` or `--check`: the destination (object store or folder) could not be read or
    /// written; the ledger is unchanged and the next run resumes.
    Destination,
    /// `status --check`: the monitoring-plugin convention's code (0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN).
    Check(crate::monitor::CheckState),
}

impl ExitCode {
    /// The numeric code handed to the operating system.
    pub fn code(self) -> u8 {
        match self {
            ExitCode::Ok => 0,
            ExitCode::Internal => 1,
            ExitCode::Usage => 2,
            ExitCode::Partial => 3,
            ExitCode::Api => 4,
            ExitCode::Archive => 5,
            ExitCode::Busy => 6,
            ExitCode::VerifyFailed => 7,
            ExitCode::SourceDisagrees => 8,
            ExitCode::Incomplete => 9,
            ExitCode::Destination => 10,
            ExitCode::Interrupted => 130,
            ExitCode::Check(state) => state.code(),
        }
    }
}

/// Every way a command can fail.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The user's input or configuration is wrong; the message says what to pass instead.
    #[error("{0}")]
    Usage(String),
    /// Talking to the Elevate API failed.
    #[error(transparent)]
    Api(#[from] ApiError),
    /// The archive failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Evidence of tampering outside `verify`'s report: a checkpoint or an evidence bundle that does not hold.
    #[error("{0}")]
    Tampered(String),
    /// The mirror failed (see [`crate::export::mirror::MirrorError`]).
    #[error(transparent)]
    Mirror(#[from] crate::export::mirror::MirrorError),
    /// A signal asked the run to stop.
    #[error("interrupted by a signal; committed pages are kept and the next run resumes from them")]
    Interrupted,
    /// A file or stream the command writes (an export, a manifest, its output) or a resource it needs (the
    /// async runtime, a loopback port for the simulator) failed; the cause is kept as the source.
    #[error("{context}")]
    Io {
        /// What was being done, naming the file.
        context: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A report could not be rendered as JSON (a bug).
    #[error("cannot render the report as JSON")]
    Json(#[from] serde_json::Error),
    /// Something that should not happen happened.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// An [`Error::Io`] with what was being done.
    pub fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
        let context = context.into();
        move |source| Error::Io { context, source }
    }

    /// The exit code this error ends the process with.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            Error::Usage(_) => ExitCode::Usage,
            Error::Tampered(_) => ExitCode::VerifyFailed,
            Error::Api(e) if e.is_configuration() => ExitCode::Usage,
            Error::Api(_) => ExitCode::Api,
            Error::Store(StoreError::Locked { .. } | StoreError::OpenWindows { .. }) => {
                ExitCode::Busy
            }
            Error::Store(StoreError::SealMismatch { .. }) => ExitCode::VerifyFailed,
            Error::Store(_) => ExitCode::Archive,
            Error::Mirror(e) => match e {
                MirrorError::Store(StoreError::Locked { .. }) => ExitCode::Busy,
                MirrorError::Store(_) => ExitCode::Archive,
                MirrorError::Destination { .. } => ExitCode::Destination,
                MirrorError::Diverged { .. } => ExitCode::VerifyFailed,
                MirrorError::NeverMirrored(_) => ExitCode::Usage,
            },
            Error::Interrupted => ExitCode::Interrupted,
            Error::Io { .. } | Error::Json(_) | Error::Internal(_) => ExitCode::Internal,
        }
    }
}

/// Shorthand for results carrying [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
