#!/usr/bin/env python3
"""gen_data.py - labelled examples for the triage confidence model.

Each example is one candidate as the engine would hand it to triage: the
detector's keywords, a few lines of text holding the secret, the secret's
offset and length, the file path, the checksum verdict and whether it was
found in decoded bytes, plus a label: 1 if a person reviewing the finding
should treat it as a live credential, 0 if it is test data, a docs sample,
a placeholder, a hash or an id.

Nothing here is copied from real leaks or from other scanners' test data:
every token is drawn from a seeded PRNG in the service's documented shape,
and every line comes from the small templates below.  The mix is deliberate
and not "natural": scenarios are weighted so that each sign the model can
see (a test path, a placeholder, a hash context, a valid checksum) occurs
often enough, with enough counter-examples, to get an honest weight.  A
few percent of labels are flipped to mimic reviewer disagreement, so the
model cannot reach a perfect score by leaning on one feature.

Usage:  gen_data.py [-n COUNT] [--seed N] [-o FILE]    (JSON lines)
Standard library only; the same seed always gives the same file.
"""

import argparse
import base64
import json
import random
import string
import sys
import zlib

BASE62 = string.digits + string.ascii_uppercase + string.ascii_lowercase
HEXL = "0123456789abcdef"
B32 = string.ascii_uppercase + "234567"
PRINTABLE_PW = string.ascii_letters + string.digits + "!#%&*+-.:=?@^_~"


def rand(rng, alphabet, n):
    return "".join(rng.choice(alphabet) for _ in range(n))


def crc_suffix(body):
    crc = zlib.crc32(body.encode())
    out = ""
    for _ in range(6):
        out = BASE62[crc % 62] + out
        crc //= 62
    return out


def b64url(b):
    return base64.urlsafe_b64encode(b).decode().rstrip("=")


# ---- detectors: how each one's real and fake secrets look ------------------

class Detector:
    """keywords; real(rng) -> (secret, checksum); fake(rng) -> (secret, checksum);
    key names used in assignments."""

    def __init__(self, name, keywords, real, fake, keys, has_checksum):
        self.name, self.keywords, self.real, self.fake = name, keywords, real, fake
        self.keys, self.has_checksum = keys, has_checksum


def gh_real(prefix):
    def f(rng):
        body = rand(rng, BASE62, 30)
        return prefix + body + crc_suffix(body), 1
    return f


def gh_fake(prefix):
    def f(rng):
        r = rng.random()
        if r < 0.30:  # random, checksum wrong: hand-typed or truncated copies
            return prefix + rand(rng, BASE62, 36), -1
        if r < 0.45:  # a fixture author who knew the checksum scheme
            body = rand(rng, BASE62, 30)
            return prefix + body + crc_suffix(body), 1
        if r < 0.60:
            return prefix + rng.choice("xX*0") * 36, -1
        if r < 0.75:
            word = rng.choice(["EXAMPLE", "example", "test", "TEST", "dummy", "Fake", "sample"])
            body = (word * 10)[:36]
            return prefix + body, -1
        if r < 0.88:
            body = (rng.choice(["abcdefghij", "0123456789", "1234567890", "aBcDeFgHiJ"]) * 4)[:36]
            return prefix + body, -1
        return prefix + rand(rng, BASE62, rng.choice([20, 30, 35])) + "1234", -1
    return f


def aws_real(rng):
    return rng.choice(["AKIA", "ASIA", "AKIA", "AKIA"]) + rand(rng, B32, 16), 1


def aws_fake(rng):
    r = rng.random()
    if r < 0.4:
        return "AKIA" + rand(rng, B32, 9) + "EXAMPLE", 1
    if r < 0.6:
        return "AKIA" + rng.choice("XA") * 16, 1
    if r < 0.8:
        return "AKIA" + rand(rng, B32, 16), 1  # fixture that looks real
    return "AKIA" + "1234567890ABCDEF", -1


def slack_real(rng):
    return ("xoxb-" + rand(rng, string.digits, rng.choice([11, 12, 13])) + "-" +
            rand(rng, string.digits, rng.choice([11, 12, 13])) + "-" + rand(rng, BASE62, 24)), 0


