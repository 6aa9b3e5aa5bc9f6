"""Scores keyhog against the manifest eval/plant.py wrote.

    python3 eval/score.py scan --keyhog BIN --tree DIR --manifest M.jsonl --seed N --out SEED.json
    python3 eval/score.py report --out RESULTS.json SEED.json [SEED.json ...]

`scan` runs `keyhog scan --no-ignore --format jsonl` on the planted tree
with every other option at its default (the default --min-confidence among
them), then matches findings to the manifest by place: a planted secret is
found when a finding (or one of its deduplicated locations) is on its file
and line; a decoy is reported when any finding is.  The finding's detector is
compared too: "right detector" counts findings of the planted detector or of
another detector of the same service.  Findings on files that were not
planted are the background: the untouched Linux tree.  Findings on planted
files at other lines are listed apart (they belong to the original file).

`report` aggregates the seeds, prints the table, and writes everything
(per seed, per service, per encoding, every miss and every background
finding) to RESULTS.json.  Exit status 0 even when a target is missed: the
table says which; `--strict` makes a missed target exit 1.
"""
import argparse
import collections
import json
import os
import subprocess
import sys
import time

TARGETS = {"plain_recall": 0.97, "encoded_recall": 0.90, "decoy_rate": 0.03, "background": 20}


def run_keyhog(keyhog, tree, out_path):
    cmd = [keyhog, "scan", "--no-ignore", "--format", "jsonl", "-o", out_path, tree]
    t0 = time.monotonic()
    proc = subprocess.run(cmd, stderr=subprocess.PIPE, text=True)
    elapsed = time.monotonic() - t0
    if proc.returncode not in (0, 1):
        sys.exit("score: %s exited %d:\n%s" % (" ".join(cmd), proc.returncode, proc.stderr))
    return elapsed, proc.stderr.strip().splitlines()[-1:] or [""]


def load_findings(path, tree):
    """(relative path, line) -> findings there; every deduplicated location
    counts as a place of its finding."""
    tree = os.path.abspath(tree)
    at = collections.defaultdict(list)
    findings = []
    with open(path) as f:
        for raw in f:
            if not raw.strip():
                continue
            d = json.loads(raw)
            findings.append(d)
            places = d.get("locations") or [{"path": d["path"], "line": d["line"]}]
            for loc in places:
                rel = os.path.relpath(os.path.abspath(loc["path"]), tree)
                at[(rel, loc["line"])].append(d)
    return findings, at


def score_seed(manifest_path, findings_path, tree):
    manifest = [json.loads(l) for l in open(manifest_path) if l.strip()]
    findings, at = load_findings(findings_path, tree)
    planted_files = {m["path"] for m in manifest}
    planted_places = {(m["path"], m["line"]) for m in manifest}
    rows = []
    for m in manifest:
        hits = at.get((m["path"], m["line"]), [])
        right = [h for h in hits if h["detector_id"] == m["detector"] or
                 (m["service"] and h["service"] == m["service"])]
        rows.append(dict(m, found=bool(hits), right_detector=bool(right),
                         by=sorted({h["detector_id"] for h in hits}),
                         confidence=max((h["confidence"] for h in hits), default=None),
                         decoded_from=(hits[0].get("decoded_from") if hits else None)))
    background, planted_extra = [], []
    seen = set()
    tree_abs = os.path.abspath(tree)
    for d in findings:
        places = d.get("locations") or [{"path": d["path"], "line": d["line"]}]
        for loc in places:
            rel = os.path.relpath(os.path.abspath(loc["path"]), tree_abs)
            key = (d["fingerprint"], rel, loc["line"])
            if key in seen or (rel, loc["line"]) in planted_places:
                continue
            seen.add(key)
            item = {"detector": d["detector_id"], "path": rel, "line": loc["line"],
                    "redacted": d["redacted"], "confidence": d["confidence"],
                    "decoded_from": d.get("decoded_from")}
            (planted_extra if rel in planted_files else background).append(item)
    return rows, background, planted_extra


