#!/usr/bin/env python3
"""Regenerates the seed corpora that come from the detector set:
fuzz/corpus/scan (examples from detectors' own [[detector.tests]], plain and
wrapped in the encodings decode-through undoes) and fuzz/corpus/detectors
(a few detector files chosen for the features they use) and
fuzz/corpus/gpu_filter (a detector's regex, keywords and positive example,
NUL-separated, for every 8th detector with keywords).  The other corpora
are written by hand.  Run from the repository root: python3 fuzz/seeds.py"""
import base64
import glob
import json
import os
import shutil
import tomllib
import urllib.parse

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCAN = os.path.join(ROOT, "fuzz", "corpus", "scan")
DETS = os.path.join(ROOT, "fuzz", "corpus", "detectors")
GPUF = os.path.join(ROOT, "fuzz", "corpus", "gpu_filter")


def main():
    files = sorted(glob.glob(os.path.join(ROOT, "detectors", "*.toml")))
    specs = []
    for path in files:
        with open(path, "rb") as f:
            specs.append((path, tomllib.load(f)["detector"]))
    os.makedirs(SCAN, exist_ok=True)
    for old in glob.glob(os.path.join(SCAN, "*")):
        os.remove(old)
    # Every 6th detector's first positive example, plain; a few wrapped.
    wrappers = [
        ("b64", lambda s: base64.b64encode(s.encode()).decode()),
        ("hex", lambda s: s.encode().hex()),
        ("url", lambda s: urllib.parse.quote(s, safe="")),
        ("json", lambda s: json.dumps({"config": s})),
    ]
    n = 0
    for i, (path, d) in enumerate(specs):
        pos = [t["test_positive"] for t in d.get("tests", []) if "test_positive" in t]
        if not pos or i % 6:
            continue
        name = os.path.basename(path)[:-5]
        with open(os.path.join(SCAN, name), "w") as f:
            f.write(pos[0] + "\n")
        if n < len(wrappers):
            tag, wrap = wrappers[n]
            with open(os.path.join(SCAN, f"{name}.{tag}"), "w") as f:
                f.write(f"value = {wrap(pos[0])}\n")
        n += 1
    # Detector files using companions, verify, checksums, no keywords.
    os.makedirs(DETS, exist_ok=True)
    picked = {}
    for path, d in specs:
        feats = [k for k in ("companions", "verify") if k in d]
        feats += ["checksum"] if d.get("validate", {}).get("checksum") else []
        feats += ["nokeywords"] if not d.get("keywords") else []
        for feat in feats:
            picked.setdefault(feat, path)
    picked.setdefault("plain", files[0])
    for path in sorted(set(picked.values())):
        shutil.copy(path, os.path.join(DETS, os.path.basename(path)))
    os.makedirs(GPUF, exist_ok=True)
    for old in glob.glob(os.path.join(GPUF, "*")):
        os.remove(old)
    keyed = [(p, d) for p, d in specs if d.get("keywords") and d.get("tests")]
    for path, d in keyed[::8]:
        kws = [k for k in d["keywords"] if 2 <= len(k) <= 64][:4]
        pos = [t["test_positive"] for t in d["tests"] if "test_positive" in t]
        if not kws or not pos:
            continue
        parts = [d["patterns"][0]["regex"]] + kws + ["x " + pos[0] + " y"]
        name = os.path.splitext(os.path.basename(path))[0]
        with open(os.path.join(GPUF, name), "wb") as f:
            f.write(b"\0".join(p.encode() for p in parts))


if __name__ == "__main__":
    main()
