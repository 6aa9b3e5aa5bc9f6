/*
 * test_formats.c - every output format over the fixture findings: the text
 * and JSONL goldens in tests/data/report, JSON and JSONL structure and SARIF
 * schema validity checked by tests/data/report/check_output.py (Python's
 * json and jsonschema), redaction in every format, escaping of hostile
 * bytes, and the HTML page's self-containment.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "fixtures.h"

typedef struct env {
    char dir[64];
    const char *python; /* one with jsonschema */
    char checker[512];
    char schema[512];
} env;

static int setup(void **state)
{
    static env e;
    memset(&e, 0, sizeof e);
    snprintf(e.dir, sizeof e.dir, "/tmp/kh-test-report-XXXXXX");
    if (!mkdtemp(e.dir))
        return -1;
    static const char *const pythons[] = {"python3", "/usr/bin/python3"};
    for (size_t i = 0; i < 2 && !e.python; i++) {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "%s -c 'import json, jsonschema' >/dev/null 2>&1", pythons[i]);
        if (system(cmd) == 0)
            e.python = pythons[i];
    }
    fx_data("report/check_output.py", e.checker, sizeof e.checker);
    fx_data("sarif-schema-2.1.0.json", e.schema, sizeof e.schema);
    *state = &e;
    return 0;
}

static int teardown(void **state)
{
    env *e = *state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", e->dir);
    return system(cmd) == 0 ? 0 : -1;
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = NULL;
    size_t n = 0;
    FILE *m = open_memstream(&buf, &n);
    char chunk[4096];
    size_t got;
    while ((got = fread(chunk, 1, sizeof chunk, f)) > 0)
        fwrite(chunk, 1, got, m);
    fclose(f);
    fclose(m);
    *len = n;
    return buf;
}

/* Writes `format` for the fixtures into the temp dir as `name` and appends
 * the checker's arguments for it to args. */
static void add_check(env *e, report_format format, const char *mode, const char *name,
                      const report_finding *f, size_t n, int show, char *args, size_t cap)
{
    char path[128];
    snprintf(path, sizeof path, "%s/%s", e->dir, name);
    FILE *out = fopen(path, "wb");
    assert_non_null(out);
    report_opts o = {.format = format, .show_secrets = show, .tool_version = "9.9.9-test"};
    assert_int_equal(report_write(out, &o, f, n, &fx_stats), 0);
    assert_int_equal(fclose(out), 0);
    size_t used = strlen(args);
    int w = snprintf(args + used, cap - used, " %s '%s' %zu %s", mode, path, n,
                     show ? "show" : "hide");
    assert_true(w > 0 && (size_t)w < cap - used);
}

/* Runs the checker over the files named in args; returns its status. */
static int run_checker(env *e, const char *args, int quiet)
{
    char cmd[4096];
    assert_non_null(e->python); /* setup.sh installs python3-jsonschema */
    int w = snprintf(cmd, sizeof cmd, "%s '%s' '%s'%s%s", e->python, e->checker, e->schema,
                     args, quiet ? " 2>/dev/null" : "");
    assert_true(w > 0 && (size_t)w < sizeof cmd);
    return system(cmd);
}

static void assert_contains(const char *hay, const char *needle)
{
    if (!strstr(hay, needle))
        fail_msg("missing \"%s\"", needle);
}

static void assert_lacks(const char *hay, const char *needle)
{
    if (strstr(hay, needle))
        fail_msg("unexpected \"%s\"", needle);
}

static void test_format_parse(void **state)
{
    (void)state;
    assert_int_equal(report_format_parse("text"), REPORT_TEXT);
    assert_int_equal(report_format_parse("json"), REPORT_JSON);
    assert_int_equal(report_format_parse("JSONL"), REPORT_JSONL);
    assert_int_equal(report_format_parse("sarif"), REPORT_SARIF);
    assert_int_equal(report_format_parse("html"), REPORT_HTML);
    assert_int_equal(report_format_parse("xml"), -1);
    assert_int_equal(report_format_parse("jso"), -1);
    assert_int_equal(report_format_parse(""), -1);
    assert_int_equal(report_format_parse(NULL), -1);
}

