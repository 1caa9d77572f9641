//! The archive's Merkle log: pure code, no SQL (the store keeps the log's tables; commands and checkers use
//! this module without an archive).
//!
//! Terms:
//! - a *leaf* is one thing sealed into the archive, appended in the order it was written: each event's first
//!   version, each revision, each reject, each window seal, each prune's removal of an earlier leaf's row, each
//!   prune seal ([`LeafKind`]). Its *data* is [`leaf_data`]: one line naming it, then its payload (an event's
//!   raw JSON exactly as fetched); its hash is RFC 6962's `SHA-256(0x00 || data)`, a node's
//!   `SHA-256(0x01 || left || right)` (Go's `golang.org/x/mod/sumdb/tlog`, ported by `tlog_tiles`);
//! - the *stored hashes* of a tree of n leaves are Go tlog's: each leaf adds its hash and the hashes of the
//!   subtrees it completes, at consecutive indexes ([`tlog_tiles::stored_hash_index`]), so appending is
//!   O(log n) and proofs read O(log n) hashes, never data; the store keeps them in chunks of
//!   [`HASHES_PER_CHUNK`];
//! - a *checkpoint* is a C2SP `tlog-checkpoint` (origin, tree size, root hash), optionally a C2SP `signed-note`
//!   signed with Ed25519 ([`note`]); a *bundle* is the portable proof of one event ([`bundle`]).
//!
//! Invariant: a leaf's data is reproducible from what the archive (or a bundle) holds, so whoever recomputes
//! the log from the rows gets the same root, and a row changed after it was logged changes the root.

pub mod bundle;
pub mod note;

pub use crate::model::LeafKind;
pub use tlog_tiles::{Hash, HashReader};

/// The first word of every leaf's first line: the name and version of the leaf format.
pub const LEAF_FORMAT: &str = "elevate-archive/v1";
/// Stored hashes per row of the store's hash table (`tlog_hashes`): 256 hashes, an 8 KiB blob.
pub const HASHES_PER_CHUNK: u64 = 256;
/// Bytes of one hash.
pub const HASH_BYTES: usize = tlog_tiles::HASH_SIZE;

/// A leaf's data: `"elevate-archive/v1 KIND REF\n"` followed by the payload. REF is the row's id in its table
/// (`events.id`, `event_revisions.id`, `rejects.id`, `seals.id`) or, for a removal, the removed leaf's index.
pub fn leaf_data(kind: LeafKind, reference: i64, payload: &[u8]) -> Vec<u8> {
    let mut data = Vec::with_capacity(payload.len() + 48);
    data.extend_from_slice(leaf_header(kind, reference).as_bytes());
    data.extend_from_slice(payload);
    data
}

/// The first line of a leaf's data, its newline included.
pub fn leaf_header(kind: LeafKind, reference: i64) -> String {
    format!("{LEAF_FORMAT} {kind} {reference}\n")
}

/// A leaf's hash from its parts, without building its data.
pub fn leaf_hash(kind: LeafKind, reference: i64, payload: &[u8]) -> Hash {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update([0x00]);
    h.update(leaf_header(kind, reference).as_bytes());
    h.update(payload);
    Hash(h.finalize().into())
}

/// The payload of a removal leaf: what the removed leaf was and which prune removed it:
/// `"KIND REF PRUNE_ID"` (for example `event 42 3`).
pub fn removal_payload(removed_kind: LeafKind, removed_ref: i64, prune_id: i64) -> String {
    format!("{removed_kind} {removed_ref} {prune_id}")
}

/// The stored-hash index range `[from, to)` kept in chunk `chunk`.
pub fn chunk_range(chunk: u64) -> (u64, u64) {
    (chunk * HASHES_PER_CHUNK, (chunk + 1) * HASHES_PER_CHUNK)
}

/// The chunk holding stored hash `index`, and the byte offset of the hash in it.
pub fn chunk_of(index: u64) -> (u64, usize) {
    (
        index / HASHES_PER_CHUNK,
        (index % HASHES_PER_CHUNK) as usize * HASH_BYTES,
    )
}

/// The right edge of a tree being built leaf by leaf: the roots of its complete subtrees, largest first.
/// Memory is O(log n) whatever the tree's size: this is how `verify` recomputes the whole log in one pass.
#[derive(Debug, Default, Clone)]
pub struct Frontier {
    /// `(height, hash)` of each complete subtree on the right edge, largest (leftmost) first.
    edge: Vec<(u32, Hash)>,
    size: u64,
}

impl Frontier {
    /// An empty tree.
    pub fn new() -> Frontier {
        Frontier::default()
    }

