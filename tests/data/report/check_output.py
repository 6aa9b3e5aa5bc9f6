"""Structural checks of keyhog's machine-readable reports, run by
tests/report/test_formats.c.  Exit status 0 means every file passed; on
failure the reason goes to stderr.

  check_output.py SCHEMA MODE FILE COUNT show|hide [MODE FILE COUNT show|hide ...]

MODE is json, jsonl or sarif; SCHEMA is the SARIF 2.1.0 JSON schema; COUNT
is the number of findings the file must hold.  Several files go in one run
because starting Python and loading jsonschema is most of the cost.  Every
file must also be valid UTF-8 (the writers promise it whatever the input
bytes were)."""
import json
import re
import sys

FINDING_KEYS = ["detector_id", "detector_name", "service", "severity", "confidence",
                "path", "line", "column", "end_line", "end_column", "offset", "length",
                "redacted", "fingerprint"]
SEVERITIES = {"critical", "high", "medium", "low", "info"}
URI_OK = re.compile(r"^(file://)?([A-Za-z0-9\-._~/!$&'()*+,;=@]|%[0-9A-F]{2})*$")


def fail(msg):
    sys.stderr.write("check_output: %s\n" % msg)
    sys.exit(1)


def check_finding(f, show):
    for k in FINDING_KEYS:
        if k not in f:
            fail("finding lacks %r: %r" % (k, f))
    if list(f.keys())[:len(FINDING_KEYS)] != FINDING_KEYS:
        fail("keys out of order: %r" % list(f.keys()))
    if f["severity"] not in SEVERITIES:
        fail("bad severity %r" % f["severity"])
    if not isinstance(f["confidence"], (int, float)) or not 0 <= f["confidence"] <= 1:
        fail("bad confidence %r" % f["confidence"])
    if not re.fullmatch(r"[0-9a-f]{64}", f["fingerprint"]):
        fail("bad fingerprint %r" % f["fingerprint"])
    if ("secret" in f) != show:
        fail("secret present=%s with show=%s" % ("secret" in f, show))
    for c in f.get("companions", []):
        if sorted(c) != ["line", "name", "value"]:
            fail("bad companion %r" % c)
    if "locations" in f:
        if len(f["locations"]) < 2:
            fail("locations present with fewer than two entries")
        first = f["locations"][0]
        for k in ("path", "line", "column", "end_line", "end_column", "offset", "length"):
            if first[k] != f[k]:
                fail("top-level %s differs from locations[0]" % k)
    if "verify" in f and sorted(f["verify"]) != ["reason", "status"]:
        fail("bad verify %r" % f["verify"])


def check_confidence_text(text):
    for m in re.finditer(r'"confidence": ?(-?[0-9.eE+]+)', text):
        if not re.fullmatch(r"[01]\.[0-9]{2,4}", m.group(1)):
            fail("confidence not written with 2-4 decimals: %s" % m.group(1))


def check_sarif(doc, count, schema_path):
    import jsonschema
    with open(schema_path, encoding="utf-8") as fh:
        schema = json.load(fh)
    cls = jsonschema.validators.validator_for(schema)
    errors = sorted(cls(schema).iter_errors(doc), key=lambda e: list(e.path))
    if errors:
        fail("schema: %s at %s" % (errors[0].message, list(errors[0].path)))
    run = doc["runs"][0]
    rules = run["tool"]["driver"]["rules"]
    ids = [r["id"] for r in rules]
    if len(set(ids)) != len(ids):
        fail("duplicate rules %r" % ids)
    results = run["results"]
    if len(results) != count:
        fail("%d results, want %d" % (len(results), count))
    for r in results:
        if ids[r["ruleIndex"]] != r["ruleId"]:
            fail("ruleIndex %d does not name %s" % (r["ruleIndex"], r["ruleId"]))
        locs = r.get("locations", []) + r.get("relatedLocations", [])
        for loc in locs:
            uri = loc["physicalLocation"]["artifactLocation"]["uri"]
            if not URI_OK.match(uri):
                fail("uri not a clean URI reference: %r" % uri)
            reg = loc["physicalLocation"]["region"]
            if "endColumn" in reg and reg.get("endLine") == reg.get("startLine") \
                    and reg["endColumn"] <= reg["startColumn"]:
                fail("empty region %r" % reg)
        if not re.fullmatch(r"[0-9a-f]{64}", r["partialFingerprints"]["keyhog/v1"]):
            fail("bad partial fingerprint")
    for rule in rules:
        sev = rule["properties"]["security-severity"]
        if not isinstance(sev, str) or not 0 <= float(sev) <= 10:
            fail("bad security-severity %r" % sev)


def check_file(mode, path, count, show, schema):
    with open(path, "rb") as fh:
        raw = fh.read()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        fail("%s: not UTF-8: %s" % (path, e))
    if mode == "jsonl":
        lines = text.split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        if len(lines) != count:
            fail("%d lines, want %d" % (len(lines), count))
        for line in lines:
            f = json.loads(line)
            if not isinstance(f, dict):
                fail("line is not an object")
            check_finding(f, show)
        check_confidence_text(text)
    elif mode == "json":
        doc = json.loads(text)
        if sorted(doc) != ["findings", "stats"]:
            fail("top-level keys %r" % sorted(doc))
        if len(doc["findings"]) != count:
            fail("%d findings, want %d" % (len(doc["findings"]), count))
        for f in doc["findings"]:
            check_finding(f, show)
        want = ["files_scanned", "bytes_scanned", "files_skipped", "findings", "suppressed",
                "elapsed_seconds", "detectors"]
        if list(doc["stats"]) != want:
            fail("stats keys %r" % list(doc["stats"]))
        if count and not text.startswith('{\n  "findings": [\n    {\n      "detector_id"'):
            fail("not pretty-printed with 2-space indent")
        check_confidence_text(text)
    elif mode == "sarif":
        check_sarif(json.loads(text), count, schema)
    else:
        fail("unknown mode %r" % mode)


def main():
    schema, args = sys.argv[1], sys.argv[2:]
    if not args or len(args) % 4:
        fail("usage: check_output.py SCHEMA MODE FILE COUNT show|hide ...")
    for i in range(0, len(args), 4):
        mode, path, count, show = args[i:i + 4]
        check_file(mode, path, int(count), show == "show", schema)


if __name__ == "__main__":
    main()
