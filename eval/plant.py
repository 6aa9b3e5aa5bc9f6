"""Plants made-up secrets and decoys into a hard-linked copy of a source tree.

    python3 eval/plant.py --tree DIR --seed N --manifest OUT.jsonl [--detectors DIR]

DIR is a copy of Debian's linux-source-6.1 made with `cp -al` (every file a
hard link to the pristine extraction).  A planted file is never written in
place: it is unlinked and written anew, so the pristine tree is untouched.

What is planted.  Every detector in detectors/*.toml carries its own positive
examples (`test_positive` holding `expect`).  Each example gives a realistic
context (the text around the secret) and a template for the token; the token
itself is generated fresh: every character that is not part of a literal of
the detector's regex (a prefix such as `ghp_`, a marker such as `T3BlbkFJ`)
is replaced at random by one of its own class (digit, lower, upper; hex and
base32 stay hex and base32), then the format's checksum is recomputed (CRC32
for GitHub and npm, JWT header/payload JSON, UUID version and variant, ...).
The new line is checked against the detector's own regex with Python's `re`
so a generator bug cannot pass for a scanner miss.

Where.  Into copies of existing Linux files (.c, .py, .yaml, .json, .sh,
Makefile: a line inserted at a blank line) and into new files the kernel has
no kind of (.env, Dockerfile, Kubernetes Secret manifests, .dockerconfigjson,
.properties, .xml).  Secrets are planted outside test, docs, example and
vendored paths, where the confidence model lowers scores on purpose.

How.  Plain, or encoded as base64, base64url, hex, URL percent-encoding,
JSON \\u escapes, base64 of percent-encoding, and .dockerconfigjson (base64 of
JSON holding base64 of user:token).

Decoys that must NOT be reported: placeholders (EXAMPLE, xxxx, <your-key>),
environment references (${VAR}, os.environ[...], process.env.X), checksum
failures, repeated and sequential characters, documentation samples,
SHA-1/SHA-256/SHA-512 digests and UUIDs in their usual contexts.

Manifest: one JSON object per line: path (relative to the tree), line
(1-based, where the secret or the encoded span starts), detector, service,
encoding, file_type, kind ("secret" or "decoy"), decoy (the decoy type),
redacted (first and last 3 characters, for reading the report).
"""
import argparse
import base64
import hashlib
import json
import os
import random
import re
import string
import sys
import tomllib
import urllib.parse
import uuid
import zlib

B62 = string.digits + string.ascii_uppercase + string.ascii_lowercase
HEX_LOWER = "0123456789abcdef"
B64URL = string.ascii_letters + string.digits + "-_"

# Paths where the confidence model lowers scores on purpose (tests, docs,
# vendored code, lockfiles: tools/train/features.py, mirrored by
# src/triage/confidence.c): secrets are not planted there, decoys may be.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools", "train"))
import features  # noqa: E402


def soft_path(rel):
    p = ("/" + rel).lower().encode()
    return (any(w in p for w in features.PATH_TEST + features.PATH_DOCS + features.PATH_VENDOR)
            or any(p.endswith(w) for w in features.PATH_DOCS_END + features.PATH_LOCK_END))


# ---------------------------------------------------------------------------
# Detectors and their regexes
# ---------------------------------------------------------------------------


def pcre_to_python(rx):
    """PCRE syntax the detectors use that Python's re spells differently."""
    rx = re.sub(r"\(\?<([A-Za-z_]\w*)>", r"(?P<\1>", rx)
    rx = rx.replace(r"\z", r"\Z").replace(r"\h", r"[ \t]")
    rx = rx.replace("[[:alnum:]]", "[A-Za-z0-9]").replace("[:alnum:]", "A-Za-z0-9")
    return rx


class Detector:
    def __init__(self, spec):
        d = spec["detector"]
        self.id = d["id"]
        self.service = d.get("service", self.id)
        self.keywords = [k.lower() for k in d.get("keywords", [])]
        self.checksum = (d.get("validate") or {}).get("checksum")
        self.patterns = []
        for p in d.get("patterns", []):
            try:
                rx = re.compile(pcre_to_python(p["regex"]))
            except (re.error, OverflowError):
                rx = None
            self.patterns.append((p["regex"], rx, p.get("group", 0)))
        self.examples = []
        for t in d.get("tests", []):
            pos, exp = t.get("test_positive"), t.get("expect")
            if not pos or not exp or exp not in pos:
                continue
            i = pos.index(exp)
            self.examples.append((pos[:i], exp, pos[i + len(exp):]))
        lit = " ".join(re.sub(r"\\([^A-Za-z0-9])", r"\1", p[0]) for p in self.patterns)
        self.literal_text = lit
        self.literal_lower = lit.lower()

    def verified(self, line, secret):
        """True if some pattern finds exactly `secret` in `line`; None if no
        pattern could be compiled by Python (then nothing can be said)."""
        compiled = False
        for _, rx, g in self.patterns:
            if rx is None:
                continue
            compiled = True
            for m in rx.finditer(line):
                try:
                    if m.group(g) == secret:
                        return True
                except IndexError:
                    pass
        return False if compiled else None

    def self_identifying(self, secret):
        """The token alone is enough for the detector (a prefix, a marker):
        it can be planted without the context of its example."""
        return self.verified(" " + secret + " ", secret) is True


