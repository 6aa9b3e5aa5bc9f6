"""keyhog scan --verify end to end against a local HTTPS server
(tests/data/verify/server.py, with a certificate made for this run) and the
test detectors in tests/data/verify/detectors, whose URLs point at it.

Every request goes to 127.0.0.1; a dead proxy is set for everything else so
that a finding from an embedded detector could never reach the internet."""
import json
import os
import shutil
import subprocess
import tempfile
import time
import unittest

from khtest import ROOT, TreeTest, jsonl, run, write

DATA = os.path.join(ROOT, "tests", "data", "verify")

LIVE = "khtlive_q3v8r1m9x2c7z5k4"
REVOKED = "khtrevk_p2w9e4r7t1y6u3i8"
UNKNOWN = "khtunkn_a7s2d9f4g1h8j3k6"
JSON_GOOD = "khtjson_good4r7t1y6u3i8z"
JSON_BAD = "khtjson_b4d4r7t1y6u3i8zq"
BASIC = "khtbasc_m4n8b2v6c9x1z7l3"
AWS_ID = "KHTSKEYHOGTEST000001"
AWS_SECRET = "KeyhogTestSecretKey/a8Xk2Lq9Zr4Tn7Wp1Yd+"
AWAY = "khtaway_w3e8r2t7y1u6i4o9"

SAMPLE = f"""\
live {LIVE}
revoked {REVOKED}
unknown {UNKNOWN}
json {JSON_GOOD}
json {JSON_BAD}
basic {BASIC}
basic khtpass_k3j8h2g7f1
aws {AWS_ID}
aws khtsecret = {AWS_SECRET}
away {AWAY}
again {LIVE}
"""

EXPECTED = {
    LIVE: ("live", "HTTP 200, login present"),
    REVOKED: ("revoked", "HTTP 401"),
    UNKNOWN: ("unknown", "server error (HTTP 503) after 3 attempts"),
    JSON_GOOD: ("live", "HTTP 200, ok is true"),
    JSON_BAD: ("revoked", "HTTP 200, ok is false"),
    BASIC: ("live", "HTTP 200"),
    AWS_ID: ("live", "HTTP 200"),
    AWAY: ("unknown", "redirect refused: host evil.invalid is not in allowed_domains"),
}


def _have_tools():
    return shutil.which("openssl") is not None


