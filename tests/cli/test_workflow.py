"""Everyday workflow: .keyhog.toml, allowlists, severity overrides, disabled
detectors, baselines, inline ignores, the compiled-detector cache."""
import json
import os

from khtest import CachedTreeTest, acme, acme_detectors, jsonl, run, write


class WorkflowTest(CachedTreeTest):
    # One compiled-detector cache for the class; the cache test below uses
    # its own.
    def setUp(self):
        super().setUp()
        self.det = acme_detectors(self.tmp)
        self.tree = os.path.join(self.tmp, "repo")
        os.makedirs(self.tree)

    def scan(self, *args, cwd=None):
        return run("scan", "--detectors", self.det, "--format", "jsonl", *args,
                   cwd=cwd, env=self.env)

    def test_config_found_walking_up_allowlists_paths_and_secrets(self):
        allowed = acme(1)
        write(self.tree, ".keyhog.toml",
              'min_confidence = 0.0\n'
              '[allowlist]\n'
              'paths = ["fixtures/**", "*.lock"]\n'
              f'secrets = ["{allowed}"]\n'
              "regexes = ['^acme_0000']\n")
        write(self.tree, "fixtures/a/k.txt", f"ACME={acme(2)}\n")
        write(self.tree, "deps.lock", f"ACME={acme(3)}\n")
        write(self.tree, "src/app.env", f"ACME={allowed}\nB=acme_0000{acme(4)[9:]}\nC={acme(5)}\n")
        p = self.scan(os.path.join(self.tree, "src"))
        rows = jsonl(p)
        self.assertEqual([r["line"] for r in rows], [3], p.stderr)
        p = self.scan("--no-config", "--min-confidence", "0", self.tree)
        self.assertEqual(len(jsonl(p)), 5)

    def test_unknown_config_key_is_an_error_with_position(self):
        write(self.tree, ".keyhog.toml", "min_confidence = 0.1\n\nallowlst = 1\n")
        p = self.scan(self.tree)
        self.assertEqual(p.returncode, 2)
        self.assertIn(".keyhog.toml:3:1", p.stderr.decode())

    def test_severity_override_and_disable(self):
        write(self.tree, "a.env", f"ACME={acme(6)}\n")
        cfg = write(self.tmp, "cfg.toml", '[severity]\nacme-key = "low"\n')
        rows = jsonl(self.scan("--config", cfg, self.tree))
        self.assertEqual(rows[0]["severity"], "low")
        p = self.scan("--config", cfg, "--min-severity", "medium", self.tree)
        self.assertEqual(p.returncode, 0)
        cfg2 = write(self.tmp, "cfg2.toml", 'disable = ["acme-key"]\n')
        self.assertEqual(self.scan("--config", cfg2, self.tree).returncode, 0)

    def test_baseline_reports_only_new_and_survives_moves(self):
        old = acme(7)
        write(self.tree, "a.env", f"ACME={old}\n")
        base = os.path.join(self.tmp, "baseline.json")
        p = run("baseline", "create", "--detectors", self.det, "-o", base, self.tree,
                env=self.env)
        self.assertEqual(p.returncode, 0, p.stderr)
        doc = json.load(open(base))
        self.assertEqual(len(doc["findings"]), 1)
        self.assertNotIn(old, open(base).read())
        # Move the old secret and add a new one.
        write(self.tree, "a.env", f"\n\n# moved\nACME={old}\n")
        new = acme(8)
        write(self.tree, "b.env", f"ACME={new}\n")
        rows = jsonl(self.scan("--baseline", base, "--show-secrets", self.tree))
        self.assertEqual([r["secret"] for r in rows], [new])
        # Stable output: the same baseline twice is byte-identical.
        base2 = os.path.join(self.tmp, "baseline2.json")
        run("baseline", "create", "--detectors", self.det, "-o", base2, self.tree, env=self.env)
        run("baseline", "create", "--detectors", self.det, "-o", base, self.tree, env=self.env)
        self.assertEqual(open(base).read(), open(base2).read())

    def test_bad_baseline_file(self):
        bad = write(self.tmp, "bad.json", "{not json")
        p = self.scan("--baseline", bad, self.tree)
        self.assertEqual(p.returncode, 2)
        self.assertIn("bad.json", p.stderr.decode())

    def test_suppressed_counted_in_stats(self):
        write(self.tree, "a.env", f"ACME={acme(9)} # keyhog:ignore\n\nACME={acme(10)}\n")
        p = run("scan", "--detectors", self.det, "--format", "json", self.tree, env=self.env)
        doc = json.loads(p.stdout)
        self.assertEqual(len(doc["findings"]), 1)
        self.assertEqual(doc["stats"]["suppressed"], 1)

    def test_cache_is_used_and_corruption_is_harmless(self):
        self.env = {"KEYHOG_CACHE_DIR": os.path.join(self.tmp, "_cache")}
        write(self.tree, "a.env", f"ACME={acme(11)}\n")
        first = self.scan(self.tree)
        cache = self.env["KEYHOG_CACHE_DIR"]
        files = os.listdir(cache)
        self.assertEqual(len(files), 1)
        second = self.scan(self.tree)
        self.assertEqual(first.stdout, second.stdout)
        with open(os.path.join(cache, files[0]), "r+b") as f:
            f.seek(100)
            f.write(b"garbage" * 10)
        third = self.scan(self.tree)
        self.assertEqual(third.returncode, 1)
        self.assertEqual(first.stdout, third.stdout)
        with open(os.path.join(cache, files[0]), "wb") as f:
            f.write(b"KHDB2\n")
        self.assertEqual(self.scan(self.tree).stdout, first.stdout)
