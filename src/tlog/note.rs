//! Keys and checkpoints in the C2SP formats, through `signed_note` and `tlog_tiles`, so the key text and the
//! checkpoints work with existing transparency-log tooling (Go's `golang.org/x/mod/sumdb/note`).
//!
//! - A *signing key* is `PRIVATE+KEY+NAME+KEYHASH+BASE64(0x01 || seed)`, a *verifier key*
//!   `NAME+KEYHASH+BASE64(0x01 || public key)`, KEYHASH being the first 4 bytes of
//!   `SHA-256(NAME || "\n" || 0x01 || public key)` in hex. A signing key lives in a file of mode 0600 or
//!   stricter ([`read_signing_key`]); it is never taken from argv, logged, or written to the archive.
//! - A *checkpoint* is the note text `ORIGIN\nSIZE\nBASE64(ROOT)\n`; signed, it is followed by a blank line and
//!   one line per signature, `— NAME BASE64(KEYHASH || Ed25519 signature of the text)`.

use super::Hash;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use secrecy::{ExposeSecret, SecretString};
use signed_note::{Note, NoteError, StandardSigner, StandardVerifier, VerifierList};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use tlog_tiles::Checkpoint;

/// The key name `keygen` gives when none is asked for.
pub const DEFAULT_KEY_NAME: &str = "elevate-archive";
/// The prefix of every origin line: the origin is `elevate-archive/` and the archive's random id.
pub const ORIGIN_PREFIX: &str = "elevate-archive/";

/// A key, a key file or a checkpoint that cannot be used, said in words that name the file and the fix.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The key file is readable or writable by others.
    #[error(
        "the signing key file {path} is accessible by other users (mode {mode:o}); run chmod 600 {path}"
    )]
    TooOpen {
        /// The file.
        path: String,
        /// Its permission bits.
        mode: u32,
    },
    /// The key file cannot be read.
    #[error("cannot read the signing key file {path}: {source}")]
    Unreadable {
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The text is not a key of the expected kind (the text itself is never repeated: it may be secret).
    #[error("{what} is not a valid {kind} (expected {expected})")]
    Malformed {
        /// Where it came from (a file name, or "a --key value").
        what: String,
        /// Signing or verifier key.
        kind: &'static str,
        /// The expected form.
        expected: &'static str,
    },
    /// The key name cannot be used in a note.
    #[error("'{0}' cannot name a key: it must be non-empty, without spaces or '+'")]
    BadName(String),
}

/// A signing key read from its file; its text is kept secret (never printed, `Debug` shows nothing of it).
pub struct SigningKey {
    signer: StandardSigner,
    name: String,
    verifier: String,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// Parses a signing key's text.
    pub fn parse(text: &SecretString, what: &str) -> Result<SigningKey, KeyError> {
        let text = text.expose_secret().trim();
        let signer = StandardSigner::new(text).map_err(|_| KeyError::Malformed {
            what: what.to_string(),
            kind: "signing key",
            expected: "PRIVATE+KEY+NAME+KEYHASH+BASE64, as `keygen` writes",
        })?;
        let name = text.split('+').nth(2).unwrap_or_default().to_string();
        // The parts are well-formed: `StandardSigner::new` checked them.
        let seed = BASE64
            .decode(text.splitn(5, '+').nth(4).unwrap_or_default())
            .ok()
            .and_then(|k| <[u8; 32]>::try_from(&k[1..]).ok())
            .expect("a parsed signing key holds a 32-byte seed");
        let public = ed25519_dalek::SigningKey::from_bytes(&seed).verifying_key();
        let verifier = signed_note::new_ed25519_verifier_key(&name, &public);
        Ok(SigningKey {
            signer,
            name,
            verifier,
        })
    }

    /// The verifier key of this signing key (`NAME+KEYHASH+BASE64`).
    pub fn verifier_key(&self) -> String {
        self.verifier.clone()
    }

    /// The key's name (the name in its signature lines).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Signs a note text (a checkpoint body) and returns the signed note.
    pub fn sign(&self, text: &str) -> String {
        let mut note = Note::new(text.as_bytes(), &[]).expect("a checkpoint body is a note text");
        note.add_sigs(&[&self.signer])
            .expect("an Ed25519 key with a valid name signs");
        String::from_utf8(note.to_bytes()).expect("a note is UTF-8")
    }
}

