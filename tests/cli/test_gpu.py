"""keyhog scan --backend gpu against --backend cpu: byte-identical JSONL on a
synthetic corpus with planted secrets, also through each forced fallback
(KEYHOG_GPU_FORCE_FAIL).  The GPU half skips itself without a usable GPU;
the fallback half (no backend library: same output) runs everywhere.

Also a corpus generator for the device benchmark (docs/gpu.md):
    python3 tests/cli/test_gpu.py --make-corpus DIR MIB
"""
import os
import random
import re
import string
import subprocess
import sys
import tomllib
import unittest
import zipfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from khtest import KEYHOG, ROOT, TreeTest, run  # noqa: E402

WORDS = ("static int return void const char struct size_t if else for while "
         "key token secret password api client id value config user name "
         "buffer length offset data error status result").split()


def planted_texts():
    """Every detector's test texts: secrets to find and near misses."""
    texts = []
    folder = os.path.join(ROOT, "detectors")
    for name in sorted(os.listdir(folder)):
        if not name.endswith(".toml"):
            continue
        with open(os.path.join(folder, name), "rb") as f:
            try:
                spec = tomllib.load(f)
            except tomllib.TOMLDecodeError:
                continue
        tests = spec.get("detector", {}).get("tests", spec.get("tests", []))
        for t in tests if isinstance(tests, list) else []:
            # Near misses too: both backends must reject them alike.
            for key in ("test_positive", "test_negative"):
                if isinstance(t, dict) and isinstance(t.get(key), str):
                    texts.append(t[key])
    return texts


def make_corpus(root, mib, seed=7):
    """Source-like files (1 KiB to 2 MiB) with planted secrets, mib MiB in all."""
    rnd = random.Random(seed)
    secrets = planted_texts()
    total, n = 0, 0
    goal = mib << 20
    while total < goal:
        size = min(int(rnd.lognormvariate(9, 1.6)) + 1024, 2 << 20, goal - total + 1024)
        lines, length = [], 0
        while length < size:
            r = rnd.random()
            if r < 0.002 and secrets:
                line = rnd.choice(secrets)
            elif r < 0.01:
                line = "".join(rnd.choice(string.ascii_letters + string.digits)
                               for _ in range(rnd.randint(20, 80)))
            else:
                line = " ".join(rnd.choice(WORDS) for _ in range(rnd.randint(2, 14)))
            if rnd.random() < 0.1:
                line = line.upper()
            lines.append(line)
            length += len(line) + 1
        path = os.path.join(root, "d%03d" % (n % 97), "f%06d.txt" % n)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
        total += length
        n += 1
    return n, total


def gpu_usable():
    lib = os.path.join(os.path.dirname(KEYHOG), "libkeyhog_gpu.so")
    return os.path.exists(lib) and os.path.exists("/dev/nvidia0")


class Parity(TreeTest):
    corpus_mib = 8

    def setUp(self):
        super().setUp()
        make_corpus(self.tmp, self.corpus_mib)

    def scan(self, backend, env=None):
        # One compiled-detector cache for the class: compiling costs seconds.
        e = {"KEYHOG_CACHE_DIR": os.path.join(ROOT, "build", "test-gpu-cache")}
        e.update(env or {})
        p = run("scan", "-f", "jsonl", "--backend", backend, self.tmp, env=e, timeout=600)
        self.assertIn(p.returncode, (0, 1), p.stderr.decode())
        return p

    def test_missing_backend_falls_back_with_same_output(self):
        cpu = self.scan("cpu")
        self.assertTrue(cpu.stdout, "the corpus plants secrets")
        for env in ({"KEYHOG_GPU_FORCE_FAIL": "load"},):
            gpu = self.scan("gpu", env)
            self.assertEqual(gpu.stdout, cpu.stdout)
            self.assertIn(b"scanning on the CPU", gpu.stderr)


class ReferenceBackend(Parity):
    """The GPU path end to end on any machine: KEYHOG_GPU_REFERENCE=1 puts
    the device ABI's CPU implementation under --backend gpu, so the CLI's
    batches, read straight into the lent batch buffer, go through packing,
    confirmation and reporting as on a device."""
    corpus_mib = 6

    def test_reference_backend_equals_cpu(self):
        # What the batch path hands elsewhere: an archive, UTF-16, binary.
        with zipfile.ZipFile(os.path.join(self.tmp, "a.zip"), "w") as z:
            z.writestr("in/zip.txt", "\n".join(planted_texts()[:40]))
        with open(os.path.join(self.tmp, "u16.txt"), "wb") as f:
            f.write("\n".join(planted_texts()[:20]).encode("utf-16"))
        with open(os.path.join(self.tmp, "bin.dat"), "wb") as f:
            f.write(bytes(random.Random(3).randrange(256) for _ in range(20000)))
        cpu = self.scan("cpu")
        self.assertTrue(cpu.stdout, "the corpus plants secrets")
        env = {"KEYHOG_GPU_REFERENCE": "1", "KEYHOG_GPU_STATS": "1"}
        gpu = self.scan("gpu", env)
        self.assertEqual(gpu.stdout, cpu.stdout)
        said = re.search(rb"gpu: (\d+) batches \((\d+) read in place\)", gpu.stderr)
        self.assertTrue(said, gpu.stderr.decode())
        self.assertGreater(int(said[1]), 0)
        self.assertEqual(said[1], said[2], "every batch was read into its buffer")
        # One session a device, or a lane count that is not one (named,
        # and the default kept): the same output.
        one = self.scan("gpu", dict(env, KEYHOG_GPU_LANES="1"))
        self.assertEqual(one.stdout, cpu.stdout)
        bad = self.scan("gpu", dict(env, KEYHOG_GPU_LANES="9"))
        self.assertEqual(bad.stdout, cpu.stdout)
        self.assertIn(b"KEYHOG_GPU_LANES=9: not a number from 1 to 8; using 3", bad.stderr)


@unittest.skipUnless(gpu_usable(), "no GPU backend library or no NVIDIA device")
class GpuParity(Parity):
    corpus_mib = 64

    def test_gpu_equals_cpu(self):
        cpu = self.scan("cpu")
        gpu = self.scan("gpu")
        self.assertEqual(gpu.stdout, cpu.stdout)
        self.assertNotIn(b"scanning on the CPU", gpu.stderr)
        auto = self.scan("auto")
        self.assertEqual(auto.stdout, cpu.stdout)

    def test_each_forced_fallback_keeps_output(self):
        cpu = self.scan("cpu")
        cases = {
            "persistent": b"persistent kernel dropped",
            "persistent,launch": b"kernel launch failed",
            "open": b"session open failed",
        }
        for force, said in cases.items():
            with self.subTest(force=force):
                gpu = self.scan("gpu", {"KEYHOG_GPU_FORCE_FAIL": force})
                self.assertEqual(gpu.stdout, cpu.stdout)
                self.assertIn(said, gpu.stderr)


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--make-corpus":
        files, size = make_corpus(sys.argv[2], int(sys.argv[3]))
        print(f"{files} files, {size} bytes")
    else:
        unittest.main()