static void test_text_golden(void **state)
{
    (void)state;
    fx_set s;
    fx_build(&s);
    char *text, golden_path[512];
    size_t len, glen;
    report_opts o = {.format = REPORT_TEXT};
    assert_int_equal(fx_render(&o, s.f, FX_COUNT, &fx_stats, &text, &len), 0);
    char *golden = slurp(fx_data("report/expected.txt", golden_path, sizeof golden_path), &glen);
    assert_non_null(golden);
    assert_int_equal(len, glen);
    assert_memory_equal(text, golden, len);
    /* Grouped: both src/config.py findings under one header. */
    const char *first = strstr(text, "src/config.py\n");
    assert_non_null(first);
    assert_null(strstr(first + 1, "src/config.py\n"));
    assert_lacks(text, "\033"); /* no colour unless asked; ESC from a path escaped */
    free(text);
    free(golden);
}

static void test_text_colour_and_empty(void **state)
{
    (void)state;
    fx_set s;
    fx_build(&s);
    char *text;
    size_t len;
    report_opts o = {.format = REPORT_TEXT, .color = 1};
    assert_int_equal(fx_render(&o, s.f, FX_COUNT, &fx_stats, &text, &len), 0);
    assert_contains(text, "\033[1msrc/config.py\033[0m\n");
    assert_contains(text, "\033[1;31mcritical\033[0m");
    assert_contains(text, "\033[33mmedium  \033[0m");
    assert_lacks(text, "\033[2J"); /* the one in a path must not reach the terminal */
    free(text);
    assert_int_equal(fx_render(&o, s.f, 0, &fx_stats, &text, &len), 0);
    assert_int_equal(len, 0);
    free(text);
}

static void test_jsonl_golden(void **state)
{
    (void)state;
    fx_set s;
    fx_build(&s);
    char *text, golden_path[512];
    size_t len, glen;
    report_opts o = {.format = REPORT_JSONL};
    assert_int_equal(fx_render(&o, s.f, FX_COUNT, &fx_stats, &text, &len), 0);
    char *golden = slurp(fx_data("report/expected.jsonl", golden_path, sizeof golden_path), &glen);
    assert_non_null(golden);
    assert_int_equal(len, glen);
    assert_memory_equal(text, golden, len);
    size_t lines = 0;
    for (size_t i = 0; i < len; i++)
        lines += text[i] == '\n';
    assert_int_equal(lines, FX_COUNT);
    free(text);
    free(golden);
}

static void test_json_escaping(void **state)
{
    (void)state;
    fx_set s;
    fx_build(&s);
    char *text;
    size_t len;
    report_opts o = {.format = REPORT_JSONL, .show_secrets = 1};
    assert_int_equal(fx_render(&o, s.f, FX_COUNT, NULL, &text, &len), 0);
    /* quote, backslash, C0 control, invalid UTF-8, newline, ESC */
    assert_contains(text, "\"secret\":\"p\\u0001w\\\"d\\\\\\ufffd\\ufffd\\u000aMIDDLEMARK-x"
                          "\\u001b[31m-tail\"");
    assert_contains(text, "\"path\":\"other\\\\win\\\\path.txt\"");
    assert_contains(text, "\"author\":\"Jane \\\"JD\\\" Doe\\u000aInjected\"");
    assert_contains(text, "\"path\":\"<img src=x onerror=alert(1)>\\u001b[2J\\ufffd(.txt\"");
    assert_contains(text, "\"secret\":\"" PAT_SECRET "\"");
    assert_contains(text, "\"value\":\"" AWS_COMPANION "\"");
    assert_contains(text, "\"confidence\":0.3333,");
    assert_contains(text, "\"confidence\":1.00,");
    for (size_t i = 0; i < len; i++)
        assert_true((unsigned char)text[i] >= 0x20 || text[i] == '\n');
    free(text);
}