/// Reads the signing key at `path`: refused if the file is accessible by other users (mode wider than 0600).
pub fn read_signing_key(path: &Path) -> Result<SigningKey, KeyError> {
    let shown = path.display().to_string();
    let unreadable = |source| KeyError::Unreadable {
        path: shown.clone(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(unreadable)?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(KeyError::TooOpen { path: shown, mode });
    }
    let text = SecretString::from(std::fs::read_to_string(path).map_err(unreadable)?);
    SigningKey::parse(&text, &format!("the file {shown}"))
}

/// A new key pair named `name`: (signing key text, verifier key text).
pub fn generate_key(name: &str) -> Result<(SecretString, String), KeyError> {
    if !signed_note::is_key_name_valid(name) {
        return Err(KeyError::BadName(name.to_string()));
    }
    let mut seed = [0u8; 32];
    rand::fill(&mut seed);
    let key = ed25519_dalek::SigningKey::from_bytes(&seed);
    let vkey = signed_note::new_ed25519_verifier_key(name, &key.verifying_key());
    let public = [&[1u8][..], key.verifying_key().as_bytes()].concat();
    let private = [&[1u8][..], &seed[..]].concat();
    let skey = format!(
        "PRIVATE+KEY+{name}+{:08x}+{}",
        signed_note::key_id(name, &public),
        BASE64.encode(private)
    );
    seed.fill(0);
    Ok((SecretString::from(skey), vkey))
}

/// The verifier keys an auditor trusts (`--key`, several for rotation).
pub struct TrustedKeys {
    list: VerifierList,
    names: Vec<String>,
}

impl TrustedKeys {
    /// Parses verifier keys (`NAME+KEYHASH+BASE64`).
    pub fn parse(keys: &[String]) -> Result<TrustedKeys, KeyError> {
        let mut verifiers: Vec<Box<dyn signed_note::Verifier>> = Vec::new();
        let mut names = Vec::new();
        for key in keys {
            let v = StandardVerifier::new(key.trim()).map_err(|_| KeyError::Malformed {
                what: format!("the --key value '{}'", key.trim()),
                kind: "verifier key",
                expected: "NAME+KEYHASH+BASE64, as `keygen` prints",
            })?;
            names.push(key.trim().split('+').next().unwrap_or_default().to_string());
            verifiers.push(Box::new(v));
        }
        Ok(TrustedKeys {
            list: VerifierList::new(verifiers),
            names,
        })
    }

    /// Whether a key of this name is trusted.
    pub fn has_name(&self, name: &str) -> bool {
        self.names.iter().any(|n| n == name)
    }
}

/// The first word of the extension line a signed checkpoint carries when it signs over prunes made without the
/// key: `elevate-archive/unsigned-prunes 3 5`.
pub const UNSIGNED_PRUNES: &str = "elevate-archive/unsigned-prunes";

/// A checkpoint's body: C2SP `tlog-checkpoint` text for `origin`, `size` leaves and `root`.
pub fn checkpoint_body(origin: &str, size: u64, root: Hash) -> String {
    checkpoint_body_over(origin, size, root, &[])
}

/// [`checkpoint_body`], saying (in an extension line) which prunes in the tree were made without the key that
/// signs it: a signature vouches for the tree, and the tree then shows those prunes as unsigned.
pub fn checkpoint_body_over(
    origin: &str,
    size: u64,
    root: Hash,
    unsigned_prunes: &[i64],
) -> String {
    let extension = if unsigned_prunes.is_empty() {
        String::new()
    } else {
        let ids: Vec<String> = unsigned_prunes.iter().map(i64::to_string).collect();
        format!("{UNSIGNED_PRUNES} {}\n", ids.join(" "))
    };
    let cp = Checkpoint::new(origin, size, root, &extension).expect("an origin is never empty");
    String::from_utf8(cp.to_bytes()).expect("a checkpoint is UTF-8")
}

/// What a checkpoint says.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckpointFacts {
    /// Prunes in the tree made without the signing key, as its extension line says.
    pub unsigned_prunes: Vec<i64>,
    /// The origin line.
    pub origin: String,
    /// Leaves in the tree.
    pub size: u64,
    /// Its root hash.
    pub root: Hash,
}

