#!/usr/bin/env python3
"""An independent checker of elevate-archive's checkpoints and evidence bundles.

It shares no code with the project: it implements, from the specifications alone,
- C2SP signed-note (Ed25519): the key hash is SHA-256(name || 0x0A || 0x01 || public key)[:4], a signature
  line is "\u2014 NAME BASE64(key hash || signature)", the signature is over the note text;
- C2SP tlog-checkpoint: the note text is "ORIGIN\\nSIZE\\nBASE64(ROOT)\\n";
- RFC 9162 section 2.1.3.2 inclusion proofs over RFC 6962 hashing (leaf 0x00, node 0x01);
- the bundle format and the leaf data documented in the README ("The formats").

Usage:
  tlog_check.py checkpoint FILE VERIFIER_KEY   verify a signed checkpoint; print its origin, size and root
  tlog_check.py bundle FILE VERIFIER_KEY       verify an evidence bundle (prove's output)
Exit 0 when it holds, 1 when it does not (the reason on stderr), 2 on bad usage.
Only hashlib, base64, json and the cryptography package are used.
"""
import base64
import hashlib
import json
import sys

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

EM_DASH = "\u2014"
LEAF_FORMAT = "elevate-archive/v1"
BUNDLE_FORMAT = "elevate-archive-proof/v1"


class Fails(Exception):
    """The input does not hold."""


def sha256(data):
    return hashlib.sha256(data).digest()


def b64(text):
    """Base64 in its one canonical spelling (padding bits zero, padding present), else Fails."""
    raw = base64.b64decode(text, validate=True)
    if base64.b64encode(raw).decode() != text:
        raise Fails("base64 not in its canonical spelling")
    return raw


def parse_verifier_key(vkey):
    parts = vkey.strip().split("+", 2)
    if len(parts) != 3:
        raise Fails("a verifier key is NAME+KEYHASH+BASE64")
    name, hash_hex, key_b64 = parts
    key = b64(key_b64)
    if len(key) != 33 or key[0] != 1:
        raise Fails("not an Ed25519 verifier key")
    key_hash = sha256(name.encode() + b"\n" + key)[:4]
    if key_hash.hex() != hash_hex:
        raise Fails("the verifier key's hash does not match its name and key")
    return name, key_hash, Ed25519PublicKey.from_public_bytes(key[1:])


def verify_note(note, vkey):
    """Returns the note's text if a signature by vkey verifies over it."""
    name, key_hash, public = parse_verifier_key(vkey)
    if "\n\n" not in note or not note.endswith("\n"):
        raise Fails("not a signed note (no signature block)")
    text, sigs = note.rsplit("\n\n", 1)
    text += "\n"
    verified = False
    for line in sigs[:-1].split("\n"):
        if not line.startswith(EM_DASH + " "):
            raise Fails("a signature line does not start with an em dash")
        sig_name, sig_b64 = line[2:].split(" ")
        blob = b64(sig_b64)
        if sig_name != name:
            continue
        if blob[:4] != key_hash:
            # The trusted name with another key: a key swapped in under a trusted name is refused, not skipped.
            raise Fails("a signature under the trusted name %s by another key" % name)
        try:
            public.verify(blob[4:], text.encode())
        except InvalidSignature:
            raise Fails("the signature by %s does not verify" % name)
        verified = True
    if not verified:
        raise Fails("no signature by the trusted key %s" % name)
    return text


def parse_checkpoint(text):
    lines = text.split("\n")
    if len(lines) < 4 or lines[-1] != "":
        raise Fails("a checkpoint has an origin, a size and a root hash line")
    origin, size, root = lines[0], int(lines[1]), b64(lines[2])
    if len(root) != 32 or str(size) != lines[1]:
        raise Fails("malformed checkpoint")
    return origin, size, root


def node(left, right):
    return sha256(b"\x01" + left + right)


def leaf(data):
    return sha256(b"\x00" + data)


