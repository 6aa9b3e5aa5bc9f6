/*
 * test_report_misc.c - the pieces under the writers: JSON string escaping,
 * the JSON writer's layout and numbers, UTF-8 checking, grouping by path,
 * the stderr summary line, and report_finding_clear on a fully heap-built
 * finding (the sanitizer build catches any leak or double free).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <math.h>
#include <stdint.h>

#include <cmocka.h>

#include "fixtures.h"

/* report_json_string(s, len) as a heap string. */
static char *escaped(const char *s, size_t len)
{
    char *out = NULL;
    size_t n = 0;
    FILE *m = open_memstream(&out, &n);
    report_json_string(m, s, len);
    fclose(m);
    return out;
}

static void expect_escape(const char *in, size_t len, const char *want)
{
    char *got = escaped(in, len);
    if (strcmp(got, want) != 0)
        fail_msg("escape: got %s want %s", got, want);
    free(got);
}

static void test_json_string(void **state)
{
    (void)state;
    expect_escape("plain", 5, "\"plain\"");
    expect_escape("", 0, "\"\"");
    expect_escape(NULL, 3, "\"\"");
    expect_escape("a\"b\\c", 5, "\"a\\\"b\\\\c\"");
    expect_escape("\n\t\r\x01\x1f\x7f", 6, "\"\\u000a\\u0009\\u000d\\u0001\\u001f\\u007f\"");
    expect_escape("nul\0byte", 8, "\"nul\\u0000byte\"");
    expect_escape("/</script>", 10, "\"/</script>\"");
    /* valid UTF-8 passes: 2, 3 and 4 byte forms */
    expect_escape("\xc3\xa9\xe2\x80\xa6\xf0\x9f\x94\x91", 9,
                  "\"\xc3\xa9\xe2\x80\xa6\xf0\x9f\x94\x91\"");
    /* invalid: stray continuation, bad lead, overlong, surrogate, > U+10FFFF, cut off */
    expect_escape("\x80", 1, "\"\\ufffd\"");
    expect_escape("\xff\xfe", 2, "\"\\ufffd\\ufffd\"");
    expect_escape("\xc0\xaf", 2, "\"\\ufffd\\ufffd\"");
    expect_escape("\xe0\x80\xaf", 3, "\"\\ufffd\\ufffd\\ufffd\"");
    expect_escape("\xed\xa0\x80", 3, "\"\\ufffd\\ufffd\\ufffd\"");
    expect_escape("\xf4\x90\x80\x80", 4, "\"\\ufffd\\ufffd\\ufffd\\ufffd\"");
    expect_escape("ab\xe2\x80", 4, "\"ab\\ufffd\\ufffd\"");
    expect_escape("\xc3" "A", 2, "\"\\ufffdA\"");
    /* U+2028/2029 are escaped so the output is also safe as JavaScript */
    expect_escape("\xe2\x80\xa8\xe2\x80\xa9", 6, "\"\\u2028\\u2029\"");
}

static void test_json_string_all_bytes_valid(void **state)
{
    (void)state;
    /* Every byte value, in every position, gives valid UTF-8 with no raw
     * control character. */
    char in[512];
    for (int i = 0; i < 512; i++)
        in[i] = (char)(i * 37 + (i >> 3));
    char *out = escaped(in, sizeof in);
    size_t len = strlen(out);
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        size_t n = report_utf8_decode((const unsigned char *)out + i, len - i, &cp);
        assert_int_not_equal(n, 0);
        assert_true(cp >= 0x20);
        i += n;
    }
    free(out);
}

static void test_json_writer_layout(void **state)
{
    (void)state;
    char *out = NULL;
    size_t n = 0;
    FILE *m = open_memstream(&out, &n);
    report_json j;
    report_json_init(&j, m, 1);
    report_json_begin_object(&j);
    report_json_kstr(&j, "a", "x");
    report_json_key(&j, "empty");
    report_json_begin_array(&j);
    report_json_end_array(&j);
    report_json_key(&j, "list");
    report_json_begin_array(&j);
    report_json_u64(&j, 1);
    report_json_double(&j, 0.5, 2, 4);
    report_json_double(&j, 0.123456, 2, 4);
    report_json_double(&j, INFINITY, 2, 4);
    report_json_double(&j, NAN, 1, 6);
    report_json_end_array(&j);
    report_json_key(&j, "o");
    report_json_begin_object(&j);
    report_json_end_object(&j);
    report_json_end_object(&j);
    fclose(m);
    assert_string_equal(out, "{\n"
                             "  \"a\": \"x\",\n"
                             "  \"empty\": [],\n"
                             "  \"list\": [\n"
                             "    1,\n"
                             "    0.50,\n"
                             "    0.1235,\n"
                             "    0.00,\n"
                             "    0.0\n"
                             "  ],\n"
                             "  \"o\": {}\n"
                             "}");
    free(out);

    m = open_memstream(&out, &n);
    report_json_init(&j, m, 0);
    report_json_begin_object(&j);
    report_json_ku64(&j, "n", UINT64_MAX);
    report_json_key(&j, "l");
    report_json_begin_array(&j);
    report_json_cstr(&j, NULL);
    report_json_cstr(&j, "b");
    report_json_end_array(&j);
    report_json_end_object(&j);
    fclose(m);
    assert_string_equal(out, "{\"n\":18446744073709551615,\"l\":[\"\",\"b\"]}");
    free(out);
}