def slack_fake(rng):
    r = rng.random()
    if r < 0.35:
        return "xoxb-" + "0" * 12 + "-" + "0" * 12 + "-" + rand(rng, "xX", 1) * 24, 0
    if r < 0.6:
        return "xoxb-your-bot-token-here", 0
    if r < 0.8:
        return "xoxb-1234567890-1234567890-" + rand(rng, BASE62, 24), 0
    return slack_real(rng)


def stripe_real(rng):
    return "sk_live_" + rand(rng, BASE62, rng.choice([24, 34, 99])), 0


def stripe_fake(rng):
    r = rng.random()
    if r < 0.4:
        return "sk_live_" + rng.choice(["xxxxxxxxxxxxxxxxxxxxxxxx", "YOUR_SECRET_KEY",
                                        "************************", "EXAMPLEKEY1234567890abcd"]), 0
    if r < 0.7:
        return "sk_live_" + "abc123" * 4, 0
    return stripe_real(rng)


def jwt_make(rng, claims):
    header = b64url(json.dumps({"alg": rng.choice(["HS256", "RS256"]), "typ": "JWT"}).encode())
    payload = b64url(json.dumps(claims).encode())
    sig = b64url(bytes(rng.randrange(256) for _ in range(32)))
    return header + "." + payload + "." + sig


def jwt_real(rng):
    claims = {"sub": rand(rng, string.digits, 8), "iat": 1600000000 + rng.randrange(10**8),
              "scope": rng.choice(["admin", "read write", "deploy"])}
    return jwt_make(rng, claims), 1


def jwt_fake(rng):
    r = rng.random()
    if r < 0.5:  # the classic docs token with a made-up name
        return jwt_make(rng, {"sub": "1234567890", "name": rng.choice(["Jane Doe", "Test User"]),
                              "iat": 1516239022}), 1
    if r < 0.75:
        return "eyJ" + rand(rng, BASE62, 30) + "." + rand(rng, BASE62, 40) + "." + rand(rng, BASE62, 20), -1
    return jwt_real(rng)


def pw_real(rng):
    r = rng.random()
    if r < 0.55:
        return rand(rng, PRINTABLE_PW, rng.randrange(12, 28)), 0
    if r < 0.8:  # human-made but still a real password
        word = rng.choice(["Winter", "Falcon", "Orchid", "Granite", "Harbor", "Cobalt"])
        return word + rand(rng, string.digits, rng.randrange(2, 5)) + rng.choice("!@#$%&*") + \
            rand(rng, string.ascii_letters, rng.randrange(2, 6)), 0
    return rand(rng, BASE62, rng.randrange(16, 33)), 0


def pw_fake(rng):
    return rng.choice([
        "changeme", "password", "password123", "Password1", "admin", "test", "test123",
        "secret", "hunter2", "letmein", "qwerty", "12345678", "your_password_here",
        "<password>", "${DB_PASSWORD}", "{{ .Values.db.password }}", "$DB_PASSWORD",
        "%(db_password)s", "********", "xxxxxxxx", "redacted", "REPLACE_ME", "foo", "none",
        "dummy-password", "example-password", "testpass", "mypassword", "pass1234",
        "null", "TODO", "change-me-please", "notasecret", "p@ssw0rd",
    ]), 0


def api_real(rng):
    r = rng.random()
    if r < 0.4:
        return rand(rng, BASE62, rng.choice([24, 32, 40, 48])), 0
    if r < 0.7:
        return rand(rng, HEXL, rng.choice([32, 40, 64])), 0
    return rand(rng, BASE62 + "-_", rng.choice([32, 43])), 0


def api_fake(rng):
    r = rng.random()
    if r < 0.35:
        return rng.choice([
            "your-api-key", "YOUR_API_KEY", "<api-key>", "${API_KEY}", "api_key_here",
            "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", "0000000000000000000000000000000000000000",
            "abcdef1234567890abcdef1234567890", "1234567890abcdef", "test-api-key",
            "insert_your_key_here", "sk-example-key", "dummy_key_123", "APIKEY", "REDACTED",
            "process.env.API_KEY", "os.environ['API_KEY']", "fake-key-for-tests",
        ]), 0
    if r < 0.55:
        return rand(rng, BASE62, rng.choice([24, 32])), 0  # fixture key drawn at random
    return rand(rng, HEXL, rng.choice([32, 40, 64])), 0  # a hash in the wrong place