/// Why a checkpoint does not hold.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CheckpointError {
    /// Not a checkpoint at all (not a note, not the three lines).
    #[error("not a checkpoint (C2SP tlog-checkpoint, optionally a signed note): {0}")]
    Malformed(String),
    /// A signature by a trusted key name does not verify: the text was changed or forged.
    #[error(
        "the signature by trusted key '{0}' does not verify: the checkpoint was altered or forged"
    )]
    BadSignature(String),
    /// No signature by any trusted key (unsigned, or signed by other keys only).
    #[error("the checkpoint is not signed by any trusted key (signed by: {0})")]
    Untrusted(String),
}

impl CheckpointError {
    /// Whether this is evidence of tampering (rather than text that is not a checkpoint).
    pub fn is_tampering(&self) -> bool {
        !matches!(self, CheckpointError::Malformed(_))
    }
}

/// Parses a checkpoint without checking any signature (the archive's own, to read their size and root).
pub fn parse_checkpoint(text: &str) -> Result<CheckpointFacts, CheckpointError> {
    let body = match text.split_once("\n\n") {
        Some((body, _)) => format!("{body}\n"),
        None => text.to_string(),
    };
    let cp = Checkpoint::from_bytes(body.as_bytes())
        .map_err(|e| CheckpointError::Malformed(e.to_string()))?;
    let unsigned_prunes = cp
        .extension()
        .lines()
        .filter_map(|l| l.strip_prefix(UNSIGNED_PRUNES))
        .flat_map(|ids| ids.split_whitespace().filter_map(|id| id.parse().ok()))
        .collect();
    Ok(CheckpointFacts {
        unsigned_prunes,
        origin: cp.origin().to_string(),
        size: cp.size(),
        root: *cp.hash(),
    })
}

/// Checks a signed checkpoint against the trusted keys: some trusted key signed it, and every signature by a
/// trusted key name verifies. Returns what it says and the names of the keys that signed it.
pub fn verify_checkpoint(
    text: &str,
    keys: &TrustedKeys,
) -> Result<(CheckpointFacts, Vec<String>), CheckpointError> {
    let note = Note::from_bytes(text.as_bytes()).map_err(|e| match e {
        NoteError::MalformedNote if !text.contains("\n\n") => {
            CheckpointError::Untrusted("nobody: it carries no signature".into())
        }
        e => CheckpointError::Malformed(e.to_string()),
    })?;
    let signers = || signer_names(text).join(", ");
    let (verified, unverified) = note.verify(&keys.list).map_err(|e| match e {
        NoteError::InvalidSignature { name, .. } => CheckpointError::BadSignature(name),
        NoteError::UnverifiedNote => {
            // A trusted name with another key hash is a forged or re-keyed signature.
            match signer_names(text).into_iter().find(|n| keys.has_name(n)) {
                Some(name) => CheckpointError::BadSignature(name),
                None => CheckpointError::Untrusted(signers()),
            }
        }
        e => CheckpointError::Malformed(e.to_string()),
    })?;
    if let Some(sig) = unverified.iter().find(|s| keys.has_name(s.name())) {
        return Err(CheckpointError::BadSignature(sig.name().to_string()));
    }
    let facts = parse_checkpoint(std::str::from_utf8(note.text()).expect("a note is UTF-8"))?;
    Ok((
        facts,
        verified.iter().map(|s| s.name().to_string()).collect(),
    ))
}

/// The names on a note's signature lines (`— NAME ...`).
fn signer_names(text: &str) -> Vec<String> {
    let Some((_, sigs)) = text.rsplit_once("\n\n") else {
        return Vec::new();
    };
    sigs.lines()
        .filter_map(|l| l.strip_prefix("\u{2014} "))
        .filter_map(|l| l.split(' ').next())
        .map(str::to_string)
        .collect()
}

/// A hash as standard base64 (the checkpoint's and the bundle's spelling).
pub fn hash_b64(h: &Hash) -> String {
    BASE64.encode(h.0)
}

