"""Shared helpers for the CLI tests: run build/keyhog, make fixture trees."""
import json
import os
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