def hash_value(rng):
    r = rng.random()
    if r < 0.4:
        return rand(rng, HEXL, rng.choice([40, 64])), 0
    if r < 0.7:
        return base64.b64encode(bytes(rng.randrange(256) for _ in range(rng.choice([32, 48, 64])))).decode(), 0
    h = rand(rng, HEXL, 32)
    return "%s-%s-4%s-%s%s-%s" % (h[:8], h[8:12], h[13:16], rng.choice("89ab"), h[17:20], h[20:32]), 0


DETECTORS = [
    Detector("github-pat", ["ghp_"], gh_real("ghp_"), gh_fake("ghp_"),
             ["GITHUB_TOKEN", "github_token", "GH_TOKEN", "token"], True),
    Detector("github-oauth", ["gho_"], gh_real("gho_"), gh_fake("gho_"), ["oauth_token", "token"], True),
    Detector("npm-token", ["npm_"], gh_real("npm_"), gh_fake("npm_"), ["NPM_TOKEN", "_authToken"], True),
    Detector("aws-access-key-id", ["AKIA", "ASIA"], aws_real, aws_fake,
             ["aws_access_key_id", "AWS_ACCESS_KEY_ID", "accessKeyId"], True),
    Detector("slack-bot-token", ["xoxb-"], slack_real, slack_fake, ["SLACK_BOT_TOKEN", "slack_token"], False),
    Detector("stripe-secret-key", ["sk_live_"], stripe_real, stripe_fake, ["STRIPE_SECRET_KEY", "stripe.api_key"], False),
    Detector("jwt", ["eyJ"], jwt_real, jwt_fake, ["jwt", "access_token", "Authorization"], True),
    Detector("generic-password", ["password", "passwd", "pwd"], pw_real, pw_fake,
             ["password", "DB_PASSWORD", "db_passwd", "admin_pwd", "smtp_password"], False),
    Detector("generic-api-key", ["api_key", "apikey", "secret", "token"], api_real, api_fake,
             ["api_key", "API_KEY", "apiKey", "secret_key", "client_secret", "auth_token"], False),
]
BY_NAME = {d.name: d for d in DETECTORS}

# ---- paths -------------------------------------------------------------------

SRC_PATHS = ["src/app.py", "app/config/settings.py", "lib/client.js", "config/production.yaml",
             ".env", "deploy/values.yaml", "scripts/deploy.sh", "cmd/server/main.go",
             "server/index.ts", ".github/workflows/release.yml", "docker-compose.yml",
             "infra/terraform/main.tf", "notebooks/analysis.ipynb", "config/database.yml",
             "src/main/resources/application.properties", "backend/settings/prod.py",
             "k8s/secret.yaml", "Dockerfile", "ansible/group_vars/all.yml", "web/.env.production",
             "C:\\Users\\dev\\project\\config.json", "jobs/nightly_sync.rb"]
TEST_PATHS = ["tests/test_client.py", "test/fixtures/tokens.json", "spec/models/user_spec.rb",
              "src/__tests__/auth.test.ts", "pkg/auth/auth_test.go", "testdata/config.yaml",
              "tests/mocks/mock_api.py", "e2e/login.spec.js", "src/test/java/AuthTest.java",
              "tests/conftest.py", "fixtures/users.yml", "internal/testing/helpers.go"]
DOC_PATHS = ["README.md", "docs/setup.md", "examples/quickstart.py", "CHANGELOG.md",
             "docs/api.rst", "docs/configuration/auth.md", "examples/config.example.yaml",
             "guide.rst", "docs/index.adoc", "samples/upload.sh"]
VENDOR_PATHS = ["vendor/github.com/acme/sdk/client.go", "node_modules/some-sdk/dist/index.js",
                "third_party/oauthlib/tests/data.py", "static/js/app.min.js",
                "venv/lib/python3.11/site-packages/pkg/conf.py"]
LOCK_PATHS = ["package-lock.json", "yarn.lock", "go.sum", "Cargo.lock", "poetry.lock",
              "pnpm-lock.yaml", "npm-shrinkwrap.json", "Gemfile.lock"]

# ---- line templates: {k} key name, {v} the secret -----------------------------

