/*
 * test_confidence.c - the confidence model: C features agree with the
 * Python definition (tools/train/features.py) on the vectors train.py
 * wrote, the weights file matches the feature list, and scores order
 * candidates the way a reviewer would.
 *
 * The vectors file is found through $KH_TESTDATA, then relative to the
 * working directory (the repository root under tests/run.sh), then
 * relative to this source file.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "triage/triage.h"

/* ---- helpers ---------------------------------------------------------- */

static spec_detector make_detector(char **keywords, size_t count)
{
    spec_detector d;
    memset(&d, 0, sizeof d);
    d.id = "test-detector";
    d.keywords = keywords;
    d.keyword_count = count;
    return d;
}

/* Confidence of `secret`, found inside `line`, in a file at `path`. */
static double score_in(const spec_detector *d, const char *line, const char *secret,
                       const char *path, int checksum)
{
    const char *at = strstr(line, secret);
    assert_non_null(at);
    triage_input in = {
        .detector = d,
        .data = (const uint8_t *)line,
        .data_len = strlen(line),
        .secret_offset = (size_t)(at - line),
        .secret_len = strlen(secret),
        .match_offset = (size_t)(at - line),
        .match_len = strlen(secret),
        .path = path,
        .checksum = checksum,
    };
    double c = triage_confidence(&in);
    assert_true(c >= 0.0 && c <= 1.0);
    return c;
}

/* ---- ordering sanity -------------------------------------------------- */

static const char valid_token[] = "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";

static void test_ordering(void **state)
{
    (void)state;
    char *kw[] = {"ghp_"};
    spec_detector d = make_detector(kw, 1);
    char line[256];
    snprintf(line, sizeof line, "import os\ntoken = \"%s\"\n", valid_token);
    int ck = triage_checksum("github-crc32", (const uint8_t *)valid_token, strlen(valid_token));
    assert_int_equal(ck, 1);

    double in_src = score_in(&d, line, valid_token, "src/app.py", 1);
    double in_tests = score_in(&d, line, valid_token, "tests/fixtures/x.py", 1);
    const char *fake = "ghp_EXAMPLEEXAMPLEEXAMPLEEXAMPLEEXAMPLE";
    char fake_line[256];
    snprintf(fake_line, sizeof fake_line, "token = \"%s\"\n", fake);
    double example = score_in(&d, fake_line, fake, "src/app.py", -1);

    assert_true(in_src > in_tests);
    assert_true(in_tests > example);
    /* The real one clears the recommended threshold, the fake does not. */
    assert_true(in_src >= triage_min_confidence_default());
    assert_true(example < triage_min_confidence_default());
}

static void test_each_sign_moves_the_right_way(void **state)
{
    (void)state;
    char *kw[] = {"ghp_"};
    spec_detector d = make_detector(kw, 1);
    char line[256];
    snprintf(line, sizeof line, "token = \"%s\"\n", valid_token);
    double base = score_in(&d, line, valid_token, "src/app.py", 1);

    assert_true(score_in(&d, line, valid_token, "src/app.py", -1) < base);
    assert_true(score_in(&d, line, valid_token, "docs/setup.md", 1) < base);
    assert_true(score_in(&d, line, valid_token, "vendor/lib/a.go", 1) < base);
    assert_true(score_in(&d, line, valid_token, "yarn.lock", 1) < base);
    assert_true(score_in(&d, line, valid_token, "C:\\repo\\TESTS\\a.py", 1) < base);

    char hash_line[256];
    snprintf(hash_line, sizeof hash_line, "sha256 = \"%s\"\n", valid_token);
    assert_true(score_in(&d, hash_line, valid_token, "src/app.py", 1) < base);

    /* Generic detector, same text: no distinctive prefix, lower prior. */
    char *generic_kw[] = {"token"};
    spec_detector g = make_detector(generic_kw, 1);
    const char *body = valid_token + 4;
    snprintf(line, sizeof line, "token = \"%s\"\n", body);
    assert_true(score_in(&g, line, body, "src/app.py", 0) < base);

    /* A placeholder in the same spot. */
    snprintf(line, sizeof line, "token = \"%s\"\n", "your_token_here");
    assert_true(score_in(&g, line, "your_token_here", "src/app.py", 0) <
                score_in(&g, "token = \"qT7vR2mX9pLk4sW8nB3c\"\n", "qT7vR2mX9pLk4sW8nB3c",
                         "src/app.py", 0));
}

