/*
 * test_redact.c - kh_redact (how much of a secret a report may show) and
 * kh_fingerprint (stable SHA-256 over detector id, NUL, secret).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "keyhog.h"

#define ELL "\xe2\x80\xa6"

static void redact_str(const char *s, size_t len, char *out)
{
    kh_redact((const uint8_t *)s, len, out, 64);
}

static void test_redact_long(void **state)
{
    (void)state;
    char out[64];
    redact_str("ghp_ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", 40, out);
    assert_string_equal(out, "ghp_" ELL "6789");
    redact_str("abcdefghijklmnopqrstuvwx", 24, out); /* 24: a third is 8 */
    assert_string_equal(out, "abcd" ELL "uvwx");
}

static void test_redact_medium_keeps_to_a_third(void **state)
{
    (void)state;
    char out[64];
    redact_str("abcdefghijkl", 12, out); /* a third is 4: 2 + 2 */
    assert_string_equal(out, "ab" ELL "kl");
    redact_str("abcdefghijklmnopqr", 18, out); /* 6: 3 + 3 */
    assert_string_equal(out, "abc" ELL "pqr");
    redact_str("abcdefghijklmnopqrstuvw", 23, out); /* 7: still 3 + 3 */
    assert_string_equal(out, "abc" ELL "uvw");
}

static void test_redact_short(void **state)
{
    (void)state;
    char out[64];
    redact_str("abcdefghijk", 11, out);
    assert_string_equal(out, "ab" ELL);
    redact_str("abcdef", 6, out);
    assert_string_equal(out, "ab" ELL);
    redact_str("abcde", 5, out); /* a third is 1 */
    assert_string_equal(out, "a" ELL);
    redact_str("ab", 2, out);
    assert_string_equal(out, ELL);
    redact_str("", 0, out);
    assert_string_equal(out, ELL);
    kh_redact(NULL, 10, out, sizeof out);
    assert_string_equal(out, ELL);
}

static void test_redact_nonprintable(void **state)
{
    (void)state;
    char out[64];
    const char s[] = "\x01\xff\n\x7f" "middle-part-here" "\x1b\t\xc3\xa9";
    redact_str(s, sizeof s - 1, out);
    assert_string_equal(out, "????" ELL "????");
}

static void test_redact_never_more_than_a_third(void **state)
{
    (void)state;
    uint8_t secret[200];
    char out[64];
    for (size_t i = 0; i < sizeof secret; i++)
        secret[i] = (uint8_t)('A' + i % 26);
    for (size_t len = 0; len <= sizeof secret; len++) {
        kh_redact(secret, len, out, sizeof out);
        const char *e = strstr(out, ELL);
        assert_non_null(e);
        size_t shown = strlen(out) - 3;
        assert_true(shown <= len / 3);
        assert_true(shown <= 8);
        if (len >= 24)
            assert_int_equal(shown, 8);
    }
}

static void test_redact_small_buffer(void **state)
{
    (void)state;
    const char *s = "ghp_ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    char out[32];
    memset(out, 'Z', sizeof out);
    kh_redact((const uint8_t *)s, 40, out, 1);
    assert_int_equal(out[0], '\0');
    assert_int_equal(out[1], 'Z');
    kh_redact((const uint8_t *)s, 40, out, 6); /* room for 5: no half ellipsis */
    assert_string_equal(out, "ghp_");
    kh_redact((const uint8_t *)s, 40, out, 9);
    assert_string_equal(out, "ghp_" ELL "6");
    kh_redact((const uint8_t *)s, 40, NULL, 10); /* must not crash */
}

static void test_fingerprint_known(void **state)
{
    (void)state;
    char fp[65];
    const char *s = "ghp_ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    kh_fingerprint("github-classic-pat", (const uint8_t *)s, 40, fp);
    assert_string_equal(fp, "b45882a617dc73d1ac0e40a519d4c6e39af93397099bf5feea9631d755d01a0b");
    kh_fingerprint("", (const uint8_t *)"", 0, fp); /* SHA-256 of one NUL */
    assert_string_equal(fp, "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d");
}

static void test_fingerprint_separates_id_and_secret(void **state)
{
    (void)state;
    char a[65], b[65];
    kh_fingerprint("a", (const uint8_t *)"bc", 2, a);
    kh_fingerprint("ab", (const uint8_t *)"c", 1, b);
    assert_string_equal(a, "40bb547d936bbd31318ee37ac8799e7ecbb22eda2651f65e3214bffb8ce97bb4");
    assert_string_equal(b, "6c032e631d39a14d85aff7e319546af701e26c97b57ca95fbfe9c6ba855f67bf");
    /* Bytes after a NUL inside the secret count too. */
    kh_fingerprint("x", (const uint8_t *)"k\0a", 3, a);
    kh_fingerprint("x", (const uint8_t *)"k\0b", 3, b);
    assert_string_not_equal(a, b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_redact_long),
        cmocka_unit_test(test_redact_medium_keeps_to_a_third),
        cmocka_unit_test(test_redact_short),
        cmocka_unit_test(test_redact_nonprintable),
        cmocka_unit_test(test_redact_never_more_than_a_third),
        cmocka_unit_test(test_redact_small_buffer),
        cmocka_unit_test(test_fingerprint_known),
        cmocka_unit_test(test_fingerprint_separates_id_and_secret),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