def load_detectors(dirpath):
    out = []
    for name in sorted(os.listdir(dirpath)):
        if name.endswith(".toml"):
            with open(os.path.join(dirpath, name), "rb") as f:
                det = Detector(tomllib.load(f))
            if det.examples:
                out.append(det)
    return out


# ---------------------------------------------------------------------------
# Fresh tokens
# ---------------------------------------------------------------------------


def crc_b62(body):
    crc = zlib.crc32(body.encode())
    out = ""
    for _ in range(6):
        crc, r = divmod(crc, 62)
        out = B62[r] + out
    return out


def b64url_nopad(b):
    return base64.urlsafe_b64encode(b).decode().rstrip("=")


def b64url_decode(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def fixed_mask(det, secret):
    """Positions that belong to a literal of the detector's regex (length >= 2,
    compared case-insensitively) or a keyword: kept as they are."""
    n = len(secret)
    mask = [not c.isalnum() for c in secret]
    low = secret.lower()
    for kw in det.keywords + ["t3blbkfj"]:
        start = low.find(kw)
        while kw and start >= 0:
            for k in range(start, start + len(kw)):
                mask[k] = True
            start = low.find(kw, start + 1)
    i = 0
    while i < n:
        best = 0
        for j in range(min(n, i + 48), i + 1, -1):
            # two-character literals only at the ends ("...AA"): inside a
            # token they are mostly chance ("Za" of "A-Za-z")
            if (j - i >= 3 or i == 0 or j == n) and low[i:j] in det.literal_lower:
                best = j - i
                break
        if best:
            for k in range(i, i + best):
                mask[k] = True
            i += best
        else:
            i += 1
    # A literal run that stands alone at the very end of a long random
    # stretch ("...AA") is kept; a run inside is kept too. Nothing else to do.
    return mask


def class_alphabets(secret, mask):
    free = [c for c, m in zip(secret, mask) if not m]
    lowers = {c for c in free if c.islower()}
    uppers = {c for c in free if c.isupper()}
    digits = {c for c in free if c.isdigit()}
    lo, up, dg = string.ascii_lowercase, string.ascii_uppercase, string.digits
    if lowers and lowers <= set("abcdef") and not uppers:
        lo = "abcdef"
    if uppers and uppers <= set("ABCDEF") and not lowers:
        up = "ABCDEF"
    if digits and digits <= set("234567") and uppers and not lowers:
        dg = "234567"
    return lo, up, dg


def mutate(rnd, secret, mask):
    lo, up, dg = class_alphabets(secret, mask)
    out = []
    for c, m in zip(secret, mask):
        if m or not c.isascii():
            out.append(c)
        elif c.islower():
            out.append(rnd.choice(lo))
        elif c.isupper():
            out.append(rnd.choice(up))
        elif c.isdigit():
            out.append(rnd.choice(dg))
        else:
            out.append(c)
    return "".join(out)


def fresh_jwt(rnd, token):
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        payload = json.loads(b64url_decode(parts[1]))
    except ValueError:
        return None
    if not isinstance(payload, dict):
        return None
    for k, v in list(payload.items()):
        if isinstance(v, int) and v > 10**9:
            payload[k] = 1700000000 + rnd.randrange(10**8)
        elif isinstance(v, str) and len(v) >= 8 and re.fullmatch(r"[\w-]+", v):
            payload[k] = mutate(rnd, v, [not c.isalnum() for c in v])
    body = b64url_nopad(json.dumps(payload, separators=(",", ":")).encode())
    sig = "".join(rnd.choice(B64URL) for _ in parts[2])
    return parts[0] + "." + body + "." + sig


def fix_checksum(rnd, kind, s):
    if kind in ("github-crc32", "npm-crc32"):
        m = re.search(r"[A-Za-z0-9]{36}$", s)
        if m and (len(s) == 36 or s[-37] == "_"):
            body = s[-36:-6]
            return s[:-36] + body + crc_b62(body)
        return s
    if kind == "uuid" and len(s) == 36:
        u = str(uuid.UUID(int=rnd.getrandbits(128), version=4))
        return u.upper() if s.isupper() else u
    if kind == "jwt":
        m = re.search(r"eyJ[\w-]*\.eyJ[\w-]*\.[\w-]*", s)
        if m:
            j = fresh_jwt(rnd, m.group(0))
            if j:
                return s[:m.start()] + j + s[m.end():]
    return s


def checksum_ok(kind, s):
    """Python twins of the validators whose inputs mutation could break."""
    if kind in ("github-crc32", "npm-crc32"):
        body = s[-36:]
        return bool(re.fullmatch(r"[A-Za-z0-9]{36}", body)) and crc_b62(body[:30]) == body[30:]
    if kind == "uuid":
        return bool(re.fullmatch(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[1-8][0-9a-fA-F]{3}-"
                                 r"[89abAB][0-9a-fA-F]{3}-[0-9a-fA-F]{12}", s))
    if kind == "openai":
        return "T3BlbkFJ" in s
    if kind == "aws-key-id":
        return bool(re.fullmatch(r"A[A-Z0-9]{3}[A-Z2-7]{16}", s))
    if kind == "pypi-macaroon":
        try:
            head = b64url_decode(s[5:])
        except ValueError:
            return False
        return head[:11] == b"\x02\x01\x08pypi.org" or head[:16] == b"\x02\x01\x0dtest.pypi.org"
    return True


class Token:
    """A fresh secret in the context of one of its detector's examples."""

    def __init__(self, det, pre, secret, post, verified):
        self.det, self.pre, self.secret, self.post = det, pre, secret, post
        self.verified = verified
        self.line = pre + secret + post
        self.self_ident = det.self_identifying(secret)
        self.name = kv_name(pre, post)


PEM_BODY_RE = re.compile(r"(-----BEGIN [A-Z0-9 ]+-----)(.*?)(-----END )", re.S)


def fresh_pem(rnd, text):
    def body(m):
        b = m.group(2)
        keep = [not c.isalnum() or (k > 0 and b[k - 1] == "\\") for k, c in enumerate(b)]
        for k in range(min(len(b), 12)):  # the DER header ("\nMIIEvQIBADAN")
            keep[k] = True
        return m.group(1) + mutate(rnd, b, keep) + m.group(3)
    return PEM_BODY_RE.sub(body, text)


UUID_RE = re.compile(r"(?<![0-9A-Fa-f-])[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-"
                     r"[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}(?![0-9A-Fa-f-])")


def fresh_uuids(rnd, text):
    """A UUID-shaped key is issued as a random (version 4) UUID: its version
    and variant digits are fixed, not random."""
    def one(m):
        u = str(uuid.UUID(int=rnd.getrandbits(128), version=4))
        return u.upper() if m.group(0).isupper() else u
    return UUID_RE.sub(one, text)


JWT_RE = re.compile(r"eyJ[\w-]+\.eyJ[\w-]+\.[\w-]*")


RANDOM_RUN_RE = re.compile(r"[A-Za-z0-9+/]{12,}")


def random_looking(run):
    return (any(c.isdigit() for c in run) and any(c.isalpha() for c in run)
            and len(set(run)) >= 8)


def fresh_context(rnd, text):
    """Other tokens in an example's context (the secret key next to an AWS
    key id) are redrawn too, so no example string is planted as it is."""
    def one(m):
        run = m.group(0)
        if not random_looking(run):
            return run
        return mutate(rnd, run, [not c.isalnum() for c in run])
    return RANDOM_RUN_RE.sub(one, fresh_pem(rnd, text))


def clean_context(pre, post):
    """No other secret around: a decoy must be reportable as nothing."""
    ctx = pre + " " + post
    return "-----BEGIN" not in ctx and not any(
        random_looking(m.group(0)) for m in RANDOM_RUN_RE.finditer(ctx))


def fresh_token(rnd, det, tries=40, clean=False):
    examples = [e for e in det.examples if not clean or clean_context(e[0], e[2])]
    if not examples:
        return None
    pre, exp, post = rnd.choice(examples)
    mask = fixed_mask(det, exp)
    if all(mask):  # nothing random to vary (a fixed-format example)
        return None
    jwt = JWT_RE.search(exp)
    for _ in range(tries):
        if jwt:  # a JWT keeps its JSON header and payload; values are new
            j = fresh_jwt(rnd, jwt.group(0))
            s = exp[:jwt.start()] + j + exp[jwt.end():] if j else exp
        else:
            s = fix_checksum(rnd, det.checksum, fresh_uuids(rnd, mutate(rnd, exp, mask)))
        if s == exp or not checksum_ok(det.checksum, s):
            continue
        v = det.verified(pre + s + post, s)
        if v is False:
            continue
        # Key blocks and tokens in the example's context (a service-account
        # JSON around its key id) are made fresh too, if the regex agrees.
        pre2, post2 = fresh_context(rnd, pre), fresh_context(rnd, post)
        if det.verified(pre2 + s + post2, s) is not False:
            pre, post = pre2, post2
        return Token(det, pre, s, post, v is True)
    return None


# The name a value is assigned to in an example ("ABLY_API_KEY=", "token: '",
# "\"apiKey\": \"").  None when the example is not a simple assignment.
KV_RE = re.compile(r"""^\s*(?:export\s+|set\s+|const\s+|let\s+|var\s+)?["']?([A-Za-z_][\w.-]{1,60})["']?"""
                   r"""\s*(?::=|=>|:|=)\s*["']?$""")


def kv_name(pre, post):
    m = KV_RE.match(pre)
    if not m or not re.fullmatch(r"""["']?[,;]?\s*""", post):
        return None
    return m.group(1)


def c_ident(name):
    return re.fullmatch(r"[A-Za-z_]\w*", name or "") is not None


# ---------------------------------------------------------------------------
# Encodings
# ---------------------------------------------------------------------------


def enc_base64(s):
    return base64.b64encode(s.encode()).decode()


def enc_base64url(s):
    return b64url_nopad(s.encode())


def enc_hex(s):
    return s.encode().hex()


def enc_url(s):
    return urllib.parse.quote(s, safe="")


def enc_unicode(s):
    return "".join("\\u%04x" % ord(c) for c in s)


def enc_b64_url(s):
    return enc_base64(enc_url(s))


ENCODINGS = {
    "base64": enc_base64,
    "base64url": enc_base64url,
    "hex": enc_hex,
    "url": enc_url,
    "unicode-escape": enc_unicode,
    "base64>url": enc_b64_url,
}

# ---------------------------------------------------------------------------
# Carriers: the lines of text that hold a planted value in one file type.
# Each returns (lines, index of the line that holds the value).
# ---------------------------------------------------------------------------


def q_json(s):
    return json.dumps(s)[1:-1]


def plain_lines(ft, tok, rnd, verify=True):
    """(file type, lines, index of the value's line) for a value in the clear.
    The natural form first (an assignment when the example is one, else the
    example line in a comment or string); when the detector's own regex
    does not match the planted text that way (an example anchored at the
    start of a line, a multi-line block), the example's text as it is, in a
    file of its own."""
    if "\n" in tok.line:
        ft = rnd.choice(["raw", "yaml", "json"])
        lines = tok.line.split("\n")
        idx = tok.pre.count("\n")
        if ft == "yaml":
            forms = [(["deploy:", "  config: |"] + ["    " + l for l in lines], idx + 2)]
        elif ft == "json":
            forms = [(["  \"config\": \"%s\"," % q_json(tok.line)], 0)]
        else:
            forms = []
    else:
        forms = [f for f in (kv_form(ft, tok), line_form(ft, tok)) if f]
        lines, idx = [tok.line], 0
    for lines_, idx_ in forms:
        if not verify or tok.det.verified("\n".join(lines_), tok.secret) is not False:
            return ft, lines_, idx_
    return "raw", lines, idx


def kv_form(ft, tok):
    name, sec = tok.name, tok.secret
    if not name:
        return None
    if ft in ("c", "py", "sh", "Dockerfile") and not c_ident(name):
        return None
    if ft == "c":
        return ["", "static const char *%s = \"%s\";" % (name, sec), ""], 1
    if ft == "py":
        return ["%s = \"%s\"" % (name, sec)], 0
    if ft == "yaml":
        return ["deploy:", "  env:", "    %s: %s" % (name, sec)], 2
    if ft == "json":
        return ["  \"%s\": \"%s\"," % (name, sec)], 0
    if ft == "sh":
        return ["export %s=\"%s\"" % (name, sec)], 0
    if ft == "Makefile":
        return (["%s := %s" % (name, sec)], 0) if re.fullmatch(r"[\w.-]+", name) else None
    if ft in ("env", "properties"):
        return ["%s=%s" % (name, sec)], 0
    if ft == "Dockerfile":
        return ["ENV %s=%s" % (name, sec)], 0
    if ft == "xml":
        return (["  <entry key=\"%s\">%s</entry>" % (name, sec)], 0) if tok.self_ident else None
    if ft == "k8s":
        return (["stringData:", "  %s: %s" % (name, sec)], 1) \
            if re.fullmatch(r"[\w.-]+", name) else None
    return None


def line_form(ft, tok):
    line = tok.line
    if ft == "c":
        return ["/*", " * " + line.replace("*/", "* /"), " */"], 1
    if ft in ("py", "sh", "Makefile", "properties", "Dockerfile"):
        return ["# " + line], 0
    if ft == "yaml":
        return ["deploy:", "  script: |", "    " + line], 2
    if ft == "json":
        return ["  \"command\": \"%s\"," % q_json(line)], 0
    if ft == "env":
        return [line], 0
    if ft == "xml":
        return ["  <!-- %s -->" % line.replace("--", "- -")], 0
    if ft == "k8s":
        return ["stringData:", "  config.env: %s" % json.dumps(line)], 1
    return None


NEUTRAL_KEYS = ["payload", "blob", "data", "config", "bundle", "settings", "state"]


def encoded_lines(ft, enc_text, rnd):
    key = rnd.choice(NEUTRAL_KEYS)
    if ft == "c":
        return ["static const char %s_enc[] = \"%s\";" % (key, enc_text)], 0
    if ft == "py":
        return ["%s = \"%s\"" % (key.upper(), enc_text)], 0
    if ft == "yaml":
        return ["%s: %s" % (key, enc_text)], 0
    if ft == "json":
        return ["  \"%s\": \"%s\"," % (key, enc_text)], 0
    if ft == "sh":
        return ["%s='%s'" % (key.upper(), enc_text)], 0
    if ft == "Makefile":
        return ["%s_ENC := %s" % (key.upper(), enc_text)], 0
    if ft == "env":
        return ["%s=%s" % (key.upper(), enc_text)], 0
    if ft == "properties":
        return ["app.%s=%s" % (key, enc_text)], 0
    if ft == "Dockerfile":
        return ["ARG %s=%s" % (key.upper(), enc_text)], 0
    if ft == "xml":
        return ["  <%s>%s</%s>" % (key, enc_text, key)], 0
    if ft == "k8s":
        return ["data:", "  %s: %s" % (key, enc_text)], 1
    raise ValueError(ft)


# File types that exist in the Linux tree (a copy of an existing file gets
# the lines) and those that are new files (name chosen here).
EXISTING = {"c": ".c", "py": ".py", "yaml": ".yaml", "json": ".json", "sh": ".sh",
            "Makefile": "Makefile"}
NEW_NAMES = {"env": [".env", "deploy.env", ".env.production"],
             "properties": ["application.properties", "config.properties"],
             "Dockerfile": ["Dockerfile"],
             "xml": ["settings.xml", "app.config.xml"],
             "k8s": ["secret.yaml", "app-secret.yaml"],
             "dockerconfigjson": [".dockerconfigjson"],
             "raw": ["credentials", "secrets.txt", "service.conf"],
             # when the tree has no unused file of the kind left
             "c": ["keys.c"], "py": ["settings.py", "deploy.py"], "yaml": ["values.yaml", "ci.yaml"],
             "json": ["config.json", "credentials.json"], "sh": ["deploy.sh"],
             "Makefile": ["Makefile.local"]}
PLAIN_TYPES = list(EXISTING) + ["env", "properties", "Dockerfile", "xml", "k8s"]

NEW_HEAD = {
    "env": ["# service settings"],
    "properties": ["# application settings", "server.port=8080"],
    "Dockerfile": ["FROM debian:12-slim", "RUN apt-get update && apt-get install -y ca-certificates"],
    "xml": ["<?xml version=\"1.0\" encoding=\"UTF-8\"?>", "<settings>"],
    "k8s": ["apiVersion: v1", "kind: Secret", "metadata:", "  name: app-credentials",
            "type: Opaque"],
}
NEW_TAIL = {"xml": ["</settings>"], "Dockerfile": ["CMD [\"/usr/local/bin/app\"]"]}


# ---------------------------------------------------------------------------
# The tree
# ---------------------------------------------------------------------------


class Tree:
    def __init__(self, root, rnd):
        self.root = os.path.abspath(root)
        self.rnd = rnd
        self.by_type = {k: [] for k in EXISTING}
        self.dirs, self.soft_dirs = [], []
        self.used = set()
        for dirpath, dirnames, filenames in os.walk(self.root):
            dirnames.sort()
            rel = os.path.relpath(dirpath, self.root)
            rel = "" if rel == "." else rel
            soft = soft_path(rel + "/")
            (self.soft_dirs if soft else self.dirs).append(rel)
            if soft:
                continue
            for fn in sorted(filenames):
                p = os.path.join(rel, fn)
                if soft_path(p):
                    continue
                for ft, suffix in EXISTING.items():
                    if fn == suffix if suffix == "Makefile" else fn.endswith(suffix):
                        self.by_type[ft].append(p)

    def pick_existing(self, ft):
        for _ in range(20):
            p = self.rnd.choice(self.by_type[ft])
            if p not in self.used and os.path.isfile(os.path.join(self.root, p)):
                self.used.add(p)
                return p
        return None

    def pick_dir(self, soft):
        if soft and not self.soft_dirs:  # a tree with no docs: a docs/ of our own
            return os.path.join(self.rnd.choice(self.dirs), "docs")
        return self.rnd.choice(self.soft_dirs if soft else self.dirs)

    def pick_new(self, ft, soft=False):
        names = NEW_NAMES[ft]
        for _ in range(200):
            d = self.pick_dir(soft)
            p = os.path.join(d, self.rnd.choice(names))
            if p not in self.used and not os.path.exists(os.path.join(self.root, p)):
                self.used.add(p)
                return p
        for k in range(1, 10**6):  # a small tree: new deploy/ folders
            d = self.pick_dir(soft)
            p = os.path.join(d, "deploy%d" % k, self.rnd.choice(names))
            if p not in self.used and not os.path.exists(os.path.join(self.root, p)):
                self.used.add(p)
                return p
        raise RuntimeError("no free place for " + ft)

    def insert(self, rel, lines, idx):
        """Inserts lines into a copy of an existing file at a blank line (or
        the end); returns the 1-based line number of lines[idx]."""
        full = os.path.join(self.root, rel)
        with open(full, "rb") as f:
            data = f.read().decode("utf-8", "surrogateescape")
        old = data.split("\n")
        if old and old[-1] == "":
            old.pop()
        blanks = [i for i, l in enumerate(old) if not l.strip()]
        at = self.rnd.choice(blanks) + 1 if blanks else len(old)
        new = old[:at] + lines + old[at:]
        os.unlink(full)  # break the hard link: the pristine tree stays as it was
        with open(full, "wb") as f:
            f.write(("\n".join(new) + "\n").encode("utf-8", "surrogateescape"))
        return at + idx + 1

    def create(self, rel, lines, idx, ft):
        head, tail = NEW_HEAD.get(ft, []), NEW_TAIL.get(ft, [])
        full = os.path.join(self.root, rel)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "w") as f:
            f.write("\n".join(head + lines + tail) + "\n")
        return len(head) + idx + 1

    def place(self, ft, lines, idx, soft=False):
        if ft in EXISTING and not soft:
            p = self.pick_existing(ft) if self.by_type[ft] else None
            if p is not None:
                return p, self.insert(p, lines, idx)
        p = self.pick_new(ft if ft in NEW_NAMES else "env", soft)
        return p, self.create(p, lines, idx, ft)