ASSIGN_LINES = [
    '{k} = "{v}"', "{k} = '{v}'", "    {k} = \"{v}\"", 'const {k} = "{v}";', "  {k}: '{v}',",
    "{k}: {v}", '  {k}: "{v}"', "{K}={v}", 'export {K}="{v}"', '"{k}": "{v}",', "{k} = {v}",
    "config.{k} = '{v}'", "{k} := \"{v}\"", ":{k} => '{v}',", "set {k} {v}", "<{k}>{v}</{k}>",
    '  - name: {K}\n    value: "{v}"', "{k}='{v}' # rotated quarterly",
]
HEADER_LINES = ['Authorization: Bearer {v}', 'curl -H "Authorization: token {v}" https://api.example.net/v1',
                "headers = {'Authorization': 'Bearer {v}'}", 'req.Header.Set("Authorization", "Bearer {v}")']
CALL_LINES = ['client = Client("{v}")', "login('{v}')", 'auth({v})', "new Api(\"{v}\", opts)",
              'print("using {v}")', "log.info(\"key loaded: {v}\")"]
ENV_LINES = ['{k} = os.environ.get("{K}", "{v}")', 'const {k} = process.env.{K} || "{v}";',
             '{k} = os.getenv("{K}", "{v}")', '{k}: ${{K}:-{v}}', "{k} = ENV.fetch('{K}', '{v}')"]
COMMENT_LINES = ['# {k} = "{v}"', "// {k}: {v}", "-- password for staging: {v}",
                 "/* old key {v} */", "; {k}={v}", "<!-- token: {v} -->", "# e.g. {K}={v}"]
DOC_LINES = ["Set `{K}` to your token, for example `{v}`.", "| {k} | `{v}` |",
             "    export {K}={v}", "Use the key {v} in the header.", "* {k}: {v}",
             "```\n{K}={v}\n```"]
HASH_LINES = ['"integrity": "sha512-{v}",', '  resolved "https://registry.yarnpkg.com/pkg/-/pkg-1.0.0.tgz#{v}"',
              "github.com/acme/lib v1.2.3 h1:{v}", 'checksum = "{v}"', "commit {v}",
              'sha256 = "{v}"', '"etag": "{v}",', 'request_id = "{v}"', 'nonce: "{v}"',
              '  "uuid": "{v}",', "digest: sha256:{v}"]

FILLER = ["import os", "", "def main():", "    return run()", "}", "# config", "---",
          "name: service", "version: 2", "module.exports = config;", "[default]",
          "package main", "log_level = \"info\"", "timeout = 30"]


def render(rng, template, key, value):
    k = key
    K = key.upper().replace(".", "_")
    before, after = template.split("{v}", 1)
    before = before.replace("{k}", k).replace("{K}", K)
    after = after.replace("{k}", k).replace("{K}", K)
    pre = "\n".join(rng.choice(FILLER) for _ in range(rng.randrange(0, 3)))
    post = "\n".join(rng.choice(FILLER) for _ in range(rng.randrange(0, 3)))
    head = (pre + "\n" if pre else "") + before
    text = head + value + after + ("\n" + post if post else "") + "\n"
    return text, len(head)


def example(rng, det, secret, checksum, path, template, key, label, kind, decoded=0):
    data, so = render(rng, template, key, secret)
    if not det.has_checksum:
        checksum = 0
    return {"keywords": det.keywords, "data": data, "so": so, "sl": len(secret),
            "path": path, "checksum": checksum, "decoded": decoded, "label": label, "kind": kind}


def pick_context(rng, weights):
    groups = [ASSIGN_LINES, HEADER_LINES, CALL_LINES, ENV_LINES, COMMENT_LINES, DOC_LINES]
    return rng.choice(rng.choices(groups, weights=weights)[0])


# ---- scenarios ----------------------------------------------------------------

def real_leak(rng):
    det = rng.choice(DETECTORS)
    secret, checksum = det.real(rng)
    where = rng.random()
    path = (rng.choice(SRC_PATHS) if where < 0.80 else rng.choice(TEST_PATHS) if where < 0.88
            else rng.choice(DOC_PATHS) if where < 0.95 else rng.choice(VENDOR_PATHS))
    if det.name.startswith("generic"):
        tpl = pick_context(rng, [80, 3, 4, 8, 5, 0])
    else:
        tpl = pick_context(rng, [50, 15, 15, 8, 8, 4])
    if rng.random() < 0.04:
        path = None  # stdin
    return example(rng, det, secret, checksum, path, tpl, rng.choice(det.keys), 1, "real")