static void test_group_by_path(void **state)
{
    (void)state;
    report_location loc[6] = {{.path = "b"}, {.path = "a"}, {.path = "b"},
                              {.path = NULL}, {.path = "a"}, {.path = "c"}};
    report_finding f[7];
    memset(f, 0, sizeof f);
    for (int i = 0; i < 6; i++) {
        f[i].locations = &loc[i];
        f[i].location_count = 1;
    }
    /* f[6] has no location at all: grouped with the NULL path, as "" */
    size_t order[7];
    assert_int_equal(report_group_by_path(f, 7, order), 0);
    static const size_t want[7] = {0, 2, 1, 4, 3, 6, 5};
    assert_memory_equal(order, want, sizeof want);
    assert_int_equal(report_group_by_path(f, 0, order), 0);
}

static void test_human_bytes_and_severity(void **state)
{
    (void)state;
    char buf[32];
    report_human_bytes(0, buf, sizeof buf);
    assert_string_equal(buf, "0 B");
    report_human_bytes(999, buf, sizeof buf);
    assert_string_equal(buf, "999 B");
    report_human_bytes(1234567, buf, sizeof buf);
    assert_string_equal(buf, "1.2 MB");
    report_human_bytes(UINT64_MAX, buf, sizeof buf);
    assert_string_equal(buf, "18.4 EB");
    assert_string_equal(report_severity_name(KH_SEVERITY_CRITICAL), "critical");
    assert_string_equal(report_severity_name(KH_SEVERITY_INFO), "info");
    assert_string_equal(report_severity_name((kh_severity)7), "unknown");
    assert_string_equal(report_severity_name((kh_severity)-1), "unknown");
}

static char *summary(const report_stats *st, const report_finding *f, size_t n, int color)
{
    char *out = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&out, &len);
    report_summary(m, st, f, n, color);
    fclose(m);
    return out;
}

static void test_summary(void **state)
{
    (void)state;
    fx_set s;
    fx_build(&s);
    char *line = summary(&fx_stats, s.f, FX_COUNT, 0);
    assert_string_equal(line, "5 findings (2 critical, 1 high, 1 medium, 1 info) in 12 files "
                              "(1.2 MB), 2 skipped, 1 suppressed, 0.12 s, 9.9 MB/s\n");
    free(line);
    report_stats one = {.files_scanned = 1, .bytes_scanned = 10};
    line = summary(&one, s.f, 1, 0);
    assert_string_equal(line, "1 finding (1 critical) in 1 file (10 B), 0 skipped, 0.00 s\n");
    free(line);
    line = summary(NULL, NULL, 0, 0);
    assert_string_equal(line, "0 findings in 0 files (0 B), 0 skipped, 0.00 s\n");
    free(line);
    line = summary(&fx_stats, s.f, 1, 1);
    assert_non_null(strstr(line, "\033[1m1 finding\033[0m"));
    free(line);
}

static char *heap_copy(const char *s)
{
    char *d = strdup(s);
    assert_non_null(d);
    return d;
}

static void test_finding_clear(void **state)
{
    (void)state;
    report_finding f;
    memset(&f, 0, sizeof f);
    f.detector = &fx_aws_detector;
    f.secret = heap_copy(AWS_SECRET);
    f.secret_len = strlen(AWS_SECRET);
    f.location_count = 2;
    f.locations = calloc(2, sizeof *f.locations);
    assert_non_null(f.locations);
    f.locations[0].path = heap_copy("a.env");
    f.locations[0].commit = heap_copy("abc");
    f.locations[0].author = heap_copy("me");
    f.locations[0].email = heap_copy("me@example.com");
    f.locations[0].date = heap_copy("2024-01-01");
    f.locations[0].context = heap_copy("x = AKI\xe2\x80\xa6" "FGH");
    f.locations[1].path = heap_copy("b.env");
    f.companion_count = 1;
    f.companions = calloc(1, sizeof *f.companions);
    assert_non_null(f.companions);
    f.companions[0].name = heap_copy("secret_key");
    f.companions[0].value = heap_copy(AWS_COMPANION);
    f.decoded_count = 2;
    f.decoded_from = calloc(2, sizeof *f.decoded_from);
    assert_non_null(f.decoded_from);
    f.decoded_from[0] = heap_copy("base64");
    /* [1] left NULL, as a caller whose strdup failed would leave it */
    f.verify_status = "live";
    f.verify_reason = heap_copy("ok");
    /* Writers cope with the NULL member and compute what was left empty. */
    char *text;
    size_t len;
    for (int fmt = REPORT_TEXT; fmt <= REPORT_HTML; fmt++) {
        report_opts o = {.format = (report_format)fmt};
        assert_int_equal(fx_render(&o, &f, 1, NULL, &text, &len), 0);
        if (fmt != REPORT_TEXT && fmt != REPORT_HTML)
            assert_non_null(strstr(text, "AKI\xe2\x80\xa6" "FGH"));
        assert_null(strstr(text, AWS_MIDDLE));
        free(text);
    }
    report_finding_clear(&f);
    assert_null(f.secret);
    assert_null(f.locations);
    assert_int_equal(f.location_count, 0);
    report_finding_clear(&f); /* twice is harmless */
    report_finding_clear(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_string),
        cmocka_unit_test(test_json_string_all_bytes_valid),
        cmocka_unit_test(test_json_writer_layout),
        cmocka_unit_test(test_group_by_path),
        cmocka_unit_test(test_human_bytes_and_severity),
        cmocka_unit_test(test_summary),
        cmocka_unit_test(test_finding_clear),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