# ---------------------------------------------------------------------------
# Decoys
# ---------------------------------------------------------------------------


def shaped(tok, fill):
    """The token with its random characters replaced by fill(i, c)."""
    mask = fixed_mask(tok.det, tok.secret)
    return "".join(c if m or not c.isalnum() else fill(i, c)
                   for i, (c, m) in enumerate(zip(tok.secret, mask)))


def decoy_value(rnd, tok, kind):
    s = tok.secret
    if kind == "example":
        # a documentation-style sample: random-looking, ending in EXAMPLE
        # over the last stretch of free characters ("...NN7EXAMPLE")
        mask = fixed_mask(tok.det, s)
        end = len(s)
        while end > 0 and mask[end - 1]:
            end -= 1
        start = end
        while start > 0 and not mask[start - 1] and s[start - 1].isalnum():
            start -= 1
        if end - start < 7:
            return None
        word = "example" if any(c.islower() for c in s[start:end]) and \
            not any(c.isupper() for c in s[start:end]) else "EXAMPLE"
        return s[:end - 7] + word + s[end:]
    free = "".join(c for c, m in zip(s, fixed_mask(tok.det, s)) if not m and c.isalnum())
    if kind == "xxxx":  # written as people write it: all x, or all X
        x = "x" if any(c.islower() for c in free) else "X"
        return shaped(tok, lambda i, c: x)
    if kind == "repeated":
        pool = [c for c in free if c.islower()] or [c for c in free if c.isupper()] or list(free)
        ch = rnd.choice(pool) if pool else "a"
        return shaped(tok, lambda i, c: ch)
    if kind == "sequential":
        lo = any(c.islower() for c in free)
        up = any(c.isupper() for c in free)
        seq = string.digits + (string.ascii_lowercase if lo or not up else "") + \
            (string.ascii_uppercase if up else "")
        if all(c in "0123456789abcdef" for c in free):
            seq = "0123456789abcdef"
        k = iter(range(10**6))
        start = 1
        return shaped(tok, lambda i, c: seq[(next(k) + start) % len(seq)])
    if kind == "your-key":
        return "<your-%s-key>" % tok.det.service.lower().replace(" ", "-")
    if kind == "env-ref":
        var = (tok.name or tok.det.service + "_TOKEN").upper().replace("-", "_").replace(".", "_")
        return rnd.choice(["${%s}" % var, "$%s" % var, "{{ .Values.%s }}" % var.lower(),
                           "%%(%s)s" % var])
    if kind == "bad-checksum":
        kind_ = tok.det.checksum
        if kind_ in ("github-crc32", "npm-crc32"):
            c = s[-1]
            return s[:-1] + rnd.choice([x for x in B62 if x != c])
        if kind_ == "uuid":
            return s[:19] + rnd.choice("c0d7") + s[20:]
        if kind_ == "jwt":
            m = re.search(r"eyJ[\w-]*\.(eyJ[\w-]*)\.", s)
            if m:  # a payload that is not JSON any more (no closing brace)
                bad = b64url_nopad(b'{"sub":"%x"' % rnd.getrandbits(96))
                return s[:m.start(1)] + bad + s[m.end(1):]
        return None
    raise ValueError(kind)


