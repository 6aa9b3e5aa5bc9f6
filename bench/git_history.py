"""make bench-git: history scanning on a repository of 100k+ commits.

Builds (once, cached under bench/corpus/git-history-<N>/) a repository of
N commits (default 100000) with `git fast-import`: the first commit imports
a fixed, hash-picked set of source files from the Linux tree, and every
later commit replays small line edits to them (insert, delete or replace a
line, now and then add or delete a file), the way a long-lived project
changes.  Topic branches fork and merge back (some never do: stale
branches), tags are cut, and a few dozen made-up credentials are planted:
on the main line (removed again later, or left in), on topic branches that
are merged, on topic branches never merged, on a commit only a tag reaches,
and inside merge commits themselves (a line neither parent has).  The
manifest records the commit, path and line each one must be attributed to.

Then, in one run, it measures reading the same history with:
  keyhog scan --git -q --format jsonl     the scanner (and --format json for
                                          its blob and byte counts)
  git_history_enum                        keyhog's git reader alone (libgit2
                                          walk, blobs from git cat-file): every
                                          distinct blob read once, no scan;
                                          again with --libgit2 (blobs by libgit2)
  git cat-file --batch-all-objects --batch   git's own reader of the object
                                          database (every object, no walk)
  git log -p --all                        git's history walk with diffs
checks every planted secret is found and attributed to the right commit,
path and line, prints a table and writes bench/results/git-<commit>.json.

Usage: git_history.py BUILD_DIR [--commits N] [--source DIR] [--threads T]
The Linux tree is taken from --source, else /work/corpus/linux-source-6.1 or
bench/corpus/linux-source-6.1, else scripts/linux-corpus.sh extracts it there
(as bench/run.sh does).
"""
import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import plant  # noqa: E402  (the credential makers of make bench)

GEN_VERSION = 2  # bump when the generated history changes
EXTS = (".c", ".h", ".S", ".rst", ".txt", ".yaml", ".py", ".sh")
AUTHORS = [("Dev %02d" % i, "dev%02d@example.org" % i) for i in range(40)]


def picked(rel, size):
    """Which Linux files the history is made of: a hash of the path, so the
    choice does not depend on the order a tree is read in."""
    return (2000 <= size <= 12000 and rel.endswith(EXTS)
            and "keyhog_planted_" not in rel and zlib.crc32(rel.encode()) % 8 == 0)


def read_sources(src):
    files = {}
    for dirpath, dirnames, filenames in os.walk(src):
        dirnames.sort()
        for f in filenames:
            p = os.path.join(dirpath, f)
            rel = os.path.relpath(p, src)
            if os.path.islink(p) or not picked(rel, os.path.getsize(p)):
                continue
            with open(p, "rb") as fh:
                files[rel] = fh.read()
    return {k: v for k, v in sorted(files.items()) if b"\0" not in v}