/// A hash from its standard base64, refusing any other spelling of the same bytes (so that no byte of a bundle
/// can change without changing what it says).
pub fn hash_from_b64(text: &str) -> Option<Hash> {
    let bytes = BASE64.decode(text).ok()?;
    let hash = Hash(bytes.try_into().ok()?);
    (hash_b64(&hash) == text).then_some(hash)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(vkeys: &[&str]) -> TrustedKeys {
        TrustedKeys::parse(&vkeys.iter().map(|k| k.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn a_generated_key_signs_checkpoints_its_verifier_key_accepts() {
        let (skey, vkey) = generate_key("archive-test").unwrap();
        let signer = SigningKey::parse(&skey, "test").unwrap();
        assert_eq!(signer.verifier_key(), vkey);
        let body = checkpoint_body("elevate-archive/00ff", 5, tlog_tiles::EMPTY_HASH);
        assert_eq!(
            body,
            "elevate-archive/00ff\n5\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n"
        );
        let signed = signer.sign(&body);
        assert!(signed.starts_with(&body));
        assert!(signed.contains("\n\n\u{2014} archive-test "));
        let (facts, names) = verify_checkpoint(&signed, &keys(&[&vkey])).unwrap();
        assert_eq!((facts.size, names), (5, vec!["archive-test".to_string()]));
    }

    #[test]
    fn checkpoints_that_do_not_hold_are_named() {
        let (skey, vkey) = generate_key("k").unwrap();
        let (other_skey, other_vkey) = generate_key("k").unwrap();
        let (_, stranger) = generate_key("stranger").unwrap();
        let body = checkpoint_body("elevate-archive/1", 3, tlog_tiles::EMPTY_HASH);
        let signed = SigningKey::parse(&skey, "t").unwrap().sign(&body);
        let forged = SigningKey::parse(&other_skey, "t").unwrap().sign(&body);
        let edited = signed.replacen("\n3\n", "\n4\n", 1);
        let cases: [(&str, &str, CheckpointError); 5] = [
            (&edited, &vkey, CheckpointError::BadSignature("k".into())),
            (&forged, &vkey, CheckpointError::BadSignature("k".into())),
            (&signed, &stranger, CheckpointError::Untrusted("k".into())),
            (
                &body,
                &vkey,
                CheckpointError::Untrusted("nobody: it carries no signature".into()),
            ),
            (
                "hello\n\nworld\n",
                &vkey,
                CheckpointError::Malformed("malformed note".into()),
            ),
        ];
        for (text, key, want) in cases {
            let got = verify_checkpoint(text, &keys(&[key])).unwrap_err();
            assert_eq!(
                std::mem::discriminant(&got),
                std::mem::discriminant(&want),
                "{text:?}: {got}"
            );
            if !matches!(want, CheckpointError::Malformed(_)) {
                assert_eq!(got, want);
            }
        }
        // Rotation: either of two trusted keys will do.
        verify_checkpoint(&forged, &keys(&[&vkey, &other_vkey])).unwrap();
        verify_checkpoint(&signed, &keys(&[&stranger, &vkey])).unwrap();
    }

    #[test]
    fn only_the_canonical_base64_of_a_hash_is_accepted() {
        let h = tlog_tiles::EMPTY_HASH;
        let text = hash_b64(&h);
        assert_eq!(hash_from_b64(&text), Some(h));
        let mut other = text.clone().into_bytes();
        other[42] = b'V'; // U -> V changes only the padding bits
        assert_eq!(hash_from_b64(std::str::from_utf8(&other).unwrap()), None);
        assert_eq!(hash_from_b64("AAAA"), None);
    }

    #[test]
    fn a_key_file_open_to_others_is_refused_with_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        let (skey, _) = generate_key("n").unwrap();
        std::fs::write(&path, skey.expose_secret()).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        let err = read_signing_key(&path).unwrap_err().to_string();
        assert!(
            err.contains(&format!("chmod 600 {}", path.display())),
            "{err}"
        );
        assert!(!err.contains("PRIVATE"));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(read_signing_key(&path).unwrap().name(), "n");
        std::fs::write(&path, "PRIVATE+KEY+garbage").unwrap();
        let err = read_signing_key(&path).unwrap_err().to_string();
        assert!(err.contains("not a valid signing key"), "{err}");
    }
}
