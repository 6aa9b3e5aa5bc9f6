"""Every option that `--help` prints is documented in docs/<command>.md, and
every documented option exists."""
import os
import re
import unittest

from khtest import ROOT, run

COMMANDS = {
    "scan": ["scan", "--help"],
    "detectors": ["detectors", "--help"],
    "baseline": ["baseline", "--help"],
    "calibrate": ["calibrate", "--help"],
}
OPTION = re.compile(r"(?<![\w-])(--[a-z][a-z0-9-]+)")


class DocsTest(unittest.TestCase):
    def test_every_option_documented(self):
        for name, args in COMMANDS.items():
            help_text = run(*args).stdout.decode()
            page = os.path.join(ROOT, "docs", f"{name}.md")
            self.assertTrue(os.path.exists(page), page)
            doc = open(page).read()
            in_help = set(OPTION.findall(help_text)) - {"--help"}
            self.assertTrue(in_help or name == "baseline", name)
            missing = sorted(o for o in in_help if o not in doc)
            self.assertEqual(missing, [], f"docs/{name}.md lacks {missing}")
            # Headings of the form "### `--option`" must name real options.
            documented = set(re.findall(r"^###\s+`(--[a-z0-9-]+)", doc, re.M))
            self.assertEqual(sorted(documented - in_help), [], f"docs/{name}.md documents "
                             "options --help does not list")

    def test_top_level_help_lists_every_page(self):
        help_text = run("--help").stdout.decode()
        for name in COMMANDS:
            self.assertIn(name, help_text)