/* The middle of every secret stays out of every format unless asked for. */
static void test_redaction_everywhere(void **state)
{
    (void)state;
    static const char *const middles[] = {PAT_MIDDLE, AWS_MIDDLE, AWS_COMPANION_MIDDLE,
                                          ODD_MIDDLE};
    fx_set s;
    fx_build(&s);
    for (int fmt = REPORT_TEXT; fmt <= REPORT_HTML; fmt++) {
        for (int show = 0; show <= 1; show++) {
            char *text;
            size_t len;
            report_opts o = {.format = (report_format)fmt, .show_secrets = show};
            assert_int_equal(fx_render(&o, s.f, FX_COUNT, &fx_stats, &text, &len), 0);
            assert_true(len > 0);
            for (size_t i = 0; i < sizeof middles / sizeof middles[0]; i++) {
                if (show ? !strstr(text, middles[i]) : !!strstr(text, middles[i]))
                    fail_msg("format %d show %d: \"%s\" %s", fmt, show, middles[i],
                             show ? "missing" : "leaked");
            }
            if (!show) {
                assert_contains(text, "ghp_\xe2\x80\xa6" "6789");
                assert_contains(text, "Zq8v\xe2\x80\xa6" "e8Qo");
            }
            free(text);
        }
    }
}

static void test_json_valid(void **state)
{
    env *e = *state;
    fx_set s;
    fx_build(&s);
    char args[2048] = "";
    add_check(e, REPORT_JSON, "json", "hide.json", s.f, FX_COUNT, 0, args, sizeof args);
    add_check(e, REPORT_JSON, "json", "show.json", s.f, FX_COUNT, 1, args, sizeof args);
    add_check(e, REPORT_JSON, "json", "empty.json", s.f, 0, 0, args, sizeof args);
    add_check(e, REPORT_JSONL, "jsonl", "hide.jsonl", s.f, FX_COUNT, 0, args, sizeof args);
    add_check(e, REPORT_JSONL, "jsonl", "show.jsonl", s.f, FX_COUNT, 1, args, sizeof args);
    add_check(e, REPORT_JSONL, "jsonl", "empty.jsonl", s.f, 0, 0, args, sizeof args);
    assert_int_equal(run_checker(e, args, 0), 0);
}

static void test_json_stats(void **state)
{
    (void)state;
    fx_set s;
    fx_build(&s);
    char *text;
    size_t len;
    report_opts o = {.format = REPORT_JSON};
    assert_int_equal(fx_render(&o, s.f, 1, &fx_stats, &text, &len), 0);
    assert_contains(text, "  \"stats\": {\n    \"files_scanned\": 12,\n"
                          "    \"bytes_scanned\": 1234567,\n    \"files_skipped\": 2,\n"
                          "    \"findings\": 5,\n    \"suppressed\": 1,\n"
                          "    \"elapsed_seconds\": 0.125,\n    \"detectors\": 42\n  }\n}\n");
    free(text);
    assert_int_equal(fx_render(&o, s.f, 0, NULL, &text, &len), 0);
    assert_contains(text, "\"findings\": [],");
    assert_contains(text, "\"elapsed_seconds\": 0.0,");
    free(text);
}

static void test_sarif_schema(void **state)
{
    env *e = *state;
    fx_set s;
    fx_build(&s);
    char args[2048] = "";
    add_check(e, REPORT_SARIF, "sarif", "hide.sarif", s.f, FX_COUNT, 0, args, sizeof args);
    add_check(e, REPORT_SARIF, "sarif", "show.sarif", s.f, FX_COUNT, 1, args, sizeof args);
    add_check(e, REPORT_SARIF, "sarif", "empty.sarif", s.f, 0, 0, args, sizeof args);
    assert_int_equal(run_checker(e, args, 0), 0);
}

/* The checker must be able to say no, or the tests above prove nothing:
 * a SARIF log whose driver lacks its required name, and JSONL holding the
 * secret although it was not asked for. */
