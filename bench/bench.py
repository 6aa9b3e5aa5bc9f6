"""make bench: keyhog against `rg -c` on the same corpus, in one run.

Prints, for 1 thread and all threads: wall time, MB/s, files/s and peak RSS
of `keyhog scan`, the same for ripgrep counting the detectors' keywords (the
floor of work: read every file once and look for literals), and the ratio.
Also the recall on the planted secrets.  Writes bench/results/<commit>.json.

Usage: bench.py BUILD_DIR CORPUS_DIR MANIFEST
"""
import json
import os
import resource
import subprocess
import sys
import tempfile
import time


def measure(cmd, cwd=None):
    """Runs cmd; returns (seconds, peak RSS in MiB of that child, stdout)."""
    # Peak RSS per child: run through a tiny Python wrapper so RUSAGE_CHILDREN
    # is that process's alone.
    wrapper = ("import resource,subprocess,sys,time;t=time.monotonic();"
               "p=subprocess.run(sys.argv[1:],stdout=subprocess.PIPE,stderr=subprocess.DEVNULL);"
               "d=time.monotonic()-t;sys.stderr.write('%f %d\\n'%(d,resource.getrusage("
               "resource.RUSAGE_CHILDREN).ru_maxrss));sys.stdout.buffer.write(p.stdout)")
    p = subprocess.run([sys.executable, "-c", wrapper, *cmd], capture_output=True, cwd=cwd)
    secs, rss_kb = p.stderr.decode().split()[-2:]
    return float(secs), int(rss_kb) / 1024.0, p.stdout


def corpus_size(root):
    files = total = 0
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d != ".git"]
        for f in filenames:
            p = os.path.join(dirpath, f)
            if os.path.isfile(p) and not os.path.islink(p):
                files += 1
                total += os.path.getsize(p)
    return files, total


def main(build, corpus, manifest):
    keyhog = os.path.join(build, "keyhog")
    threads = os.cpu_count() or 1
    files, size = corpus_size(corpus)
    mb = size / 1e6
    det = json.loads(subprocess.run([keyhog, "detectors", "--json"], capture_output=True,
                                    check=True).stdout)
    keywords = sorted({k for d in det for k in d["keywords"] if len(k) >= 3})
    kwfile = tempfile.NamedTemporaryFile("w", delete=False, suffix=".txt")
    kwfile.write("\n".join(keywords) + "\n")
    kwfile.close()
    # Warm the page cache so both tools read from memory.
    subprocess.run(["rg", "-c", "--no-messages", "-F", "-e", "zzzzqqq", corpus],
                   capture_output=True)
    rows = {}
    for n in sorted({1, threads}):
        t, rss, out = measure([keyhog, "scan", "-q", "--no-ignore", "--format", "jsonl", "-j", str(n), corpus])
        rows[f"keyhog_j{n}"] = {"seconds": t, "mb_per_s": mb / t, "files_per_s": files / t,
                                "peak_rss_mib": rss}
        if n == threads:
            findings = [json.loads(l) for l in out.decode().splitlines() if l.strip()]
        t, rss, _ = measure(["rg", "-c", "--no-messages", "--no-ignore", "--hidden", "-i", "-F", "-f", kwfile.name,
                             "-j", str(n), corpus])
        rows[f"rg_j{n}"] = {"seconds": t, "mb_per_s": mb / t, "files_per_s": files / t,
                            "peak_rss_mib": rss}
        rows[f"ratio_j{n}"] = rows[f"keyhog_j{n}"]["seconds"] / rows[f"rg_j{n}"]["seconds"]
    os.unlink(kwfile.name)
    planted = [json.loads(l) for l in open(manifest)]
    found_paths = {}
    for f in findings:
        for loc in f.get("locations", [f]):
            found_paths.setdefault(loc["path"], set()).add(f["service"])
    hits = sum(1 for p in planted if p["service"] in found_paths.get(p["path"], ()))
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip() or "unknown"
    result = {"commit": commit, "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "corpus_files": files, "corpus_mb": round(mb, 1), "threads": threads,
              "detectors": len(det), "keywords": len(keywords), "runs": rows,
              "planted": len(planted), "planted_found": hits, "findings": len(findings)}
    print(f"corpus: {files} files, {mb:.0f} MB; {len(det)} detectors, {len(keywords)} keywords")
    print(f"{'run':<12} {'seconds':>8} {'MB/s':>8} {'files/s':>9} {'RSS MiB':>8}")
    for name, r in rows.items():
        if name.startswith("ratio"):
            continue
        print(f"{name:<12} {r['seconds']:8.2f} {r['mb_per_s']:8.1f} {r['files_per_s']:9.0f} "
              f"{r['peak_rss_mib']:8.1f}")
    for name, r in rows.items():
        if name.startswith("ratio"):
            print(f"{name}: keyhog takes {r:.2f}x the time of rg -c")
    print(f"planted secrets found: {hits}/{len(planted)}; total findings: {len(findings)}")
    os.makedirs("bench/results", exist_ok=True)
    with open(f"bench/results/{commit}.json", "w") as f:
        json.dump(result, f, indent=2, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main(*sys.argv[1:4])
