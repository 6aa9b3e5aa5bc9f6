"""The HTML report rendered in a real browser: headless Chromium loads the
page, its script runs, and the DOM it leaves has the findings table with
the expected rows, sorted and counted by the script, the lines around each
finding, and no secret in clear text anywhere.  A screenshot proves the page
paints.  Skipped only when no Chromium is installed (CI installs Debian's
`chromium`)."""
import html.parser
import os
import shutil
import struct
import subprocess
import tempfile
import unittest
import zlib

from khtest import acme, acme_detectors, jsonl, run, write
from test_scan import github_token

CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")
                 if shutil.which(n)), None)

# An AWS-style secret key one character too long for the AWS detector's
# companion pattern: no detector claims it, and the report must still not
# show it in the lines around its neighbours.
UNCLAIMED = "wJ7lrXUtnFEMI/K7MDENG/bPxRfiCYz9QW3RT5KEYa"


class Dom(html.parser.HTMLParser):
    """Just enough of the DOM: finding rows, their cells and attributes, the
    context blocks, element text by id, and all visible text."""

    def __init__(self):
        super().__init__()
        self.rows, self.pres, self.by_id, self.heads = [], [], {}, []
        self.body_attrs = {}
        self.text = []
        self._row = self._cell = self._pre = self._id = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "body":
            self.body_attrs = a
        if tag == "tr" and "f" in (a.get("class") or "").split():
            self._row = {"attrs": a, "cells": []}
            self.rows.append(self._row)
        elif tag == "td" and self._row is not None:
            self._cell = []
            self._row["cells"].append(self._cell)
        elif tag == "th":
            self.heads.append(a)
        elif tag == "pre":
            self._pre = []
        if "id" in a and tag in ("p", "span", "div"):
            self._id = a["id"]
            self.by_id[self._id] = {"attrs": a, "text": ""}

    def handle_endtag(self, tag):
        if tag == "tr":
            self._row = self._cell = None
        elif tag == "td":
            self._cell = None
        elif tag == "pre" and self._pre is not None:
            self.pres.append("".join(self._pre))
            self._pre = None
        elif tag in ("p", "span", "div"):
            self._id = None

    def handle_data(self, data):
        self.text.append(data)
        if self._cell is not None:
            self._cell.append(data)
        if self._pre is not None:
            self._pre.append(data)
        if self._id is not None:
            self.by_id[self._id]["text"] += data


def png_size_and_colours(path):
    """(width, height, distinct byte values of the pixel data) of a PNG."""
    with open(path, "rb") as f:
        data = f.read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, width, height = 8, b"", 0, 0
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            width, height = struct.unpack(">II", body[:8])
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    return width, height, len(set(zlib.decompress(idat)))


