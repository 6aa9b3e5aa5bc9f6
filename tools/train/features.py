"""features.py - the confidence model's features, defined once.

This file is the reference definition of every feature the triage model
looks at.  src/triage/confidence.c computes the same numbers in C; the two
are kept in step by tests/triage/test_confidence.c, which replays the
vectors that train.py writes to tests/data/triage/vectors.txt and checks
every feature and the final score to within 1e-6.  Change a feature here,
change it there, re-run train.py, and the test tells you if they disagree.

Everything works on bytes, lowercasing ASCII only (bytes.lower), which is
what the C side's tolower does in the "C" locale.

Input of one candidate (a dict, the same fields as C's triage_input):
  keywords  list of bytes: the detector's keywords
  data      bytes: the chunk the secret was found in
  so, sl    secret offset and length within data
  path      bytes or None
  checksum  1 valid, 0 no validator, -1 invalid
  decoded   0/1: found inside decoded bytes

The line context is the secret's line, bounded to CONTEXT_MAX bytes on each
side so a minified one-line megabyte costs no more than a short line.

Features, in order (index: name - meaning):
  0 checksum_valid    the detector's checksum validator passed
  1 checksum_invalid  a checksum validator exists and failed, or the secret
                      has a self-checking shape whatever the detector (a
                      40-char ghp_/gho_/ghu_/ghs_/ghr_/npm_ token, an
                      eyJ...eyJ... JWT) and its check fails (implied_checksum)
  2 prefix_keyword    the secret starts with one of the detector's keywords
                      (>= 3 chars, any case): a distinctive literal prefix
                      such as ghp_ or xoxb-, unlike generic detectors
  3 entropy_ratio     Shannon entropy / log2(min(alphabet, length)), the
                      alphabet being the smallest of digits(10), hex(16),
                      base62(62), base64(64) or printable(95) holding it
  4 length_log        min(log2(length + 1), 8) / 8
  5 class_mix         (has lower + has upper + has digit) / 3
  6 repeat_ratio      count of the most common byte / length
  7 placeholder       triage_is_placeholder (shape.c; twin below) of the
                      secret and of the secret less its detector keywords
                      (Dropbox's fixed AAAAAAAAAA is format, not filler;
                      secrets over 1024 bytes are judged whole), or the
                      secret (>= 6 chars, any case) repeats text before it
                      on its line: [X_PASSIVE] = "x_passive" is a label
  8 soft_placeholder  the secret holds test/example/demo/1234/... written
                      lower, UPPER or Capitalized, outside any occurrence of
                      a detector keyword ("AGE-SECRET-KEY-1..." holds no
                      placeholder; random text holds "xXx" more than "xxx")
  9 assignment        the text before the secret on its line, less trailing
                      blanks and quotes, ends in = : > or "bearer"/"basic"/
                      "token"
 10 key_context       the text before the secret on its line names a key,
                      token, secret, password, auth, credential, api..., or
                      a keyword of the detector (>= 3 chars) is on the line
                      before or after the secret ("AGORA_APP_CERT=<hex>")
 11 env_reference     the line reads the value from the environment
                      (os.environ, process.env, getenv, ${...}, secrets.)
 12 hash_context      the line talks about hashes/ids (sha256, integrity,
                      commit, uuid, nonce...): random but not secret
 13 comment_line      the line starts with a comment marker
 14 path_test         path looks like tests, fixtures, specs, mocks
 15 path_docs         path looks like docs, examples, README, *.md
 16 path_vendor       path is vendored or third-party code
 17 path_lockfile     path is a dependency lockfile
 18 decoded           the secret was found inside decoded bytes
 19 hex_only          the secret is >= 16 hex digits (a hash more often
                      than a key)
"""

import math
import zlib

CONTEXT_MAX = 512

FEATURE_NAMES = [
    "checksum_valid",
    "checksum_invalid",
    "prefix_keyword",
    "entropy_ratio",
    "length_log",
    "class_mix",
    "repeat_ratio",
    "placeholder",
    "soft_placeholder",
    "assignment",
    "key_context",
    "env_reference",
    "hash_context",
    "comment_line",
    "path_test",
    "path_docs",
    "path_vendor",
    "path_lockfile",
    "decoded",
    "hex_only",
]

SOFT_WORDS = [b"test", b"example", b"sample", b"demo", b"dummy", b"fake", b"mock",
              b"1234", b"abcd", b"xxx", b"changeme", b"your", b"placeholder",
              b"redacted", b"secret", b"password", b"token", b"here"]
ASSIGN_WORDS = [b"bearer", b"basic", b"token"]
KEY_WORDS = [b"key", b"token", b"secret", b"pass", b"pwd", b"auth", b"bearer", b"cred",
             b"api", b"private", b"signing", b"access"]
