//! A mirror's manifest, `_manifest.json` at the destination's root: the whole mirror as of one run (every live
//! object with its rows, size and SHA-256), the seals it holds (`through_seal`) and the archive's chain head
//! then. Written last by a run (after its objects, before the ledger), so whatever it lists is there.

use super::super::ManifestFile;
use serde::{Deserialize, Serialize};

/// The manifest's name at the destination's root (`_`-prefixed: dataset readers skip it).
pub const MANIFEST: &str = "_manifest.json";

/// The manifest of a mirror.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MirrorManifest {
    /// The tool and version that wrote it.
    pub tool: String,
    /// When (UTC).
    pub created_at: String,
    /// The archive mirrored (its path).
    pub archive: String,
    /// The destination (normalised URL).
    pub destination: String,
    /// The run that wrote it (1, 2, ... per destination).
    pub export_run: i64,
    /// The run mirrored the seals after this one ...
    pub after_seal: i64,
    /// ... through this one.
    pub through_seal: i64,
    /// The archive's seal-chain head when the run read it (check the archive with `verify --anchor`).
    pub chain_head: String,
    /// Events in the mirror.
    pub rows: u64,
    /// Revisions in the mirror.
    #[serde(default)]
    pub revisions: u64,
    /// Every live object, by path.
    pub files: Vec<ManifestFile>,
}

impl MirrorManifest {
    /// The manifest as written: pretty JSON and a newline.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut text = serde_json::to_vec_pretty(self).expect("a manifest serialises");
        text.push(b'\n');
        text
    }
}
