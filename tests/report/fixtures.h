/*
 * fixtures.h - findings shared by the report tests: a plain one, one with
 * everything (companion, git, several locations, decoding, verify), one full
 * of hostile bytes (quotes, control characters, invalid UTF-8, markup), and
 * two more so rules and path groups repeat.  All secrets are made up.  Each
 * secret has a middle part (the *_MIDDLE strings) that redaction must never
 * show, so a test can look for it in any output.
 */
#ifndef KH_TEST_REPORT_FIXTURES_H
#define KH_TEST_REPORT_FIXTURES_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "report/report.h"

#define PAT_SECRET "ghp_ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
#define PAT_MIDDLE "IJKLMNOPQRSTUVWX"
#define AWS_SECRET "AKIAQWERTYUIOPASDFGH"
#define AWS_MIDDLE "QWERTYUIOP"
#define AWS_COMPANION "Zq8vN2mLr5Tt0yHc3Wd9Kx1Pb7Fg4Js6Ua2Ee8Qo"
#define AWS_COMPANION_MIDDLE "mLr5Tt0yHc3Wd9"
/* A quote, a backslash, C0 controls, stray 0xff 0xfe, a newline. */
#define ODD_SECRET "p\x01w\"d\\\xff\xfe\nMIDDLEMARK-x\x1b[31m-tail"
#define ODD_MIDDLE "MIDDLEMARK"

static const kh_detector_info fx_pat_detector = {
    .id = "github-classic-pat", .name = "GitHub Personal Access Token",
    .service = "github", .severity = KH_SEVERITY_CRITICAL};
static const kh_detector_info fx_aws_detector = {
    .id = "aws-access-key", .name = "AWS Access Key", .service = "aws",
    .severity = KH_SEVERITY_HIGH};
static const kh_detector_info fx_odd_detector = {
    .id = "odd-\"detector\"", .name = "Odd </td><script>alert(1)</script> \"Token\"",
    .service = "security", .severity = KH_SEVERITY_MEDIUM};
static const kh_detector_info fx_low_detector = {
    .id = "generic-password", .name = "Generic Password", .service = "",
    .severity = KH_SEVERITY_LOW};

#define FX_COUNT 5

typedef struct fx_set {
    report_finding f[FX_COUNT];
    report_location loc[FX_COUNT + 1];
    report_companion comp[1];
    char *decoded[2];
    char secrets[FX_COUNT][64];
} fx_set;

static inline void fx_finding(report_finding *f, const kh_detector_info *d, const char *secret,
                       size_t len, double confidence, char *buf)
{
    memcpy(buf, secret, len);
    buf[len] = '\0';
    f->detector = d;
    f->severity = d->severity;
    f->confidence = confidence;
    f->secret = buf;
    f->secret_len = len;
    kh_redact((const uint8_t *)buf, len, f->redacted, sizeof f->redacted);
    kh_fingerprint(d->id, (const uint8_t *)buf, len, f->fingerprint);
}