ENV_WORDS = [b"environ", b"process.env", b"getenv", b"env[", b"env(", b"${", b"$env:",
             b"secrets."]
HASH_WORDS = [b"sha1", b"sha256", b"sha384", b"sha512", b"md5", b"hash", b"digest",
              b"integrity", b"checksum", b"commit", b"etag", b"uuid", b"guid", b"nonce",
              b"fingerprint"]
COMMENT_MARKS = [b"#", b"//", b"/*", b"*", b"<!--", b"--", b";"]
PATH_TEST = [b"/test/", b"/tests/", b"/__tests__/", b"/spec/", b"/specs/", b"/fixtures/",
             b"/fixture/", b"/testdata/", b"/test_", b"_test.", b".test.", b".spec.",
             b"_spec.", b"mock", b"/e2e/", b"/testing/", b"conftest"]
PATH_DOCS = [b"/docs/", b"/doc/", b"/examples/", b"/example/", b"/samples/", b"/sample/",
             b"/demo/", b"readme", b"changelog"]
PATH_DOCS_END = [b".md", b".rst", b".adoc"]
PATH_VENDOR = [b"/vendor/", b"/node_modules/", b"/third_party/", b"/third-party/",
               b"/site-packages/", b"/bower_components/", b".min.js"]
PATH_LOCK_END = [b".lock", b"-lock.json", b"-lock.yaml", b"go.sum", b"shrinkwrap.json"]