DECOY_KINDS = ["example", "xxxx", "repeated", "sequential", "your-key", "env-ref",
               "bad-checksum"]


def code_env_decoy(rnd, tok):
    """A read from the environment in code: the value never appears."""
    var = (tok.name or tok.det.service + "_API_KEY").upper().replace("-", "_").replace(".", "_")
    ft, line = rnd.choice([
        ("py", "%s = os.environ[\"%s\"]" % (var.lower(), var)),
        ("py", "%s = os.getenv(\"%s\", \"\")" % (var.lower(), var)),
        ("sh", "curl -H \"Authorization: Bearer ${%s}\" \"$API_URL\"" % var),
        ("c", "const char *%s = getenv(\"%s\");" % (var.lower(), var)),
        ("yaml", "    %s: ${{ secrets.%s }}" % (var.lower(), var)),
    ])
    return ft, [line], 0


def hash_decoy(rnd):
    data = rnd.getrandbits(256).to_bytes(32, "big")
    sha1 = hashlib.sha1(data).hexdigest()
    sha256 = hashlib.sha256(data).hexdigest()
    sha512 = base64.b64encode(hashlib.sha512(data).digest()).decode()
    return rnd.choice([
        ("sh", ["echo \"%s  linux-6.1.tar.xz\" | sha256sum -c -" % sha256], 0),
        ("yaml", ["  checksum: sha256:%s" % sha256], 0),
        ("json", ["  \"integrity\": \"sha512-%s\"," % sha512], 0),
        ("json", ["  \"sha1\": \"%s\"," % sha1], 0),
        ("c", ["/* Fixes: %s (\"net: fix a leak\") */" % sha1[:12]], 0),
        ("py", ["EXPECTED_SHA256 = \"%s\"" % sha256], 0),
        ("Makefile", ["GIT_COMMIT := %s" % sha1], 0),
        ("Dockerfile", ["FROM debian@sha256:%s" % sha256], 0),
        ("properties", ["build.commit=%s" % sha1], 0),
    ])


