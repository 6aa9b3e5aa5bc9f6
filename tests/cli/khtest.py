"""Shared helpers for the CLI tests: run build/keyhog, make fixture trees."""
import json
import os
import random
import string
import subprocess
import tempfile
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
KEYHOG = os.path.abspath(os.environ.get("KEYHOG", os.path.join(ROOT, "build", "keyhog")))


def run(*args, stdin=None, cwd=None, env=None, timeout=120):
    """Runs keyhog with args; returns CompletedProcess with text stdout/stderr."""
    e = dict(os.environ)
    e.pop("NO_COLOR", None)
    if env:
        e.update(env)
    return subprocess.run([KEYHOG, *args], input=stdin, capture_output=True,
                          cwd=cwd, env=e, timeout=timeout)


def jsonl(proc):
    return [json.loads(l) for l in proc.stdout.decode().splitlines() if l.strip()]


def write(root, rel, content, mode=None):
    path = os.path.join(root, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(content.encode() if isinstance(content, str) else content)
    if mode is not None:
        os.chmod(path, mode)
    return path


class TreeTest(unittest.TestCase):
    """A test with a fresh temporary directory in self.tmp."""

    def setUp(self):
        self._td = tempfile.TemporaryDirectory()
        self.tmp = self._td.name

    def tearDown(self):
        for dirpath, dirnames, _ in os.walk(self.tmp):
            for d in dirnames:
                try:
                    os.chmod(os.path.join(dirpath, d), 0o755)
                except OSError:
                    pass
        self._td.cleanup()


class CachedTreeTest(TreeTest):
    """A TreeTest whose tests share one compiled-detector cache directory,
    self.cache (self.env sets KEYHOG_CACHE_DIR to it): compiling the
    detectors is most of a short run, and ~10x slower under `make asan`."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.cache_td = tempfile.TemporaryDirectory()
        cls.cache = cls.cache_td.name

    @classmethod
    def tearDownClass(cls):
        cls.cache_td.cleanup()
        super().tearDownClass()

    def setUp(self):
        super().setUp()
        self.env = {"KEYHOG_CACHE_DIR": self.cache}


# A detector of a made-up service, so tests do not depend on the embedded set.
DETECTOR = """\
[detector]
id = "acme-key"
name = "Acme API Key"
service = "acme"
severity = "high"
keywords = ["acme_"]
description = "Grants full access to an Acme account."

[[detector.patterns]]
regex = '\\b(acme_[a-z0-9]{32})\\b'
group = 1

[[detector.tests]]
test_positive = 'ACME = "acme_0123456789abcdefghijklmnopqrstuv"'
[[detector.tests]]
test_negative = 'ACME = "acme_0123"'
"""


def acme(seed):
    """A made-up key DETECTOR finds, the same for the same seed."""
    rnd = random.Random(seed)
    return "acme_" + "".join(rnd.choice(string.ascii_lowercase + string.digits) for _ in range(32))


def acme_detectors(root):
    """Writes DETECTOR alone into root/_detectors; returns that directory,
    for --detectors."""
    det = os.path.join(root, "_detectors")
    write(det, "acme-key.toml", DETECTOR)
    return det