static void test_checker_rejects(void **state)
{
    env *e = *state;
    char path[128], args[512];
    snprintf(path, sizeof path, "%s/bad.sarif", e->dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("{\"version\": \"2.1.0\", \"runs\": [{\"tool\": {\"driver\": {}}, \"results\": []}]}",
          f);
    fclose(f);
    snprintf(args, sizeof args, " sarif '%s' 0 hide", path);
    assert_int_not_equal(run_checker(e, args, 1), 0);

    fx_set s;
    fx_build(&s);
    args[0] = '\0';
    add_check(e, REPORT_JSONL, "jsonl", "shown.jsonl", s.f, FX_COUNT, 1, args, sizeof args);
    char *show = strstr(args, " show");
    assert_non_null(show);
    memcpy(show, " hide", 5);
    assert_int_not_equal(run_checker(e, args, 1), 0);
}

static void test_sarif_content(void **state)
{
    (void)state;
    fx_set s;
    fx_build(&s);
    char *text;
    size_t len;
    report_opts o = {.format = REPORT_SARIF, .tool_version = "1.2.3"};
    assert_int_equal(fx_render(&o, s.f, FX_COUNT, &fx_stats, &text, &len), 0);
    assert_contains(text, "\"version\": \"2.1.0\"");
    assert_contains(text, "\"name\": \"keyhog\",\n          \"version\": \"1.2.3\",\n"
                          "          \"informationUri\": \"https://github.com/keyhog/keyhog\"");
    assert_contains(text, "\"uri\": \"dir%20with%20space/we%22ird%23%25%3F.env\"");
    assert_contains(text, "\"uri\": \"other/win/path.txt\"");
    assert_contains(text, "\"uri\": \"file:///abs/path/settings.ini\"");
    assert_contains(text, "\"uri\": \"%3Cimg%20src=x%20onerror=alert(1)%3E%1B%5B2J%C3(.txt\"");
    assert_contains(text, "\"endColumn\": 45,"); /* exclusive: 44 + 1 */
    assert_contains(text, "\"byteOffset\": 210,\n                  \"byteLength\": 40");
    assert_contains(text, "\"text\": \"GitHub Personal Access Token found: ghp_\xe2\x80\xa6"
                          "6789\"");
    assert_contains(text, "\"keyhog/v1\": \"b45882a617dc73d1ac0e40a519d4c6e39af93397099bf5feea9"
                          "631d755d01a0b\"");
    assert_contains(text, "\"security-severity\": \"9.5\"");
    assert_contains(text, "\"security-severity\": \"8.0\"");
    assert_contains(text, "\"security-severity\": \"5.5\"");
    assert_contains(text, "\"security-severity\": \"3.0\""); /* the detector's low */
    assert_contains(text, "\"level\": \"note\""); /* the finding's info override */
    assert_contains(text, "\"fullDescription\": {\n                \"text\": \"A classic");
    /* four distinct detectors, five results */
    size_t rules = 0, results = 0;
    for (const char *p = text; (p = strstr(p, "\"shortDescription\"")); p++)
        rules++;
    for (const char *p = text; (p = strstr(p, "\"ruleIndex\"")); p++)
        results++;
    assert_int_equal(rules, 4);
    assert_int_equal(results, 5);
    assert_contains(text, "\"ruleIndex\": 0,"); /* fifth result reuses rule 0 */
    free(text);
}

static void test_html(void **state)
{
    (void)state;
    fx_set s;
    fx_build(&s);
    char *text;
    size_t len;
    report_opts o = {.format = REPORT_HTML};
    assert_int_equal(fx_render(&o, s.f, FX_COUNT, &fx_stats, &text, &len), 0);
    assert_true(strncmp(text, "<!DOCTYPE html>", 15) == 0);
    assert_contains(text, "<table id=\"findings\">");
    assert_contains(text, "<input id=\"filter\"");
    assert_contains(text, "data-key=\"sev\"");
    assert_contains(text, "default-src 'none'");
    assert_contains(text, "</html>\n");
    /* No fetches: no external script, stylesheet, image or URL. */
    assert_lacks(text, "<script src");
    assert_lacks(text, "<link");
    assert_lacks(text, "@import");
    assert_lacks(text, "url(");
    assert_lacks(text, "http://");
    assert_lacks(text, "https://");
    assert_lacks(text, "<img");
    /* Input is escaped, not interpreted. */
    assert_contains(text, "&lt;img src=x onerror=alert(1)&gt;");
    assert_contains(text, "Odd &lt;/td&gt;&lt;script&gt;alert(1)&lt;/script&gt; &quot;Token&quot;");
    assert_contains(text, "<pre>&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;\n");
    assert_contains(text, "Jane &quot;JD&quot; Doe Injected &lt;jane@example.com&gt;");
    size_t scripts = 0;
    for (const char *p = text; (p = strstr(p, "<script")); p++)
        scripts++;
    assert_int_equal(scripts, 1);
    assert_contains(text, "<p class=\"summary\">5 findings (2 critical, 1 high, 1 medium, 1 info)");
    /* Valid UTF-8 throughout, and the one row per finding. */
    size_t rows = 0;
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        size_t n = report_utf8_decode((const unsigned char *)text + i, len - i, &cp);
        assert_int_not_equal(n, 0);
        i += n;
    }
    for (const char *p = text; (p = strstr(p, "<tr class=\"f\"")); p++)
        rows++;
    assert_int_equal(rows, FX_COUNT);
    free(text);
    report_opts shown = {.format = REPORT_HTML, .show_secrets = 1};
    assert_int_equal(fx_render(&shown, s.f, FX_COUNT, &fx_stats, &text, &len), 0);
    assert_contains(text, "<code>p\xef\xbf\xbdw&quot;d\\\xef\xbf\xbd\xef\xbf\xbd MIDDLEMARK");
    free(text);
}

