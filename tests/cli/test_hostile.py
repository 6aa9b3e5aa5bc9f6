"""Hostile input through the CLI: inputs built to hang, exhaust or trick a
scanner (huge sparse files, endless lines, FIFOs, link loops, unreadable
and vanishing files, invalid text encodings, malformed and catastrophic
detectors, archive and git damage, signals).

Every case checks the same contract: keyhog finishes in bounded time and
memory, names the input it could not scan on stderr, counts it in
stats.files_skipped, finds the canary secret planted beside it (the rest of
the scan completed), and --fail-on-skip turns a skip into exit status 2.

Memory bound (see tests/hostile/README.md): peak RSS stays under
MEMORY_BOUND_MIB for these inputs; with an ordinary build the runs that
read big inputs also run under RLIMIT_AS = 2 GiB.  ASan reserves terabytes
of address space, so under `make asan` only RSS is measured, with a looser
bound, and the largest inputs are scaled down to keep the suite fast."""
import json
import os
import platform
import resource
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import unittest
import zipfile

from khtest import KEYHOG, ROOT, TreeTest, write

HOSTILE = os.path.join(ROOT, "tests", "hostile")
ASAN = "asan" in os.path.basename(os.path.dirname(KEYHOG)) or "asan" in KEYHOG
MIB = 1 << 20
# 100 MB line in the ordinary build; ASan is ~5x slower, so 20 MB there.
LONG_LINE = (20 if ASAN else 100) * 1000 * 1000
MEMORY_BOUND_MIB = 2048 if ASAN else 1024
AS_LIMIT = 2 << 30

CANARY_DETECTOR = """\
[detector]
id = "hostile-canary"
name = "Canary token of the hostile suite"
service = "canary"
severity = "high"
keywords = ["canary_"]

[[detector.patterns]]
regex = '\\b(canary_[a-z0-9]{32})\\b'
group = 1

[[detector.tests]]
test_positive = 'TOKEN = "canary_0123456789abcdefghijklmnopqrstuv"'
"""
CANARY = "canary_5f0c1d2e3b4a69788796a5b4c3d2e1f0"


def help_text():
    p = subprocess.run([KEYHOG, "scan", "--help"], capture_output=True)
    return p.stdout.decode()


HELP = help_text() if os.path.exists(KEYHOG) else ""
HAS_ARCHIVES = "archive" in HELP
HAS_GIT = "--git" in HELP


class Result:
    def __init__(self, rc, out, err, seconds, maxrss_mib):
        self.returncode, self.stdout, self.stderr = rc, out, err
        self.seconds, self.maxrss_mib = seconds, maxrss_mib
        self.doc = None
        try:
            self.doc = json.loads(out.decode())
        except ValueError:
            pass

    @property
    def skipped(self):
        return self.doc["stats"]["files_skipped"]

    def secrets(self):
        return [f.get("secret") for f in self.doc["findings"]]

    def __repr__(self):
        return (f"rc={self.returncode} {self.seconds:.1f}s {self.maxrss_mib:.0f}MiB\n"
                f"stderr: {self.stderr.decode(errors='replace')[-2000:]}")


def keyhog(args, stdin=subprocess.DEVNULL, cwd=None, env=None, timeout=60, as_limit=False,
           user=None):
    """Runs keyhog and measures wall time and peak RSS (from wait4)."""
    e = dict(os.environ)
    e.pop("NO_COLOR", None)
    e.update(env or {})

    def preexec():
        if as_limit and not ASAN:
            resource.setrlimit(resource.RLIMIT_AS, (AS_LIMIT, AS_LIMIT))
        if user is not None:
            os.setgroups([])
            os.setgid(user)
            os.setuid(user)

    t0 = time.monotonic()
    proc = subprocess.Popen([KEYHOG, *args], stdin=stdin, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, cwd=cwd, env=e, preexec_fn=preexec)
    out_chunks, err_chunks = [], []
    readers = [threading.Thread(target=lambda s=s, c=c: c.append(s.read()))
               for s, c in ((proc.stdout, out_chunks), (proc.stderr, err_chunks))]
    for r in readers:
        r.start()
    deadline = t0 + timeout
    while True:
        pid, status, ru = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.monotonic() > deadline:
            proc.kill()
            pid, status, ru = os.wait4(proc.pid, 0)
            for r in readers:
                r.join()
            proc.stdout.close()
            proc.stderr.close()
            raise AssertionError(f"keyhog {' '.join(args)} ran over {timeout}s: "
                                 f"{b''.join(err_chunks)[-2000:]!r}")
        time.sleep(0.01)
    seconds = time.monotonic() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    for r in readers:
        r.join()
    proc.stdout.close()
    proc.stderr.close()
    return Result(proc.returncode, b"".join(out_chunks), b"".join(err_chunks), seconds,
                  ru.ru_maxrss / 1024)