@unittest.skipUnless(_have_tools(), "needs the openssl command")
class VerifyTest(TreeTest):
    @classmethod
    def setUpClass(cls):
        cls._srv_dir = tempfile.TemporaryDirectory()
        cls.srv_dir = cls._srv_dir.name
        cls.proc = subprocess.Popen(
            ["python3", os.path.join(DATA, "server.py"), cls.srv_dir],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        cls.port = int(cls.proc.stdout.readline())
        cls.ca = os.path.join(cls.srv_dir, "cert.pem")
        cls.detectors = os.path.join(cls.srv_dir, "detectors")
        os.mkdir(cls.detectors)
        src = os.path.join(DATA, "detectors")
        for name in sorted(os.listdir(src)):
            with open(os.path.join(src, name)) as f:
                text = f.read().replace("@PORT@", str(cls.port))
            with open(os.path.join(cls.detectors, name), "w") as f:
                f.write(text)

    @classmethod
    def tearDownClass(cls):
        cls.proc.stdin.close()
        cls.proc.terminate()
        cls.proc.wait()
        cls.proc.stdout.close()
        cls._srv_dir.cleanup()

    # -- helpers -------------------------------------------------------

    def requests(self):
        with open(os.path.join(self.srv_dir, "requests.jsonl")) as f:
            return [json.loads(l) for l in f if l.strip()]

    def scan(self, *args, text=SAMPLE, verify=True):
        write(self.tmp, "src/keys.txt", text)
        argv = ["scan", "--no-config", "--min-confidence", "0", "--detectors", self.detectors]
        if verify:
            argv += ["--verify", "--verify-ca-bundle", self.ca]
        env = {"HTTPS_PROXY": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9",
               "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}
        return run(*argv, *args, os.path.join(self.tmp, "src"), env=env)

    def outcomes(self, proc):
        got = {}
        for f in jsonl(proc):
            v = f.get("verify")
            if v is not None:
                self.assertTrue(f["detector_id"].startswith("kh-test-"), f)
                got[f["secret"]] = (v["status"], v["reason"])
        return got

    # -- tests ---------------------------------------------------------

    def test_nothing_is_sent_without_verify(self):
        before = len(self.requests())
        p = self.scan("-f", "jsonl", "--show-secrets", verify=False)
        self.assertEqual(p.returncode, 1, p.stderr)
        found = jsonl(p)
        self.assertGreaterEqual(len(found), 8)
        self.assertTrue(all("verify" not in f for f in found))
        self.assertEqual(len(self.requests()), before)
        # The tuning options alone do not turn verification on either.
        p = self.scan("--verify-rate", "50", "--verify-ca-bundle", self.ca, verify=False)
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertEqual(len(self.requests()), before)

    def test_outcomes_and_requests(self):
        before = len(self.requests())
        p = self.scan("-f", "jsonl", "--show-secrets")
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertEqual(self.outcomes(p), EXPECTED)
        self.assertIn(b"verify: ", p.stderr)
        reqs = self.requests()[before:]
        by_path = {}
        for r in reqs:
            by_path.setdefault(r["path"], []).append(r)
        # each distinct secret once (LIVE appears twice in the input)
        self.assertEqual(len(by_path["/live"]), 1)
        self.assertEqual(by_path["/live"][0]["headers"]["authorization"], f"Bearer {LIVE}")
        rv = by_path["/revoked"][0]["headers"]
        self.assertEqual(rv["x-api-key"], f"key={REVOKED}")
        self.assertEqual(rv["x-client"], "keyhog-test")
        self.assertNotIn("authorization", rv)
        self.assertEqual(len(by_path["/status/503"]), 3)  # two retries
        self.assertEqual(by_path["/status/503"][0]["query"], f"api_key={UNKNOWN}")
        js = sorted(by_path["/json"], key=lambda r: r["body"])
        self.assertEqual([r["method"] for r in js], ["POST", "POST"])
        self.assertEqual(json.loads(js[0]["body"]), {"token": JSON_BAD})
        basic = by_path["/status/200"][0]["headers"]["authorization"]
        import base64
        self.assertEqual(base64.b64decode(basic.split()[1]).decode(), f"{BASIC}:k3j8h2g7f1")
        sts = by_path["/sts"][0]
        self.assertEqual(sts["query"], "Action=GetCallerIdentity&Version=2011-06-15")
        self.assertTrue(sts["headers"]["authorization"].startswith(
            f"AWS4-HMAC-SHA256 Credential={AWS_ID}/"), sts["headers"])
        self.assertIn("/us-east-1/sts/aws4_request, SignedHeaders=host;x-amz-date, Signature=",
                      sts["headers"]["authorization"])
        self.assertEqual(len(by_path["/redirect/away"]), 1)
        self.assertEqual(set(by_path), {"/live", "/revoked", "/status/503", "/json",
                                        "/status/200", "/sts", "/redirect/away"})
        for r in reqs:
            self.assertTrue(r["headers"]["user-agent"].startswith("keyhog/"))

    def test_status_in_every_format(self):
        text = f"live {LIVE}\nrevoked {REVOKED}\n"
        p = self.scan("-f", "text", "--color", "never", text=text)
        out = p.stdout.decode()
        self.assertIn("verify: live (HTTP 200, login present)", out)
        self.assertIn("verify: revoked (HTTP 401)", out)
        self.assertNotIn(LIVE, out)  # still redacted
        for fmt in ("json", "sarif", "html"):
            p = self.scan("-f", fmt, text=text)
            self.assertEqual(p.returncode, 1, p.stderr)
            out = p.stdout.decode()
            self.assertIn("revoked", out, fmt)
            self.assertIn("HTTP 200, login present", out, fmt)

    def test_limits_hold(self):
        slow = "".join(f"slow khtslow_{i:04d}c7v2b6n1m5q9\n" for i in range(6))
        before = len(self.requests())
        p = self.scan("--verify-concurrency", "2", "--verify-rate", "1000", "-f", "jsonl",
                      text=slow)
        self.assertEqual(p.returncode, 1, p.stderr)
        reqs = [r for r in self.requests()[before:] if r["path"] == "/slow"]
        self.assertEqual(len(reqs), 6)
        self.assertEqual(max(r["inflight"] for r in reqs), 2)

        live = "".join(f"live khtlive_{i:04d}r1m9x2c7z5k4\n" for i in range(6))
        before = len(self.requests())
        p = self.scan("--verify-rate", "10", "-f", "jsonl", text=live)
        self.assertEqual(p.returncode, 1, p.stderr)
        reqs = [r for r in self.requests()[before:] if r["path"] == "/live"]
        self.assertEqual(len(reqs), 6)
        # five gaps of 0.1 s at 10 requests per second
        self.assertGreaterEqual(reqs[-1]["time"] - reqs[0]["time"], 0.42)

    def test_cache_file(self):
        cache = os.path.join(self.tmp, "verify-cache.json")
        text = f"live {LIVE}\nunknown {UNKNOWN}\nrevoked {REVOKED}\n"
        before = len(self.requests())
        p = self.scan("--verify-cache", cache, "-f", "jsonl", "--show-secrets", text=text)
        self.assertEqual(p.returncode, 1, p.stderr)
        first = len(self.requests()) - before
        self.assertEqual(first, 5)  # 1 + 3 attempts + 1
        with open(cache) as f:
            saved = json.load(f)
        fps = {f["secret"]: f["fingerprint"] for f in jsonl(p)}
        self.assertEqual(set(saved), {fps[LIVE], fps[REVOKED]})  # unknown is not kept
        self.assertEqual(saved[fps[LIVE]]["status"], "live")
        self.assertEqual(saved[fps[REVOKED]]["reason"], "HTTP 401")
        self.assertLessEqual(abs(saved[fps[LIVE]]["time"] - time.time()), 60)

        before = len(self.requests())
        p = self.scan("--verify-cache", cache, "-f", "jsonl", "--show-secrets", text=text)
        got = self.outcomes(p)
        self.assertEqual(got[LIVE], ("live", "HTTP 200, login present (cached)"))
        self.assertEqual(got[REVOKED], ("revoked", "HTTP 401 (cached)"))
        self.assertEqual(len(self.requests()) - before, 3)  # only the unknown again

        # Entries older than the TTL are asked again.
        saved[fps[LIVE]]["time"] -= 7200
        with open(cache, "w") as f:
            json.dump(saved, f)
        before = len(self.requests())
        p = self.scan("--verify-cache", cache, "--verify-cache-ttl", "1h", "-f", "jsonl",
                      "--show-secrets", text=f"live {LIVE}\n")
        self.assertEqual(self.outcomes(p)[LIVE], ("live", "HTTP 200, login present"))
        self.assertEqual(len(self.requests()) - before, 1)

    def test_bad_options_and_cache(self):
        for opt, val in (("--verify-concurrency", "0"), ("--verify-rate", "fast"),
                         ("--verify-timeout", "-1"), ("--verify-cache-ttl", "1y")):
            p = self.scan(opt, val, text=f"live {LIVE}\n")
            self.assertEqual(p.returncode, 2, (opt, p.stderr))
            self.assertIn(opt.encode(), p.stderr)
        bad = write(self.tmp, "bad-cache.json", "{not json")
        p = self.scan("--verify-cache", bad, text=f"live {LIVE}\n")
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertIn(b"bad-cache.json", p.stderr)

    def test_untrusted_certificate_is_unknown(self):
        write(self.tmp, "src/keys.txt", f"live {LIVE}\n")
        env = {"NO_PROXY": "127.0.0.1", "no_proxy": "127.0.0.1"}  # no --verify-ca-bundle
        p = run("scan", "--no-config", "--min-confidence", "0", "--detectors", self.detectors, "--verify",
                "-f", "jsonl", "--show-secrets", os.path.join(self.tmp, "src"), env=env)
        got = self.outcomes(p)
        self.assertEqual(got[LIVE][0], "unknown")
        self.assertIn("TLS", got[LIVE][1])


if __name__ == "__main__":
    unittest.main()