/* Path hints, one row per pattern so that dropping any pattern fails. */
static void test_path_hints(void **state)
{
    (void)state;
    enum { TEST = 14, DOCS, VENDOR, LOCK };
    struct {
        const char *path;
        int test, docs, vendor, lock;
    } rows[] = {
        {"src/app.py", 0, 0, 0, 0},
        {"tests/a.py", 1, 0, 0, 0},            {"pkg/test/a.go", 1, 0, 0, 0},
        {"web/__tests__/a.js", 1, 0, 0, 0},    {"spec/a.rb", 1, 0, 0, 0},
        {"x/specs/a.rb", 1, 0, 0, 0},          {"x/fixtures/a.json", 1, 0, 0, 0},
        {"x/fixture/a.json", 1, 0, 0, 0},      {"x/testdata/a", 1, 0, 0, 0},
        {"x/test_auth.py", 1, 0, 0, 0},        {"auth_test.go", 1, 0, 0, 0},
        {"auth.test.ts", 1, 0, 0, 0},          {"auth.spec.js", 1, 0, 0, 0},
        {"auth_spec.rb", 1, 0, 0, 0},          {"src/MockClient.java", 1, 0, 0, 0},
        {"e2e/a.js", 1, 0, 0, 0},              {"internal/testing/h.go", 1, 0, 0, 0},
        {"conftest.py", 1, 0, 0, 0},           {"C:\\Proj\\Tests\\a.cs", 1, 0, 0, 0},
        {"docs/a.html", 0, 1, 0, 0},           {"doc/a.html", 0, 1, 0, 0},
        {"examples/a.py", 0, 1, 0, 0},         {"example/a.py", 0, 1, 0, 0},
        {"samples/a.sh", 0, 1, 0, 0},          {"sample/a.sh", 0, 1, 0, 0},
        {"demo/a.py", 0, 1, 0, 0},             {"README", 0, 1, 0, 0},
        {"CHANGELOG", 0, 1, 0, 0},             {"guide.MD", 0, 1, 0, 0},
        {"guide.rst", 0, 1, 0, 0},             {"guide.adoc", 0, 1, 0, 0},
        {"notes.txt", 0, 0, 0, 0},             {"guide.md.py", 0, 0, 0, 0},
        {"vendor/a.go", 0, 0, 1, 0},           {"node_modules/a/b.js", 0, 0, 1, 0},
        {"third_party/a.c", 0, 0, 1, 0},       {"third-party/a.c", 0, 0, 1, 0},
        {"lib/site-packages/a.py", 0, 0, 1, 0}, {"bower_components/a.js", 0, 0, 1, 0},
        {"static/app.min.js", 0, 0, 1, 0},
        {"Cargo.lock", 0, 0, 0, 1},            {"package-lock.json", 0, 0, 0, 1},
        {"pnpm-lock.yaml", 0, 0, 0, 1},        {"go.sum", 0, 0, 0, 1},
        {"npm-shrinkwrap.json", 0, 0, 0, 1},   {"go.sum.bak", 0, 0, 0, 0},
        {"latest/contest.py", 0, 0, 0, 0},     {"attestation/a.py", 0, 0, 0, 0},
    };
    /* Every path from the same buffer, each asked twice: the features a
     * thread keeps for its last path (triage_path_features) follow the
     * path's bytes, not where they lie. */
    char path[64];
    for (size_t i = 0; i < 2 * (sizeof rows / sizeof rows[0]); i++) {
        size_t r = i / 2;
        snprintf(path, sizeof path, "%s", rows[r].path);
        triage_input in = {.data = (const uint8_t *)"k = v", .data_len = 5, .secret_offset = 4,
                           .secret_len = 1, .path = path};
        double f[TRIAGE_FEATURE_COUNT];
        triage_features(&in, f);
        if (f[TEST] != rows[r].test || f[DOCS] != rows[r].docs || f[VENDOR] != rows[r].vendor ||
            f[LOCK] != rows[r].lock)
            fail_msg("%s: test %g docs %g vendor %g lock %g", rows[r].path, f[TEST], f[DOCS],
                     f[VENDOR], f[LOCK]);
    }
    /* Paths that share all but their end, one after the other. */
    static const char *const seq[] = {"go.sum", "go.sum.bak", "go.sum", "go.su"};
    static const int lock[] = {1, 0, 1, 0};
    for (size_t i = 0; i < 4; i++) {
        snprintf(path, sizeof path, "%s", seq[i]);
        triage_input in = {.data = (const uint8_t *)"k = v", .data_len = 5, .secret_offset = 4,
                           .secret_len = 1, .path = path};
        double f[TRIAGE_FEATURE_COUNT];
        triage_features(&in, f);
        assert_true(f[LOCK] == lock[i]);
    }
}

