#!/usr/bin/env python3
"""An independent verifier of a pg-audit-trail JSON Lines export.

The encoding and the checks come from docs/hash-chain.md and docs/audit.md;
it uses nothing but Python's standard library (3.8 or later): no
pg-audit-trail code, no third-party package. It is what an auditor who
trusts neither the database nor the vendor's tools can read in one sitting,
run, and adapt. Where an export has several problems, it names the one
`audit-trail verify --export` names (the first in the events, then the
manifest's, then the anchors'), so that the project's test suite can run
both on real exports, clean and tampered, and require the same verdict.

    python3 verify_jsonl_export.py EXPORT_DIR [--tenant T] [--anchors DIR --public-key FILE] [--json]

It checks:
  1. the manifest: every data file present, its SHA-256 and size as listed,
     event counts and sequence ranges as listed, first and last record_hash;
  2. every event: its record_hash recomputed from its fields (the canonical
     encoding of hash-chain.md), its prev_hash equal to the previous event's
     record_hash (32 zero bytes before sequence_no 1), sequence numbers
     increasing by exactly one, every event of the export's tenant;
  3. with --anchors (a local copy of an anchor store: a directory per tenant
     of published checkpoint files) and --public-key (the customer's Ed25519
     public key, PEM): every checkpoint's digest, key id and Ed25519
     signature (RFC 8032, verified below in plain Python), the chain of
     previous_checkpoint_digest, and that the export holds each anchored
     event with the anchored record_hash (a history recomputed from genesis
     does not) and reaches every checkpoint made before it (a cut tail does
     not); an export that no checkpoint falls within is "not anchored";
  4. with --tenant, that the export is of the tenant you expect (the
     manifest's tenant is a claim, and a look-alike id reads the same).
For an S3 store, copy the tenant's objects into a directory first (for
example `aws s3 cp --recursive s3://bucket/prefix/<folder>/ DIR/<folder>/`,
the folder as hash-chain.md names it).

It names the first bad sequence_no and the kind of problem, with the words
hash-chain.md uses. Exit code 0: the export verifies; 1: it does not; 2: the
input cannot be read (a missing file, a line that is not JSON, a wrong key).
It reads one line at a time: memory does not grow with the export.
It reads JSON Lines only (`audit-trail export --format jsonl`); for Parquet
see the pyarrow sketch in docs/audit.md.
"""

import argparse
import base64
import hashlib
import json
import os
import re
import struct
import sys
import urllib.parse

GENESIS = bytes(32)
NULL_FIELD = b"\xff\xff\xff\xff"
BODY_HEADER = b"PGAT\x00\x01"  # "PGAT", encoding version 1 as uint16 big-endian
FIELDS = ("event_id", "tenant_id", "occurred_at", "ingested_at", "actor_type", "actor_id", "actor_name",
          "auth_method", "source_ip", "user_agent_hash", "action", "resource_type", "resource_id",
          "parent_type", "parent_id", "changes", "reason", "context", "db_identity")
TIMESTAMPS = ("occurred_at", "ingested_at")
REQUIRED = {"event_id", "tenant_id", "occurred_at", "ingested_at", "actor_type", "action", "resource_type",
            "changes", "context", "db_identity"}  # never NULL in audit_trail.events
COLUMNS = set(FIELDS) | {"sequence_no", "encoding_version", "prev_hash", "record_hash"}
HEX64 = re.compile(r"[0-9a-f]{64}\Z")


class Unreadable(Exception):
    """The input cannot be verified at all (exit code 2)."""


class Broken(Exception):
    """The first problem found (exit code 1)."""

    def __init__(self, sequence_no, problem, detail, where=None):
        super().__init__(detail)
        self.sequence_no, self.problem, self.detail, self.where = sequence_no, problem, detail, where


# --- The canonical encoding (hash-chain.md, "Body" and "Chain") -------------

ISO = re.compile(r"([+-][0-9]{6}|[0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]{1,6}))?Z\Z")


