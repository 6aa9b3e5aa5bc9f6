#!/usr/bin/env python3
"""check_detectors.py - lint detectors/*.toml and run their own tests.

Usage: tools/check_detectors.py [-v] [--no-native] [PATH ...]
       (PATH: detector files or folders; default: the repository's detectors/)

Why this exists: a detector file is data that people write by hand, and the
real engine (`keyhog detectors test`) needs the whole C tree to build.  This
checker needs only Python 3.11's standard library, so a detector author gets
an answer in a second:

  schema     required keys and types, kebab-case id equal to the file name,
             severity and charset names, known checksum validators, no
             unknown keys (a typo would otherwise be silently ignored);
  patterns   compile, capture group exists, cannot match the empty string,
             only syntax Vectorscan accepts (no lookaround, backreferences,
             atomic groups or possessive quantifiers), and a bounded width:
             either {m,n} repeats, or, where Vectorscan cannot track the
             start of a long bounded run, an open-ended repeat together with
             credential_shape.max_length so what is reported stays bounded;
  tests      every test_positive yields a finding (with `expect` as its
             secret when given) and every test_negative yields none, after
             the same gates the engine applies, in the engine's order:
             credential_shape, checksum, min_entropy, placeholders, required
             companions.  At least two of each kind are required.

Where libpcre2-8 and libhs are installed (skip with --no-native), every
pattern is also compiled by PCRE2, as the engine does (an error is fatal),
and by Vectorscan with HS_FLAG_SOM_LEFTMOST (a refusal is a warning: the
engine then scans that pattern with PCRE2 alone, which is slower, and each
refusal costs it one more database compile).

Matching uses Python's `re` on bytes, which agrees with PCRE2 on the syntax
detectors use (classes, bounded repeats, \\b, \\s, (?i), (?i:...)).  The
validators below are twins of src/triage/checksum.c and the placeholder test
comes from tools/train/features.py (itself a tested twin of
src/triage/shape.c); when the C side changes, change them with it.

Exit status: 0 all good, 1 a detector failed, 2 usage error.
"""
import argparse
import base64
import ctypes
import ctypes.util
import math
import os
import re
import sys
import tomllib
import zlib

try:
    import re._parser as sre_parse  # Python >= 3.11
    import re._constants as sre_const
except ImportError:  # pragma: no cover - older Pythons
    import sre_parse  # type: ignore
    import sre_constants as sre_const  # type: ignore

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SEVERITIES = {"critical", "high", "medium", "low", "info"}
CHARSETS = {"hex", "base62", "alnum", "base64", "base64url", "base32", "digits", "printable"}
MAX_WIDTH = 64 * 1024  # ENGINE_MAX_OVERLAP: wider matches may be cut at block edges
ID_RE = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")

DETECTOR_KEYS = {"id", "name", "service", "severity", "keywords", "description", "patterns",
                 "credential_shape", "validate", "companions", "verify", "tests"}
REQUIRED_KEYS = ["id", "name", "service", "severity", "keywords", "description", "patterns",
                 "tests"]
PATTERN_KEYS = {"regex", "group", "description"}
SHAPE_KEYS = {"exact_length": int, "min_length": int, "max_length": int, "charset": str,
              "prefix": str}
VALIDATE_KEYS = {"checksum": str, "min_entropy": (int, float), "reject_placeholders": bool}
COMPANION_KEYS = {"name": str, "regex": str, "group": int, "within_lines": int,
                  "required": bool}
TEST_KEYS = {"test_positive", "test_negative", "expect"}


# ---- placeholder and entropy (twins of src/triage/shape.c) -----------------

def _load_features():
    """tools/train/features.py holds the tested Python twin of shape.c."""
    path = os.path.join(ROOT, "tools", "train")
    if not os.path.isfile(os.path.join(path, "features.py")):
        return None
    sys.path.insert(0, path)
    try:
        import features  # noqa: E402
        return features
    except Exception:  # a broken sibling file must not break this tool
        return None
    finally:
        sys.path.pop(0)


_FEATURES = _load_features()


def entropy(s):
    n = len(s)
    if n == 0:
        return 0.0
    counts = {}
    for c in s:
        counts[c] = counts.get(c, 0) + 1
    return max(0.0, -sum(k / n * math.log2(k / n) for k in counts.values()))


