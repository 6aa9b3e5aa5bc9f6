/*
 * test_cache.c - the --verify-cache file: round trip, TTL, what is kept,
 * and malformed files.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "verify/verify.h"

#define FP_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define FP_B "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
#define FP_C "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"

typedef struct fixture {
    char dir[64];
    char path[128];
} fixture;

static int setup(void **state)
{
    fixture *fx = calloc(1, sizeof *fx);
    strcpy(fx->dir, "/tmp/kh-verify-cache-XXXXXX");
    if (!mkdtemp(fx->dir))
        return -1;
    snprintf(fx->path, sizeof fx->path, "%s/cache.json", fx->dir);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fixture *fx = *state;
    unlink(fx->path);
    rmdir(fx->dir);
    free(fx);
    return 0;
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void test_round_trip(void **state)
{
    fixture *fx = *state;
    verify_cache c = {0};
    assert_int_equal(verify_cache_put(&c, FP_B, "revoked", "HTTP 401", 1000), KH_OK);
    assert_int_equal(verify_cache_put(&c, FP_A, "live", "HTTP 200, \"ok\"\n", 1000), KH_OK);
    assert_int_equal(verify_cache_put(&c, FP_A, "live", "newer", 2000), KH_OK);
    assert_int_equal(verify_cache_put(&c, FP_C, "unknown", "timeout", 1000), KH_EINVAL);
    assert_int_equal(verify_cache_put(&c, "xyz", "live", "", 1000), KH_EINVAL);
    verify_cache_sort(&c);
    assert_int_equal(c.count, 2);
    assert_string_equal(verify_cache_find(&c, FP_A)->reason, "newer");
    assert_null(verify_cache_find(&c, FP_C));
    kh_error err = {0};
    assert_int_equal(verify_cache_save(&c, fx->path, &err), KH_OK);
    verify_cache_clear(&c);

    verify_cache d = {0};
    assert_int_equal(verify_cache_load(&d, fx->path, 2100, 86400, &err), KH_OK);
    assert_int_equal(d.count, 2);
    const verify_cache_entry *a = verify_cache_find(&d, FP_A);
    assert_non_null(a);
    assert_string_equal(a->status, "live");
    assert_string_equal(a->reason, "newer");
    assert_int_equal(a->time, 2000);
    assert_string_equal(verify_cache_find(&d, FP_B)->status, "revoked");
    /* A later TTL check drops the old entry only. */
    verify_cache_clear(&d);
    assert_int_equal(verify_cache_load(&d, fx->path, 2100, 500, &err), KH_OK);
    assert_int_equal(d.count, 1);
    assert_non_null(verify_cache_find(&d, FP_A));
    verify_cache_clear(&d);
}

static void test_load_filters_entries(void **state)
{
    fixture *fx = *state;
    write_text(fx->path, "{\n"
                         " \"" FP_A "\": {\"status\": \"unknown\", \"reason\": \"t\", \"time\": 100},\n"
                         " \"" FP_B "\": {\"status\": \"live\", \"time\": 100},\n"
                         " \"" FP_C "\": {\"status\": \"live\", \"reason\": \"x\", \"time\": 99999}\n"
                         "}\n");
    verify_cache c = {0};
    kh_error err = {0};
    assert_int_equal(verify_cache_load(&c, fx->path, 200, 1000, &err), KH_OK);
    /* unknown is asked again; an entry from far in the future is not trusted */
    assert_int_equal(c.count, 1);
    assert_string_equal(verify_cache_find(&c, FP_B)->reason, "");
    verify_cache_clear(&c);
}

static void test_missing_file_is_empty(void **state)
{
    fixture *fx = *state;
    verify_cache c = {0};
    kh_error err = {0};
    assert_int_equal(verify_cache_load(&c, fx->path, 0, 1, &err), KH_OK);
    assert_int_equal(c.count, 0);
}

static void expect_malformed(const char *path, const char *text)
{
    write_text(path, text);
    verify_cache c = {0};
    kh_error err = {0};
    assert_int_equal(verify_cache_load(&c, path, 0, 1, &err), KH_EPARSE);
    assert_non_null(strstr(err.message, path));
    assert_int_equal(c.count, 0);
    verify_cache_clear(&c);
}

static void test_malformed_files(void **state)
{
    fixture *fx = *state;
    expect_malformed(fx->path, "");
    expect_malformed(fx->path, "[1, 2]");
    expect_malformed(fx->path, "{\"" FP_A "\": {\"status\": \"live\", \"time\": 1}");
    expect_malformed(fx->path, "{\"not-a-fingerprint\": {\"status\": \"live\", \"time\": 1}}");
    expect_malformed(fx->path, "{\"" FP_A "\": {\"status\": \"live\"}}");
    expect_malformed(fx->path, "{\"" FP_A "\": \"live\"}");
    /* deep nesting is refused by the bounded parser, not a stack overflow */
    char *deep = malloc(200001);
    memset(deep, '[', 200000);
    deep[200000] = 0;
    expect_malformed(fx->path, deep);
    free(deep);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_filters_entries, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_file_is_empty, setup, teardown),
        cmocka_unit_test_setup_teardown(test_malformed_files, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