static void test_write_error(void **state)
{
    (void)state;
    fx_set s;
    fx_build(&s);
    FILE *full = fopen("/dev/full", "w");
    if (!full)
        skip();
    for (int fmt = REPORT_TEXT; fmt <= REPORT_HTML; fmt++) {
        report_opts o = {.format = (report_format)fmt};
        errno = 0;
        assert_int_equal(report_write(full, &o, s.f, FX_COUNT, &fx_stats), -1);
        assert_int_equal(errno, ENOSPC);
        clearerr(full);
    }
    fclose(full);
    report_opts bad = {.format = (report_format)99};
    assert_int_equal(report_write(stdout, &bad, s.f, 0, NULL), -1);
    assert_int_equal(report_write(NULL, &bad, s.f, 0, NULL), -1);
}

/* Many findings stream out in linear time (no quadratic rule or path
 * lookups); the whole test stays well under a second. */
static void test_many_findings(void **state)
{
    (void)state;
    enum { N = 5000 };
    fx_set s;
    fx_build(&s);
    report_finding *many = calloc(N, sizeof *many);
    assert_non_null(many);
    for (size_t i = 0; i < N; i++)
        many[i] = s.f[i % FX_COUNT];
    for (int fmt = REPORT_TEXT; fmt <= REPORT_HTML; fmt++) {
        FILE *null = fopen("/dev/null", "w");
        assert_non_null(null);
        report_opts o = {.format = (report_format)fmt};
        assert_int_equal(report_write(null, &o, many, N, &fx_stats), 0);
        fclose(null);
    }
    free(many);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_format_parse),
        cmocka_unit_test(test_text_golden),
        cmocka_unit_test(test_text_colour_and_empty),
        cmocka_unit_test(test_jsonl_golden),
        cmocka_unit_test(test_json_escaping),
        cmocka_unit_test(test_redaction_everywhere),
        cmocka_unit_test(test_json_valid),
        cmocka_unit_test(test_json_stats),
        cmocka_unit_test(test_sarif_schema),
        cmocka_unit_test(test_checker_rejects),
        cmocka_unit_test(test_sarif_content),
        cmocka_unit_test(test_html),
        cmocka_unit_test(test_write_error),
        cmocka_unit_test(test_many_findings),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