HEX = set(b"0123456789abcdefABCDEF")
DIGITS = set(b"0123456789")
ALPHA = set(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
ALNUM = ALPHA | DIGITS
B64 = ALNUM | set(b"+/=-_")


# ---- twins of shape.c ------------------------------------------------------

def entropy(s):
    n = len(s)
    if n == 0:
        return 0.0
    count = [0] * 256
    for c in s:
        count[c] += 1
    h = 0.0
    for c in range(256):
        if count[c]:
            p = count[c] / n
            h -= p * math.log2(p)
    return h


MARKER_WORDS = [b"EXAMPLE", b"example", b"Example", b"SAMPLE", b"sample", b"Sample",
                b"PLACEHOLDER", b"placeholder", b"Placeholder", b"dummy", b"DUMMY",
                b"Dummy", b"fake", b"FAKE", b"Fake", b"your_", b"YOUR_", b"your-",
                b"YOUR-", b"Your_", b"Your-", b"yourkey", b"YOURKEY", b"YourKey",
                b"INSERT_", b"insert_", b"insert-", b"REPLACE_", b"replace_",
                b"replace-", b"replace_me", b"REPLACEME"]
WHOLE_WORDS = [b"changeme", b"change_me", b"change-me", b"password", b"passwd", b"secret",
               b"redacted", b"null", b"nil", b"undefined", b"none", b"true", b"false",
               b"todo", b"tbd", b"xxx", b"test", b"testing", b"admin", b"letmein",
               b"qwerty", b"foobar", b"foo", b"bar", b"token", b"apikey", b"api_key",
               b"api-key", b"mysecret", b"my_secret", b"secretkey", b"secret_key",
               b"default", b"empty", b"unset", b"n/a", b"hidden", b"removed", b"masked",
               b"example"]


def _isalnum(c):
    return c in ALNUM


def _in_angle(c):
    return c in ALPHA or c in b" _-"


def _has_angle_template(s):
    n = len(s)
    if n < 5 or s[n - 1] != ord(">"):
        return False
    j = n - 1
    while j > 0 and _in_angle(s[j - 1]):
        j -= 1
    if j == 0 or s[j - 1] != ord("<") or (n - 1) - j < 3:
        return False
    lt = j - 1
    return lt == 0 or s[lt - 1] in b"_-/: ="


def _in_braces(c):
    return 0x20 <= c <= 0x7e and c not in b"{}$"


def _in_percent(c):
    return _isalnum(c) or c in b"_."


def _has_template(s, open_, inner, minimum, close):
    ol, cl, n = len(open_), len(close), len(s)
    for i in range(0, n - ol + 1):
        if s[i:i + ol] != open_:
            continue
        j = i + ol
        while j < n and inner(s[j]):
            j += 1
        if j - (i + ol) >= minimum and j + cl <= n and s[j:j + cl] == close:
            return True
    return False


def _is_variable(s):
    if len(s) < 2 or s[0] != ord("$") or not (s[1] in ALPHA or s[1] == ord("_")):
        return False
    return all(_isalnum(c) or c == ord("_") for c in s[1:])


def _sequence_run(s):
    """Twin of triage_sequence_run: '-', '_' and '.' are looked through."""
    n = len(s)
    best = 1 if n else 0
    up = down = 1
    prev = 0
    while prev < n and s[prev] in b"-_.":
        prev += 1
    for i in range(prev + 1, n):
        if s[i] in b"-_.":
            continue
        a, b = s[prev], s[i]
        prev = i
        alnum = _isalnum(a) and _isalnum(b)
        step_up = alnum and (b == a + 1 or (a == ord("9") and b == ord("0")))
        step_down = alnum and (a == b + 1 or (a == ord("0") and b == ord("9")))
        up = up + 1 if step_up else 1
        down = down + 1 if step_down else 1
        best = max(best, up, down)
    return best


def is_placeholder(s):
    n = len(s)
    if n == 0:
        return True
    low = s.lower()
    if any(low == w for w in WHOLE_WORDS):
        return True
    if any(w in s for w in MARKER_WORDS):
        return True
    if (_has_angle_template(s)
            or _has_template(s, b"${", _in_braces, 1, b"}")
            or _has_template(s, b"{{", _in_braces, 1, b"}}")
            or _has_template(s, b"%(", _in_percent, 1, b")s")
            or _is_variable(s)):
        return True
    count = [0] * 256
    run = max_run = max_run_xdot = 0
    for i, c in enumerate(s):
        run = run + 1 if i > 0 and c == s[i - 1] else 1
        max_run = max(max_run, run)
        if c in b"xX*.":
            max_run_xdot = max(max_run_xdot, run)
        count[c] += 1
    distinct = sum(1 for c in count if c)
    if max_run_xdot >= 4 or max_run >= 8:
        return True
    if max(count) * 10 >= n * 6:
        return True
    if n >= 8 and distinct <= 3:
        return True
    seq = _sequence_run(s)
    return seq >= 8 or (seq >= 4 and seq * 2 >= n)


# ---- features --------------------------------------------------------------

def _alphabet(s):
    chars = set(s)
    if chars <= DIGITS:
        return 10
    if chars <= HEX:
        return 16
    if chars <= ALNUM:
        return 62
    if chars <= B64:
        return 64
    return 95


def _norm_path(path):
    p = path.lower().replace(b"\\", b"/")
    return b"/" + p


def line_context(data, so, sl):
    """(text before the secret on its line, text after it), bounded."""
    n = len(data)
    so = min(so, n)
    sl = min(sl, n - so)
    lo = so - CONTEXT_MAX if so > CONTEXT_MAX else 0
    start = so
    while start > lo and data[start - 1] != 0x0A:
        start -= 1
    e = so + sl
    hi = min(e + CONTEXT_MAX, n)
    end = e
    while end < hi and data[end] != 0x0A:
        end += 1
    return data[start:so], data[e:end], data[so:so + sl]


B62 = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
B64URL = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def _b64url_stream(s):
    """Twin of triage_b64_stream (url alphabet): decoded bytes or None."""
    s = s.rstrip(b"=")
    if len(s) % 4 == 1:
        return None
    acc, bits, out = 0, 0, bytearray()
    for c in s:
        i = B64URL.find(bytes([c]))
        if i < 0:
            return None
        acc, bits = (acc << 6) | i, bits + 6
        if bits >= 8:
            bits -= 8
            out.append((acc >> bits) & 0xFF)
            acc &= (1 << bits) - 1
    return bytes(out)


def _json_part(s, need_alg):
    b = _b64url_stream(s) if s else None
    if b is None or len(b) < 2:
        return False
    if any((c < 0x20 and c not in b" \t\r\n") or c == 0x7F for c in b):
        return False
    t = b.strip(b" \t\r\n")
    return t[:1] == b"{" and t[-1:] == b"}" and (not need_alg or b'"alg"' in b)


def _jwt_ok(s):
    parts = s.split(b".")
    if len(parts) != 3:
        return False
    if not _json_part(parts[0], True) or not _json_part(parts[1], False):
        return False
    return all(B64URL.find(bytes([c])) >= 0 or c == 0x3D for c in parts[2])


def implied_checksum(s):
    """Twin of triage_checksum_implied (checksum.c): 1/-1 for a 40-char
    GitHub/npm token or an eyJ...eyJ... JWT whose own check passes/fails,
    else 0."""
    if len(s) == 40 and s[3:4] == b"_" and (s[:3] == b"npm" or (s[:2] == b"gh" and s[2:3] in
                                                                   (b"p", b"o", b"u", b"s", b"r"))):
        body = s[4:]
        if not all(c in B62 for c in body):
            return -1
        crc = zlib.crc32(body[:30])
        want = bytearray(6)
        for i in range(5, -1, -1):
            want[i] = B62[crc % 62]
            crc //= 62
        return 1 if bytes(want) == body[30:] else -1
    if len(s) >= 10 and s[:3] == b"eyJ":
        d1 = s.find(b".")
        if d1 >= 0 and d1 + 4 <= len(s) and s[d1 + 1:d1 + 4] == b"eyJ" and s.find(b".", d1 + 1) >= 0:
            return 1 if _jwt_ok(s) else -1
    return 0


STRIP_MAX = 1024


def placeholder_outside_keywords(s, keywords):
    """Twin of triage_placeholder_outside_keywords (confidence.c)."""
    if not is_placeholder(s):
        return False
    if len(s) > STRIP_MAX:
        return True
    low = s.lower()
    mark = [False] * len(s)
    for k in keywords:
        if len(k) < 3 or len(k) > len(s):
            continue
        kl = k.lower()
        for j in range(len(s) - len(k) + 1):
            if low[j:j + len(k)] == kl:
                for i in range(j, j + len(k)):
                    mark[i] = True
    if not any(mark):
        return True
    return is_placeholder(bytes(c for c, m in zip(s, mark) if not m))


def soft_placeholder(s, keywords):
    """Twin of triage_soft_placeholder (confidence.c)."""
    low = s.lower()
    spans = []
    for k in keywords:
        if len(k) < 3:
            continue
        kl = k.lower()
        i = low.find(kl)
        while i >= 0:
            spans.append((i, i + len(kl)))
            i = low.find(kl, i + 1)
    for w in SOFT_WORDS:
        forms = [w, w.upper(), w[:1].upper() + w[1:]]
        for i in range(0, len(s) - len(w) + 1):
            for v in forms:
                if s[i:i + len(w)] == v:
                    if not any(a < i + len(w) and i < b for a, b in spans):
                        return True
                    break
    return False


def features(inp):
    data = inp["data"]
    before, after, s = line_context(data, inp["so"], inp["sl"])
    n = len(s)
    bl, al, sl_ = before.lower(), after.lower(), s.lower()
    f = [0.0] * len(FEATURE_NAMES)
    f[0] = 1.0 if inp["checksum"] == 1 else 0.0
    f[1] = 1.0 if inp["checksum"] == -1 or (inp["checksum"] == 0 and implied_checksum(s) == -1) else 0.0
    f[2] = 1.0 if any(len(k) >= 3 and sl_.startswith(k.lower()) for k in inp["keywords"]) else 0.0
    if n >= 2:
        cap = math.log2(min(_alphabet(s), n))
        f[3] = min(entropy(s) / cap, 1.0)
    f[4] = min(math.log2(n + 1), 8.0) / 8.0
    f[5] = (any(97 <= c <= 122 for c in s) + any(65 <= c <= 90 for c in s)
            + any(48 <= c <= 57 for c in s)) / 3.0
    if n:
        count = [0] * 256
        for c in s:
            count[c] += 1
        f[6] = max(count) / n
    f[7] = 1.0 if placeholder_outside_keywords(s, inp["keywords"]) or (n >= 6 and sl_ in bl) else 0.0
    f[8] = 1.0 if soft_placeholder(s, inp["keywords"]) else 0.0
    t = before.rstrip(b" \t\"'`")
    tl = t.lower()
    f[9] = 1.0 if t[-1:] in (b"=", b":", b">") or any(tl.endswith(w) for w in ASSIGN_WORDS) else 0.0
    f[10] = 1.0 if (any(w in bl for w in KEY_WORDS) or
                    any(len(k) >= 3 and (k.lower() in bl or k.lower() in al) for k in inp["keywords"])) else 0.0
    f[11] = 1.0 if any(w in bl or w in al for w in ENV_WORDS) else 0.0
    f[12] = 1.0 if any(w in bl or w in al for w in HASH_WORDS) else 0.0
    lead = before.lstrip(b" \t")
    f[13] = 1.0 if any(lead.startswith(m) for m in COMMENT_MARKS) else 0.0
    path = inp.get("path")
    if path is not None:
        p = _norm_path(path)
        f[14] = 1.0 if any(w in p for w in PATH_TEST) else 0.0
        f[15] = 1.0 if any(w in p for w in PATH_DOCS) or any(p.endswith(w) for w in PATH_DOCS_END) else 0.0
        f[16] = 1.0 if any(w in p for w in PATH_VENDOR) else 0.0
        f[17] = 1.0 if any(p.endswith(w) for w in PATH_LOCK_END) else 0.0
    f[18] = 1.0 if inp["decoded"] else 0.0
    f[19] = 1.0 if n >= 16 and all(c in HEX for c in s) else 0.0
    return f


def score(f, bias, weights):
    """The model: a logistic over the features.  The sum runs in feature
    order and z is clamped, exactly as confidence.c does."""
    acc = 0.0
    for w, x in zip(weights, f):
        acc += w * x
    z = max(-40.0, min(40.0, bias + acc))
    return 1.0 / (1.0 + math.exp(-z))