    /// The tree of `size` leaves whose right edge is `edge`: `(height, hash)` of its complete subtrees, largest
    /// first (the heights are the set bits of `size`).
    pub fn from_edge(edge: Vec<(u32, Hash)>, size: u64) -> Frontier {
        debug_assert_eq!(edge.iter().map(|(h, _)| 1u64 << h).sum::<u64>(), size);
        Frontier { edge, size }
    }

    /// Leaves appended so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Appends a leaf hash; returns the stored hashes it adds, in stored-hash order (the leaf's hash, then the
    /// hash of each subtree it completes, lowest first): what Go's `tlog.StoredHashes` returns.
    pub fn push(&mut self, leaf: Hash) -> Vec<Hash> {
        let mut added = vec![leaf];
        let mut node = (0u32, leaf);
        while let Some(&(height, left)) = self.edge.last() {
            if height != node.0 {
                break;
            }
            self.edge.pop();
            node = (height + 1, tlog_tiles::node_hash(left, node.1));
            added.push(node.1);
        }
        self.edge.push(node);
        self.size += 1;
        added
    }

    /// The root hash of the tree so far (RFC 6962's MTH; the hash of the empty string for no leaves).
    pub fn root(&self) -> Hash {
        let mut iter = self.edge.iter().rev();
        let Some(&(_, mut acc)) = iter.next() else {
            return tlog_tiles::EMPTY_HASH;
        };
        for &(_, left) in iter {
            acc = tlog_tiles::node_hash(left, acc);
        }
        acc
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tlog_tiles::{record_hash, stored_hash_count, stored_hash_index};

    /// RFC 6962 / RFC 9162 test vectors (the leaves used by CT's reference implementation and its successors).
    const LEAVES: [&str; 8] = [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ];
    /// The root of the first n leaves, n = 1..=8.
    const ROOTS: [&str; 8] = [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ];

    #[test]
    fn the_frontier_gives_the_rfc_6962_roots() {
        let mut f = Frontier::new();
        assert_eq!(f.root(), tlog_tiles::EMPTY_HASH);
        for (leaf, root) in LEAVES.iter().zip(ROOTS) {
            f.push(record_hash(&hex::decode(leaf).unwrap()));
            assert_eq!(hex::encode(f.root().0), root);
        }
    }

    #[test]
    fn the_frontier_adds_the_stored_hashes_go_tlog_stores() {
        struct Stored(Vec<Hash>);
        impl HashReader for Stored {
            fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, tlog_tiles::Error> {
                Ok(indexes.iter().map(|&i| self.0[i as usize]).collect())
            }
        }
        let mut f = Frontier::new();
        let mut stored = Stored(Vec::new());
        for n in 0..100u64 {
            let leaf = record_hash(&n.to_be_bytes());
            let want = tlog_tiles::stored_hashes_for_record_hash(n, leaf, &stored).unwrap();
            assert_eq!(stored.0.len() as u64, stored_hash_index(0, n));
            let added = f.push(leaf);
            assert_eq!(added, want, "leaf {n}");
            stored.0.extend(added);
            assert_eq!(stored.0.len() as u64, stored_hash_count(n + 1));
            assert_eq!(
                f.root(),
                tlog_tiles::tree_hash(n + 1, &stored).unwrap(),
                "root {n}"
            );
        }
    }

    #[test]
    fn leaf_data_names_its_kind_and_row() {
        let cases = [
            (
                LeafKind::Event,
                42,
                &b"{\"id\":42}"[..],
                "elevate-archive/v1 event 42\n{\"id\":42}",
            ),
            (
                LeafKind::Removal,
                7,
                b"event 42 3",
                "elevate-archive/v1 removal 7\nevent 42 3",
            ),
            (
                LeafKind::WindowSeal,
                1,
                b"ab",
                "elevate-archive/v1 window-seal 1\nab",
            ),
        ];
        for (kind, reference, payload, want) in cases {
            let data = leaf_data(kind, reference, payload);
            assert_eq!(String::from_utf8(data.clone()).unwrap(), want);
            assert_eq!(leaf_hash(kind, reference, payload), record_hash(&data));
        }
        assert_eq!(
            removal_payload(LeafKind::Revision, 9, 2),
            "revision 9 2".to_string()
        );
    }

    #[test]
    fn chunks_tile_the_stored_hashes() {
        assert_eq!(chunk_of(0), (0, 0));
        assert_eq!(chunk_of(255), (0, 255 * 32));
        assert_eq!(chunk_of(256), (1, 0));
        assert_eq!(chunk_range(2), (512, 768));
    }
}