/* Fills s; nothing in it is on the heap. */
static inline void fx_build(fx_set *s)
{
    memset(s, 0, sizeof *s);
    report_finding *f = s->f;

    fx_finding(&f[0], &fx_pat_detector, PAT_SECRET, sizeof PAT_SECRET - 1, 0.97, s->secrets[0]);
    s->loc[0] = (report_location){.path = "src/config.py", .offset = 210, .length = 40,
                                  .line = 12, .column = 5, .end_line = 12, .end_column = 44,
                                  .context = "11  # deploy\n"
                                             "12  token = \"ghp_\xe2\x80\xa6" "6789\"\n"};
    f[0].locations = &s->loc[0];
    f[0].location_count = 1;
    f[0].description = "A classic personal access token grants the scopes of its owner.";

    fx_finding(&f[1], &fx_aws_detector, AWS_SECRET, sizeof AWS_SECRET - 1, 0.85, s->secrets[1]);
    s->loc[1] = (report_location){.path = "dir with space/we\"ird#%?.env", .offset = 0,
                                  .length = 20, .line = 1, .column = 1, .end_line = 1,
                                  .end_column = 20,
                                  .commit = "0123456789abcdef0123456789abcdef01234567",
                                  .author = "Jane \"JD\" Doe\nInjected",
                                  .email = "jane@example.com", .date = "2024-05-01T12:00:00Z"};
    s->loc[2] = (report_location){.path = "other\\win\\path.txt", .offset = 99, .length = 20,
                                  .line = 7, .column = 3, .end_line = 7, .end_column = 22};
    f[1].locations = &s->loc[1];
    f[1].location_count = 2;
    s->comp[0] = (report_companion){.name = "secret_key", .value = AWS_COMPANION, .line = 2};
    f[1].companions = s->comp;
    f[1].companion_count = 1;
    s->decoded[0] = "base64";
    s->decoded[1] = "url";
    f[1].decoded_from = s->decoded;
    f[1].decoded_count = 2;
    f[1].verify_status = "live";
    f[1].verify_reason = "HTTP 200 from the \"whoami\" call";

    fx_finding(&f[2], &fx_odd_detector, ODD_SECRET, sizeof ODD_SECRET - 1, 0.5, s->secrets[2]);
    s->loc[3] = (report_location){.path = "<img src=x onerror=alert(1)>\x1b[2J\xc3(.txt",
                                  .offset = 5, .length = 31, .line = 3, .column = 9,
                                  .end_line = 4, .end_column = 2,
                                  .context = "<script>alert('x')</script>\n\xff\xfe bad bytes\r\n"};
    f[2].locations = &s->loc[3];
    f[2].location_count = 1;
    f[2].description = "Line one\nLine \"two\" \\ with \x01 control";

    fx_finding(&f[3], &fx_low_detector, "hunter2hunter2", 14, 0.3333333, s->secrets[3]);
    s->loc[4] = (report_location){.path = "/abs/path/settings.ini", .offset = 1000,
                                  .length = 14, .line = 40, .column = 10, .end_line = 40,
                                  .end_column = 23};
    f[3].locations = &s->loc[4];
    f[3].location_count = 1;
    f[3].severity = KH_SEVERITY_INFO; /* an override below the detector's */

    /* Same detector and file as the first, not adjacent to it. */
    fx_finding(&f[4], &fx_pat_detector, "ghp_zyxwvutsrqponmlkjihgfedcba9876543210", 40, 1.0,
               s->secrets[4]);
    s->loc[5] = (report_location){.path = "src/config.py", .offset = 400, .length = 40,
                                  .line = 30, .column = 1, .end_line = 30, .end_column = 40};
    f[4].locations = &s->loc[5];
    f[4].location_count = 1;
}

static const report_stats fx_stats = {.files_scanned = 12, .bytes_scanned = 1234567,
                                      .files_skipped = 2, .findings = FX_COUNT,
                                      .suppressed = 1, .elapsed_seconds = 0.125,
                                      .detectors = 42};

/* Runs a writer into a heap string (NUL-terminated); returns its rc. */
static inline int fx_render(const report_opts *o, const report_finding *f, size_t n,
                     const report_stats *st, char **text, size_t *len)
{
    *text = NULL;
    *len = 0;
    FILE *m = open_memstream(text, len);
    if (!m)
        return -2;
    int rc = report_write(m, o, f, n, st);
    fclose(m);
    return rc;
}

/* Path of a file under tests/data, from the repository root (where the
 * test runner starts) or, failing that, from this source file's place. */
static inline const char *fx_data(const char *name, char *buf, size_t size)
{
    snprintf(buf, size, "tests/data/%s", name);
    if (access(buf, R_OK) == 0)
        return buf;
    const char *here = __FILE__;
    const char *slash = strrchr(here, '/');
    int dir = slash ? (int)(slash - here) : 0;
    snprintf(buf, size, "%.*s%s../data/%s", dir, here, slash ? "/" : "", name);
    return buf;
}

#endif
