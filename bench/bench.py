"""make bench: keyhog against `rg -c` on the same corpus, in one run.

Prints, for 1 thread and all threads: wall time, CPU time (user + system),
MB/s, files/s and peak RSS of `keyhog scan`, the same for ripgrep counting
the detectors' keywords (the floor of work: read every file once and look
for literals), and the ratio.  CPU time is what to compare on a shared
machine: wall time there depends on everyone else's load (the load average
is printed and recorded).  Also the recall on the planted secrets, and
whether the findings at 1 thread and at all threads are identical.  Writes
bench/results/<commit>.json.

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
    """Runs cmd; returns (seconds, CPU seconds, peak RSS in MiB of that child,
    stdout)."""
    # Peak RSS and CPU per child: run through a tiny Python wrapper so
    # RUSAGE_CHILDREN is that process's alone.
    wrapper = ("import resource,subprocess,sys,time;t=time.monotonic();"
               "p=subprocess.run(sys.argv[1:],stdout=subprocess.PIPE,stderr=subprocess.DEVNULL);"
               "d=time.monotonic()-t;r=resource.getrusage(resource.RUSAGE_CHILDREN);"
               "sys.stderr.write('%f %f %d\\n'%(d,r.ru_utime+r.ru_stime,r.ru_maxrss));"
               "sys.stdout.buffer.write(p.stdout)")
    p = subprocess.run([sys.executable, "-c", wrapper, *cmd], capture_output=True, cwd=cwd)
    secs, cpu, rss_kb = p.stderr.decode().split()[-3:]
    return float(secs), float(cpu), int(rss_kb) / 1024.0, p.stdout


def comparable(out):
    """Findings as a sorted list of canonical JSON lines, every field kept:
    the thread count must change nothing, not even a confidence."""
    rows = []
    for line in out.decode().splitlines():
        if line.strip():
            d = json.loads(line)
            rows.append(json.dumps(d, sort_keys=True))
    return sorted(rows)


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
    outputs = {}
    load = os.getloadavg()[0]
    for n in sorted({1, threads}):
        t, cpu, rss, out = measure([keyhog, "scan", "-q", "--no-ignore", "--format", "jsonl",
                                    "-j", str(n), corpus])
        rows[f"keyhog_j{n}"] = {"seconds": t, "cpu_seconds": cpu, "mb_per_s": mb / t,
                                "files_per_s": files / t, "peak_rss_mib": rss}
        outputs[n] = comparable(out)
        if n == threads:
            findings = [json.loads(l) for l in out.decode().splitlines() if l.strip()]
        t, cpu, rss, _ = measure(["rg", "-c", "--no-messages", "--no-ignore", "--hidden", "-i",
                                  "-F", "-f", kwfile.name, "-j", str(n), corpus])
        rows[f"rg_j{n}"] = {"seconds": t, "cpu_seconds": cpu, "mb_per_s": mb / t,
                            "files_per_s": files / t, "peak_rss_mib": rss}
        rows[f"ratio_j{n}"] = rows[f"keyhog_j{n}"]["seconds"] / rows[f"rg_j{n}"]["seconds"]
    load = max(load, os.getloadavg()[0])
    identical = outputs[1] == outputs[threads]
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
              "planted": len(planted), "planted_found": hits, "findings": len(findings),
              "identical_across_threads": identical, "load_average": round(load, 2)}
    print(f"corpus: {files} files, {mb:.0f} MB; {len(det)} detectors, {len(keywords)} keywords")
    print(f"{'run':<12} {'seconds':>8} {'CPU s':>7} {'MB/s':>8} {'files/s':>9} {'RSS MiB':>8}")
    for name, r in rows.items():
        if name.startswith("ratio"):
            continue
        print(f"{name:<12} {r['seconds']:8.2f} {r['cpu_seconds']:7.2f} {r['mb_per_s']:8.1f} "
              f"{r['files_per_s']:9.0f} {r['peak_rss_mib']:8.1f}")
    for name, r in rows.items():
        if name.startswith("ratio"):
            print(f"{name}: keyhog takes {r:.2f}x the time of rg -c")
    print(f"planted secrets found: {hits}/{len(planted)}; total findings: {len(findings)}")
    print(f"findings at -j1 and -j{threads} identical: {'yes' if identical else 'NO'}; "
          f"load average during the run: {load:.2f} on {threads} CPUs")
    os.makedirs("bench/results", exist_ok=True)
    with open(f"bench/results/{commit}.json", "w") as f:
        json.dump(result, f, indent=2, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main(*sys.argv[1:4])