def ratio(num, den):
    return num / den if den else float("nan")


def summarize(rows):
    sec = [r for r in rows if r["kind"] == "secret"]
    dec = [r for r in rows if r["kind"] == "decoy"]
    plain = [r for r in sec if r["encoding"] == "plain"]
    enc = [r for r in sec if r["encoding"] != "plain"]
    return {
        "secrets": len(sec), "decoys": len(dec),
        "plain": len(plain), "plain_found": sum(r["found"] for r in plain),
        "encoded": len(enc), "encoded_found": sum(r["found"] for r in enc),
        "right_detector": sum(r["right_detector"] for r in sec),
        "decoys_reported": sum(r["found"] for r in dec),
        "plain_recall": ratio(sum(r["found"] for r in plain), len(plain)),
        "encoded_recall": ratio(sum(r["found"] for r in enc), len(enc)),
        "decoy_rate": ratio(sum(r["found"] for r in dec), len(dec)),
    }


def group(rows, key, kind="secret"):
    g = collections.defaultdict(lambda: [0, 0])
    for r in rows:
        if r["kind"] == kind:
            g[r[key]][0] += r["found"]
            g[r[key]][1] += 1
    return {k: {"found": v[0], "total": v[1], "rate": ratio(v[0], v[1])} for k, v in sorted(g.items())}


def cmd_scan(a):
    findings_path = a.out + ".findings.jsonl"
    elapsed, summary = run_keyhog(a.keyhog, a.tree, findings_path)
    rows, background, extra = score_seed(a.manifest, findings_path, a.tree)
    res = {"seed": a.seed, "scan_seconds": round(elapsed, 1), "keyhog_summary": summary[0],
           "summary": summarize(rows), "rows": rows, "background": background,
           "planted_file_extra": extra}
    with open(a.out, "w") as f:
        json.dump(res, f, indent=1, sort_keys=True)
    s = res["summary"]
    print("eval: seed %d: plain %.3f, encoded %.3f, decoys %.1f%%, background %d (scan %.0f s)"
          % (a.seed, s["plain_recall"], s["encoded_recall"], 100 * s["decoy_rate"],
             len(background), elapsed), file=sys.stderr)


def fmt_rate(found, total):
    return "%.3f (%d/%d)" % (ratio(found, total), found, total)