class History:
    """Writes a fast-import stream; tracks file contents per branch."""

    def __init__(self, out, sources, commits, seed=20261130):
        self.out = out
        self.rnd = random.Random(seed)
        self.target = commits
        self.made = 0
        self.mark = 0
        self.ts = 1420070400  # 2015-01-01
        names = list(sources)
        self.rnd.shuffle(names)
        first = [n for n in names if zlib.crc32(n.encode()) % 16 == 0]
        self.reserve = [n for n in names if zlib.crc32(n.encode()) % 16 != 0]
        self.pool = [l for n in names for l in sources[n].split(b"\n") if l.strip()]
        self.sources = sources
        self.files = {}  # main: path -> (lines, blob mark)
        self.hot = []
        self.locked = set()
        self.head = None  # mark of main's last commit
        self.plants = []  # manifest rows (commit as a mark until resolved)
        self.removals = {}  # main commit index -> [(path, line bytes)]
        self.seq_secret = 0
        self.first_files = first

    # -- stream primitives -------------------------------------------------
    def blob(self, lines):
        self.mark += 1
        data = b"\n".join(lines)
        self.out.write(b"blob\nmark :%d\ndata %d\n%s\n" % (self.mark, len(data), data))
        return self.mark

    def commit(self, ref, msg, parent, changes, merge=None, ts=None):
        self.mark += 1
        self.made += 1
        name, email = AUTHORS[self.rnd.randrange(len(AUTHORS))]
        when = ts if ts is not None else self.ts
        who = b"%s <%s> %d +0000" % (name.encode(), email.encode(), when)
        msg = msg.encode()
        head = b"commit %s\nmark :%d\nauthor %s\ncommitter %s\ndata %d\n%s\n" % (
            ref.encode(), self.mark, who, who, len(msg), msg)
        if parent:
            head += b"from :%d\n" % parent
        if merge:
            head += b"merge :%d\n" % merge
        for path, blob in changes:
            if blob is None:
                head += b"D %s\n" % path.encode()
            else:
                head += b"M 100644 :%d %s\n" % (blob, path.encode())
        self.out.write(head + b"\n")
        return self.mark, (name, email, when)

    # -- edits ---------------------------------------------------------------
    def edit(self, lines):
        lines = list(lines)
        for _ in range(self.rnd.randint(1, 4)):
            op = self.rnd.random()
            i = self.rnd.randrange(len(lines) + 1)
            if op < 0.45 or len(lines) < 20:
                lines.insert(i, self.rnd.choice(self.pool))
            elif op < 0.75:
                del lines[min(i, len(lines) - 1)]
            else:
                lines[min(i, len(lines) - 1)] = self.rnd.choice(self.pool)
        return lines

    def secret_line(self, path):
        self.seq_secret += 1
        maker = plant.MAKERS[self.seq_secret % len(plant.MAKERS)]
        service, secret = maker(self.rnd)
        if path.endswith((".c", ".h")):
            line = 'static const char *%s_api_token = "%s";' % (service, secret)
        else:
            line = "%s_api_token: %s" % (service, secret)
        return service, secret, line.encode()

    def pick_file(self, files):
        for _ in range(100):
            pool = self.hot if self.rnd.random() < 0.85 else list(files)
            path = self.rnd.choice(pool)
            if path in files and path not in self.locked:
                return path
        return None

    def plant_into(self, files, path, kind):
        """Inserts a secret line into files[path]; returns (row, new lines)."""
        lines = files[path][0]
        service, secret, line = self.secret_line(path)
        at = self.rnd.randrange(len(lines) + 1)
        new = lines[:at] + [line] + lines[at:]
        row = {"kind": kind, "service": service, "secret": secret, "path": path, "line": at + 1}
        self.plants.append(row)
        return row, new, line

    # -- the history ---------------------------------------------------------
    def run(self):
        changes = []
        for path in self.first_files:
            lines = self.sources[path].split(b"\n")
            m = self.blob(lines)
            self.files[path] = (lines, m)
        self.hot = self.rnd.sample(sorted(self.files), max(1, len(self.files) // 7))
        changes = [(p, v[1]) for p, v in sorted(self.files.items())]
        self.head, _ = self.commit("refs/heads/main", "import", None, changes)

        main_n = 0
        topics = 0
        pending_merge = None  # (at main index, topic state)
        # plants on the main line: spread over the history, by main index
        expected_main = int(self.target * 0.96)
        plant_main = set(self.rnd.sample(range(500, expected_main - 500), 24))
        while self.made < self.target:
            main_n += 1
            self.ts += self.rnd.randint(60, 7200)
            if pending_merge and pending_merge[0] <= main_n:
                self.merge(pending_merge[1])
                pending_merge = None
                continue
            if main_n % 997 == 0 and not pending_merge:
                topics += 1
                state = self.topic(topics)
                if state["merge"]:
                    pending_merge = (main_n + self.rnd.randint(5, 60), state)
                continue
            if main_n % 4999 == 0:
                self.out.write(b"reset refs/tags/v%d.0\nfrom :%d\n\n" % (main_n // 4999,
                                                                          self.head))
            self.main_commit(main_n, plant_main)
        if pending_merge:
            self.merge(pending_merge[1])
        # A commit that only a tag reaches.
        path = self.pick_file(self.files)
        row, new, _ = self.plant_into(self.files, path, "tag-only")
        c, who = self.commit("refs/tags/orphan-build", "build snapshot", self.head,
                             [(path, self.blob(new))], ts=self.ts + 60)
        row.update(mark=c, who=who)
        self.out.write(b"done\n")

    def main_commit(self, main_n, plant_main):
        changes = []
        removal = self.removals.pop(main_n, None)
        if removal:
            path, line = removal
            lines = [l for l in self.files[path][0] if l != line]
            m = self.blob(lines)
            self.files[path] = (lines, m)
            self.locked.discard(path)
            changes.append((path, m))
            c, _ = self.commit("refs/heads/main", "remove a key from %s" % path, self.head,
                               changes)
            self.head = c
            return
        if main_n in plant_main:
            path = self.pick_file(self.files)
            row, new, line = self.plant_into(self.files, path, "main")
            m = self.blob(new)
            self.files[path] = (new, m)
            c, who = self.commit("refs/heads/main", "configure %s" % path, self.head,
                                 [(path, m)])
            row.update(mark=c, who=who)
            self.head = c
            if len(self.plants) % 3:  # two in three are removed again, later
                self.locked.add(path)
                self.removals[main_n + self.rnd.randint(1, 300)] = (path, line)
            return
        r = self.rnd.random()
        if r < 0.01 and self.reserve:
            path = self.reserve.pop()
            lines = self.sources[path].split(b"\n")
            msg = "add %s" % path
        elif r < 0.012 and len(self.files) > 100:
            path = self.pick_file(self.files)
            if path and path not in self.hot:
                del self.files[path]
                c, _ = self.commit("refs/heads/main", "remove %s" % path, self.head,
                                   [(path, None)])
                self.head = c
                return
            lines = self.edit(self.files[path][0]) if path else None
            msg = "update %s" % path
        else:
            path = self.pick_file(self.files)
            lines = self.edit(self.files[path][0])
            msg = "update %s" % path
        if path is None:
            return
        m = self.blob(lines)
        self.files[path] = (lines, m)
        extra = []
        if self.rnd.random() < 0.2:  # now and then a second file
            other = self.pick_file(self.files)
            if other and other != path:
                ol = self.edit(self.files[other][0])
                om = self.blob(ol)
                self.files[other] = (ol, om)
                extra.append((other, om))
        c, _ = self.commit("refs/heads/main", msg, self.head, [(path, m)] + extra)
        self.head = c

    def topic(self, k):
        """A topic branch forked from main's head, its commits written now.
        One in eight is never merged; most carry no secret."""
        ref = "refs/heads/topic-%d" % k
        merge = k % 8 != 0
        paths = []
        for _ in range(3):
            p = self.pick_file(self.files)
            if p and p not in paths:
                paths.append(p)
        mine = {p: self.files[p] for p in paths}
        if merge:
            self.locked.update(paths)  # main leaves them alone until the merge
        head = self.head
        ts = self.ts
        plant_at = self.rnd.randrange(3) if k % 4 == 1 or not merge else -1
        n = self.rnd.randint(3, 20)
        for j in range(n):
            ts += self.rnd.randint(30, 600)
            path = self.rnd.choice(paths)
            row = None
            if j == plant_at:
                row, lines, _ = self.plant_into(mine, path, "topic" if merge else "stale-topic")
            else:
                lines = self.edit(mine[path][0])
            m = self.blob(lines)
            mine[path] = (lines, m)
            head, who = self.commit(ref, "topic %d: %s" % (k, path), head, [(path, m)], ts=ts)
            if row:
                row.update(mark=head, who=who)
                paths.remove(path)  # keep the secret's blob the only one
                if not paths:
                    break
        return {"ref": ref, "head": head, "files": mine, "merge": merge, "paths": list(mine)}

    def merge(self, state):
        changes = [(p, state["files"][p][1]) for p in state["paths"]]
        for p in state["paths"]:
            self.files[p] = state["files"][p]
            self.locked.discard(p)
        row = None
        if len([r for r in self.plants if r["kind"] == "merge"]) < 6:
            # An evil merge: the merge commit adds a line no parent has.
            path = self.pick_file(self.files)
            row, new, _ = self.plant_into(self.files, path, "merge")
            m = self.blob(new)
            self.files[path] = (new, m)
            changes.append((path, m))
        c, who = self.commit("refs/heads/main", "Merge %s" % state["ref"], self.head, changes,
                             merge=state["head"])
        if row:
            row.update(mark=c, who=who)
        self.head = c


def linux_corpus():
    """The tree scripts/linux-corpus.sh extracts (once) under bench/corpus/."""
    p = subprocess.run(["sh", os.path.join(ROOT, "scripts", "linux-corpus.sh")],
                       stdout=subprocess.PIPE, text=True)
    if p.returncode != 0:
        raise SystemExit("bench-git: no Linux source tree (or give --source DIR)")
    return p.stdout.strip()


def build_repo(repo, commits, src):
    sources = read_sources(src)
    print("bench-git: %d source files, writing %d commits with git fast-import..." %
          (len(sources), commits), file=sys.stderr)
    if os.path.exists(repo):
        shutil.rmtree(repo)
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", repo], check=True)
    marks = os.path.join(repo, "bench-marks")
    t = time.monotonic()
    fi = subprocess.Popen(["git", "-C", repo, "fast-import", "--quiet", "--done",
                           "--export-marks=" + marks], stdin=subprocess.PIPE)
    h = History(fi.stdin, sources, commits)
    h.run()
    fi.stdin.close()
    if fi.wait() != 0:
        raise SystemExit("bench-git: git fast-import failed")
    print("bench-git: imported in %.0f s; repacking..." % (time.monotonic() - t), file=sys.stderr)
    # fast-import deltas only against the previous blob; repack the way a
    # served repository is packed.
    subprocess.run(["git", "-C", repo, "repack", "-adfq", "--window=10", "--depth=50"],
                   check=True)
    by_mark = {}
    with open(marks) as f:
        for l in f:
            m, sha = l.split()
            by_mark[int(m[1:])] = sha
    rows = []
    for r in h.plants:
        name, email, when = r.pop("who")
        r["commit"] = by_mark[r.pop("mark")]
        r["author"], r["email"] = name, email
        r["date"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(when))
        rows.append(r)
    with open(os.path.join(repo, "bench-planted.json"), "w") as f:
        json.dump(rows, f, indent=1)
    return h.made


def timed(cmd, env=None, keep=False):
    """Runs cmd; returns (wall seconds, CPU seconds of that child, stdout if
    keep else its length).  CPU time is user + system from wait4, which a
    busy machine disturbs far less than wall time."""
    err = tempfile.TemporaryFile()
    t = time.monotonic()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, env=env)
    chunks, n = [], 0
    while True:
        c = p.stdout.read(1 << 20)
        if not c:
            break
        n += len(c)
        if keep:
            chunks.append(c)
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.monotonic() - t
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode not in (0, 1):
        err.seek(0)
        raise SystemExit("bench-git: %s failed: %s" % (cmd, err.read().decode()[-2000:]))
    return wall, ru.ru_utime + ru.ru_stime, b"".join(chunks) if keep else n


def git_counts(repo):
    """Objects in the repository by type: count and inflated bytes."""
    p = subprocess.run(["git", "-C", repo, "cat-file", "--batch-all-objects",
                        "--batch-check=%(objecttype) %(objectsize)"], capture_output=True,
                       check=True, text=True)
    out = {}
    for l in p.stdout.splitlines():
        t, s = l.split()
        n, b = out.get(t, (0, 0))
        out[t] = (n + 1, b + int(s))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build")
    ap.add_argument("--commits", type=int, default=100000)
    ap.add_argument("--source")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--rebuild", action="store_true")
    a = ap.parse_args()
    keyhog = os.path.join(a.build, "keyhog")
    enum = os.path.join(a.build, "bench", "git_history_enum")
    repo = os.path.join(ROOT, "bench", "corpus", "git-history-%d" % a.commits)
    stamp = os.path.join(repo, "bench-ready")
    if a.rebuild or not os.path.exists(stamp) or open(stamp).read().strip() != str(GEN_VERSION):
        src = a.source
        for cand in ("/work/corpus/linux-source-6.1",
                     os.path.join(ROOT, "bench", "corpus", "linux-source-6.1")):
            if not src and os.path.isdir(os.path.join(cand, "kernel")):
                src = cand
        if not src:
            src = linux_corpus()
        t = time.monotonic()
        build_repo(repo, a.commits, src)
        with open(stamp, "w") as f:
            f.write("%d\n" % GEN_VERSION)
        print("bench-git: repository built in %.0f s" % (time.monotonic() - t), file=sys.stderr)
    planted = json.load(open(os.path.join(repo, "bench-planted.json")))
    commits = int(subprocess.run(["git", "-C", repo, "rev-list", "--all", "--count"],
                                 capture_output=True, check=True, text=True).stdout)
    counts = git_counts(repo)
    pack_bytes = sum(os.path.getsize(os.path.join(dp, f))
                     for dp, _, fs in os.walk(os.path.join(repo, "objects")) for f in fs)
    env_threads = ["--threads", str(a.threads)] if a.threads else []
    kh_env = dict(os.environ, KEYHOG_CACHE_DIR=os.environ.get("KEYHOG_CACHE_DIR",
                                                               "/tmp/keyhog-bench-cache"))
    # Warm the page cache and the compiled-detector cache first.
    subprocess.run(["git", "-C", repo, "cat-file", "--batch-all-objects", "--batch"],
                   stdout=subprocess.DEVNULL, check=True)
    subprocess.run([keyhog, "scan", "-q", "--format", "json", os.path.join(HERE, "README.md")],
                   stdout=subprocess.DEVNULL, env=kh_env)

    rows = {}
    scan = [keyhog, "scan", "--git", "-q", "--show-secrets", *env_threads]
    d, cpu, out_jsonl = timed(scan + ["--format", "jsonl", repo], env=kh_env, keep=True)
    d2, cpu2, out_json = timed(scan + ["--format", "json", repo], env=kh_env, keep=True)
    doc = json.loads(out_json)
    blobs, nbytes = doc["stats"]["files_scanned"], doc["stats"]["bytes_scanned"]
    rows["keyhog scan --git --format jsonl"] = (d, cpu, blobs, nbytes)
    rows["keyhog scan --git --format json"] = (d2, cpu2, blobs, nbytes)
    if os.path.exists(enum):
        for name, flags in (("keyhog git reader alone (git_history_enum)", []),
                            ("  the same, blobs read by libgit2 (--libgit2)", ["--libgit2"])):
            d, cpu, out = timed([enum, *flags, repo], keep=True)
            e = json.loads(out)
            rows[name] = (d, cpu, e["blobs"], e["bytes"])
    all_bytes = sum(b for _, b in counts.values())
    nblobs, blob_bytes = counts.get("blob", (0, 0))
    git = ["git", "-C", repo]
    d, cpu, _ = timed(git + ["cat-file", "--batch-all-objects", "--batch"])
    rows["git cat-file --batch-all-objects --batch"] = (d, cpu, nblobs, all_bytes)
    d, cpu, _ = timed(git + ["cat-file", "--batch-all-objects", "--unordered", "--batch"])
    rows["git cat-file --batch-all-objects --unordered --batch"] = (d, cpu, nblobs, all_bytes)
    d, cpu, n = timed(git + ["log", "-p", "--all", "--no-color"])
    rows["git log -p --all (MB/s of patch text)"] = (d, cpu, nblobs, n)

    # Recall and attribution of the planted secrets.
    found = {}
    for l in out_jsonl.decode().splitlines():
        r = json.loads(l)
        found.setdefault(r["secret"], r)
    wrong = []
    for pl in planted:
        r = found.get(pl["secret"])
        got = r and (r["commit"], r["path"], r["line"], r["author"], r["date"])
        want = (pl["commit"], pl["path"], pl["line"], pl["author"], pl["date"])
        if got != want:
            wrong.append({"planted": pl, "got": got})
    other = len([s for s in found if s not in {p["secret"] for p in planted}])

    head = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                          capture_output=True, text=True).stdout.strip() or "unknown"
    print("repository: %d commits, %d blobs (%.1f MB inflated), %d trees, pack %.1f MB" % (
        commits, nblobs, blob_bytes / 1e6, counts.get("tree", (0, 0))[0], pack_bytes / 1e6))
    print("%-52s %8s %8s %8s %9s %7s %9s" % ("reader", "wall s", "cpu s", "blobs", "blobs/s",
                                              "MB/s", "MB/cpu-s"))
    result_rows = []
    for name, (d, cpu, n, b) in rows.items():
        print("%-52s %8.2f %8.2f %8d %9.0f %7.1f %9.1f" % (name, d, cpu, n, n / d, b / 1e6 / d,
                                                           b / 1e6 / max(cpu, 1e-3)))
        result_rows.append({"reader": name, "seconds": round(d, 3), "cpu_seconds": round(cpu, 3),
                            "blobs": n, "bytes": b, "blobs_per_s": round(n / d),
                            "mb_per_s": round(b / 1e6 / d, 1),
                            "mb_per_cpu_s": round(b / 1e6 / max(cpu, 1e-3), 1)})
    print("planted: %d, found with the right commit/path/line: %d; other findings: %d" % (
        len(planted), len(planted) - len(wrong), other))
    for w in wrong:
        print("  WRONG:", json.dumps(w), file=sys.stderr)
    res = {"commit": head, "threads": a.threads or os.cpu_count(), "cpus": os.cpu_count(),
           "repository": {"commits": commits, "blobs": nblobs, "blob_bytes": blob_bytes,
                          "objects": {k: v[0] for k, v in counts.items()},
                          "pack_bytes": pack_bytes},
           "rows": result_rows,
           "planted": len(planted), "planted_correct": len(planted) - len(wrong),
           "wrong": wrong, "other_findings": other,
           "load_average": os.getloadavg(),
           "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    out = os.path.join(HERE, "results", "git-%s.json" % head)
    with open(out + ".tmp", "w") as f:
        json.dump(res, f, indent=1)
    os.replace(out + ".tmp", out)
    print("wrote", os.path.relpath(out, ROOT))
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
