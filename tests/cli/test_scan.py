"""keyhog scan end to end on fixture trees: formats, redaction, exit
statuses, the walker's policies, stdin, and the command-line contract."""
import json
import os
import random
import string
import subprocess
import unittest
import zlib

from khtest import DETECTOR, KEYHOG, ROOT, TreeTest, acme, acme_detectors, jsonl, run, write

B62 = string.digits + string.ascii_uppercase + string.ascii_lowercase


def github_token(prefix="ghp", seed=1):
    """A made-up GitHub-style token with a valid CRC32 checksum."""
    rnd = random.Random(seed)
    body = "".join(rnd.choice(B62) for _ in range(30))
    crc = zlib.crc32(body.encode())
    digits = ""
    while crc:
        crc, r = divmod(crc, 62)
        digits = B62[r] + digits
    return f"{prefix}_{body}{digits.rjust(6, '0')}"


class ScanTest(TreeTest):
    def setUp(self):
        super().setUp()
        self.det = acme_detectors(self.tmp)
        self.tree = os.path.join(self.tmp, "tree")
        os.makedirs(self.tree)

    def scan(self, *args, **kw):
        return run("scan", "--detectors", self.det, *args, **kw)

    def test_jsonl_contract(self):
        key = acme(1)
        write(self.tree, "app/config.py", f"x = 1\n\nACME_KEY = '{key}'\n")
        p = self.scan("--format", "jsonl", self.tree)
        self.assertEqual(p.returncode, 1, p.stderr)
        rows = [r for r in jsonl(p) if r["detector_id"] == "acme-key"]
        self.assertEqual(len(rows), 1)
        r = rows[0]
        for k in ("detector_id", "detector_name", "service", "severity", "confidence", "path",
                  "line", "column", "end_line", "end_column", "offset", "length", "redacted",
                  "fingerprint"):
            self.assertIn(k, r)
        self.assertNotIn("secret", r)
        self.assertEqual(r["path"], os.path.join(self.tree, "app/config.py"))
        self.assertEqual((r["line"], r["column"]), (3, 13))
        self.assertEqual((r["end_line"], r["end_column"]), (3, 13 + len(key) - 1))
        self.assertEqual(r["offset"], 7 + 12)
        self.assertEqual(r["length"], len(key))
        self.assertEqual(r["severity"], "high")
        self.assertTrue(0 <= r["confidence"] <= 1)
        self.assertNotIn(key, p.stdout.decode())
        self.assertEqual(len(r["fingerprint"]), 64)

    def test_fingerprint_stable_and_secret_shown_on_request(self):
        key = acme(2)
        write(self.tree, "a.env", f"ACME={key}\n")
        p1 = self.scan("--format", "jsonl", "--show-secrets", self.tree)
        p2 = self.scan("--format", "jsonl", "-j", "1", self.tree)
        r1, r2 = jsonl(p1)[0], jsonl(p2)[0]
        self.assertEqual(r1["secret"], key)
        self.assertEqual(r1["fingerprint"], r2["fingerprint"])

    def test_redacted_everywhere_by_default(self):
        key = acme(3)
        write(self.tree, "a.env", f"ACME={key}\n")
        for fmt in ("text", "json", "jsonl", "sarif", "html"):
            p = self.scan("--format", fmt, self.tree)
            self.assertEqual(p.returncode, 1, (fmt, p.stderr))
            self.assertNotIn(key, p.stdout.decode(), fmt)
            self.assertNotIn(key, p.stderr.decode(), fmt)

    def test_exit_zero_without_findings(self):
        write(self.tree, "clean.txt", "nothing to see\n")
        p = self.scan(self.tree)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stdout, b"")

    def test_json_document(self):
        write(self.tree, "a.env", f"ACME={acme(4)}\n")
        write(self.tree, "b.env", f"ACME={acme(5)}\n")
        p = self.scan("--format", "json", self.tree)
        doc = json.loads(p.stdout)
        self.assertEqual(len(doc["findings"]), 2)
        self.assertEqual(doc["stats"]["files_scanned"], 2)
        self.assertEqual([f["path"] for f in doc["findings"]],
                         sorted(f["path"] for f in doc["findings"]))

    def test_sarif_validates_against_schema(self):
        write(self.tree, "dir with space/a.env", f"ACME={acme(6)}\n")
        p = self.scan("--format", "sarif", self.tree)
        schema = os.path.join(ROOT, "tests", "data", "sarif-schema-2.1.0.json")
        doc = json.loads(p.stdout)
        self.assertEqual(doc["version"], "2.1.0")
        import jsonschema
        with open(schema) as f:
            jsonschema.validate(doc, json.load(f))
        res = doc["runs"][0]["results"][0]
        self.assertEqual(res["ruleId"], "acme-key")

    def test_output_file(self):
        write(self.tree, "a.env", f"ACME={acme(7)}\n")
        out = os.path.join(self.tmp, "out.jsonl")
        p = self.scan("--format", "jsonl", "-o", out, self.tree)
        self.assertEqual(p.returncode, 1)
        self.assertEqual(p.stdout, b"")
        with open(out) as f:
            self.assertEqual(len([l for l in f if l.strip()]), 1)
        self.assertEqual(sorted(os.listdir(self.tmp)), ["_detectors", "out.jsonl", "tree"])

    def test_min_severity(self):
        write(self.tree, "a.env", f"ACME={acme(8)}\n")
        self.assertEqual(self.scan("--min-severity", "critical", self.tree).returncode, 0)
        self.assertEqual(self.scan("--min-severity", "high", self.tree).returncode, 1)
        p = self.scan("--min-severity", "bogus", self.tree)
        self.assertEqual(p.returncode, 2)
        self.assertIn("bogus", p.stderr.decode())

    def test_gitignore_and_no_ignore(self):
        write(self.tree, ".gitignore", "secret.env\nbuild/\n")
        write(self.tree, "secret.env", f"ACME={acme(9)}\n")
        write(self.tree, "build/x.txt", f"ACME={acme(10)}\n")
        write(self.tree, "kept.txt", f"ACME={acme(11)}\n")
        paths = {r["path"] for r in jsonl(self.scan("--format", "jsonl", self.tree))}
        self.assertEqual(paths, {os.path.join(self.tree, "kept.txt")})
        paths = {r["path"] for r in jsonl(self.scan("--format", "jsonl", "--no-ignore", self.tree))}
        self.assertEqual(len(paths), 3)

    def test_dot_git_skipped_binary_skipped(self):
        write(self.tree, ".git/config", f"ACME={acme(12)}\n")
        write(self.tree, "blob.bin", b"\x00\x01" + f"ACME={acme(13)}".encode())
        self.assertEqual(self.scan(self.tree).returncode, 0)

    def test_symlinks_not_followed_unless_asked(self):
        outside = os.path.join(self.tmp, "outside")
        write(outside, "k.txt", f"ACME={acme(14)}\n")
        os.symlink(outside, os.path.join(self.tree, "link"))
        self.assertEqual(self.scan(self.tree).returncode, 0)
        self.assertEqual(self.scan("--follow", self.tree).returncode, 1)

    def test_symlink_loop_terminates(self):
        os.makedirs(os.path.join(self.tree, "a"))
        os.symlink("..", os.path.join(self.tree, "a", "up"))
        write(self.tree, "a/k.txt", f"ACME={acme(15)}\n")
        p = self.scan("--follow", "--format", "jsonl", self.tree, timeout=60)
        self.assertEqual(p.returncode, 1)
        self.assertEqual(len(jsonl(p)), 1)

    @unittest.skipIf(os.geteuid() == 0, "root reads unreadable files")
    def test_unreadable_file_reported_and_scan_goes_on(self):
        write(self.tree, "locked.txt", "x", mode=0)
        write(self.tree, "ok.txt", f"ACME={acme(16)}\n")
        p = self.scan(self.tree)
        self.assertEqual(p.returncode, 1)
        self.assertIn("locked.txt", p.stderr.decode())

    def test_missing_path_reported(self):
        write(self.tree, "ok.txt", f"ACME={acme(17)}\n")
        p = self.scan(os.path.join(self.tmp, "nope"), self.tree)
        self.assertEqual(p.returncode, 1)
        self.assertIn("nope", p.stderr.decode())

    def test_max_file_size(self):
        write(self.tree, "big.txt", "x" * 5000 + f"\nACME={acme(18)}\n")
        p = self.scan("--max-file-size", "1K", self.tree)
        self.assertEqual(p.returncode, 0)
        self.assertIn("big.txt", p.stderr.decode())
        self.assertEqual(self.scan("--max-file-size", "1M", self.tree).returncode, 1)

    def test_stdin(self):
        key = acme(19)
        p = self.scan("--format", "jsonl", "--stdin-name", "piped.txt", "-",
                      stdin=f"hello\nACME={key}\n".encode())
        rows = jsonl(p)
        self.assertEqual(len(rows), 1)
        self.assertEqual(rows[0]["path"], "piped.txt")
        self.assertEqual(rows[0]["line"], 2)

    def test_dedupe_keeps_all_locations(self):
        key = acme(20)
        write(self.tree, "a.txt", f"ACME={key}\n")
        write(self.tree, "b.txt", f"\nACME={key}\n")
        rows = jsonl(self.scan("--format", "jsonl", self.tree))
        self.assertEqual(len(rows), 1)
        self.assertEqual([l["line"] for l in rows[0]["locations"]], [1, 2])
        rows = jsonl(self.scan("--format", "jsonl", "--no-dedupe", self.tree))
        self.assertEqual(len(rows), 2)

    def test_inline_ignore(self):
        write(self.tree, "a.txt", f"ACME={acme(21)}  # keyhog:ignore\n"
                                  f"# keyhog:ignore=acme-key\nACME={acme(22)}\n"
                                  f"ACME={acme(23)} # keyhog:ignore=other-detector\n")
        rows = jsonl(self.scan("--format", "jsonl", self.tree))
        self.assertEqual([r["line"] for r in rows], [4])

    def test_deterministic_output(self):
        for i in range(40):
            write(self.tree, f"d{i % 5}/f{i}.txt", f"ACME={acme(100 + i)}\n" * (1 + i % 3))
        a = self.scan("--format", "jsonl", "-j", "4", self.tree).stdout
        b = self.scan("--format", "jsonl", "-j", "1", self.tree).stdout
        self.assertEqual(a, b)
        self.assertEqual(len(a.splitlines()), 40)

    def test_block_size_does_not_change_results(self):
        text = "".join(f"line {i} ACME={acme(200 + i)}\n" for i in range(50))
        write(self.tree, "many.txt", text)
        a = self.scan("--format", "jsonl", self.tree).stdout
        b = self.scan("--format", "jsonl", "--block-size", "57", self.tree).stdout
        self.assertEqual(a, b)
        self.assertEqual(len(a.splitlines()), 50)

    def test_usage_errors(self):
        for args in (["--format", "xml"], ["--threads", "0"], ["--bogus"],
                     ["--min-confidence", "2"]):
            p = self.scan(*args, self.tree)
            self.assertEqual(p.returncode, 2, args)
            self.assertTrue(p.stderr.strip(), args)