/* The secret's own features at their boundaries. */
static void test_secret_features(void **state)
{
    (void)state;
    enum { HEX_ONLY = 19, PLACEHOLDER = 7, ENTROPY = 3, CLASS_MIX = 5, REPEAT = 6 };
    struct {
        const char *secret;
        int feature;
        double value;
    } rows[] = {
        {"0123456789abcde", HEX_ONLY, 0},   /* 15 hex digits */
        {"9f86d081884c7d65", HEX_ONLY, 1},  /* 16 */
        {"9f86d081884c7d6g", HEX_ONLY, 0},
        {"xxxxxxxx", PLACEHOLDER, 1},
        {"abcdefgh", ENTROPY, 1},           /* 8 distinct of 8: at the cap */
        {"aaaaaaaa", ENTROPY, 0},
        {"aB3", CLASS_MIX, 1},
        {"ab", CLASS_MIX, 1.0 / 3.0},
        {"aab", REPEAT, 2.0 / 3.0},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        size_t n = strlen(rows[i].secret);
        triage_input in = {.data = (const uint8_t *)rows[i].secret, .data_len = n,
                           .secret_len = n};
        double f[TRIAGE_FEATURE_COUNT];
        triage_features(&in, f);
        if (fabs(f[rows[i].feature] - rows[i].value) > 1e-12)
            fail_msg("%s: feature %s = %g, want %g", rows[i].secret,
                     triage_feature_name((size_t)rows[i].feature), f[rows[i].feature], rows[i].value);
    }
}

static void test_degenerate_inputs(void **state)
{
    (void)state;
    assert_true(triage_confidence(NULL) >= 0.0);
    triage_input empty = {0};
    double c = triage_confidence(&empty);
    assert_true(c >= 0.0 && c <= 1.0);
    /* Offsets past the end are clamped, not read. */
    uint8_t *buf = malloc(4);
    assert_non_null(buf);
    memcpy(buf, "abcd", 4);
    triage_input past = {.data = buf, .data_len = 4, .secret_offset = 2, .secret_len = 100};
    c = triage_confidence(&past);
    assert_true(c >= 0.0 && c <= 1.0);
    past.secret_offset = 1000;
    c = triage_confidence(&past);
    assert_true(c >= 0.0 && c <= 1.0);
    free(buf);
}

/* One 4 MiB line: the context scan is bounded, so this is fast. */
static void test_huge_line(void **state)
{
    (void)state;
    size_t n = 4u << 20;
    uint8_t *buf = malloc(n);
    assert_non_null(buf);
    memset(buf, 'k', n);
    memcpy(buf + n / 2, valid_token, sizeof valid_token - 1);
    triage_input in = {.data = buf, .data_len = n, .secret_offset = n / 2,
                       .secret_len = sizeof valid_token - 1, .path = "a.min.js", .checksum = 1};
    double f[TRIAGE_FEATURE_COUNT];
    for (int i = 0; i < 200; i++)
        triage_features(&in, f);
    assert_true(f[0] == 1.0);
    free(buf);
}

static void test_feature_names(void **state)
{
    (void)state;
    static const char *const expected[TRIAGE_FEATURE_COUNT] = {
        "checksum_valid", "checksum_invalid", "prefix_keyword", "entropy_ratio",
        "length_log", "class_mix", "repeat_ratio", "placeholder", "soft_placeholder",
        "assignment", "key_context", "env_reference", "hash_context", "comment_line",
        "path_test", "path_docs", "path_vendor", "path_lockfile", "decoded", "hex_only",
    };
    for (size_t i = 0; i < TRIAGE_FEATURE_COUNT; i++) {
        assert_non_null(triage_feature_name(i));
        assert_string_equal(triage_feature_name(i), expected[i]);
    }
    assert_null(triage_feature_name(TRIAGE_FEATURE_COUNT));
    double t = triage_min_confidence_default();
    assert_true(t > 0.0 && t < 1.0);
}

/* ---- vectors from train.py -------------------------------------------- */