def test_fixture(rng):
    det = rng.choice(DETECTORS)
    secret, checksum = det.fake(rng)
    tpl = pick_context(rng, [65, 10, 20, 0, 5, 0])
    return example(rng, det, secret, checksum, rng.choice(TEST_PATHS), tpl, rng.choice(det.keys), 0, "fixture")


def docs_sample(rng):
    det = rng.choice(DETECTORS)
    secret, checksum = det.fake(rng)
    tpl = pick_context(rng, [35, 15, 10, 0, 5, 35])
    return example(rng, det, secret, checksum, rng.choice(DOC_PATHS), tpl, rng.choice(det.keys), 0, "docs")


def placeholder_in_src(rng):
    det = rng.choice(DETECTORS)
    secret, checksum = det.fake(rng)
    tpl = pick_context(rng, [60, 8, 7, 20, 5, 0])
    return example(rng, det, secret, checksum, rng.choice(SRC_PATHS), tpl, rng.choice(det.keys), 0, "placeholder")


def hash_or_id(rng):
    det = BY_NAME[rng.choice(["generic-api-key", "generic-api-key", "generic-password"])]
    secret, _ = hash_value(rng)
    r = rng.random()
    if r < 0.5:
        path, tpl = rng.choice(LOCK_PATHS), rng.choice(HASH_LINES)
    elif r < 0.85:
        path, tpl = rng.choice(SRC_PATHS), rng.choice(HASH_LINES)
    else:  # a hash under a secret-sounding key: the hard case
        path, tpl = rng.choice(SRC_PATHS), rng.choice(ASSIGN_LINES)
    return example(rng, det, secret, 0, path, tpl, rng.choice(["token", "secret", "key", "id"]), 0, "hash")


def vendored(rng):
    det = rng.choice(DETECTORS)
    real = rng.random() < 0.2
    secret, checksum = det.real(rng) if real else det.fake(rng)
    tpl = pick_context(rng, [50, 10, 30, 0, 10, 0])
    return example(rng, det, secret, checksum, rng.choice(VENDOR_PATHS), tpl, rng.choice(det.keys),
                   1 if real else 0, "vendor")


def decoded_hit(rng):
    """Found inside base64: a Kubernetes Secret's data (real) or a random blob
    that happened to decode to something token-like (not)."""
    det = rng.choice(DETECTORS)
    if rng.random() < 0.6:
        secret, checksum = det.real(rng)
        return example(rng, det, secret, checksum, rng.choice(SRC_PATHS), "{v}", "", 1, "decoded-real", 1)
    secret, checksum = det.fake(rng) if rng.random() < 0.5 else hash_value(rng)
    if not det.has_checksum:
        checksum = 0
    path = rng.choice(SRC_PATHS + VENDOR_PATHS + LOCK_PATHS)
    return example(rng, det, secret, checksum, path, rng.choice(["{v}", "x{v}y", "{v}\x00"]), "", 0,
                   "decoded-noise", 1)


SCENARIOS = [(real_leak, 40), (test_fixture, 16), (docs_sample, 11), (placeholder_in_src, 12),
             (hash_or_id, 10), (vendored, 5), (decoded_hit, 6)]


def generate(count, seed):
    rng = random.Random(seed)
    funcs = [f for f, _ in SCENARIOS]
    weights = [w for _, w in SCENARIOS]
    out = []
    for _ in range(count):
        ex = rng.choices(funcs, weights=weights)[0](rng)
        if rng.random() < 0.03:  # reviewers disagree sometimes
            ex["label"] = 1 - ex["label"]
        out.append(ex)
    return out


def to_input(ex):
    """The features.py input dict (bytes) for one example."""
    return {"keywords": [k.encode("latin-1") for k in ex["keywords"]],
            "data": ex["data"].encode("latin-1"), "so": ex["so"], "sl": ex["sl"],
            "path": None if ex["path"] is None else ex["path"].encode("latin-1"),
            "checksum": ex["checksum"], "decoded": ex["decoded"]}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-n", type=int, default=16000)
    ap.add_argument("--seed", type=int, default=20240601)
    ap.add_argument("-o", default="-")
    args = ap.parse_args()
    rows = generate(args.n, args.seed)
    fh = sys.stdout if args.o == "-" else open(args.o, "w", encoding="utf-8")
    for r in rows:
        fh.write(json.dumps(r, sort_keys=True) + "\n")
    if fh is not sys.stdout:
        fh.close()


if __name__ == "__main__":
    main()
