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


def parse_verifier_key(vkey):
    parts = vkey.strip().split("+", 2)
    if len(parts) != 3:
        raise Fails("a verifier key is NAME+KEYHASH+BASE64")
    name, hash_hex, key_b64 = parts
    key = base64.b64decode(key_b64, validate=True)
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
        blob = base64.b64decode(sig_b64, validate=True)
        if sig_name != name or blob[:4] != key_hash:
            continue
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
    origin, size, root = lines[0], int(lines[1]), base64.b64decode(lines[2], validate=True)
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
    out = [base64.b64decode(h, validate=True) for h in items]
    if any(len(h) != 32 for h in out):
        raise Fails("a proof hash is not 32 bytes")
    return out


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
    with open(argv[2], encoding="utf-8") as f:
        content = f.read()
    try:
        if argv[1] == "checkpoint":
            origin, size, root = parse_checkpoint(verify_note(content, argv[3]))
            print(json.dumps({"origin": origin, "size": size, "root": base64.b64encode(root).decode()}))
        else:
            print(check_bundle(json.loads(content), argv[3]))
    except (Fails, ValueError, KeyError, TypeError) as e:
        print("does not hold: %s" % e, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