def cmd_report(a):
    seeds = [json.load(open(p)) for p in a.seed_results]
    rows = [r for s in seeds for r in s["rows"]]
    allsum = summarize(rows)
    out = []
    p = out.append
    p("keyhog eval: commit %s, seeds %s, default options (keyhog scan --no-ignore -f jsonl)"
      % (a.commit, ",".join(str(s["seed"]) for s in seeds)))
    head = "%-22s" % "" + "".join("%-22s" % ("seed %d" % s["seed"]) for s in seeds) + \
        "%-22s%s" % ("all seeds", "target")
    p(head)

    def line(label, fn, target):
        p("%-22s" % label + "".join("%-22s" % fn(s["summary"], s) for s in seeds) +
          "%-22s%s" % (fn(allsum, None), target))

    line("plain recall", lambda m, s: fmt_rate(m["plain_found"], m["plain"]), ">= 0.97")
    line("encoded recall", lambda m, s: fmt_rate(m["encoded_found"], m["encoded"]), ">= 0.90")
    line("decoys reported", lambda m, s: "%.1f%% (%d/%d)" % (100 * m["decoy_rate"],
                                                             m["decoys_reported"], m["decoys"]), "<= 3%")
    bg_all = {(b["detector"], b["path"], b["line"]) for s in seeds for b in s["background"]}
    line("background findings", lambda m, s: str(len(s["background"])) if s else
         "%d distinct" % len(bg_all), "<= 20")
    line("right detector", lambda m, s: fmt_rate(m["right_detector"], m["secrets"]), "")
    line("scan seconds", lambda m, s: "%.1f" % s["scan_seconds"] if s else "", "")

    by_enc = group(rows, "encoding")
    p("recall by encoding:  " + "  ".join("%s %s" % (k, fmt_rate(v["found"], v["total"]))
                                           for k, v in by_enc.items()))
    by_ft = group(rows, "file_type")
    p("recall by file type: " + "  ".join("%s %.2f/%d" % (k, v["rate"], v["total"])
                                           for k, v in by_ft.items()))
    by_decoy = group(rows, "decoy", kind="decoy")
    p("decoys reported by type: " + "  ".join("%s %d/%d" % (k, v["found"], v["total"])
                                                for k, v in by_decoy.items()))
    by_svc = group(rows, "service")
    perfect = sum(v["rate"] == 1.0 for v in by_svc.values())
    p("recall by service: %d services, %d at 1.0; below 1.0:" % (len(by_svc), perfect))
    low = sorted(((v["rate"], k, v) for k, v in by_svc.items() if v["rate"] < 1.0))
    for i in range(0, len(low), 4):
        p("  " + "  ".join("%s %d/%d" % (k, v["found"], v["total"]) for _, k, v in low[i:i + 4]))
    missed = [r for r in rows if r["kind"] == "secret" and not r["found"]]
    p("missed secrets (%d): detector encoding file_type" % len(missed))
    for r in missed[: a.list_max]:
        p("  %s %s %s %s:%d" % (r["detector"], r["encoding"], r["file_type"], r["path"], r["line"]))
    if len(missed) > a.list_max:
        p("  ... %d more in the JSON" % (len(missed) - a.list_max))
    rep = [r for r in rows if r["kind"] == "decoy" and r["found"]]
    p("decoys reported (%d): decoy detector-of-origin reported-by file" % len(rep))
    for r in rep[: a.list_max]:
        p("  %s %s %s %s:%d %s" % (r["decoy"], r["detector"], ",".join(r["by"]), r["file_type"],
                                   r["line"], r["redacted"]))
    p("background findings (untouched files, all seeds): %d" % len(bg_all))
    seen = set()
    for s in seeds:
        for b in s["background"]:
            k = (b["detector"], b["path"], b["line"])
            if k not in seen:
                seen.add(k)
                p("  %s %s:%d %s conf %.2f%s" % (b["detector"], b["path"], b["line"], b["redacted"],
                                                 b["confidence"], " decoded " + ">".join(
                                                     b["decoded_from"]) if b["decoded_from"] else ""))
    ok = (allsum["plain_recall"] >= TARGETS["plain_recall"] and
          allsum["encoded_recall"] >= TARGETS["encoded_recall"] and
          allsum["decoy_rate"] <= TARGETS["decoy_rate"] and
          max(len(s["background"]) for s in seeds) <= TARGETS["background"])
    p("targets: %s" % ("all met" if ok else "NOT all met"))
    text = "\n".join(out)
    print(text)
    if a.out:
        os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
        result = {"commit": a.commit, "summary": allsum, "targets": TARGETS, "targets_met": ok,
                  "seeds": [{k: v for k, v in s.items() if k != "rows"} for s in seeds],
                  "by_encoding": by_enc, "by_file_type": by_ft, "by_decoy": by_decoy,
                  "by_service": by_svc, "missed": missed, "decoys_reported": rep, "table": text}
        with open(a.out, "w") as f:
            json.dump(result, f, indent=1, sort_keys=True)
    return 0 if ok or not a.strict else 1


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("scan")
    s.add_argument("--keyhog", required=True)
    s.add_argument("--tree", required=True)
    s.add_argument("--manifest", required=True)
    s.add_argument("--seed", type=int, required=True)
    s.add_argument("--out", required=True)
    r = sub.add_parser("report")
    r.add_argument("--out")
    r.add_argument("--commit", default="unknown")
    r.add_argument("--list-max", type=int, default=40)
    r.add_argument("--strict", action="store_true")
    r.add_argument("seed_results", nargs="+")
    a = ap.parse_args(argv)
    if a.cmd == "scan":
        cmd_scan(a)
        return 0
    return cmd_report(a)


if __name__ == "__main__":
    sys.exit(main())
