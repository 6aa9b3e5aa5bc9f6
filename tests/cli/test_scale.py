"""Scale: `--shard K/N` splits any input so that N runs together scan it
exactly once (docs/scale.md), and the progress line a long scan shows on a
terminal (and never anywhere else)."""
import fcntl
import io
import json
import os
import pty
import select
import shutil
import struct
import subprocess
import termios
import threading
import time
import zipfile

from khtest import KEYHOG, ROOT, CachedTreeTest, jsonl, run, write
from test_scan import github_token
from test_sources import git

N = 3


def merge_recipe():
    """The jq program docs/scale.md gives for merging shards' JSONL."""
    with open(os.path.join(ROOT, "docs", "scale.md")) as f:
        doc = f.read()
    start = doc.index("```jq\n") + len("```jq\n")
    return doc[start:doc.index("```", start)]


class ShardTest(CachedTreeTest):
    def setUp(self):
        super().setUp()
        self.tree = os.path.join(self.tmp, "tree")
        # 60 files over nested directories, most with their own secret, a
        # few sharing one (so dedupe has work across shards), an ignored
        # file, and an archive that must stay whole in one shard.
        shared = github_token(seed=999)
        for i in range(60):
            sub = f"d{i % 4}/e{i % 3}" if i % 2 else f"d{i % 5}"
            body = f"# file {i}\nx = 1\n"
            if i % 7 != 0:
                body += f'token = "{github_token(seed=i + 1)}"\n'
            if i % 10 == 3:
                body += f'again = "{shared}"\n'
            write(self.tree, f"{sub}/f{i}.py", body)
        write(self.tree, ".gitignore", "ignored.txt\n")
        write(self.tree, "ignored.txt", f'token = "{github_token(seed=500)}"\n')
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as z:
            for j in range(4):
                z.writestr(f"inner/m{j}.txt", f'key = "{github_token(seed=600 + j)}"\n')
        write(self.tree, "bundle.zip", buf.getvalue())

    def scan(self, *args, cwd=None):
        # The class's first run compiles the detectors: minutes under asan.
        p = run("scan", "--no-config", *args, cwd=cwd, env=self.env, timeout=900)
        self.assertIn(p.returncode, (0, 1), p.stderr.decode())
        return p

    def lines(self, p):
        return sorted(l for l in p.stdout.decode().splitlines() if l.strip())

    def shards(self, *args, n=N, cwd=None):
        return [self.scan("--shard", f"{k}/{n}", *args, cwd=cwd) for k in range(1, n + 1)]

    def test_union_of_shards_is_the_whole_scan(self):
        whole = self.scan("-f", "jsonl", "--no-dedupe", "--show-secrets", self.tree)
        parts = self.shards("-f", "jsonl", "--no-dedupe", "--show-secrets", self.tree)
        expected = self.lines(whole)
        self.assertGreater(len(expected), 50)
        union = sorted(l for p in parts for l in self.lines(p))
        self.assertEqual(union, expected)
        # Disjoint, and each shard has a real share of the work.
        seen = {}
        for k, p in enumerate(parts, 1):
            paths = {r["path"] for r in jsonl(p)}
            self.assertGreater(len(paths), 5, f"shard {k} got almost nothing")
            for path in paths:
                self.assertNotIn(path, seen, f"{path} in shards {seen.get(path)} and {k}")
                seen[path] = k
        # An archive is one unit: all its members are in one shard.
        owners = {seen[p] for p in seen if p.startswith(os.path.join(self.tree, "bundle.zip!"))}
        self.assertEqual(len(owners), 1)
        self.assertFalse(any("ignored.txt" in p for p in seen), "ignore rules still apply")

    def test_default_dedupe_keeps_every_secret_and_location(self):
        whole = jsonl(self.scan("-f", "jsonl", self.tree))
        parts = [jsonl(p) for p in self.shards("-f", "jsonl", self.tree)]

        def places(rows):
            out = set()
            for r in rows:
                for l in r.get("locations") or [r]:
                    out.add((r["fingerprint"], l["path"], l["line"], l["column"]))
            return out

        self.assertEqual({r["fingerprint"] for p in parts for r in p},
                         {r["fingerprint"] for r in whole})
        shared = [r for r in whole if "locations" in r]
        self.assertEqual(len(shared), 1)
        holders = [k for k, p in enumerate(parts) if any(
            r["fingerprint"] == shared[0]["fingerprint"] for r in p)]
        self.assertGreater(len(holders), 1, "the shared secret should span shards")
        self.assertEqual(set().union(*(places(p) for p in parts)), places(whole))
        # A secret unique to one file is the very same line in its shard.
        whole_lines = {json.dumps(r, sort_keys=True) for r in whole if "locations" not in r}
        shard_lines = {json.dumps(r, sort_keys=True) for p in parts for r in p}
        single = [r for r in whole if "locations" not in r]
        self.assertGreater(len(single), 40)
        self.assertTrue(whole_lines <= shard_lines)
        if shutil.which("jq"):
            # docs/scale.md's merge recipe folds the shared secret back.
            files = []
            for k, p in enumerate(parts, 1):
                f = os.path.join(self.tmp, f"shard-{k}.jsonl")
                with open(f, "w") as out:
                    out.write("\n".join(json.dumps(r) for r in p) + "\n")
                files.append(f)
            merged = subprocess.run(["jq", "-c", "-s", merge_recipe(), *files],
                                    capture_output=True, text=True, check=True)
            rows = [json.loads(l) for l in merged.stdout.splitlines() if l]
            self.assertEqual(len(rows), len(whole))
            self.assertEqual(places(rows), places(whole))
            by_fp = {r["fingerprint"]: r for r in whole}
            for r in rows:
                w = by_fp[r["fingerprint"]]
                self.assertEqual((r["path"], r["line"], r["confidence"]),
                                 (w["path"], w["line"], w["confidence"]))
                self.assertEqual(len(r.get("locations", [])), len(w.get("locations", [])))

    def test_stats_reflect_the_shard(self):
        whole = json.loads(self.scan("-f", "json", self.tree).stdout)["stats"]
        parts = [json.loads(p.stdout)["stats"] for p in self.shards("-f", "json", self.tree)]
        for key in ("files_scanned", "bytes_scanned"):
            self.assertEqual(sum(s[key] for s in parts), whole[key], key)
            self.assertTrue(all(0 < s[key] < whole[key] for s in parts), key)

    def test_the_key_is_the_path_under_the_root(self):
        # The same tree named two ways (absolute, relative with a trailing
        # slash, from another directory) splits the same way, so shards on
        # machines that mount the tree at different places still agree.
        def split(root, cwd):
            out = []
            for p in self.shards("-f", "jsonl", "--no-dedupe", root, cwd=cwd):
                base = root.rstrip("/") + "/"
                out.append(sorted(r["path"][len(base):] if r["path"].startswith(base)
                                  else r["path"] for r in jsonl(p)))
            return out

        a = split(self.tree, None)
        b = split("tree/", self.tmp)
        self.assertEqual(a, b)
        moved = os.path.join(self.tmp, "elsewhere", "copy")
        shutil.copytree(self.tree, moved)
        self.assertEqual(split(moved, None), a)

    def test_git_history_by_blob(self):
        repo = os.path.join(self.tmp, "repo")
        os.makedirs(repo)
        git(repo, "init", "-q", "-b", "main")
        for c in range(6):
            for i in range(5):
                write(repo, f"src/m{i}.py", f'# rev {c}\nkey = "{github_token(seed=100 * c + i)}"\n')
            git(repo, "add", "-A")
            git(repo, "commit", "-qm", f"rev {c}", date=f"2024-01-0{c + 1}T00:00:00Z")
        args = ("--git", "-f", "jsonl", "--no-dedupe", "--show-secrets", repo)
        expected = self.lines(self.scan(*args))
        self.assertEqual(len(expected), 30)
        parts = self.shards(*args)
        union = sorted(l for p in parts for l in self.lines(p))
        self.assertEqual(union, expected)
        blobs = [{(r["commit"], r["path"]) for r in jsonl(p)} for p in parts]
        for i in range(N):
            self.assertTrue(blobs[i], f"shard {i + 1} of the history is empty")
            for j in range(i):
                self.assertFalse(blobs[i] & blobs[j])

    def test_stdin_belongs_to_shard_one(self):
        text = f'token = "{github_token(seed=7)}"\n'.encode()
        one = run("scan", "--no-config", "--shard", "1/2", "-f", "jsonl", "-", stdin=text,
                  env=self.env)
        two = run("scan", "--no-config", "--shard", "2/2", "-f", "jsonl", "-", stdin=text,
                  env=self.env)
        self.assertEqual(one.returncode, 1, one.stderr)
        self.assertEqual(len(jsonl(one)), 1)
        self.assertEqual(two.returncode, 0, two.stderr)
        self.assertEqual(jsonl(two), [])

    def test_one_shard_is_everything(self):
        self.assertEqual(self.lines(self.scan("--shard", "1/1", "-f", "jsonl", self.tree)),
                         self.lines(self.scan("-f", "jsonl", self.tree)))

    def test_bad_values_are_rejected(self):
        for bad in ("0/3", "4/3", "3", "1/0", "0/0", "-1/3", "1/-3", "1/3x", "x/3", "/3",
                    "1/", "", "1//3", "+1/3", "1/99999999999999999999"):
            p = run("scan", "--shard", bad, self.tree, env=self.env)
            self.assertEqual(p.returncode, 2, bad)
            self.assertIn("--shard", p.stderr.decode(), bad)
            self.assertEqual(p.stdout, b"", bad)

    def test_baseline_create_takes_shards(self):
        files = []
        for k in range(1, N + 1):
            out = os.path.join(self.tmp, f"base-{k}.json")
            p = run("baseline", "create", "--no-config", "--shard", f"{k}/{N}", "-o", out,
                    self.tree, env=self.env)
            self.assertEqual(p.returncode, 0, p.stderr)
            files.append(out)
        whole = os.path.join(self.tmp, "base.json")
        run("baseline", "create", "--no-config", "-o", whole, self.tree, env=self.env)

        def fps(path):
            with open(path) as f:
                text = f.read()
            return {l.split('"')[3] for l in text.splitlines() if '"fingerprint"' in l}

        self.assertEqual(set().union(*(fps(f) for f in files)), fps(whole))
        self.assertGreater(len(fps(whole)), 40)