class EmbeddedTest(TreeTest):
    def test_embedded_github_token(self):
        token = github_token("ghp", 42)
        write(self.tmp, "deploy.sh", f"export GITHUB_TOKEN={token}\n")
        p = run("scan", "--format", "jsonl", "--show-secrets", self.tmp)
        rows = [r for r in jsonl(p) if r["service"] == "github"]
        self.assertEqual(len(rows), 1, p.stdout)
        self.assertEqual(rows[0]["secret"], token)
        self.assertEqual(rows[0]["severity"], "critical")

    def test_bad_checksum_rejected(self):
        token = github_token("ghp", 43)
        bad = token[:-1] + ("A" if token[-1] != "A" else "B")
        write(self.tmp, "deploy.sh", f"export GITHUB_TOKEN={bad}\n")
        p = run("scan", "--format", "jsonl", self.tmp)
        self.assertEqual([r for r in jsonl(p) if r["service"] == "github"], [])

    def test_default_path_is_current_directory(self):
        write(self.tmp, "x.env", f"T={github_token('ghp', 44)}\n")
        p = run("scan", cwd=self.tmp)
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn("x.env", p.stdout.decode())

    def test_help_and_version(self):
        p = run("--help")
        self.assertEqual(p.returncode, 0)
        self.assertIn("scan", p.stdout.decode())
        p = run("scan", "--help")
        self.assertEqual(p.returncode, 0)
        for opt in ("--format", "--output", "--show-secrets", "--min-severity", "--threads",
                    "--detectors", "--no-ignore", "--follow", "--max-file-size"):
            self.assertIn(opt, p.stdout.decode())
        p = run("--version")
        self.assertEqual(p.returncode, 0)
        self.assertRegex(p.stdout.decode(), r"^keyhog \d+\.\d+\.\d+")

    def test_unknown_command(self):
        p = run("frobnicate")
        self.assertEqual(p.returncode, 2)


