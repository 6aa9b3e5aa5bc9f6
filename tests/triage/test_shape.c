/*
 * test_shape.c - entropy, the credential_shape gates and the placeholder
 * test of src/triage/shape.c.
 *
 * The placeholder test is a hard reject, so half of this file is about it
 * saying no: tens of thousands of random tokens in the alphabets real
 * credentials use, drawn from a fixed-seed PRNG, must never be called
 * placeholders.
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

static int ph(const char *s) { return triage_is_placeholder((const uint8_t *)s, strlen(s)); }

static int shape(const spec_shape *sh, const char *s)
{
    return triage_shape_ok(sh, (const uint8_t *)s, strlen(s));
}

/* xorshift64*: a fixed, portable sequence, so failures reproduce. */
static uint64_t next_random(uint64_t *st)
{
    *st ^= *st >> 12;
    *st ^= *st << 25;
    *st ^= *st >> 27;
    return *st * 0x2545F4914F6CDD1DULL;
}

static void random_token(uint64_t *st, const char *alphabet, char *out, size_t n)
{
    size_t k = strlen(alphabet);
    for (size_t i = 0; i < n; i++)
        out[i] = alphabet[next_random(st) % k];
    out[n] = '\0';
}

static const char base62[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/* ---- entropy ---------------------------------------------------------- */

static void test_entropy(void **state)
{
    (void)state;
    assert_true(triage_entropy(NULL, 0) == 0.0);
    assert_true(triage_entropy((const uint8_t *)"aaaa", 4) == 0.0);
    assert_true(fabs(triage_entropy((const uint8_t *)"abab", 4) - 1.0) < 1e-12);
    assert_true(fabs(triage_entropy((const uint8_t *)"0123456789abcdef", 16) - 4.0) < 1e-12);
    uint8_t all[256];
    for (int i = 0; i < 256; i++)
        all[i] = (uint8_t)i;
    assert_true(fabs(triage_entropy(all, 256) - 8.0) < 1e-12);
    /* A random base62 token is near log2(62) = 5.95 per byte. */
    uint64_t st = 99;
    char tok[1001];
    random_token(&st, base62, tok, 1000);
    double h = triage_entropy((const uint8_t *)tok, 1000);
    assert_true(h > 5.8 && h <= log2(62.0));
}

/* ---- shape gates ------------------------------------------------------ */

static void test_shape_lengths(void **state)
{
    (void)state;
    assert_int_equal(triage_shape_ok(NULL, (const uint8_t *)"x", 1), 1);
    spec_shape exact = {.exact_length = 4};
    assert_int_equal(shape(&exact, "abcd"), 1);
    assert_int_equal(shape(&exact, "abc"), 0);
    assert_int_equal(shape(&exact, "abcde"), 0);
    spec_shape range = {.min_length = 3, .max_length = 5};
    assert_int_equal(shape(&range, "ab"), 0);
    assert_int_equal(shape(&range, "abc"), 1);
    assert_int_equal(shape(&range, "abcde"), 1);
    assert_int_equal(shape(&range, "abcdef"), 0);
    spec_shape none = {0};
    assert_int_equal(shape(&none, ""), 1);
}

static void test_shape_charsets(void **state)
{
    (void)state;
    struct {
        const char *set, *good, *bad;
    } cases[] = {
        {"hex", "0123456789abcdefABCDEF", "0123g"},
        {"base62", "azAZ09", "ab_c"},
        {"alnum", "azAZ09", "ab-c"},
        {"base64", "ab+/cd==", "ab-c"},
        {"base64url", "ab-_cd==", "ab+c"},
        {"base32", "ABZ234567=", "AB1"},
        {"digits", "0123456789", "12a"},
        {"printable", "!~aZ{}", "a b"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        spec_shape sh = {.charset = (char *)cases[i].set};
        assert_int_equal(triage_charset_known(cases[i].set), 1);
        assert_int_equal(shape(&sh, cases[i].good), 1);
        assert_int_equal(shape(&sh, cases[i].bad), 0);
    }
    spec_shape printable = {.charset = "printable"};
    assert_int_equal(triage_shape_ok(&printable, (const uint8_t *)"a\x7f", 2), 0);
    assert_int_equal(triage_shape_ok(&printable, (const uint8_t *)"a\x80", 2), 0);
    /* Unknown charset: fail closed. */
    spec_shape unknown = {.charset = "base63"};
    assert_int_equal(triage_charset_known("base63"), 0);
    assert_int_equal(shape(&unknown, "abc"), 0);
}

static void test_shape_prefix(void **state)
{
    (void)state;
    spec_shape sh = {.prefix = "xoxb-", .charset = "base62", .min_length = 10};
    assert_int_equal(shape(&sh, "xoxb-abc123"), 1);
    assert_int_equal(shape(&sh, "xoxp-abc123"), 0);
    assert_int_equal(shape(&sh, "xoxb-"), 0);       /* too short */
    assert_int_equal(shape(&sh, "xoxb-abc-123"), 0); /* '-' after the prefix */
    assert_int_equal(shape(&sh, "xox"), 0);
}

/* ---- placeholders ----------------------------------------------------- */

static void test_placeholders_caught(void **state)
{
    (void)state;
    static const char *const fakes[] = {
        "AKIAQ7RZ3PLEXAMPLE", "ghp_exampleexampleexampleexampleexample", "my-SAMPLE-key",
        "PLACEHOLDER_TOKEN", "placeholder", "dummy-secret-1", "DUMMYDUMMY", "fake_key_123",
        "FAKE-TOKEN", "your_api_key_here", "YOUR_TOKEN", "your-secret", "<your-api-key>",
        "<TOKEN>", "sk_live_<your key>", "https://hooks.slack.com/services/<team>/<bot>/<secret>",
        "Bearer <token>", "${GITHUB_TOKEN}", "${env:API_KEY}", "{{ .Values.secret }}", "{{token}}",
        "%(password)s", "$API_TOKEN", "$db_password", "sk_live_xxxxxxxxxxxxxxxxxxxxxxxx",
        "ghp_XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX", "********", "token....", "AKIA****1234ABCD",
        "aaaaaaaaaaaaaaaaaaaaaaaa", "0000000000000000", "abcaaaaaaaaaaaa", "ab9999999999",
        "abcdefghijklmnop", "12345678", "0123456789abcdef", "key-1234567890", "zyxwvuts",
        "9876543210", "abababababababab", "0101010101", "changeme", "CHANGEME", "password",
        "Password", "secret", "redacted", "REDACTED", "null", "undefined", "none", "None",
        "true", "false", "TODO", "xxx", "test", "", "a", "abcd", "1234",
        "a1aa2aa3ab",   /* only the 60% rule applies: six a in ten */
        "abcabcabcabc", /* only the three-distinct rule applies */
        "A3-123456-789ABC-DEFG3-HIJKL-MNOPQ-RSTUV", /* runs through separators */
        "RGAPI-9a123456-789a-abcd-ef01-239a456789ab",
    };
    for (size_t i = 0; i < sizeof fakes / sizeof fakes[0]; i++) {
        if (!ph(fakes[i]))
            fail_msg("not called a placeholder: \"%s\"", fakes[i]);
    }
}

static void test_real_looking_kept(void **state)
{
    (void)state;
    static const char *const real[] = {
        "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", /* random, valid CRC */
        "xoxb-3018528344485-79119896224-RDyakmo3VhPjeMOWsAYk2X5p",
        "AKIALECQOWJVN3BPAA33",
        "sk_live_Xq81bZt0cPl2VfW9mRe3Jh5N",
        "Winter482!kQz",           /* a human-made but real password */
        "p4ss<w0rd>x",             /* '<' ... '>' with a short body is not a template */
        "a<b>c",
        "Zx9_<qr>",                /* a two-letter body is too short for a template */
        "a1aa2aa3bc",              /* five a in ten: under 60% */
        "Qz7abcdK9x",              /* a 4-run of 10: not "a large part" */
        "A3-K7QW2M-4TZ9XB-R8LPD-N2VJH-Q6YTC-W3MFK", /* grouped and random */
        "price$5",                 /* '$' not followed by a name */
        "x{{y",                    /* unclosed */
        "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        "Jx7xxx2Lq9",              /* three x in a row only */
        "Tr0ub4dor&3x",
        "2508751288011258",
    };
    for (size_t i = 0; i < sizeof real / sizeof real[0]; i++) {
        if (ph(real[i]))
            fail_msg("real-looking value called a placeholder: \"%s\"", real[i]);
    }
}

/* The false-reject budget is zero: random tokens of the usual alphabets
 * and lengths, with and without the prefixes detectors put in front. */
static void test_random_tokens_never_placeholders(void **state)
{
    (void)state;
    struct {
        const char *alphabet, *prefix;
        size_t len;
    } kinds[] = {
        {base62, "", 40},
        {base62, "ghp_", 36},
        {base62, "xoxb-", 24},
        {"0123456789abcdef", "", 40},
        {"0123456789abcdef", "", 32},
        {"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", "AKIA", 16},
        {"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/", "", 44},
        {"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", "", 22},
        {"!#%&*+-.0123456789:=?@ABCDEFGHIJKLMNOPQRSTUVWXYZ^_abcdefghijklmnopqrstuvwxyz~", "", 16},
        {"!#%&*+-.0123456789:<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ^_abcdefghijklmnopqrstuvwxyz~", "", 20},
    };
    uint64_t st = 0x9E3779B97F4A7C15ULL;
    char tok[128], buf[160];
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        for (int i = 0; i < 10000; i++) {
            random_token(&st, kinds[k].alphabet, tok, kinds[k].len);
            snprintf(buf, sizeof buf, "%s%s", kinds[k].prefix, tok);
            if (ph(buf))
                fail_msg("random token #%d of kind %zu called a placeholder: %s", i, k, buf);
        }
    }
}

/* Hostile input: long, binary, and built to make a naive scan quadratic. */
static void test_placeholder_hostile(void **state)
{
    (void)state;
    size_t n = 1 << 20;
    uint8_t *b = malloc(n);
    assert_non_null(b);
    for (size_t i = 0; i < n; i++)
        b[i] = (uint8_t)(i % 2 ? '<' : 'a');
    assert_int_equal(triage_is_placeholder(b, n), 1); /* two characters only */
    memset(b, '<', n);
    assert_int_equal(triage_is_placeholder(b, n), 1);
    uint64_t st = 5;
    for (size_t i = 0; i < n; i++)
        b[i] = (uint8_t)next_random(&st);
    assert_int_equal(triage_is_placeholder(b, n), 0);
    for (size_t i = 0; i < n; i += 2)
        b[i] = '$', b[i + 1] = '{';
    assert_int_equal(triage_is_placeholder(b, n), 1); /* two characters only */
    /* A megabyte of "${ab" openings that never close: must stay linear,
     * and is no template. */
    for (size_t i = 0; i < n; i++)
        b[i] = (uint8_t)("${ab"[i % 4]);
    assert_int_equal(triage_is_placeholder(b, n), 0);
    free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_entropy),
        cmocka_unit_test(test_shape_lengths),
        cmocka_unit_test(test_shape_charsets),
        cmocka_unit_test(test_shape_prefix),
        cmocka_unit_test(test_placeholders_caught),
        cmocka_unit_test(test_real_looking_kept),
        cmocka_unit_test(test_random_tokens_never_placeholders),
        cmocka_unit_test(test_placeholder_hostile),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