@unittest.skipUnless(CHROMIUM, "chromium is not installed")
class HtmlInChromiumTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        # One fixture, report and compiled-detector cache for the class:
        # compiling the detectors costs seconds, Chromium a second or two.
        cls.td = tempfile.TemporaryDirectory()
        cls.tmp = cls.td.name
        det = acme_detectors(cls.tmp)
        cls.tree = os.path.join(cls.tmp, "tree")
        cls.secrets = [github_token(seed=11), github_token(seed=12), acme(3),
                       "AKIAQYLPMN5HHHFPZAM2", UNCLAIMED]
        # Path order (the file's order) puts the high finding first; the
        # page's script must show the critical ones first.
        write(cls.tree, "a/first.py", f'# service client\nACME = "{cls.secrets[2]}"\nretries = 3\n')
        write(cls.tree, "b/deploy.env", "REGION=eu-west-1\n"
              f"TOKEN={cls.secrets[0]}\n"
              f"AWS_ACCESS_KEY_ID={cls.secrets[3]}\n"
              f"AWS_SECRET_ACCESS_KEY={cls.secrets[4]}\n"
              "DEBUG=0\n")
        write(cls.tree, "c/<b>bold</b>.py", f'x = "{cls.secrets[1]}"\n')
        cls.env = {"KEYHOG_CACHE_DIR": os.path.join(cls.tmp, "_cache")}
        cls.report = os.path.join(cls.tmp, "report.html")
        # The first run compiles the detectors: minutes under `make asan`.
        cls.scan_rc = run("scan", "--no-config", "--detectors", det, "-f", "html", "-o",
                          cls.report, cls.tree, env=cls.env, timeout=900)
        cls.expected = jsonl(run("scan", "--no-config", "--detectors", det, "-f", "jsonl",
                                 cls.tree, env=cls.env))

    @classmethod
    def tearDownClass(cls):
        cls.td.cleanup()

    def setUp(self):
        self.assertEqual(self.scan_rc.returncode, 1, self.scan_rc.stderr)
        self.profile = tempfile.TemporaryDirectory()

    def tearDown(self):
        self.profile.cleanup()

    def chromium(self, *args):
        p = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
                            "--no-first-run", "--disable-extensions",
                            f"--user-data-dir={self.profile.name}", *args],
                           capture_output=True, timeout=120)
        self.assertEqual(p.returncode, 0, p.stderr.decode(errors="replace")[-2000:])
        return p

    def dom(self, fragment="", report=None):
        url = "file://" + os.path.abspath(report or self.report) + fragment
        p = self.chromium("--dump-dom", url)
        d = Dom()
        d.feed(p.stdout.decode())
        self.assertEqual(d.body_attrs.get("data-ready"), "1", "the page's script did not run")
        return d

    def test_table_rendered_sorted_counted_and_redacted(self):
        self.assertEqual(len(self.expected), 4)
        d = self.dom()
        rows = d.rows
        self.assertEqual(len(rows), len(self.expected))
        # Sorted by the script: severity, most severe first, stable.
        sev = [int(r["attrs"]["data-sev"]) for r in rows]
        self.assertEqual(sev, sorted(sev, reverse=True))
        self.assertNotEqual(sev, [int(r["attrs"]["data-sev"]) for r in self.file_rows()],
                            "the fixture must need sorting")
        self.assertEqual(d.heads[0].get("aria-sort"), "descending")
        self.assertEqual(d.by_id["count"]["text"], "4 findings")
        # The expected rows: severity, detector, path:line and the redacted
        # secret of every finding, and nothing else.
        got = sorted(("".join(r["cells"][0]).strip(), "".join(r["cells"][3]).strip(),
                      "".join(r["cells"][4]).strip()) for r in rows)
        want = sorted((f["severity"], f"{f['path']}:{f['line']}", f["redacted"])
                      for f in self.expected)
        self.assertEqual(got, want)
        self.assertIn("<b>bold</b>.py:1", "".join("".join(r["cells"][3]) for r in rows),
                      "a path is text, never markup")
        # The lines around each finding, with every secret in them redacted.
        self.assertEqual(len(d.pres), 4)
        env_ctx = [p for p in d.pres if "REGION=eu-west-1" in p]
        self.assertEqual(len(env_ctx), 2)
        for ctx in env_ctx:
            self.assertIn("AWS_SECRET_ACCESS_KEY=", ctx)
            self.assertIn("ghp_", ctx)
        self.assertTrue(any("retries = 3" in p for p in d.pres))
        text = "".join(d.text)
        for s in self.secrets:
            self.assertNotIn(s, text)
        with open(self.report, encoding="utf-8") as f:
            raw = f.read()
        for s in self.secrets:
            self.assertNotIn(s, raw)

    def file_rows(self):
        d = Dom()
        with open(self.report, encoding="utf-8") as f:
            d.feed(f.read())
        return d.rows

    def test_filter_from_the_address(self):
        d = self.dom("#filter=deploy.env")
        shown = [r for r in d.rows if "hidden" not in r["attrs"]]
        self.assertEqual(len(shown), 2)
        self.assertTrue(all("deploy.env" in "".join(r["cells"][3]) for r in shown))
        self.assertEqual(d.by_id["count"]["text"], "2 of 4 findings match \u201cdeploy.env\u201d")
        nothing = self.dom("#filter=no-such-thing")
        self.assertTrue(all("hidden" in r["attrs"] for r in nothing.rows))
        self.assertNotIn("hidden", nothing.by_id["none"]["attrs"])

    def test_screenshot_paints_the_page(self):
        shot = os.path.join(self.profile.name, "report.png")  # never kept
        self.chromium(f"--screenshot={shot}", "--window-size=1280,900",
                      "--hide-scrollbars", "file://" + os.path.abspath(self.report))
        w, h, colours = png_size_and_colours(shot)
        self.assertEqual((w, h), (1280, 900))
        # A blank page compresses to a handful of byte values; text, the
        # severity badges and anti-aliasing give many.
        self.assertGreater(colours, 40)

    def test_a_clean_scan_renders_an_empty_table(self):
        clean = os.path.join(self.tmp, "clean")
        write(clean, "a.txt", "nothing to see\n")
        report = os.path.join(self.tmp, "clean.html")
        p = run("scan", "--no-config", "-f", "html", "-o", report, clean, env=self.env)
        self.assertEqual(p.returncode, 0, p.stderr)
        d = self.dom(report=report)
        self.assertEqual(d.rows, [])
        self.assertEqual(d.by_id["count"]["text"], "0 findings")
        self.assertIn("hidden", d.by_id["none"]["attrs"])


if __name__ == "__main__":
    unittest.main()