class ProgressTest(CachedTreeTest):
    """The line is drawn only on a terminal, only after a second, at most
    about four times a second, and erased before the summary."""

    def setUp(self):
        super().setUp()
        self.tree = os.path.join(self.tmp, "tree")
        for i in range(40):
            write(self.tree, f"f{i}.py", f'token = "{github_token(seed=i + 1)}"\n' + "x = 1\n" * 50)

    def scan_slowly(self, *args, tty=True, hold=2.2, columns=None):
        """Scans the tree, then standard input, which the test holds open
        for `hold` seconds once keyhog has begun to read it: a scan that
        lasts that long whatever the machine (or a sanitizer build's slow
        start).  Returns (exit status, stdout, stderr as bytes)."""
        env = dict(os.environ, KEYHOG_CACHE_DIR=self.cache)
        env.pop("NO_COLOR", None)
        if tty:
            master, slave = pty.openpty()
            if columns:
                fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
        else:
            master, slave = os.pipe()
        rd, wr = os.pipe()
        p = subprocess.Popen([KEYHOG, "scan", "--no-config", "-f", "jsonl", *args, self.tree,
                              "-"], stdin=rd, stdout=subprocess.PIPE, stderr=slave, env=env)
        os.close(rd)
        os.close(slave)
        # More than a pipe holds: this write returns only once keyhog reads
        # standard input, which it does after compiling and walking the tree.
        reading = threading.Event()

        def feed():
            os.write(wr, b"x = 1\n" * 40000)
            reading.set()

        feeder = threading.Thread(target=feed)
        feeder.start()
        err = b""
        deadline = None
        while deadline is None or time.monotonic() < deadline:
            if deadline is None and reading.is_set():
                deadline = time.monotonic() + hold
            r, _, _ = select.select([master], [], [], 0.05)
            if r:
                err += os.read(master, 65536)
            self.assertIsNone(p.poll(), "keyhog ended before its input did")
        feeder.join()
        os.write(wr, f'late = "{github_token(seed=77)}"\n'.encode())
        os.close(wr)
        out = p.stdout.read()
        p.stdout.close()
        p.wait(timeout=120)
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the pty's other side is closed
                break
            if not chunk:
                break
            err += chunk
        os.close(master)
        return p.returncode, out, err

    def test_progress_on_a_terminal(self):
        rc, out, err = self.scan_slowly()
        self.assertEqual(rc, 1, err)
        self.assertEqual(len([l for l in out.splitlines() if l]), 41)
        text = err.decode()
        draws = text.count("\r\x1b[Kscanning: ")
        # Drawn from 1 s on, every 250 ms: about five times in 2.2 s; never
        # in the first second, never far more often than four a second.
        self.assertGreaterEqual(draws, 2, repr(text))
        self.assertLessEqual(draws, 8, repr(text))
        self.assertRegex(text, r"scanning: 40 files, [0-9.]+ kB, [0-9.]+ [kMG]?B/s, 40 findings")
        # Erased before the summary, which starts at column 0.
        last = text.rindex("scanning: ")
        rest = text[last:]
        self.assertIn("\r\x1b[K", rest)
        summary = rest[rest.index("\r\x1b[K"):]
        self.assertRegex(summary, r"^\r\x1b\[K(\x1b\[1m)?41 findings")
        self.assertNotIn("scanning:", summary)

    def test_cut_to_a_narrow_terminal(self):
        # A wrapped line could not be erased in place.
        rc, _, err = self.scan_slowly(columns=30, hold=1.6)
        self.assertEqual(rc, 1)
        draws = err.decode().split("\r\x1b[K")[1:-1]
        self.assertTrue(draws)
        for d in draws:
            self.assertTrue(d.startswith("scanning: 40 files"), repr(d))
            self.assertLessEqual(len(d), 29, repr(d))

    def test_thousands_are_grouped(self):
        for i in range(40, 1234):
            write(self.tree, f"many/f{i}.txt", "nothing here\n")
        rc, _, err = self.scan_slowly("-j", "1", hold=1.6)
        self.assertEqual(rc, 1)
        self.assertIn("scanning: 1,234 files", err.decode())

    def test_never_without_a_terminal(self):
        rc, _, err = self.scan_slowly(tty=False)
        self.assertEqual(rc, 1)
        self.assertNotIn(b"scanning:", err)
        self.assertNotIn(b"\r", err)
        self.assertIn(b"41 findings", err)

    def test_never_with_quiet(self):
        rc, _, err = self.scan_slowly("-q")
        self.assertEqual(rc, 1)
        self.assertEqual(err, b"")

    def test_a_quick_scan_draws_nothing(self):
        rc, _, err = self.scan_slowly(hold=0.1)
        self.assertEqual(rc, 1)
        self.assertNotIn(b"scanning:", err)
        self.assertIn(b"41 findings", err)
