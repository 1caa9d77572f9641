//! The evidence bundle `prove` writes and `verify-proof` checks: one event, proved included in a signed
//! checkpoint of the archive's log, checkable without the archive.
//!
//! A bundle is one line of compact JSON (its exact bytes: [`Bundle::to_text`]; any other spelling is refused,
//! so no byte of it can change without the check failing):
//!
//! - `format`: [`FORMAT`];
//! - `event_id`, and `status`: `archived` or `removed` (pruned);
//! - `checkpoint`: the signed checkpoint text the proofs are against;
//! - `event`: `leaf_index`, `proof` (the inclusion proof, RFC 9162 order, base64 hashes) and either `raw` (the
//!   event's JSON exactly as fetched: the leaf data is `"elevate-archive/v1 event ID\n"` followed by it) or,
//!   for a removed event whose row is gone, `leaf_hash` (base64);
//! - `removal` (removed only): the removal leaf's `leaf_index`, `data` (`"elevate-archive/v1 removal
//!   EVENT_LEAF_INDEX\nevent ID PRUNE_ID"`) and `proof`: the prune that removed the event, proved in the log.

use super::note::{self, CheckpointError, CheckpointFacts, TrustedKeys};
use super::{Hash, LeafKind, leaf_data, leaf_hash, removal_payload};
use serde::{Deserialize, Serialize};

/// The bundle format's name and version.
pub const FORMAT: &str = "elevate-archive-proof/v1";

/// Whether the proved event is still in the archive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProofStatus {
    /// Archived: the bundle carries its raw JSON.
    Archived,
    /// Pruned: the bundle carries its leaf hash and the removal.
    Removed,
}

/// A portable proof of one event (see the module documentation for the format).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bundle {
    /// [`FORMAT`].
    pub format: String,
    /// The event's id.
    pub event_id: i64,
    /// Archived or removed.
    pub status: ProofStatus,
    /// The signed checkpoint the proofs are against.
    pub checkpoint: String,
    /// The event's leaf.
    pub event: EventLeaf,
    /// The prune's removal of the event (removed events only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub removal: Option<RemovalLeaf>,
}

/// The event's leaf and its inclusion proof.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventLeaf {
    /// Its index in the log.
    pub leaf_index: u64,
    /// The event's JSON exactly as fetched (archived events).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw: Option<String>,
    /// The leaf's hash, base64 (removed events, whose raw JSON is gone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leaf_hash: Option<String>,
    /// The inclusion proof, base64 hashes.
    pub proof: Vec<String>,
}

/// The removal leaf and its inclusion proof.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemovalLeaf {
    /// Its index in the log.
    pub leaf_index: u64,
    /// Its data.
    pub data: String,
    /// The inclusion proof, base64 hashes.
    pub proof: Vec<String>,
}

impl Bundle {
    /// The bundle's exact text: compact JSON and a newline.
    pub fn to_text(&self) -> String {
        serde_json::to_string(self).expect("a bundle serialises") + "\n"
    }
}

/// What a bundle that holds proves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Proved {
    /// The event.
    pub event_id: i64,
    /// Archived or removed.
    pub status: ProofStatus,
    /// The checkpoint's origin (the archive).
    pub origin: String,
    /// The checkpoint's tree size.
    pub tree_size: u64,
    /// The keys that signed it.
    pub signed_by: Vec<String>,
    /// The prune that removed it (removed events).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub removed_by_prune: Option<i64>,
}

/// Why a bundle does not hold.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    /// Not a bundle in the canonical form.
    #[error("not an evidence bundle of this format: {0}")]
    Malformed(String),
    /// Its checkpoint does not hold.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// An inclusion proof does not hold: the bundle was altered.
    #[error("the {0} is not proved included in the checkpoint: the bundle was altered")]
    NotIncluded(&'static str),
}

/// Checks a bundle's exact bytes against the trusted keys, without the archive.
pub fn verify_bundle(bytes: &[u8], keys: &TrustedKeys) -> Result<Proved, BundleError> {
    let bundle: Bundle = serde_json::from_slice(bytes)
        .map_err(|e| BundleError::Malformed(format!("not the bundle's JSON: {e}")))?;
    if bundle.to_text().as_bytes() != bytes {
        return Err(BundleError::Malformed(
            "not in its canonical form (compact JSON and one newline, as `prove` writes it)".into(),
        ));
    }
    if bundle.format != FORMAT {
        return Err(BundleError::Malformed(format!(
            "format '{}', expected '{FORMAT}'",
            bundle.format
        )));
    }
    let (cp, signed_by) = note::verify_checkpoint(&bundle.checkpoint, keys)?;
    let event = &bundle.event;
    let removed_by_prune = match (bundle.status, &event.raw, &event.leaf_hash, &bundle.removal) {
        (ProofStatus::Archived, Some(raw), None, None) => {
            let leaf = leaf_hash(LeafKind::Event, bundle.event_id, raw.as_bytes());
            check_included(&cp, event.leaf_index, leaf, &event.proof, "event's leaf")?;
            None
        }
        (ProofStatus::Removed, None, Some(hash), Some(removal)) => {
            let leaf = note::hash_from_b64(hash)
                .ok_or_else(|| BundleError::Malformed("leaf_hash is not a base64 hash".into()))?;
            check_included(&cp, event.leaf_index, leaf, &event.proof, "event's leaf")?;
            let prune_id = removal_names(removal, event.leaf_index, bundle.event_id)?;
            let leaf = tlog_tiles::record_hash(removal.data.as_bytes());
            check_included(&cp, removal.leaf_index, leaf, &removal.proof, "removal")?;
            Some(prune_id)
        }
        _ => {
            return Err(BundleError::Malformed(
                "an archived event carries raw, a removed one leaf_hash and removal".into(),
            ));
        }
    };
    Ok(Proved {
        event_id: bundle.event_id,
        status: bundle.status,
        origin: cp.origin,
        tree_size: cp.size,
        signed_by,
        removed_by_prune,
    })
}

/// The prune named by a removal leaf's data, which must name the event's leaf.
fn removal_names(
    removal: &RemovalLeaf,
    event_leaf: u64,
    event_id: i64,
) -> Result<i64, BundleError> {
    let wrong = || BundleError::Malformed("the removal does not name the event's leaf".into());
    let (_, prune) = removal.data.rsplit_once(' ').ok_or_else(wrong)?;
    let prune_id: i64 = prune.parse().map_err(|_| wrong())?;
    let want = leaf_data(
        LeafKind::Removal,
        i64::try_from(event_leaf).map_err(|_| wrong())?,
        removal_payload(LeafKind::Event, event_id, prune_id).as_bytes(),
    );
    if want != removal.data.as_bytes() {
        return Err(wrong());
    }
    Ok(prune_id)
}

/// Checks that `leaf` is at `index` in the checkpoint's tree by `proof`.
fn check_included(
    cp: &CheckpointFacts,
    index: u64,
    leaf: Hash,
    proof: &[String],
    what: &'static str,
) -> Result<(), BundleError> {
    let proof = proof
        .iter()
        .map(|h| note::hash_from_b64(h))
        .collect::<Option<Vec<Hash>>>()
        .ok_or_else(|| {
            BundleError::Malformed(format!("the {what}'s proof is not base64 hashes"))
        })?;
    tlog_tiles::check_record(&proof, cp.size, cp.root, index, leaf)
        .map_err(|_| BundleError::NotIncluded(what))
}