def _fallback_placeholder(s):
    """Used only when features.py is missing: the most obvious signs."""
    low = s.lower()
    if low in (b"password", b"changeme", b"secret", b"test", b"example", b"xxx"):
        return True
    if any(w in s for w in (b"EXAMPLE", b"example", b"your_", b"your-", b"${", b"{{")):
        return True
    return re.search(rb"([xX*.])\1{3}|(.)\2{7}", s) is not None


def is_placeholder(s):
    if _FEATURES is not None:
        return bool(_FEATURES.is_placeholder(s))
    return _fallback_placeholder(s)


# ---- checksum validators (twins of src/triage/checksum.c) ------------------

B62 = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
B62SET = set(B62)
B64URLSET = set(B62 + b"-_")


def _crc_body(b):
    if len(b) != 36 or any(c not in B62SET for c in b):
        return False
    crc = zlib.crc32(b[:30])
    want = bytearray(6)
    for i in range(5, -1, -1):
        want[i] = B62[crc % 62]
        crc //= 62
    return bytes(want) == b[30:]


def v_github_crc32(s):
    if len(s) == 36:
        return _crc_body(s)
    return len(s) >= 38 and s[-37:-36] == b"_" and _crc_body(s[-36:])


def v_github_fine_grained(s):
    if len(s) == 93 and s.startswith(b"github_pat_"):
        s = s[11:]
    return (len(s) == 82 and s[22:23] == b"_" and all(c in B62SET for c in s[:22])
            and all(c in B62SET for c in s[23:]))


def _b64url_decode(s, url=True):
    s = s.rstrip(b"=")
    if len(s) % 4 == 1:
        return None
    alpha = B62SET | (set(b"-_") if url else set(b"+/"))
    if any(c not in alpha for c in s):
        return None
    s += b"=" * (-len(s) % 4)
    return base64.urlsafe_b64decode(s) if url else base64.b64decode(s)


def _json_part(s, need_alg):
    raw = _b64url_decode(s)
    if raw is None or len(raw) < 2:
        return False
    if any((c < 0x20 and c not in b" \t\r\n") or c == 0x7F for c in raw):
        return False
    text = raw.strip(b" \t\r\n")
    return (text[:1] == b"{" and text[-1:] == b"}"
            and (not need_alg or b'"alg"' in raw))


def v_jwt(s):
    parts = s.split(b".")
    if len(parts) != 3:
        return False
    if not _json_part(parts[0], True) or not _json_part(parts[1], False):
        return False
    return all(c in B64URLSET or c == ord("=") for c in parts[2])


def v_pypi_macaroon(s):
    if not s.startswith(b"pypi-"):
        return False
    raw = _b64url_decode(s[5:])
    if raw is None or len(raw) < 16 or raw[0] != 2 or raw[1] != 1:
        return False
    loc = raw[2]
    if (loc == 8 and raw[3:11] == b"pypi.org") or (loc == 13 and raw[3:16] == b"test.pypi.org"):
        return len(raw) > 3 + loc
    return False


def v_luhn(s):
    digits = [c - 48 for c in s if c not in b" -"]
    if any(d < 0 or d > 9 for d in digits) or not 12 <= len(digits) <= 19:
        return False
    total = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2 == 1:
            d = d * 2 - 9 if d * 2 > 9 else d * 2
        total += d
    return total % 10 == 0