static FILE *open_vectors(void)
{
    char path[4096];
    const char *dir = getenv("KH_TESTDATA");
    if (dir) {
        snprintf(path, sizeof path, "%s/triage/vectors.txt", dir);
        FILE *f = fopen(path, "r");
        if (f)
            return f;
    }
    FILE *f = fopen("tests/data/triage/vectors.txt", "r");
    if (f)
        return f;
    snprintf(path, sizeof path, "%s", __FILE__);
    char *slash = strrchr(path, '/');
    if (slash) {
        snprintf(slash + 1, sizeof path - (size_t)(slash + 1 - path), "../data/triage/vectors.txt");
        f = fopen(path, "r");
    }
    return f;
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* Decodes a hex field ("-" or "=" = empty) into a fresh NUL-ended buffer. */
static uint8_t *unhex(const char *s, size_t *len)
{
    size_t n = strcmp(s, "-") == 0 || strcmp(s, "=") == 0 ? 0 : strlen(s);
    assert_true(n % 2 == 0);
    uint8_t *out = malloc(n / 2 + 1);
    assert_non_null(out);
    for (size_t i = 0; i < n / 2; i++) {
        int hi = hexval(s[2 * i]), lo = hexval(s[2 * i + 1]);
        assert_true(hi >= 0 && lo >= 0);
        out[i] = (uint8_t)(hi * 16 + lo);
    }
    out[n / 2] = '\0';
    *len = n / 2;
    return out;
}

static void test_vectors_agree_with_python(void **state)
{
    (void)state;
    FILE *f = open_vectors();
    if (!f)
        fail_msg("tests/data/triage/vectors.txt not found (set KH_TESTDATA)");
    size_t cap = 1 << 16, checked = 0;
    char *line = malloc(cap);
    assert_non_null(line);
    ssize_t got;
    while ((got = getline(&line, &cap, f)) > 0) {
        if (line[0] == '#' || line[0] == '\n')
            continue;
        line[strcspn(line, "\n")] = '\0';
        char *fields[8 + TRIAGE_FEATURE_COUNT];
        size_t nf = 0;
        for (char *save = NULL, *tok = strtok_r(line, "\t", &save); tok && nf < 8 + TRIAGE_FEATURE_COUNT;
             tok = strtok_r(NULL, "\t", &save))
            fields[nf++] = tok;
        assert_int_equal(nf, 8 + TRIAGE_FEATURE_COUNT);

        /* keywords: comma-separated hex */
        char *kw[16];
        size_t kw_count = 0;
        if (strcmp(fields[0], "-") != 0) {
            for (char *save = NULL, *tok = strtok_r(fields[0], ",", &save); tok && kw_count < 16;
                 tok = strtok_r(NULL, ",", &save)) {
                size_t l;
                kw[kw_count++] = (char *)unhex(tok, &l);
            }
        }
        spec_detector d = make_detector(kw, kw_count);
        size_t path_len, data_len;
        uint8_t *path = strcmp(fields[1], "-") == 0 ? NULL : unhex(fields[1], &path_len);
        uint8_t *data = unhex(fields[2], &data_len);
        triage_input in = {
            .detector = &d,
            .data = data,
            .data_len = data_len,
            .secret_offset = strtoull(fields[3], NULL, 10),
            .secret_len = strtoull(fields[4], NULL, 10),
            .path = (const char *)path,
            .checksum = atoi(fields[5]),
            .decoded = atoi(fields[6]),
        };
        double want[TRIAGE_FEATURE_COUNT], have[TRIAGE_FEATURE_COUNT];
        for (size_t i = 0; i < TRIAGE_FEATURE_COUNT; i++)
            want[i] = strtod(fields[7 + i], NULL);
        triage_features(&in, have);
        for (size_t i = 0; i < TRIAGE_FEATURE_COUNT; i++) {
            if (fabs(have[i] - want[i]) > 1e-6)
                fail_msg("vector %zu feature %s: C %.9g, Python %.9g", checked,
                         triage_feature_name(i), have[i], want[i]);
        }
        double want_conf = strtod(fields[7 + TRIAGE_FEATURE_COUNT], NULL);
        double conf = triage_confidence(&in);
        if (fabs(conf - want_conf) > 1e-6)
            fail_msg("vector %zu confidence: C %.9g, Python %.9g", checked, conf, want_conf);
        for (size_t i = 0; i < kw_count; i++)
            free(kw[i]);
        free(path);
        free(data);
        checked++;
    }
    free(line);
    fclose(f);
    assert_true(checked >= 20);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_feature_names),
        cmocka_unit_test(test_ordering),
        cmocka_unit_test(test_each_sign_moves_the_right_way),
        cmocka_unit_test(test_path_hints),
        cmocka_unit_test(test_secret_features),
        cmocka_unit_test(test_degenerate_inputs),
        cmocka_unit_test(test_huge_line),
        cmocka_unit_test(test_vectors_agree_with_python),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