class DetectorsCommandTest(TreeTest):
    def test_list_and_json(self):
        p = run("detectors", "--json")
        self.assertEqual(p.returncode, 0, p.stderr)
        ds = json.loads(p.stdout)
        self.assertGreaterEqual(len(ds), 60)
        ids = [d["id"] for d in ds]
        self.assertEqual(len(ids), len(set(ids)))
        p = run("detectors")
        self.assertEqual(len(p.stdout.decode().splitlines()), len(ds))

    def test_embedded_detectors_pass_their_tests(self):
        p = run("detectors", "test", timeout=600)
        self.assertEqual(p.returncode, 0, p.stdout.decode()[-3000:])

    def test_failing_detector_named(self):
        det = os.path.join(self.tmp, "d")
        write(det, "acme-key.toml", DETECTOR.replace(
            "test_negative = 'ACME = \"acme_0123\"'",
            "test_negative = 'ACME = \"acme_0123456789abcdefghijklmnopqrstuw\"'"))
        p = run("detectors", "test", "--detectors", det, "acme-key")
        self.assertEqual(p.returncode, 1)
        self.assertIn("acme-key", p.stdout.decode())

    def test_bad_detector_file_is_a_configuration_error(self):
        det = os.path.join(self.tmp, "d")
        write(det, "broken.toml", "[detector\nid = 1\n")
        p = run("scan", "--detectors", det, self.tmp)
        self.assertEqual(p.returncode, 2)
        self.assertIn("broken.toml", p.stderr.decode())
        write(det, "broken.toml", DETECTOR.replace("acme_[a-z0-9]{32}", "acme_[a-z0-9{32}"))
        p = run("scan", "--detectors", det, self.tmp)
        self.assertEqual(p.returncode, 2)
        self.assertIn("acme-key", p.stderr.decode())


if __name__ == "__main__":
    unittest.main()
