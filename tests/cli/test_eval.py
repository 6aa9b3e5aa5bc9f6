"""make eval's own parts, kept small enough for every test run: the scorer's
matching on hand-made findings, and plant + scan + score on a tiny tree
(the full evaluation on the Linux tree is `make eval`, never run here)."""
import json
import os
import shutil
import subprocess
import sys
import unittest

from khtest import KEYHOG, ROOT, TreeTest, write

sys.path.insert(0, os.path.join(ROOT, "eval"))
import score  # noqa: E402


def jsonl_write(path, rows):
    with open(path, "w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")


class ScorerMatching(TreeTest):
    def test_places_decoys_background_and_locations(self):
        tree = os.path.join(self.tmp, "tree")
        man = [
            {"path": "a/x.py", "line": 3, "detector": "github-classic-pat", "service": "github",
             "encoding": "plain", "file_type": "py", "kind": "secret", "decoy": None},
            {"path": "a/y.env", "line": 2, "detector": "npm-access-token", "service": "npm",
             "encoding": "base64", "file_type": "env", "kind": "secret", "decoy": None},
            {"path": "b/z.yaml", "line": 7, "detector": "slack-bot-token", "service": "slack",
             "encoding": "plain", "file_type": "yaml", "kind": "secret", "decoy": None},
            {"path": "b/d.c", "line": 1, "detector": "aws-access-key-id", "service": "aws",
             "encoding": "plain", "file_type": "c", "kind": "decoy", "decoy": "example"},
            {"path": "b/e.c", "line": 5, "detector": "aws-access-key-id", "service": "aws",
             "encoding": "plain", "file_type": "c", "kind": "decoy", "decoy": "xxxx"},
        ]

        def finding(det, svc, path, line, locations=None, fp="f"):
            d = {"detector_id": det, "service": svc, "path": os.path.join(tree, path),
                 "line": line, "confidence": 0.9, "redacted": "abc…xyz", "fingerprint": fp}
            if locations:
                d["locations"] = [{"path": os.path.join(tree, p), "line": l} for p, l in locations]
            return d

        findings = [
            finding("github-classic-pat", "github", "a/x.py", 3, fp="1"),
            # a deduplicated finding: its second location is the npm secret
            finding("generic-token-assignment", "generic", "c/bg.c", 9,
                    [("c/bg.c", 9), ("a/y.env", 2)], fp="2"),
            finding("aws-access-key-id", "aws", "b/d.c", 1, fp="3"),
            finding("generic-password-assignment", "generic", "a/x.py", 40, fp="4"),
        ]
        mpath, fpath = os.path.join(self.tmp, "m.jsonl"), os.path.join(self.tmp, "f.jsonl")
        jsonl_write(mpath, man)
        jsonl_write(fpath, findings)
        rows, background, extra = score.score_seed(mpath, fpath, tree)
        by = {(r["path"], r["line"]): r for r in rows}
        self.assertTrue(by[("a/x.py", 3)]["found"])
        self.assertTrue(by[("a/x.py", 3)]["right_detector"])
        self.assertTrue(by[("a/y.env", 2)]["found"])          # through locations
        self.assertFalse(by[("a/y.env", 2)]["right_detector"])  # a generic rule found it
        self.assertFalse(by[("b/z.yaml", 7)]["found"])
        self.assertTrue(by[("b/d.c", 1)]["found"])             # a reported decoy
        self.assertFalse(by[("b/e.c", 5)]["found"])
        self.assertEqual([(b["path"], b["line"]) for b in background], [("c/bg.c", 9)])
        self.assertEqual([(e["path"], e["line"]) for e in extra], [("a/x.py", 40)])
        s = score.summarize(rows)
        self.assertEqual((s["plain"], s["plain_found"], s["encoded"], s["encoded_found"]), (2, 1, 1, 1))
        self.assertAlmostEqual(s["decoy_rate"], 0.5)


LINUX_LIKE = {
    "Makefile": "obj-y += core.o\n\nclean:\n\trm -f *.o\n",
    "drivers/net/core.c": "#include <linux/module.h>\n\nstatic int x;\n\nint f(void)\n{\n\treturn x;\n}\n",
    "drivers/net/Makefile": "obj-$(CONFIG_NET) += core.o\n\n",
    "scripts/check.py": "import sys\n\n\ndef main():\n    return 0\n",
    "scripts/run.sh": "#!/bin/sh\nset -e\n\necho ok\n",
    "tools/perf/events.json": "[\n  {\n    \"EventName\": \"cycles\",\n\n    \"EventCode\": \"0x3c\"\n  }\n]\n",
    "Documentation/bindings/dev.yaml": "title: Device\n\nproperties:\n  compatible: true\n",
}


@unittest.skipUnless(os.path.exists(KEYHOG), "keyhog is not built")
class SmallTree(TreeTest):
    """Plants for a sample of detectors into a tiny tree, scans, scores."""

    def test_plant_scan_score(self):
        pristine = os.path.join(self.tmp, "pristine")
        for d in ["arch/x86/kernel", "fs/ext4", "net/core", "lib/math", "sound/core", "mm",
                  "kernel/sched", "crypto/asym", "block/partitions", "ipc"]:
            os.makedirs(os.path.join(pristine, d))
        for rel, text in LINUX_LIKE.items():
            write(pristine, rel, text)
        tree = os.path.join(self.tmp, "tree")
        subprocess.run(["cp", "-al", pristine, tree], check=True)
        man = os.path.join(self.tmp, "m.jsonl")
        subprocess.run([sys.executable, os.path.join(ROOT, "eval", "plant.py"), "--tree", tree,
                        "--seed", "5", "--manifest", man, "--max-detectors", "40"],
                       check=True, capture_output=True)
        # planting never writes through a hard link into the pristine copy
        for rel, text in LINUX_LIKE.items():
            with open(os.path.join(pristine, rel)) as f:
                self.assertEqual(f.read(), text, rel)
        with open(man) as f:
            rows = [json.loads(l) for l in f]
        secrets = [r for r in rows if r["kind"] == "secret"]
        self.assertGreaterEqual(len(secrets), 35)
        self.assertTrue(any(r["kind"] == "decoy" for r in rows))
        for r in secrets:  # every manifest place exists
            with open(os.path.join(tree, r["path"]), errors="replace") as f:
                self.assertLessEqual(r["line"], len(f.read().split("\n")), r)
        out = os.path.join(self.tmp, "seed.json")
        subprocess.run([sys.executable, os.path.join(ROOT, "eval", "score.py"), "scan",
                        "--keyhog", KEYHOG, "--tree", tree, "--manifest", man, "--seed", "5",
                        "--out", out], check=True, capture_output=True)
        with open(out) as f:
            res = json.load(f)
        s = res["summary"]
        self.assertGreaterEqual(s["plain_recall"], 0.9, s)
        self.assertLessEqual(s["decoy_rate"], 0.1, s)
        self.assertEqual(res["background"], [])  # the untouched files hold nothing
        report = subprocess.run([sys.executable, os.path.join(ROOT, "eval", "score.py"), "report",
                                 "--commit", "test", "--out", os.path.join(self.tmp, "r.json"), out],
                                capture_output=True, text=True, check=True)
        self.assertIn("plain recall", report.stdout)
        self.assertTrue(os.path.exists(os.path.join(self.tmp, "r.json")))
        shutil.rmtree(tree)


if __name__ == "__main__":
    unittest.main()