class HostileTest(TreeTest):
    @classmethod
    def setUpClass(cls):
        # One compiled-detector cache, readable by uid 65534, filled here so
        # no timed run below pays for compiling.  It outlives the run, under
        # build/, so `make asan` (whose compile is ~10x slower) reuses what
        # `make test` compiled: the cache is keyed by the detector set and
        # the Vectorscan version, never by the build.
        cls.cache = os.environ.get("KEYHOG_TEST_CACHE_DIR",
                                   os.path.join(ROOT, "build", "test-hostile-cache"))
        os.makedirs(cls.cache, exist_ok=True)
        os.chmod(cls.cache, 0o777)
        for d in (ROOT, os.path.dirname(cls.cache)):  # traversable by uid 65534
            try:
                os.chmod(d, os.stat(d).st_mode | 0o011)
            except OSError:
                pass
        cls.warm_up([])

    @classmethod
    def warm_up(cls, extra_detector_dirs):
        with tempfile.TemporaryDirectory() as d:
            write(d, "det/hostile-canary.toml", CANARY_DETECTOR)
            os.makedirs(os.path.join(d, "empty"))
            args = ["scan", "--no-config", "--detectors", os.path.join(d, "det")]
            for x in extra_detector_dirs:
                args += ["--detectors", x]
            keyhog(args + [os.path.join(d, "empty")], timeout=600,
                   env={"KEYHOG_CACHE_DIR": cls.cache})

    def setUp(self):
        super().setUp()
        os.chmod(self.tmp, 0o755)
        self.det = os.path.join(self.tmp, "_detectors")
        write(self.det, "hostile-canary.toml", CANARY_DETECTOR)
        self.tree = os.path.join(self.tmp, "tree")
        os.makedirs(self.tree)
        write(self.tree, "canary.env", f"TOKEN={CANARY}\n")

    def scan(self, *args, **kw):
        env = {"KEYHOG_CACHE_DIR": self.cache}
        env.update(kw.pop("env", {}))
        return keyhog(["scan", "--no-config", "--detectors", self.det, "--show-secrets",
                       "--format", "json", *args], env=env, **kw)

    def assertSane(self, r, max_seconds=20, rcs=(0, 1)):
        """Finished in time and memory, no crash, a JSON document out."""
        self.assertIn(r.returncode, rcs, r)
        self.assertNotIn(b"Sanitizer", r.stderr, r)
        self.assertNotIn(b"runtime error", r.stderr, r)
        self.assertLess(r.seconds, max_seconds, r)
        self.assertLess(r.maxrss_mib, MEMORY_BOUND_MIB, r)
        if 0 <= r.returncode <= 1:
            self.assertIsNotNone(r.doc, r)

    def assertCanary(self, r):
        self.assertIn(CANARY, r.secrets(), r)

    def assertSkipped(self, r, name, n=1):
        """`name` appears in a skip message and the stats count the skips."""
        err = r.stderr.decode(errors="replace")
        self.assertTrue(any(name in line and "skipped" in line for line in err.splitlines()),
                        r)
        self.assertGreaterEqual(r.skipped, n, r)

    def assertFailOnSkip(self, *args, **kw):
        r = self.scan("--fail-on-skip", *args, **kw)
        self.assertEqual(r.returncode, 2, r)
        return r

    # ---- size -------------------------------------------------------------

    def test_sparse_10g_file_skipped_fast(self):
        with open(os.path.join(self.tree, "huge.img"), "wb") as f:
            f.truncate(10 << 30)
        r = self.scan(self.tree, as_limit=True)
        self.assertSane(r, max_seconds=10)
        self.assertEqual(r.returncode, 1, r)
        self.assertCanary(r)
        self.assertSkipped(r, "huge.img")
        self.assertIn("max-file-size", r.stderr.decode())
        self.assertFailOnSkip(self.tree)
        # Named on the command line, the same.
        r = self.scan(os.path.join(self.tree, "huge.img"), as_limit=True)
        self.assertSane(r, max_seconds=10)
        self.assertSkipped(r, "huge.img")

    def test_very_long_line(self):
        """LONG_LINE bytes without a newline, in several alphabets, with the
        canary at the very end: bounded time and memory, canary found."""
        size = f"{LONG_LINE // MIB + 16}M"
        for name, unit in (("letters", b"a"), ("base64", b"QUJDRGVmZ2hpams0NTY3"),
                           ("hex", b"6b65793d"), ("percent", b"%41%3d")):
            with self.subTest(alphabet=name):
                path = os.path.join(self.tree, "long.txt")
                with open(path, "wb") as f:
                    f.write(unit * (LONG_LINE // len(unit)))
                    f.write(f" {CANARY}".encode())
                r = self.scan("--max-file-size", size, "-j", "2", self.tree, as_limit=True,
                              timeout=120)
                self.assertSane(r, max_seconds=10 if not ASAN else 60)
                if not ASAN:  # the documented bound, tests/hostile/README.md
                    self.assertLess(r.maxrss_mib, 64 + 2 * (LONG_LINE / MIB + 48) + 256, r)
                self.assertEqual(r.skipped, 0, r)
                self.assertEqual(r.secrets().count(CANARY), 1, r)

    def test_one_line_full_of_companion_candidates(self):
        """A single line repeating an embedded detector's secret shape with
        its required companion nowhere: each candidate searched the whole
        line for the companion, quadratic (30 MB took over 12 minutes)."""
        import base64
        import random
        n = (4 if ASAN else 30) * MIB // 60
        b64 = base64.b64encode(random.Random(7).randbytes(n * 33)).decode()
        line = "".join(f"client_secret={b64[i * 43:(i + 1) * 43]}= " for i in range(n))
        write(self.tree, "minified.js", line)
        r = self.scan(self.tree, timeout=120)
        self.assertSane(r, max_seconds=10 if not ASAN else 30)
        self.assertEqual(r.skipped, 0, r)
        self.assertCanary(r)

    # ---- filesystem oddities -------------------------------------------------

    def test_symlink_loops(self):
        os.makedirs(os.path.join(self.tree, "a", "b"))
        os.symlink("../..", os.path.join(self.tree, "a", "b", "up"))
        os.symlink("self", os.path.join(self.tree, "self"))
        os.symlink("pong", os.path.join(self.tree, "ping"))
        os.symlink("ping", os.path.join(self.tree, "pong"))
        r = self.scan(self.tree)
        self.assertSane(r, max_seconds=10)
        self.assertEqual(r.secrets(), [CANARY], r)
        self.assertEqual(r.skipped, 0, r)  # links are not followed by default
        r = self.scan("--follow", self.tree)
        self.assertSane(r, max_seconds=10)
        self.assertEqual(r.secrets(), [CANARY], r)
        self.assertSkipped(r, "self")
        self.assertSkipped(r, "ping")
        self.assertSkipped(r, "up")
        self.assertFailOnSkip("--follow", self.tree)

    def test_fifo_never_blocks(self):
        os.mkfifo(os.path.join(self.tree, "pipe"))
        os.mkfifo(os.path.join(self.tree, ".gitignore"))  # read by the walker itself
        r = self.scan(self.tree)
        self.assertSane(r, max_seconds=10)
        self.assertCanary(r)
        r = self.scan(os.path.join(self.tree, "pipe"), self.tree)
        self.assertSane(r, max_seconds=10)
        self.assertCanary(r)
        self.assertSkipped(r, "pipe")
        r = self.scan("/dev/zero", self.tree)  # a device named as a PATH
        self.assertSane(r, max_seconds=10)
        self.assertSkipped(r, "/dev/zero")

    @unittest.skipUnless(os.geteuid() == 0, "needs root to switch to uid 65534")
    def test_unreadable_files_and_directories(self):
        write(self.tree, "locked.txt", f"TOKEN={CANARY}\n", mode=0)
        write(self.tree, "closed/inner.txt", "x\n")
        os.chmod(os.path.join(self.tree, "closed"), 0)
        write(self.tree, "noexec/inner.txt", "x\n")
        os.chmod(os.path.join(self.tree, "noexec"), 0o644)
        os.chmod(self.det, 0o755)
        r = self.scan(self.tree, user=65534)
        self.assertSane(r, max_seconds=10)
        self.assertEqual(r.secrets(), [CANARY], r)
        self.assertSkipped(r, "locked.txt", n=3)
        self.assertSkipped(r, "closed")
        self.assertSkipped(r, "noexec")
        self.assertFailOnSkip(self.tree, user=65534)

    def test_files_change_and_vanish_during_the_scan(self):
        names = [f"f{i:04}.txt" for i in range(600)]
        body = ("x = 1\n" * 2000).encode()
        for n in names:
            write(self.tree, os.path.join("churn", n), body)
        stop = threading.Event()

        def churn():
            i = 0
            while not stop.is_set():
                p = os.path.join(self.tree, "churn", names[i % len(names)])
                try:
                    kind = i % 5
                    if kind == 0:
                        os.unlink(p)
                    elif kind == 1:
                        with open(p, "wb") as f:
                            f.write(body * 3)
                    elif kind == 2:
                        os.truncate(p, 7)
                    elif kind == 3:
                        os.unlink(p)
                        os.mkfifo(p)
                    else:
                        if os.path.exists(p) and not os.path.isfile(p):
                            os.unlink(p)
                        os.makedirs(p, exist_ok=True)
                except OSError:
                    pass
                i += 1

        t = threading.Thread(target=churn)
        t.start()
        try:
            for _ in range(3):
                r = self.scan("-j", "4", self.tree)
                self.assertSane(r, max_seconds=30)
                self.assertCanary(r)
        finally:
            stop.set()
            t.join()

    def test_deep_and_long_paths(self):
        # Deeper than the walker's depth cap: reported, not a crash.
        d = self.tree
        fd = os.open(d, os.O_RDONLY)
        for _ in range(300):
            os.mkdir("d", dir_fd=fd)
            nfd = os.open("d", os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = nfd
        os.close(fd)
        # A path longer than PATH_MAX (4096): every open of it fails.
        fd = os.open(self.tree, os.O_RDONLY)
        for _ in range(24):
            os.mkdir("L" * 200, dir_fd=fd)
            nfd = os.open("L" * 200, os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = nfd
        w = os.open("deep.txt", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)
        os.write(w, b"x\n")
        os.close(w)
        os.close(fd)
        r = self.scan(self.tree)
        self.assertSane(r, max_seconds=20)
        self.assertCanary(r)
        self.assertSkipped(r, "/d/d/d/d")
        self.assertSkipped(r, "LLLL", n=2)

    def test_huge_gitignore(self):
        rules = "".join(f"*a*b*c*{i}*/**/x*y*z?[a-f]\n!**/k{i}/**\n" for i in range(60000))
        write(self.tree, ".gitignore", rules)
        for i in range(50):
            write(self.tree, f"src/m{i}/aXbYc/f{i}.txt", "x\n")
        r = self.scan(self.tree)
        self.assertSane(r, max_seconds=20)
        self.assertCanary(r)

    # ---- text encodings -------------------------------------------------------

    def test_invalid_utf8(self):
        junk = bytes(range(0x80, 0x100)) + b"\xc0\x80\xed\xa0\x80\xf4\x90\x80\x80\xff\xfe"
        write(self.tree, "bad.txt", junk * 10 + f"\nkey {CANARY}\n".encode() + junk)
        # A name that is not UTF-8 either: the JSON output must stay valid.
        os.rename(os.path.join(self.tree, "canary.env"),
                  os.path.join(self.tree.encode(), b"name-\xff\xfe.env"))
        r = self.scan("--no-dedupe", self.tree)
        self.assertSane(r, max_seconds=10)
        self.assertEqual(r.secrets().count(CANARY), 2, r)
        bad = [f for f in r.doc["findings"] if f["path"].endswith("bad.txt")]
        self.assertEqual(len(bad), 1, r)
        self.assertEqual(bad[0]["line"], 2)

    def test_utf16(self):
        text = f"TOKEN={CANARY}\n"
        write(self.tree, "le.txt", b"\xff\xfe" + text.encode("utf-16-le"))
        write(self.tree, "be.txt", b"\xfe\xff" + text.encode("utf-16-be"))
        # Unpaired surrogates and odd length.
        write(self.tree, "broken.txt", b"\xff\xfe\x00\xd8A\x00\x00\xdc\x00")
        # Windows tools also write UTF-16 without a byte-order mark.
        write(self.tree, "nobom.ps1", f"# settings\r\n$t = '{CANARY}'\r\n".encode("utf-16-le"))
        r = self.scan("--no-dedupe", self.tree)
        self.assertSane(r, max_seconds=10)
        self.assertCanary(r)
        # UTF-16 is text: scanned, not skipped as binary, and every location
        # points at the token's bytes in the UTF-16 original.
        got = {os.path.basename(f["path"]): f for f in r.doc["findings"]}
        for name, line, at in (("le.txt", 1, 2 + 2 * text.index(CANARY)),
                               ("be.txt", 1, 2 + 2 * text.index(CANARY)),
                               ("nobom.ps1", 2, 2 * len("# settings\r\n$t = '"))):
            self.assertIn(name, got, r)
            self.assertEqual(got[name]["line"], line, name)
            self.assertEqual(got[name]["offset"], at, name)
            self.assertEqual(got[name]["length"], 2 * len(CANARY), name)
            with open(os.path.join(self.tree, name), "rb") as f:
                raw = f.read()[at:at + 2 * len(CANARY)]
            enc = "utf-16-be" if name == "be.txt" else "utf-16-le"
            self.assertEqual(raw.decode(enc), CANARY, name)

    # ---- detectors -----------------------------------------------------------

    def test_malformed_detector_files(self):
        cases = {}
        for n in sorted(os.listdir(os.path.join(HOSTILE, "detectors", "malformed"))):
            with open(os.path.join(HOSTILE, "detectors", "malformed", n), "rb") as f:
                cases[n] = f.read()
        cases["deep-nesting.toml"] = b"x = " + b"[" * 200000 + b"]" * 200000 + b"\n"
        cases["deep-inline.toml"] = b"x = " + b"{a=" * 100000 + b"1" + b"}" * 100000 + b"\n"
        cases["long-key.toml"] = b"[detector]\n" + b"k" * (8 * MIB) + b" = 1\n"
        cases["many-tables.toml"] = b"".join(b"[t%d]\n" % i for i in range(100000))
        cases["binary.toml"] = bytes(range(256)) * 64
        for name, content in cases.items():
            with self.subTest(file=name):
                d = os.path.join(self.tmp, "bad-" + name)
                write(d, name, content)
                r = self.scan("--detectors", d, self.tree, as_limit=True)
                self.assertSane(r, max_seconds=10, rcs=(2,))
                self.assertIn(name, r.stderr.decode(errors="replace"), r)

    def test_catastrophic_regexes_finish(self):
        write(self.tree, "runs.txt", "a" * 200000 + "\n" + "ab" * 100000 + "\n"
              + ("abc" * 3 + " ") * 30000 + "\n" + ("a" * 5000 + "!") * 40 + "\n"
              + "x@" * 200000 + "\n")
        write(self.tree, "longrun.txt", "a" * (2 * MIB))
        d = os.path.join(HOSTILE, "detectors", "catastrophic")
        self.warm_up([d])
        r = self.scan("--detectors", d, self.tree, timeout=120)
        self.assertSane(r, max_seconds=30)
        self.assertCanary(r)

    def test_time_budget_stops_a_slow_detector(self):
        """A detector slow on every byte but inside PCRE2's match limit:
        the engine's per-file budget (10 s + 1 s per MiB) stops it, the
        file is reported as scanned in part, the rest of the scan goes on."""
        write(self.tree, "run.txt", "a" * MIB)
        d = os.path.join(HOSTILE, "detectors", "budget")
        self.warm_up([d])
        r = self.scan("--detectors", d, self.tree, timeout=120)
        self.assertSane(r, max_seconds=25)
        self.assertGreater(r.seconds, 9, r)  # the budget, not a fast path
        self.assertCanary(r)
        self.assertSkipped(r, "run.txt")
        self.assertIn("time budget", r.stderr.decode())

    # ---- archives and git ------------------------------------------------------

    @unittest.skipUnless(HAS_ARCHIVES, "keyhog scan has no archive support in this build")
    def test_zip_bomb(self):
        path = os.path.join(self.tree, "bomb.zip")
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
            with z.open("zeros.txt", "w", force_zip64=True) as f:
                chunk = b"0" * MIB
                for _ in range(1024 if not ASAN else 256):
                    f.write(chunk)
            z.writestr("inner.env", f"TOKEN={CANARY}\n")
        self.assertLess(os.path.getsize(path), 4 * MIB)
        r = self.scan("--no-dedupe", self.tree, as_limit=True, timeout=120)
        self.assertSane(r, max_seconds=30)
        self.assertEqual(r.secrets().count(CANARY), 2, r)
        self.assertSkipped(r, "bomb.zip")

    @unittest.skipUnless(HAS_ARCHIVES, "keyhog scan has no archive support in this build")
    def test_nested_archive_bomb(self):
        import io
        inner = io.BytesIO()
        with zipfile.ZipFile(inner, "w", zipfile.ZIP_DEFLATED) as z:
            z.writestr("zeros.txt", b"0" * (8 * MIB))
        data = inner.getvalue()
        for level in range(6):  # 16^6 * 8 MiB once fully expanded
            buf = io.BytesIO()
            with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
                for i in range(16):
                    z.writestr(f"l{level}-{i}.zip", data)
            data = buf.getvalue()
            if len(data) > 8 * MIB:
                break
        write(self.tree, "nested.zip", data)
        r = self.scan(self.tree, as_limit=True, timeout=300)
        # The archive limit lets 1 GiB expand and be scanned: seconds, but
        # ASan makes that half a minute.
        self.assertSane(r, max_seconds=30 if not ASAN else 150)
        self.assertCanary(r)
        self.assertSkipped(r, "nested.zip")

    @unittest.skipUnless(HAS_ARCHIVES, "keyhog scan has no archive support in this build")
    def test_tar_with_escaping_paths_writes_nothing(self):
        tag = f"keyhog-escape-{os.getpid()}"
        abs_target = os.path.join(tempfile.gettempdir(), tag + "-abs.env")
        path = os.path.join(self.tree, "evil.tar")
        import io
        with tarfile.open(path, "w") as t:
            for name in (f"../../{tag}.env", abs_target, f"a/../../../{tag}-2.env"):
                body = f"TOKEN={CANARY}\n".encode()
                info = tarfile.TarInfo(name)
                info.size = len(body)
                t.addfile(info, io.BytesIO(body))
            link = tarfile.TarInfo("escape-link")
            link.type = tarfile.SYMTYPE
            link.linkname = "/etc/passwd"
            t.addfile(link)
        # keyhog gets a TMPDIR of its own that must stay empty; the system
        # temporary directory is shared with other processes, so there only
        # the names the archive tries to write are looked for.
        own_tmp = os.path.join(self.tmp, "tmpdir")
        os.mkdir(own_tmp)
        before = set(os.listdir(self.tmp))
        r = self.scan(self.tree, cwd=self.tree, env={"TMPDIR": own_tmp})
        self.assertSane(r)
        self.assertFalse(os.path.exists(abs_target))
        self.assertEqual(os.listdir(own_tmp), [])
        self.assertEqual(before, set(os.listdir(self.tmp)))
        for d in (os.path.dirname(self.tmp), tempfile.gettempdir(), self.tree):
            self.assertEqual([n for n in os.listdir(d) if tag in n], [], d)
        self.assertGreaterEqual(r.secrets().count(CANARY), 1, r)
        for f in r.doc["findings"]:
            self.assertFalse(f["path"].startswith("/etc"), f)

    @unittest.skipUnless(HAS_GIT and shutil.which("git"), "keyhog scan has no --git")
    def test_git_repository_with_a_corrupt_object(self):
        repo = os.path.join(self.tmp, "repo")
        os.makedirs(repo)
        env = dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.com",
                   GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@example.com")

        def git(*a):
            return subprocess.run(["git", "-C", repo, *a], check=True, capture_output=True,
                                  env=env).stdout.decode().strip()

        git("init", "-q")
        write(repo, "good.env", f"TOKEN={CANARY}\n")
        git("add", ".")
        git("commit", "-qm", "good")
        write(repo, "doomed.env", "TOKEN=canary_" + "0" * 32 + "\n")
        git("add", ".")
        git("commit", "-qm", "doomed")
        blob = git("rev-parse", "HEAD:doomed.env")
        obj = os.path.join(repo, ".git", "objects", blob[:2], blob[2:])
        os.chmod(obj, 0o644)
        with open(obj, "r+b") as f:
            f.seek(8)
            f.write(b"\xde\xad\xbe\xef" * 4)
        r = self.scan("--git", repo, timeout=60)
        self.assertSane(r, max_seconds=30)
        self.assertCanary(r)
        self.assertSkipped(r, "doomed.env")
        self.assertFailOnSkip("--git", repo)

    # ---- signals ----------------------------------------------------------------

    def _wait_reading_stdin(self, pid, timeout=30):
        """Waits until keyhog's main thread blocks reading standard input."""
        read_nr = {"x86_64": 0, "aarch64": 63}.get(platform.machine())
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with open(f"/proc/{pid}/syscall") as f:
                    fields = f.read().split()
                if read_nr is not None and fields and fields[0] == str(read_nr) \
                        and int(fields[1], 16) == 0:
                    return
            except (OSError, ValueError, IndexError):
                if read_nr is None:
                    break
            time.sleep(0.02)
        time.sleep(2)  # no /proc/PID/syscall: give it time

    def _interrupted(self, sig, output):
        out = os.path.join(self.tmp, "report.json")
        with open(out, "w") as f:
            f.write("OLD")
        args = [KEYHOG, "scan", "--no-config", "--detectors", self.det, "--show-secrets",
                "--format", "json", self.tree, "-"]
        if output:
            args[2:2] = ["-o", out]
        env = dict(os.environ, KEYHOG_CACHE_DIR=self.cache)
        proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, env=env)
        try:
            self._wait_reading_stdin(proc.pid)
            t0 = time.monotonic()
            proc.send_signal(sig)
            stdout, stderr = proc.communicate(timeout=10)
            took = time.monotonic() - t0
        finally:
            proc.kill()
            proc.stdin.close()
            proc.wait()
        self.assertEqual(proc.returncode, 128 + sig, stderr)
        self.assertLess(took, 5)
        self.assertIn(b"interrupted", stderr)
        with open(out) as f:
            self.assertEqual(f.read(), "OLD")
        self.assertEqual([n for n in os.listdir(self.tmp) if ".tmp." in n], [])
        return stdout, stderr

    def test_sigint_keeps_output_file_and_prints_partial_summary(self):
        stdout, stderr = self._interrupted(signal.SIGINT, output=True)
        self.assertEqual(stdout, b"")
        self.assertIn(b"1 finding", stderr)

    def test_sigterm_partial_findings_on_stdout(self):
        stdout, _ = self._interrupted(signal.SIGTERM, output=False)
        doc = json.loads(stdout)
        self.assertEqual([f["secret"] for f in doc["findings"]], [CANARY])


if __name__ == "__main__":
    unittest.main()