def uuid_decoy(rnd):
    u = str(uuid.UUID(int=rnd.getrandbits(128), version=4))
    return rnd.choice([
        ("json", ["  \"request_id\": \"%s\"," % u], 0),
        ("py", ["TRACE_ID = \"%s\"" % u], 0),
        ("yaml", ["    uid: %s" % u], 0),
        ("sh", ["UUID=%s /boot ext4 defaults 0 2" % u], 0),
        ("c", ["/* GUID %s */" % u.upper()], 0),
        ("xml", ["  <ProjectGuid>{%s}</ProjectGuid>" % u.upper()], 0),
    ])


def doc_decoy(rnd, tok):
    """A documentation sample: a .rst/.md under Documentation/ showing how to
    set the variable, with an obviously made-up value."""
    kind = rnd.choice(["example", "xxxx", "sequential", "your-key"])
    val = decoy_value(rnd, tok, kind)
    if val is None:
        return None
    name = tok.name or "API_KEY"
    return ["", "For example, set it in the environment::", "",
            "    %s=%s" % (name, val), ""], 3, kind


# ---------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------


def redact(s):
    return s[:3] + "..." + s[-3:] if len(s) > 8 else "***"


def plant(tree_root, seed, manifest_path, detectors_dir, encoded_share=0.45, decoys_per_det=1.0,
          max_detectors=0):
    rnd = random.Random(seed)
    dets = load_detectors(detectors_dir)
    if max_detectors and len(dets) > max_detectors:  # small trees (the test)
        dets = sorted(rnd.sample(dets, max_detectors), key=lambda d: d.id)
    tree = Tree(tree_root, rnd)
    rows = []
    unverified = 0

    def record(path, line, tok, kind, encoding, ft, decoy=None, value=None):
        rows.append({"path": path, "line": line, "detector": tok.det.id if tok else None,
                     "service": tok.det.service if tok else None, "encoding": encoding,
                     "file_type": ft, "kind": kind, "decoy": decoy,
                     "redacted": redact(value if value is not None else tok.secret)})

    for det in dets:
        # Each detector: one plain secret, one encoded secret for a share of
        # them, one decoy or so.  Types and encodings drawn per seed.
        tok = fresh_token(rnd, det)
        if tok is None:
            continue
        unverified += not tok.verified
        ft, lines, idx = plain_lines(rnd.choice(PLAIN_TYPES), tok, rnd)
        path, line = tree.place(ft, lines, idx)
        record(path, line, tok, "secret", "plain", ft)

        if rnd.random() < encoded_share:
            tok = fresh_token(rnd, det)
            if tok is not None:
                encoding = rnd.choice(list(ENCODINGS) + ["dockerconfigjson"])
                if encoding == "dockerconfigjson" and tok.self_ident:
                    auth = enc_base64("deploy-bot:" + tok.secret)
                    doc = json.dumps({"auths": {"registry.example.com": {"auth": auth}}})
                    lines, idx = [enc_base64(doc)], 0
                    path, line = tree.place("dockerconfigjson", lines, idx)
                    record(path, line, tok, "secret", "base64>base64", "dockerconfigjson")
                else:
                    if encoding == "dockerconfigjson":
                        encoding = "base64"
                    # The value alone when it identifies itself, else the
                    # line that gives it its context (an .env line).
                    if tok.self_ident and encoding != "url" and rnd.random() < 0.5:
                        payload = tok.secret
                    elif tok.name:
                        payload = "%s=%s" % (tok.name, tok.secret)
                    else:
                        payload = tok.line
                    ft = rnd.choice(PLAIN_TYPES)
                    lines, idx = encoded_lines(ft, ENCODINGS[encoding](payload), rnd)
                    path, line = tree.place(ft, lines, idx)
                    record(path, line, tok, "secret", encoding, ft)

        n_decoys = int(decoys_per_det) + (rnd.random() < decoys_per_det % 1)
        for _ in range(n_decoys):
            tok = fresh_token(rnd, det, clean=True)
            if tok is None:
                continue
            r = rnd.random()
            if r < 0.1:
                ft, lines, idx = code_env_decoy(rnd, tok)
                path, line = tree.place(ft, lines, idx)
                record(path, line, tok, "decoy", "plain", ft, "env-ref", "env")
                continue
            if r < 0.2:
                d = doc_decoy(rnd, tok)
                if d:
                    lines, idx, kind = d
                    path = tree.pick_new("env", soft=True)
                    path = os.path.join(os.path.dirname(path),
                                        "keyhog-%s.rst" % det.service.lower().replace(" ", "-"))
                    if path not in tree.used and not os.path.exists(os.path.join(tree.root, path)):
                        tree.used.add(path)
                        line = tree.create(path, lines, idx, "rst")
                        record(path, line, tok, "decoy", "plain", "rst", "doc-" + kind,
                               lines[idx].strip())
                continue
            kinds = [k for k in DECOY_KINDS if k != "bad-checksum" or det.checksum]
            kind = rnd.choice(kinds)
            val = decoy_value(rnd, tok, kind)
            if val is None or val == tok.secret:
                continue
            dtok = Token(det, tok.pre, val, tok.post, True)
            dtok.name = tok.name
            ft, lines, idx = plain_lines(rnd.choice(PLAIN_TYPES), dtok, rnd, verify=False)
            path, line = tree.place(ft, lines, idx)
            record(path, line, tok, "decoy", "plain", ft, kind, val)

    for _ in range(len(dets) // 5):
        ft, lines, idx = hash_decoy(rnd)
        path, line = tree.place(ft, lines, idx)
        record(path, line, None, "decoy", "plain", ft, "hash", lines[idx])
    for _ in range(len(dets) // 10):
        ft, lines, idx = uuid_decoy(rnd)
        path, line = tree.place(ft, lines, idx)
        record(path, line, None, "decoy", "plain", ft, "uuid", lines[idx])

    with open(manifest_path, "w") as f:
        for r in rows:
            f.write(json.dumps(r, sort_keys=True) + "\n")
    return rows, unverified


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tree", required=True, help="hard-linked copy to plant into")
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--manifest", required=True)
    ap.add_argument("--detectors", default=os.path.join(os.path.dirname(__file__), "..", "detectors"))
    ap.add_argument("--encoded-share", type=float, default=0.45)
    ap.add_argument("--decoys-per-detector", type=float, default=1.0)
    ap.add_argument("--max-detectors", type=int, default=0,
                    help="plant for a random sample of this many detectors (0: all)")
    a = ap.parse_args(argv)
    rows, unverified = plant(a.tree, a.seed, a.manifest, a.detectors, a.encoded_share,
                             a.decoys_per_detector, a.max_detectors)
    secrets = sum(r["kind"] == "secret" for r in rows)
    print("plant: seed %d: %d secrets (%d services), %d decoys; %d tokens not checkable "
          "with Python's re" % (a.seed, secrets, len({r["service"] for r in rows if r["service"]}),
                                len(rows) - secrets, unverified), file=sys.stderr)


if __name__ == "__main__":
    main()