def included(index, size, leaf_hash, proof, root):
    """RFC 9162, 2.1.3.2: verifying an inclusion proof."""
    if index >= size:
        return False
    fn, sn, r = index, size - 1, leaf_hash
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node(p, r)
            if not fn & 1:
                while not (fn & 1 or fn == 0):
                    fn >>= 1
                    sn >>= 1
        else:
            r = node(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def hashes(items):
    out = [b64(h) for h in items]
    if any(len(h) != 32 for h in out):
        raise Fails("a proof hash is not 32 bytes")
    return out


def fields(obj, required, optional=()):
    """The object's keys must be the documented ones, in the documented order."""
    if not isinstance(obj, dict):
        raise Fails("not an object")
    keys = list(obj)
    allowed = list(required) + list(optional)
    if [k for k in allowed if k in keys] != keys or any(k not in keys for k in required):
        raise Fails("fields %s, expected %s" % (keys, allowed))


def integer(value):
    if not isinstance(value, int) or isinstance(value, bool):
        raise Fails("not an integer: %r" % (value,))
    return value


def parse_bundle(content):
    """The bundle's JSON, which must be in its canonical spelling: compact, the documented fields in order,
    no duplicate key, and one final newline (what `prove` writes)."""
    pairs_seen = []

    def no_duplicates(pairs):
        keys = [k for k, _ in pairs]
        if len(set(keys)) != len(keys):
            raise Fails("a duplicate key")
        pairs_seen.append(keys)
        return dict(pairs)

    bundle = json.loads(content, object_pairs_hook=no_duplicates)
    if json.dumps(bundle, separators=(",", ":"), ensure_ascii=False) + "\n" != content:
        raise Fails("not in its canonical form (compact JSON and one newline)")
    fields(bundle, ["format", "event_id", "status", "checkpoint", "event"], ["removal"])
    integer(bundle["event_id"])
    archived = bundle["status"] == "archived"
    fields(bundle["event"], ["leaf_index"] + (["raw"] if archived else ["leaf_hash"]) + ["proof"])
    integer(bundle["event"]["leaf_index"])
    if archived and "removal" in bundle:
        raise Fails("an archived event has no removal")
    if not archived:
        fields(bundle["removal"], ["leaf_index", "data", "proof"])
        integer(bundle["removal"]["leaf_index"])
    return bundle


def check_bundle(bundle, vkey):
    if bundle.get("format") != BUNDLE_FORMAT:
        raise Fails("not a bundle of format " + BUNDLE_FORMAT)
    origin, size, root = parse_checkpoint(verify_note(bundle["checkpoint"], vkey))
    event_id, event = bundle["event_id"], bundle["event"]
    index = event["leaf_index"]
    if bundle["status"] == "archived":
        data = ("%s event %d\n" % (LEAF_FORMAT, event_id)).encode() + event["raw"].encode("utf-8")
        if not included(index, size, leaf(data), hashes(event["proof"]), root):
            raise Fails("the event's leaf is not included in the checkpoint")
        return "event %d archived, leaf %d of %d in %s" % (event_id, index, size, origin)
    if bundle["status"] != "removed":
        raise Fails("unknown status")
    (event_leaf,) = hashes([event["leaf_hash"]])
    if not included(index, size, event_leaf, hashes(event["proof"]), root):
        raise Fails("the event's leaf is not included in the checkpoint")
    removal = bundle["removal"]
    prune_id = int(removal["data"].rsplit(" ", 1)[1])
    want = "%s removal %d\nevent %d %d" % (LEAF_FORMAT, index, event_id, prune_id)
    if removal["data"] != want:
        raise Fails("the removal does not name the event's leaf")
    if not included(removal["leaf_index"], size, leaf(want.encode()), hashes(removal["proof"]), root):
        raise Fails("the removal is not included in the checkpoint")
    return "event %d removed by prune %d, leaf %d of %d in %s" % (event_id, prune_id, index, size, origin)


def main(argv):
    if len(argv) != 4 or argv[1] not in ("checkpoint", "bundle"):
        print(__doc__, file=sys.stderr)
        return 2
    # Bytes, decoded strictly: no newline translation (a CRLF is not the LF that was signed).
    with open(argv[2], "rb") as f:
        content = f.read().decode("utf-8")
    try:
        if argv[1] == "checkpoint":
            origin, size, root = parse_checkpoint(verify_note(content, argv[3]))
            print(json.dumps({"origin": origin, "size": size, "root": base64.b64encode(root).decode()}))
        else:
            print(check_bundle(parse_bundle(content), argv[3]))
    except (Fails, ValueError, KeyError, TypeError) as e:
        print("does not hold: %s" % e, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