def v_slack_webhook(s):
    for head in (b"https://hooks.slack.com/services/", b"http://hooks.slack.com/services/",
                 b"hooks.slack.com/services/"):
        if s.startswith(head):
            s = s[len(head):]
            break
    parts = s.split(b"/")
    if len(parts) != 3:
        return False
    upd = set(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
    t, b_, secret = parts
    return (9 <= len(t) <= 13 and t[:1] == b"T" and all(c in upd for c in t[1:])
            and 9 <= len(b_) <= 13 and b_[:1] == b"B" and all(c in upd for c in b_[1:])
            and 20 <= len(secret) <= 32 and all(c in B62SET for c in secret))


AWS_PREFIXES = (b"AKIA", b"ASIA", b"ABIA", b"ACCA", b"AGPA", b"AIDA", b"AIPA", b"ANPA",
                b"ANVA", b"APKA", b"AROA", b"ASCA")


def v_aws_key_id(s):
    if len(s) != 20:
        return False
    b32 = set(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")
    ok = s[:3] == b"A3T" and chr(s[3]).isalnum() and chr(s[3]) == chr(s[3]).upper()
    return (ok or s[:4] in AWS_PREFIXES) and all(c in b32 for c in s[4:])


def v_uuid(s):
    if len(s) != 36:
        return False
    for i, c in enumerate(s):
        if i in (8, 13, 18, 23):
            if c != ord("-"):
                return False
        elif c not in b"0123456789abcdefABCDEF":
            return False
    return 0x31 <= s[14] <= 0x38 and (s[19] | 0x20) in b"89ab"


def v_pem(s):
    m = re.match(rb"-----BEGIN ([^\n]*?)-----", s)
    if not m or not m.group(1):
        return False
    label = m.group(1)
    body = s[m.end():]
    at = body.find(b"-----END ")
    if at < 0 or not body[at:].startswith(b"-----END " + label + b"-----"):
        return False
    count = 0
    for line in body[:at].split(b"\n"):
        if b":" in line:  # an RFC 1421 header line (Proc-Type, Comment...)
            continue
        for c in line:
            if c in B62SET or c in b"+/":
                count += 1
            elif c not in b"=\r \t\\":
                return False
    return count >= 64


def v_openai(s):
    if len(s) < 31 or not s.startswith(b"sk-") or any(c not in B64URLSET for c in s):
        return False
    at = s.find(b"T3BlbkFJ", 3)
    return at >= 0 and at >= 13 and len(s) - at - 8 >= 10


VALIDATORS = {
    "github-crc32": v_github_crc32,
    "npm-crc32": v_github_crc32,
    "github-fine-grained": v_github_fine_grained,
    "jwt": v_jwt,
    "pypi-macaroon": v_pypi_macaroon,
    "luhn": v_luhn,
    "slack-webhook": v_slack_webhook,
    "aws-key-id": v_aws_key_id,
    "uuid": v_uuid,
    "pem": v_pem,
    "openai": v_openai,
}

CHARSET_RE = {
    "hex": rb"[0-9A-Fa-f]*",
    "base62": rb"[0-9A-Za-z]*",
    "alnum": rb"[0-9A-Za-z]*",
    "base64": rb"[0-9A-Za-z+/=]*",
    "base64url": rb"[0-9A-Za-z_=-]*",
    "base32": rb"[A-Z2-7=]*",
    "digits": rb"[0-9]*",
    "printable": rb"[\x21-\x7e]*",
}


def shape_ok(shape, s):
    """Twin of triage_shape_ok: lengths, prefix, then charset after the prefix."""
    n = len(s)
    if shape.get("exact_length", 0) > 0 and n != shape["exact_length"]:
        return False
    if shape.get("min_length", 0) > 0 and n < shape["min_length"]:
        return False
    if shape.get("max_length", 0) > 0 and n > shape["max_length"]:
        return False
    prefix = shape.get("prefix", "").encode()
    if prefix and not s.startswith(prefix):
        return False
    cs = shape.get("charset")
    if cs is not None:
        if cs not in CHARSET_RE:
            return False
        if not re.fullmatch(CHARSET_RE[cs], s[len(prefix):]):
            return False
    return True


# ---- native compilers (optional) ------------------------------------------

class Native:
    """PCRE2 and Vectorscan through ctypes, when their shared libraries exist."""

    HS_FLAG_SOM_LEFTMOST = 256
    HS_MODE_BLOCK = 1

    def __init__(self):
        self.pcre2 = self._open("pcre2-8", "libpcre2-8.so.0")
        self.hs = self._open("hs", "libhs.so.5")
        if self.pcre2:
            f = self.pcre2.pcre2_compile_8
            f.restype = ctypes.c_void_p
            f.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint32,
                          ctypes.POINTER(ctypes.c_int), ctypes.POINTER(ctypes.c_size_t),
                          ctypes.c_void_p]
            self.pcre2.pcre2_code_free_8.argtypes = [ctypes.c_void_p]
            self.pcre2.pcre2_get_error_message_8.argtypes = [ctypes.c_int, ctypes.c_char_p,
                                                             ctypes.c_size_t]
        if self.hs:
            self.hs.hs_compile.argtypes = [ctypes.c_char_p, ctypes.c_uint, ctypes.c_uint,
                                           ctypes.c_void_p, ctypes.POINTER(ctypes.c_void_p),
                                           ctypes.POINTER(ctypes.c_void_p)]
            self.hs.hs_free_database.argtypes = [ctypes.c_void_p]
            self.hs.hs_free_compile_error.argtypes = [ctypes.c_void_p]

    @staticmethod
    def _open(name, soname):
        for cand in (ctypes.util.find_library(name), soname):
            if not cand:
                continue
            try:
                return ctypes.CDLL(cand)
            except OSError:
                continue
        return None

    def pcre2_error(self, regex):
        """None if PCRE2 compiles the pattern, else its message."""
        if not self.pcre2:
            return None
        code = ctypes.c_int(0)
        off = ctypes.c_size_t(0)
        raw = regex.encode()
        re_ = self.pcre2.pcre2_compile_8(raw, len(raw), 0, ctypes.byref(code),
                                         ctypes.byref(off), None)
        if re_:
            self.pcre2.pcre2_code_free_8(re_)
            return None
        buf = ctypes.create_string_buffer(256)
        self.pcre2.pcre2_get_error_message_8(code.value, buf, 256)
        return f"{buf.value.decode(errors='replace')} at offset {off.value}"

    def hs_error(self, regex):
        """None if Vectorscan compiles the pattern with SOM, else its message."""
        if not self.hs:
            return None
        db = ctypes.c_void_p()
        err = ctypes.c_void_p()
        rc = self.hs.hs_compile(regex.encode(), self.HS_FLAG_SOM_LEFTMOST, self.HS_MODE_BLOCK,
                                None, ctypes.byref(db), ctypes.byref(err))
        if rc == 0:
            self.hs.hs_free_database(db)
            return None
        msg = "refused"
        if err.value:
            msg = ctypes.cast(err, ctypes.POINTER(ctypes.c_char_p))[0].decode(errors="replace")
            self.hs.hs_free_compile_error(err)
        return msg


# ---- regex analysis ---------------------------------------------------------

FORBIDDEN_OPS = {
    "ASSERT": "lookaround",
    "ASSERT_NOT": "negative lookaround",
    "GROUPREF": "backreference",
    "GROUPREF_EXISTS": "conditional group",
    "ATOMIC_GROUP": "atomic group",
    "POSSESSIVE_REPEAT": "possessive quantifier",
}


def _walk(parsed, found):
    for op, av in parsed:
        name = getattr(op, "name", str(op))
        if name in FORBIDDEN_OPS:
            found.add(FORBIDDEN_OPS[name])
        if isinstance(av, (list, tuple)):
            for item in av:
                if isinstance(item, sre_parse.SubPattern):
                    _walk(item, found)
                elif isinstance(item, (list, tuple)):
                    for sub in item:
                        if isinstance(sub, sre_parse.SubPattern):
                            _walk(sub, found)
        elif isinstance(av, sre_parse.SubPattern):
            _walk(av, found)


def analyse_regex(regex):
    """Returns (compiled bytes regex or None, problems, open-ended?)."""
    problems = []
    if r"\K" in regex:
        problems.append(r"\K is not supported by Vectorscan")
    try:
        compiled = re.compile(regex.encode())
        parsed = sre_parse.parse(regex.encode())
    except (re.error, OverflowError) as e:
        return None, [f"does not compile: {e}"], False
    found = set()
    _walk(parsed, found)
    for what in sorted(found):
        problems.append(f"uses a {what}, which Vectorscan rejects")
    lo, hi = parsed.getwidth()
    if lo == 0:
        problems.append("can match the empty string")
    unbounded = hi >= sre_const.MAXREPEAT
    if hi >= MAX_WIDTH and not unbounded:
        problems.append(f"maximum match width {hi} is over {MAX_WIDTH} bytes")
    return compiled, problems, unbounded


# ---- one detector -----------------------------------------------------------

class Detector:
    def __init__(self, path, doc):
        self.path = path
        self.d = doc.get("detector", {})
        self.errors = []
        self.warnings = []
        self.patterns = []   # (compiled, group)
        self.companions = []  # (compiled, group, within, required, name)

    def err(self, msg):
        self.errors.append(msg)

    def check_schema(self, native):
        d = self.d
        if not isinstance(d, dict) or not d:
            self.err("no [detector] table")
            return False
        for k in d:
            if k not in DETECTOR_KEYS:
                self.err(f"unknown key detector.{k}")
        for k in REQUIRED_KEYS:
            if k not in d:
                self.err(f"missing detector.{k}")
        for k in ("id", "name", "service", "severity", "description"):
            if k in d and (not isinstance(d[k], str) or not d[k].strip()):
                self.err(f"detector.{k} must be a non-empty string")
        stem = os.path.splitext(os.path.basename(self.path))[0]
        did = d.get("id")
        if isinstance(did, str):
            if not ID_RE.match(did):
                self.err(f"id {did!r} is not kebab-case")
            if did != stem:
                self.err(f"id {did!r} does not match the file name {stem!r}")
        if isinstance(d.get("severity"), str) and d["severity"] not in SEVERITIES:
            self.err(f"severity {d['severity']!r} is not one of {sorted(SEVERITIES)}")
        kws = d.get("keywords")
        if kws is not None and (not isinstance(kws, list) or not kws
                                or not all(isinstance(k, str) and k for k in kws)):
            self.err("keywords must be a non-empty list of non-empty strings")

        pats = d.get("patterns")
        if pats is not None:
            if not isinstance(pats, list) or not pats:
                self.err("patterns must be a non-empty array of tables")
                pats = []
            for i, p in enumerate(pats, 1):
                self._check_pattern(i, p, native)
        self._check_shape(d.get("credential_shape"))
        self._check_validate(d.get("validate"))
        comps = d.get("companions", [])
        if not isinstance(comps, list):
            self.err("companions must be an array of tables")
            comps = []
        for c in comps:
            self._check_companion(c, native)
        if "verify" in d and not isinstance(d["verify"], dict):
            self.err("verify must be a table")
        self._check_tests(d.get("tests"))
        return not self.errors

    def _check_pattern(self, i, p, native):
        where = f"pattern {i}"
        if not isinstance(p, dict):
            self.err(f"{where}: not a table")
            return
        for k in p:
            if k not in PATTERN_KEYS:
                self.err(f"{where}: unknown key {k}")
        regex = p.get("regex")
        if not isinstance(regex, str) or not regex:
            self.err(f"{where}: regex must be a non-empty string")
            return
        group = p.get("group", 0)
        if not isinstance(group, int) or isinstance(group, bool) or group < 0:
            self.err(f"{where}: group must be a non-negative integer")
            return
        compiled, problems, unbounded = analyse_regex(regex)
        for msg in problems:
            self.err(f"{where}: {msg}")
        if compiled is None:
            return
        # An open-ended repeat is sometimes the only form Vectorscan can
        # track (it refuses long bounded runs with start-of-match); then the
        # shape gate must bound what can be reported.
        shape = self.d.get("credential_shape")
        if unbounded and not (isinstance(shape, dict) and shape.get("max_length")):
            self.err(f"{where}: has an open-ended repeat (*, +, {{m,}}); bound it with "
                     "{m,n}, or cap the secret with credential_shape.max_length")
        if group > compiled.groups:
            self.err(f"{where}: group {group} but the regex has {compiled.groups} groups")
            return
        if native:
            e = native.pcre2_error(regex)
            if e:
                self.err(f"{where}: PCRE2 rejects it: {e}")
            e = native.hs_error(regex)
            if e:
                self.warnings.append(f"{where}: Vectorscan refuses it ({e}); "
                                     "the engine will scan it with PCRE2 only")
        self.patterns.append((compiled, group))

    def _check_table(self, name, table, spec):
        if table is None:
            return {}
        if not isinstance(table, dict):
            self.err(f"{name} must be a table")
            return {}
        for k, v in table.items():
            if k not in spec:
                self.err(f"{name}: unknown key {k}")
            elif not isinstance(v, spec[k]) or (spec[k] is int and isinstance(v, bool)):
                self.err(f"{name}.{k} has the wrong type")
        return table

    def _check_shape(self, shape):
        shape = self._check_table("credential_shape", shape, SHAPE_KEYS)
        if "charset" in shape and shape["charset"] not in CHARSETS:
            self.err(f"credential_shape.charset {shape['charset']!r} is not one of "
                     f"{sorted(CHARSETS)}")
        lo, hi = shape.get("min_length", 0), shape.get("max_length", 0)
        if isinstance(lo, int) and isinstance(hi, int) and lo and hi and lo > hi:
            self.err("credential_shape: min_length > max_length")
        self.shape = shape

    def _check_validate(self, v):
        v = self._check_table("validate", v, VALIDATE_KEYS)
        if "checksum" in v and v["checksum"] not in VALIDATORS:
            self.err(f"validate.checksum {v['checksum']!r} is not one of "
                     f"{sorted(VALIDATORS)}")
        self.validate = v

    def _check_companion(self, c, native):
        if not isinstance(c, dict):
            self.err("companion: not a table")
            return
        self._check_table("companion", c, COMPANION_KEYS)
        name = c.get("name")
        regex = c.get("regex")
        if not isinstance(name, str) or not name or not isinstance(regex, str) or not regex:
            self.err("companion: name and regex are required strings")
            return
        try:
            compiled = re.compile(regex.encode())
        except re.error as e:
            self.err(f"companion {name}: regex does not compile: {e}")
            return
        if native:
            e = native.pcre2_error(regex)
            if e:
                self.err(f"companion {name}: PCRE2 rejects it: {e}")
        group = c.get("group", 1 if compiled.groups else 0)
        if not isinstance(group, int) or group > compiled.groups:
            self.err(f"companion {name}: bad group")
            return
        within = c.get("within_lines", 5)
        if not isinstance(within, int) or within < 0:
            self.err(f"companion {name}: within_lines must be >= 0")
            return
        self.companions.append((compiled, group, within, bool(c.get("required", False)), name))

    def _check_tests(self, tests):
        self.tests = []
        if tests is None:
            return
        if not isinstance(tests, list):
            self.err("tests must be an array of tables")
            return
        for i, t in enumerate(tests, 1):
            if not isinstance(t, dict):
                self.err(f"test {i}: not a table")
                continue
            for k in t:
                if k not in TEST_KEYS:
                    self.err(f"test {i}: unknown key {k}")
            has_p, has_n = "test_positive" in t, "test_negative" in t
            if has_p == has_n:
                self.err(f"test {i}: needs exactly one of test_positive / test_negative")
                continue
            text = t["test_positive" if has_p else "test_negative"]
            if not isinstance(text, str) or not text:
                self.err(f"test {i}: text must be a non-empty string")
                continue
            if "expect" in t and (not has_p or not isinstance(t["expect"], str)):
                self.err(f"test {i}: expect belongs to a test_positive and is a string")
                continue
            self.tests.append((i, has_p, text, t.get("expect")))
        npos = sum(1 for t in self.tests if t[1])
        nneg = len(self.tests) - npos
        if npos < 2 or nneg < 2:
            self.err(f"needs at least 2 positive and 2 negative tests (has {npos} and {nneg})")

    # -- the engine's gates, in its order --

    def _companion_found(self, data, ms, me, comp):
        compiled, group, within, _, _ = comp
        lo = ms
        n = 0
        while lo > 0:
            if data[lo - 1] == 0x0A:
                n += 1
                if n > within:
                    break
            lo -= 1
        hi = me
        n = 0
        while hi < len(data):
            if data[hi] == 0x0A:
                n += 1
                if n > within:
                    break
            hi += 1
        for m in compiled.finditer(data, lo, hi):
            if m.start(group) >= 0 and m.end(group) > m.start(group):
                return True
        return False

    def candidates(self, data):
        """Yields (secret, match bytes, rejection reason or None)."""
        for compiled, group in self.patterns:
            for m in compiled.finditer(data):
                if m.end() <= m.start() or m.start(group) < 0:
                    continue
                secret = m.group(group)
                yield secret, m.group(0), self._gate(data, m, secret)

    def _gate(self, data, m, secret):
        if not secret:
            return "empty secret"
        if not shape_ok(self.shape, secret):
            return "credential_shape"
        name = self.validate.get("checksum")
        if name and not VALIDATORS[name](secret):
            return f"checksum {name}"
        floor = self.validate.get("min_entropy", 0)
        if floor and entropy(secret) < floor:
            return f"entropy {entropy(secret):.2f} < {floor}"
        if self.validate.get("reject_placeholders", True) and is_placeholder(secret):
            return "placeholder"
        for comp in self.companions:
            if comp[3] and not self._companion_found(data, m.start(), m.end(), comp):
                return f"missing companion {comp[4]}"
        return None

    def run_tests(self, verbose):
        keywords = [k.lower().encode() for k in self.d.get("keywords", [])]
        lines = []
        for i, positive, text, expect in self.tests:
            data = text.encode()
            cands = list(self.candidates(data))
            found = [c for c in cands if c[2] is None]
            if positive:
                if not found:
                    why = ", ".join(sorted({c[2] for c in cands})) or "no regex match"
                    self.err(f"test {i}: positive not found ({why}): {text[:100]!r}")
                    continue
                if expect is not None and expect.encode() not in [c[0] for c in found]:
                    got = [c[0].decode(errors="replace")[:80] for c in found]
                    self.err(f"test {i}: expected secret {expect[:80]!r}, got {got}")
                for secret, match, _ in found:
                    if keywords and not any(k in match.lower() for k in keywords):
                        self.err(f"test {i}: the match holds none of the keywords")
            else:
                if found:
                    got = found[0][0].decode(errors="replace")[:80]
                    self.err(f"test {i}: negative produced a finding {got!r}")
                elif verbose:
                    why = ", ".join(sorted({c[2] for c in cands})) or "no regex match"
                    lines.append(f"    negative {i}: rejected by {why}")
        return lines


def collect(paths):
    files = []
    for p in paths:
        if os.path.isdir(p):
            files += [os.path.join(p, f) for f in sorted(os.listdir(p)) if f.endswith(".toml")]
        elif os.path.isfile(p):
            files.append(p)
        else:
            raise FileNotFoundError(p)
    return files


def main(argv=None):
    ap = argparse.ArgumentParser(description="Lint detector TOML files and run their tests.")
    ap.add_argument("paths", nargs="*", help="detector files or folders (default: detectors/)")
    ap.add_argument("-v", "--verbose", action="store_true",
                    help="show warnings and which gate rejected each negative")
    ap.add_argument("--no-native", action="store_true",
                    help="do not compile patterns with PCRE2 and Vectorscan")
    args = ap.parse_args(argv)
    try:
        files = collect(args.paths or [os.path.join(ROOT, "detectors")])
    except FileNotFoundError as e:
        print(f"check_detectors: no such file or folder: {e}", file=sys.stderr)
        return 2
    native = None if args.no_native else Native()
    if native and not native.pcre2 and not native.hs:
        native = None
    if _FEATURES is None:
        print("check_detectors: tools/train/features.py not found; using a simplified "
              "placeholder test", file=sys.stderr)

    failed = 0
    seen = {}
    for path in files:
        name = os.path.relpath(path)
        try:
            with open(path, "rb") as f:
                doc = tomllib.load(f)
        except (OSError, tomllib.TOMLDecodeError) as e:
            print(f"FAIL {name}: {e}")
            failed += 1
            continue
        det = Detector(path, doc)
        lines = []
        if det.check_schema(native):
            lines = det.run_tests(args.verbose)
        did = det.d.get("id") if isinstance(det.d, dict) else None
        if isinstance(did, str):
            if did in seen:
                det.err(f"duplicate id, also in {seen[did]}")
            seen[did] = name
        if det.errors:
            failed += 1
            print(f"FAIL {name}")
            for e in det.errors:
                print(f"    {e}")
        elif args.verbose:
            print(f"ok   {name}")
        if args.verbose:
            for w in det.warnings:
                print(f"    warning: {w}")
            for line in lines:
                print(line)
        elif det.warnings and not det.errors:
            print(f"warn {name}: " + "; ".join(det.warnings))
    print(f"{len(files)} detector files, {failed} failed"
          + ("" if native else " (native compile checks skipped)"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
