"""keyhog calibrate and the way scan --backend auto reads its result.

The no-GPU half runs everywhere: KEYHOG_GPU_FORCE_FAIL=load makes the
backend library unloadable even on a machine with a device, so calibrate
must store "never" and exit 0, and auto must scan on the CPU with the same
output whatever the calibration file says (missing, malformed, crossover 0).
The device half measures for real and checks auto's output against the CPU.
"""
import json
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from khtest import CachedTreeTest, run, write  # noqa: E402
from test_gpu import gpu_usable, make_corpus  # noqa: E402

NO_GPU = {"KEYHOG_GPU_FORCE_FAIL": "load"}


class Base(CachedTreeTest):
    # One cache directory for the class, so the compiled detectors are built
    # once; each test removes the calibration it leaves behind.
    def setUp(self):
        super().setUp()
        self.calibration = os.path.join(self.cache, "calibration.json")
        if os.path.exists(self.calibration):
            os.unlink(self.calibration)

    def keyhog(self, *args, env=None, timeout=300):
        e = {"KEYHOG_CACHE_DIR": self.cache}
        e.update(env or {})
        return run(*args, env=e, timeout=timeout)

    def stored(self):
        with open(self.calibration) as f:
            return json.load(f)

    def scan(self, backend, env=None):
        p = self.keyhog("scan", "-f", "jsonl", "--backend", backend, self.tmp, env=env)
        self.assertIn(p.returncode, (0, 1), p.stderr.decode())
        return p