def days_from_civil(year, month, day):
    """Days since 1970-01-01 in the proleptic Gregorian calendar, any year (integer arithmetic only)."""
    year -= month <= 2
    era = year // 400
    year_of_era = year - era * 400
    day_of_year = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    day_of_era = year_of_era * 365 + year_of_era // 4 - year_of_era // 100 + day_of_year
    return era * 146097 + day_of_era - 719468


def micros_from_iso(text):
    """Microseconds since 1970-01-01T00:00:00Z of an export timestamp, exactly (no floating point,
    no date library: years outside 1-9999 are written as ISO-8601 expanded years)."""
    m = ISO.match(text)
    if m is None or m.group(1) == "-000000":
        raise ValueError(f"not a timestamp of the export's form: {text!r}")
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
    month_days = (31, 29 if leap else 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
    if not (1 <= month <= 12 and 1 <= day <= month_days[month - 1] and hour < 24 and minute < 60 and second < 60):
        raise ValueError(f"not a valid date and time: {text!r}")
    fraction = (m.group(7) or "").ljust(6, "0")
    seconds = days_from_civil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second
    micros = seconds * 1_000_000 + int(fraction)
    if not -2 ** 63 <= micros < 2 ** 63:
        raise ValueError(f"beyond the encoding's int64 microseconds: {text!r}")
    return micros


def field(value, timestamp=False):
    """One field: uint32 big-endian length and the bytes; FF FF FF FF for NULL."""
    if value is None:
        return NULL_FIELD
    if timestamp:
        return struct.pack(">Iq", 8, micros_from_iso(value))
    data = value.encode("utf-8")  # text, jsonb and json text exactly as exported: never re-serialised
    return struct.pack(">I", len(data)) + data


def record_hash(event):
    """SHA-256(body || 00000008 || int64_be(sequence_no) || 00000020 || prev_hash)."""
    body = BODY_HEADER + b"".join(field(event[f], f in TIMESTAMPS) for f in FIELDS)
    position = struct.pack(">Iq", 8, event["sequence_no"]) + struct.pack(">I", 32) + bytes.fromhex(event["prev_hash"])
    return hashlib.sha256(body + position).digest()


# --- Ed25519 signature verification (RFC 8032, section 5.1.7) ----------------

P = 2 ** 255 - 19
L = 2 ** 252 + 27742317777372353535851937790883648493  # order of the base point
D = -121665 * pow(121666, P - 2, P) % P
SQRT_M1 = pow(2, (P - 1) // 4, P)


def point_add(a, b):
    """Sum of two points in extended coordinates (X, Y, Z, T), x = X/Z, y = Y/Z, x*y = T/Z."""
    x1, y1, z1, t1 = a
    x2, y2, z2, t2 = b
    pa = (y1 - x1) * (y2 - x2) % P
    pb = (y1 + x1) * (y2 + x2) % P
    pc = 2 * t1 * t2 * D % P
    pd = 2 * z1 * z2 % P
    e, f, g, h = pb - pa, pd - pc, pd + pc, pb + pa
    return (e * f % P, g * h % P, f * g % P, e * h % P)


def scalar_multiply(k, point):
    result = (0, 1, 1, 0)  # the neutral element
    while k > 0:
        if k & 1:
            result = point_add(result, point)
        point = point_add(point, point)
        k >>= 1
    return result


def decode_point(data):
    """The point a 32-byte encoding stands for, or None when it is not one."""
    y = int.from_bytes(data, "little")
    sign = y >> 255
    y &= (1 << 255) - 1
    if y >= P:
        return None
    xx = (y * y - 1) * pow(D * y * y + 1, P - 2, P) % P
    x = pow(xx, (P + 3) // 8, P)
    if (x * x - xx) % P != 0:
        x = x * SQRT_M1 % P
    if (x * x - xx) % P != 0 or (x == 0 and sign == 1):
        return None
    if x & 1 != sign:
        x = P - x
    return (x, y, 1, x * y % P)


def encode_point(point):
    x, y, z, _ = point
    z_inverse = pow(z, P - 2, P)
    x, y = x * z_inverse % P, y * z_inverse % P
    return (y | ((x & 1) << 255)).to_bytes(32, "little")


BASE = decode_point((4 * pow(5, P - 2, P) % P).to_bytes(32, "little"))


def ed25519_verify(public_key, message, signature):
    """True when `signature` (64 bytes) is the Ed25519 signature of `message` by `public_key` (32 bytes)."""
    if len(signature) != 64 or len(public_key) != 32:
        return False
    a = decode_point(public_key)
    s = int.from_bytes(signature[32:], "little")
    if a is None or s >= L:
        return False
    k = int.from_bytes(hashlib.sha512(signature[:32] + public_key + message).digest(), "little") % L
    minus_a = ((P - a[0]) % P, a[1], a[2], (P - a[3]) % P)
    # [S]B - [k]A must be R, byte for byte.
    return encode_point(point_add(scalar_multiply(s, BASE), scalar_multiply(k, minus_a))) == signature[:32]


def read_public_key(path):
    """The raw 32-byte key of a PEM Ed25519 public key (SubjectPublicKeyInfo, as `audit-trail keys generate` writes it)."""
    try:
        with open(path, encoding="ascii") as f:
            pem = f.read()
    except (OSError, UnicodeDecodeError) as e:
        raise Unreadable(f"{path}: cannot read the public key ({e})")
    body = re.search(r"-----BEGIN PUBLIC KEY-----(.*?)-----END PUBLIC KEY-----", pem, re.S)
    spki_prefix = bytes.fromhex("302a300506032b6570032100")  # SEQUENCE { AlgorithmIdentifier Ed25519, BIT STRING (32 bytes) }
    der = base64.b64decode("".join(body.group(1).split())) if body else b""
    if len(der) != 44 or not der.startswith(spki_prefix):
        raise Unreadable(f"{path} is not a PEM Ed25519 public key: pass the checkpoint-public-key.pem that `audit-trail keys generate` wrote")
    return der[12:]


# --- Checkpoints (hash-chain.md, "Checkpoints (anchors)") --------------------

def canonical_checkpoint(c):
    """The signed bytes: compact JSON, keys in this order, strings escaped as JSON.stringify escapes them."""
    def text(s):
        return json.dumps(s, ensure_ascii=False)
    return ('{"type":"pg-audit-trail checkpoint","version":1,"tenant_id":%s,"sequence_no":%d,"record_hash":%s,'
            '"anchored_at":%s,"key_id":%s,"previous_checkpoint_digest":%s}' % (
                text(c["tenant_id"]), c["sequence_no"], text(c["record_hash"]), text(c["anchored_at"]),
                text(c["key_id"]), "null" if c["previous_checkpoint_digest"] is None else text(c["previous_checkpoint_digest"]),
            )).encode("utf-8")


def tenant_folder(tenant):
    """The folder of a tenant's checkpoints: its id URI-encoded as encodeURIComponent does, or, past 200
    characters, "%sha256-" and the hex SHA-256 of the id's UTF-8."""
    encoded = urllib.parse.quote(tenant, safe="!'()*~")
    return encoded if len(encoded) <= 200 else "%sha256-" + hashlib.sha256(tenant.encode("utf-8")).hexdigest()


def read_checkpoints(store, tenant, public_key):
    """The tenant's valid checkpoints in sequence order, and the problems of the others."""
    key_id = hashlib.sha256(public_key).hexdigest()[:32]
    if not os.path.isdir(store):
        raise Unreadable(f"anchor store {store} does not exist: pass the directory that holds the published checkpoints")
    folders = [n for n in os.listdir(store) if n == tenant_folder(tenant)]
    names = sorted(os.path.join(folder, n) for folder in folders
                   for n in os.listdir(os.path.join(store, folder))
                   if n.endswith(".json") and os.path.isfile(os.path.join(store, folder, n)))
    valid, problems, other_key = [], [], 0
    for name in names:
        try:
            with open(os.path.join(store, name), "rb") as f:
                published = json.loads(f.read().decode("utf-8"))
        except OSError as e:
            raise Unreadable(f"{os.path.join(store, name)} cannot be read ({e})")
        except ValueError as e:
            problems.append(Broken(None, "bad checkpoint", f"{name}: not JSON ({e})", name))
            continue
        try:
            c = published["checkpoint"]
            ok_shape = (c["type"] == "pg-audit-trail checkpoint" and c["version"] == 1
                        and type(c["sequence_no"]) is int and c["sequence_no"] >= 1)
            canonical = canonical_checkpoint(c)
            signature = bytes.fromhex(published["signature"])
        except (ValueError, KeyError, TypeError) as e:
            problems.append(Broken(None, "bad checkpoint", f"{name}: not a published checkpoint ({e})", name))
            continue
        digest = hashlib.sha256(canonical).hexdigest()
        if not ok_shape:
            problems.append(Broken(None, "bad checkpoint", f"{name}: not a version 1 checkpoint", name))
        elif digest != published.get("checkpoint_digest"):
            problems.append(Broken(c["sequence_no"], "bad checkpoint", f"{name}: its checkpoint_digest does not match its content: it was edited", name))
        elif c["key_id"] != key_id:
            other_key += 1
            problems.append(Broken(c["sequence_no"], "bad checkpoint", f"{name}: signed by key {c['key_id']}, not by the given public key {key_id}", name))
        elif not ed25519_verify(public_key, canonical, signature):
            problems.append(Broken(c["sequence_no"], "bad checkpoint", f"{name}: the Ed25519 signature does not verify: edited or forged", name))
        elif c["tenant_id"] == tenant:  # (a valid checkpoint of another tenant vouches for nothing here)
            valid.append(dict(c, digest=digest, name=name))
    if names and other_key == len(names):
        raise Unreadable(f"none of the {len(names)} checkpoints of {tenant} in {store} was signed by the given public key (key id {key_id})")
    valid.sort(key=lambda c: (c["sequence_no"], c["anchored_at"]))
    previous = None
    for c in valid:
        if c["previous_checkpoint_digest"] != (previous["digest"] if previous else None):
            problems.append(Broken(c["sequence_no"], "bad checkpoint",
                                   f"{c['name']}: does not name the store's previous checkpoint as its predecessor: a checkpoint was removed or added", c["name"]))
        previous = c
    return valid, problems


# --- The export ---------------------------------------------------------------

def read_manifest(export_dir):
    path = os.path.join(export_dir, "manifest.json")
    try:
        with open(path, "rb") as f:
            manifest = json.loads(f.read().decode("utf-8"))
    except (OSError, ValueError) as e:
        raise Unreadable(f"{path}: cannot read the manifest ({e}): is this an export directory?")
    if manifest.get("format") != "pg-audit-trail export" or manifest.get("manifest_version") != 1 or manifest.get("encoding_version") != 1:
        raise Unreadable(f"{path}: not a version 1 manifest of a pg-audit-trail export")
    if manifest.get("data_format") != "jsonl":
        raise Unreadable(f"{path}: a {manifest.get('data_format')} export; this verifier reads JSON Lines (export with --format jsonl)")
    return manifest


def strict_object(pairs):
    """A JSON object whose keys are all different: with a key given twice, readers disagree on its value."""
    keys = [k for k, _ in pairs]
    for k in keys:
        if keys.count(k) > 1:
            raise ValueError(f"the key {k!r} appears twice")
    return dict(pairs)


def not_json(constant):
    raise ValueError(f"{constant} is not JSON")


def parse_line(raw, file, line_no):
    """One line as JSON: strict UTF-8, no NaN or Infinity, no key given twice; ends with its newline."""
    if not raw.endswith(b"\n"):
        raise Unreadable(f"{file} line {line_no}: the last line has no end (the file was truncated)")
    try:
        return json.loads(raw.decode("utf-8"), object_pairs_hook=strict_object, parse_constant=not_json)
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise Unreadable(f"{file} line {line_no}: not a line of JSON ({type(e).__name__}: {e}): the file is damaged")


def check_event(event, file, line_no):
    """Refuses a line that is not an event of the documented shape (exit code 2, naming the line)."""
    if not isinstance(event, dict):
        raise Unreadable(f"{file} line {line_no}: not a JSON object")
    unknown = sorted(set(event) - COLUMNS)
    if unknown:
        raise Unreadable(f"{file} line {line_no}: {unknown[0]!r} is not a column of the export (no hash covers it)")
    for name in FIELDS:
        if name not in event or not (isinstance(event[name], str) or (event[name] is None and name not in REQUIRED)):
            raise Unreadable(f"{file} line {line_no}: {name} is missing or not a string{'' if name in REQUIRED else ' or null'}")
    for name in ("sequence_no", "encoding_version"):
        if type(event.get(name)) is not int:
            raise Unreadable(f"{file} line {line_no}: {name} is missing or not an integer")
    if not 1 <= event["sequence_no"] < 2 ** 63 or event["encoding_version"] < 0:
        raise Unreadable(f"{file} line {line_no}: sequence_no must be 1 to 2^63 - 1 (a PostgreSQL bigint), encoding_version not negative")
    for name in ("prev_hash", "record_hash"):
        if not isinstance(event.get(name), str) or HEX64.match(event[name]) is None:
            raise Unreadable(f"{file} line {line_no}: {name} is not 64 lowercase hex digits")


def next_sequence_no(f):
    """The sequence_no of the file's next line, or None."""
    try:
        event = json.loads(f.readline().decode("utf-8"))
        return event["sequence_no"] if isinstance(event, dict) and type(event.get("sequence_no")) is int else None
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None


def verify(export_dir, anchors=None, public_key_file=None, expected_tenant=None):
    """Returns (events checked, number of checkpoints matched); raises Broken at the first problem."""
    manifest = read_manifest(export_dir)
    tenant = manifest["tenant_id"]
    if expected_tenant is not None and tenant != expected_tenant:
        raise Broken(manifest.get("from_sequence_no"), "wrong tenant", f"this is an export of tenant {tenant!r}, not {expected_tenant!r}", "manifest.json")
    checkpoints, store_problems = [], []
    if anchors:
        if not public_key_file:
            raise Unreadable("--anchors needs --public-key: the public key of the key that signed the checkpoints")
        checkpoints, store_problems = read_checkpoints(anchors, tenant, read_public_key(public_key_file))
    anchored = {}
    for c in checkpoints:
        anchored.setdefault(c["sequence_no"], []).append(c)

    # Events, in file order: recomputed hash, link, sequence, tenant, anchors.
    first_seq = manifest["from_sequence_no"]
    expected = first_seq
    previous_hash = GENESIS if first_seq == 1 else None  # a later range starts after an event not exported
    first = last = None
    checked, matched = 0, 0
    file_problems = []  # reported after the chain: a problem in the events comes first, in any file
    listed = {f["path"] for f in manifest["files"]}
    for entry in manifest["files"]:
        if not isinstance(entry.get("path"), str) or entry["path"] in ("", ".", "..") or "/" in entry["path"] or "\\" in entry["path"]:
            raise Unreadable(f"manifest.json lists {entry.get('path')!r}: data files are plain names inside the export directory")
        path = os.path.join(export_dir, entry["path"])
        if not os.path.isfile(path):
            raise Unreadable(f"{path} is listed in the manifest but missing: copy the whole export directory again")
        digest, size, count, file_first, file_last = hashlib.sha256(), 0, 0, None, None
        with open(path, "rb") as f:
            for line_no, raw in enumerate(f, 1):
                digest.update(raw)
                size += len(raw)
                event = parse_line(raw, path, line_no)
                check_event(event, path, line_no)
                seq = event["sequence_no"]
                if event["encoding_version"] != 1:
                    raise Broken(seq, "unsupported encoding", f"event {seq} has encoding_version {event['encoding_version']}", path)
                if seq != expected:
                    if last is not None and seq == last[0]:
                        raise Broken(seq, "duplicate", f"two events hold sequence_no {seq}", path)
                    if seq < expected:
                        raise Broken(expected, "out of order", f"expected sequence_no {expected} next, found {seq}", path)
                    following = next_sequence_no(f)  # a gap, unless the missing event comes right after (two events swapped)
                    if isinstance(following, int) and expected <= following < seq:
                        raise Broken(expected, "out of order", f"expected sequence_no {expected} next, found {seq} and then {following}", path)
                    raise Broken(expected, "gap", f"after sequence_no {expected - 1} the next event is {seq}: events {expected} to {seq - 1} are missing", path)
                try:
                    computed = record_hash(event)
                except (ValueError, UnicodeEncodeError) as e:
                    raise Unreadable(f"{path} line {line_no}: {e}: the file is damaged")
                if computed.hex() != event["record_hash"]:
                    raise Broken(seq, "hash mismatch", f"event {seq}: stored record_hash {event['record_hash']}, recomputed {computed.hex()}", path)
                if event["tenant_id"] != tenant:
                    raise Broken(seq, "wrong tenant", f"event {seq} belongs to tenant {event['tenant_id']}, not {tenant}", path)
                if previous_hash is not None and bytes.fromhex(event["prev_hash"]) != previous_hash:
                    if seq == 1:
                        raise Broken(1, "broken link", "event 1 does not start from the genesis value (32 zero bytes)", path)
                    raise Broken(seq - 1, "broken link", f"event {seq} names a prev_hash that is not event {seq - 1}'s record_hash: event {seq - 1} was rewritten with a recomputed hash", path)
                for c in anchored.get(seq, []):
                    if c["record_hash"] != computed.hex():
                        raise Broken(seq, "anchor mismatch", f"checkpoint {c['name']} (anchored {c['anchored_at']}) holds another record_hash for event {seq}: the history was rewritten and its hashes recomputed", path)
                    matched += 1
                if first is None:
                    first = (seq, event["prev_hash"], computed.hex())
                last = (seq, computed.hex())
                previous_hash, expected = computed, seq + 1
                file_first = seq if file_first is None else file_first
                file_last, count, checked = seq, count + 1, checked + 1
        if digest.hexdigest() != entry["sha256"] or size != entry["bytes"]:
            file_problems.append(Broken(entry["first_sequence_no"], "file digest mismatch", f"{path} has SHA-256 {digest.hexdigest()}, the manifest says {entry['sha256']}: the file was changed after the export", path))
        elif (count, file_first, file_last) != (entry["event_count"], entry["first_sequence_no"], entry["last_sequence_no"]):
            file_problems.append(Broken(entry["first_sequence_no"], "manifest mismatch", f"{path} holds {count} events ({file_first} to {file_last}), the manifest says {entry['event_count']} ({entry['first_sequence_no']} to {entry['last_sequence_no']})", path))

    # The manifest as a whole, then what only the anchors can tell, then the store itself; the lowest sequence_no first.
    problems = []
    last_seq = last[0] if last else None
    to_seq = manifest["to_sequence_no"]
    if file_problems:
        problems.append(file_problems[0])
    elif checked != manifest["event_count"] or last_seq != to_seq:
        kind = "truncated" if last_seq is not None and to_seq is not None and last_seq < to_seq else "manifest mismatch"
        at = first_seq if last_seq is None else min(last_seq, to_seq if to_seq is not None else last_seq) + 1
        problems.append(Broken(at, kind, f"the files hold {checked} events ending at {last_seq}; the manifest says {manifest['event_count']} ending at {to_seq}", "manifest.json"))
    elif (last and last[1]) != manifest["last_record_hash"] or (first and first[2]) != manifest["first_record_hash"] or (first and first[1]) != manifest["first_prev_hash"]:
        problems.append(Broken(first_seq, "manifest mismatch", "the first or last record_hash in the manifest is not the files'", "manifest.json"))
    elif manifest["requested_range"]["to_sequence_no"] is None and manifest.get("chain_head") and last_seq is not None:
        head = manifest["chain_head"]
        if head["sequence_no"] != last_seq or head["record_hash"] != manifest["last_record_hash"]:
            problems.append(Broken(min(last_seq, head["sequence_no"]) + 1, "head mismatch", f"a full export must end at the chain head {head['sequence_no']}; it ends at {last_seq}", "manifest.json"))
    if to_seq is not None:
        requested_to = manifest["requested_range"]["to_sequence_no"]
        for c in checkpoints:
            # A checkpoint beyond the export's end that the export should have reached.
            reaches = c["anchored_at"] <= manifest["exported_at"] if requested_to is None else c["sequence_no"] <= requested_to
            if c["sequence_no"] > to_seq and reaches:
                problems.append(Broken(to_seq + 1, "truncated", f"checkpoint {c['name']} vouches for events up to {c['sequence_no']}, the export ends at {to_seq}: events were removed", c["name"]))
                break
    problems += store_problems
    extra = [n for n in os.listdir(export_dir) if re.search(r"\.(jsonl|parquet)\Z", n) and n not in listed]
    if extra:
        problems.append(Broken(None, "manifest mismatch", f"data files not listed in the manifest: {', '.join(sorted(extra))}", extra[0]))
    if problems:
        raise min(problems, key=lambda p: float("inf") if p.sequence_no is None else p.sequence_no)
    beyond = [c["sequence_no"] for c in checkpoints if to_seq is not None and c["sequence_no"] > to_seq]
    if beyond:
        print(f"NOTE: checkpoints vouch for events up to sequence_no {max(beyond)}, beyond this export's end ({to_seq}): "
              "those events are not in it, and only the manifest (which nothing signs) says it was a range or made before them",
              file=sys.stderr)
    if anchors and matched == 0:
        # Anchors asked for, and none vouches for these events: nothing outside the export says they are the recorded history.
        raise Broken(first_seq, "not anchored", f"no signed checkpoint of tenant {tenant!r} in {anchors} falls within sequence_no {first_seq} to {to_seq}", "manifest.json")
    return checked, matched


def main():
    parser = argparse.ArgumentParser(description="Verify a pg-audit-trail JSON Lines export with no database and no vendor code.")
    parser.add_argument("export_dir")
    parser.add_argument("--anchors", help="a directory holding the anchor store's published checkpoints")
    parser.add_argument("--public-key", help="the Ed25519 public key (PEM) that signed the checkpoints")
    parser.add_argument("--tenant", help="the tenant the export must be of (the manifest's claim is not taken on trust)")
    parser.add_argument("--json", action="store_true", help="print the verdict as one JSON object")
    args = parser.parse_args()
    verdict = {"export": args.export_dir, "ok": False, "events_checked": None, "checkpoints_matched": None,
               "first_bad_sequence_no": None, "problem": None, "detail": None}
    try:
        checked, matched = verify(args.export_dir, args.anchors, args.public_key, args.tenant)
        verdict.update(ok=True, events_checked=checked, checkpoints_matched=matched)
        text = f"export {args.export_dir}: OK ({checked} events; {matched} anchored events match their checkpoints)"
        code = 0
    except Broken as b:
        verdict.update(first_bad_sequence_no=b.sequence_no, problem=b.problem, detail=b.detail)
        at = "-" if b.sequence_no is None else b.sequence_no
        text = f"export {args.export_dir}: BROKEN at sequence_no {at}: {b.problem}: {b.detail}"
        code = 1
    except Unreadable as u:
        verdict.update(problem="unreadable", detail=str(u))
        text = f"error: {u}"
        code = 2
    print(json.dumps(verdict) if args.json else text, file=sys.stderr if code == 2 and not args.json else sys.stdout)
    return code


if __name__ == "__main__":
    sys.exit(main())