class Calibrate(Base):

    def test_without_gpu_stores_never_and_exits_0(self):
        p = self.keyhog("calibrate", env=NO_GPU)
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        self.assertIn(b"no usable GPU", p.stderr)
        self.assertIn(b"crossover: never", p.stdout)
        self.assertIn(self.calibration.encode(), p.stdout)
        doc = self.stored()
        self.assertEqual(doc["crossover"], "never")
        self.assertEqual(doc["format"], 1)
        self.assertEqual(doc["measurements"], [])
        self.assertTrue(doc["backend"].startswith("cpu"), doc["backend"])

    def test_json_prints_what_is_stored(self):
        p = self.keyhog("calibrate", "--json", "-j", "3", env=NO_GPU)
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        doc = json.loads(p.stdout)
        self.assertEqual(doc, self.stored())
        self.assertEqual(doc["threads"], 3)

    def test_dry_run_stores_nothing(self):
        p = self.keyhog("calibrate", "--dry-run", env=NO_GPU)
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        self.assertIn(b"crossover: never", p.stdout)
        self.assertFalse(os.path.exists(self.calibration))

    def test_quiet_prints_nothing(self):
        p = self.keyhog("calibrate", "-q", env=NO_GPU)
        self.assertEqual(p.returncode, 0)
        self.assertEqual((p.stdout, p.stderr), (b"", b""))
        self.assertEqual(self.stored()["crossover"], "never")

    def test_xdg_cache_home_when_no_keyhog_cache_dir(self):
        env = dict(NO_GPU, KEYHOG_CACHE_DIR="", XDG_CACHE_HOME=self.tmp)
        p = self.keyhog("calibrate", "-q", "--no-cache", env=env)
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        self.assertTrue(os.path.exists(os.path.join(self.tmp, "keyhog", "calibration.json")))

    def test_unwritable_cache_is_an_error(self):
        blocker = write(self.tmp, "file", "not a directory")
        env = dict(NO_GPU, KEYHOG_CACHE_DIR=os.path.join(blocker, "sub"))
        p = self.keyhog("calibrate", "--no-cache", env=env)
        self.assertEqual(p.returncode, 2)
        self.assertIn(b"cannot store the calibration", p.stderr)

    def test_usage_errors(self):
        for args in (["--threads", "0"], ["--bogus"], ["extra"], ["--threads"]):
            with self.subTest(args=args):
                p = self.keyhog("calibrate", *args, env=NO_GPU)
                self.assertEqual(p.returncode, 2)
                self.assertTrue(p.stderr.startswith(b"keyhog: "), p.stderr)
        self.assertFalse(os.path.exists(self.calibration))

    def test_help(self):
        p = self.keyhog("calibrate", "--help")
        self.assertEqual(p.returncode, 0)
        self.assertIn(b"calibration.json", p.stdout)

    def test_auto_reads_calibration_and_falls_back_silently(self):
        make_corpus(self.tmp, 2)
        cpu = self.scan("cpu")
        self.assertTrue(cpu.stdout, "the corpus plants secrets")
        contents = {
            "missing": None,
            "never": '{"format": 1, "crossover": "never"}',
            "zero": '{"format": 1, "crossover": 0}',
            "other format": '{"format": 99, "crossover": 0}',
            "malformed": '{"format": 1, "crossover": 12abc}',
            "binary": b"\x00\xff" * 20000,
        }
        for name, content in contents.items():
            with self.subTest(calibration=name):
                if content is not None:
                    write(self.cache, "calibration.json", content)
                auto = self.scan("auto", NO_GPU)
                self.assertEqual(auto.stdout, cpu.stdout)
                # auto never complains about a GPU it could not use
                self.assertNotIn(b"gpu", auto.stderr.lower())

    def auto_after(self, mib, values):
        """`auto` with a crossover of 0 and each KEYHOG_GPU_AUTO_AFTER value,
        on an `mib` MiB corpus: (value, scan) pairs, each checked to give
        `cpu`'s output."""
        make_corpus(self.tmp, mib)
        cpu = self.scan("cpu")
        write(self.cache, "calibration.json", '{"format": 1, "crossover": 0}')
        for after in values:
            with self.subTest(after=after):
                auto = self.scan("auto", dict(NO_GPU, KEYHOG_GPU_AUTO_AFTER=after))
                self.assertEqual(auto.stdout, cpu.stdout)
                yield after, auto

    def test_auto_opens_the_gpu_late_and_quietly(self):
        # KEYHOG_GPU_AUTO_AFTER=0: the opener thread starts with the first
        # batch; its open fails here (no library), the scan stays on the CPU.
        for _, auto in self.auto_after(2, ("0", "1000", "99999999999")):
            self.assertNotIn(b"gpu", auto.stderr.lower())

    def test_bad_auto_after_is_named_and_the_scan_goes_on(self):
        for bad, auto in self.auto_after(1, ("4GiB", "-1", "12x")):
            self.assertIn(b"KEYHOG_GPU_AUTO_AFTER: not a byte count: " + bad.encode(),
                          auto.stderr)

    def test_forced_gpu_without_device_says_why(self):
        make_corpus(self.tmp, 1)
        write(self.cache, "calibration.json", '{"format": 1, "crossover": 0}')
        p = self.scan("gpu", NO_GPU)
        self.assertIn(b"scanning on the CPU", p.stderr)


@unittest.skipUnless(gpu_usable(), "no GPU backend library or no NVIDIA device")
class CalibrateOnDevice(Base):
    def test_measures_every_batch_size(self):
        p = self.keyhog("calibrate", "--json", timeout=600)
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        doc = json.loads(p.stdout)
        self.assertTrue(doc["backend"].startswith("gpu"), doc["backend"])
        sizes = [m["batch_bytes"] for m in doc["measurements"]]
        self.assertEqual(len(sizes), 4)
        self.assertEqual(sizes, sorted(sizes))
        for m in doc["measurements"]:
            self.assertGreater(m["cpu_mb_s"], 0)
            self.assertGreater(m["gpu_mb_s"], 0)
        cross = doc["crossover"]
        self.assertTrue(cross == "never" or cross in sizes, cross)

    def test_auto_on_gpu_equals_cpu(self):
        make_corpus(self.tmp, 16)
        cpu = self.scan("cpu")
        for cross in ("0", "4194304", '"never"'):
            for after in ("0", None):  # the GPU opened with the first batch, or not at all
                with self.subTest(crossover=cross, after=after):
                    write(self.cache, "calibration.json",
                          '{"format": 1, "crossover": %s}' % cross)
                    env = {"KEYHOG_GPU_AUTO_AFTER": after} if after else None
                    auto = self.scan("auto", env)
                    self.assertEqual(auto.stdout, cpu.stdout)


if __name__ == "__main__":
    unittest.main()
