/*
 * test_checksum.c - every named validator of src/triage/checksum.c with
 * tokens that must pass and near misses that must not.
 *
 * The passing tokens were drawn at random for this file (Python's random,
 * zlib.crc32 and base64 computed the checksums and encodings, an oracle
 * independent of the C code); none is a real credential.  The near misses
 * are made from them by one edit each, so a validator that merely checks
 * the alphabet cannot pass.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "triage/triage.h"

static int check(const char *name, const char *s)
{
    return triage_checksum(name, (const uint8_t *)s, strlen(s));
}

/* Copies s, replaces byte i with c, and runs the validator. */
static int check_edit(const char *name, const char *s, size_t i, char c)
{
    char buf[512];
    size_t n = strlen(s);
    assert_true(n < sizeof buf && i < n);
    memcpy(buf, s, n + 1);
    buf[i] = c;
    return triage_checksum(name, (const uint8_t *)buf, n);
}

static const char *const crc_tokens[] = {
    "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", "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",
    "ghu_OjzpQz5m1QfBAAIcZ9NQb0F5jCvtRA3GNRqU", "ghs_i8AdKvbHQJcVBAHjSp2Bho7fKfRrOf2BBJOp",
    "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", "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",
    "M66XSIcsD8506XRbDKFwjsKPlzpPGk1syWTo",
};

static void test_names(void **state)
{
    (void)state;
    static const char *const names[] = {"github-crc32", "npm-crc32", "github-fine-grained",
                                        "jwt", "pypi-macaroon", "luhn", "slack-webhook",
                                        "aws-key-id", "uuid", "pem", "openai"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        assert_int_equal(triage_checksum_known(names[i]), 1);
    assert_int_equal(triage_checksum_known("crc32"), 0);
    assert_int_equal(triage_checksum_known(""), 0);
    assert_int_equal(triage_checksum_known(NULL), 0);
    assert_int_equal(check("no-such-validator", "abc"), -1);
    assert_int_equal(triage_checksum("luhn", NULL, 0), 0);
}

static void test_github_crc32_valid(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof crc_tokens / sizeof crc_tokens[0]; i++) {
        assert_int_equal(check("github-crc32", crc_tokens[i]), 1);
        assert_int_equal(check("npm-crc32", crc_tokens[i]), 1);
    }
    /* The payload alone, without its prefix. */
    assert_int_equal(check("github-crc32", "SV67OrGwTVvE3P4rpzE9fKtAoVHwl71Gdxos"), 1);
}

static void test_github_crc32_every_edit_fails(void **state)
{
    (void)state;
    const char *t = "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";
    size_t n = strlen(t);
    /* Any single-character change in the 36-char payload breaks it: CRC32
     * catches every one-byte error. */
    for (size_t i = 4; i < n; i++) {
        char c = t[i] == 'a' ? 'b' : 'a';
        assert_int_equal(check_edit("github-crc32", t, i, c), 0);
    }
    assert_int_equal(check_edit("github-crc32", t, 3, '-'), 0); /* no '_' separator */
    assert_int_equal(check_edit("github-crc32", t, 10, '+'), 0); /* not base62 */
}

static void test_github_crc32_shapes(void **state)
{
    (void)state;
    assert_int_equal(check("github-crc32", "ghp_SV67OrGwTVvE3P4rpzE9fKtAoVHwl71Gdxo"), 0);
    assert_int_equal(check("github-crc32", "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s"), 0);
    assert_int_equal(check("github-crc32", "_SV67OrGwTVvE3P4rpzE9fKtAoVHwl71Gdxos"), 0);
    assert_int_equal(check("github-crc32", ""), 0);
    assert_int_equal(check("github-crc32", "ghp_000000000000000000000000000000000000"), 0);
    /* Checksum digits in the wrong case must not pass: base62 is case-sensitive. */
    assert_int_equal(check("github-crc32", "ghp_SV67OrGwTVvE3P4rpzE9fKtAoVHwl71GDXOS"), 0);
}

static void test_github_fine_grained(void **state)
{
    (void)state;
    const char *t = "github_pat_2Xx5awmRDxSMZ4KdRAaCLR_9R5kb3RVdgAt9VbDVr5YtGXmnewBJo2MIe4xy"
                    "Rg662Oz2AocKQh24p4UBYb";
    assert_int_equal(check("github-fine-grained", t), 1);
    assert_int_equal(check("github-fine-grained", t + 11), 1); /* without prefix */
    assert_int_equal(check_edit("github-fine-grained", t, 33, 'x'), 0); /* '_' moved */
    assert_int_equal(check_edit("github-fine-grained", t, 50, '-'), 0);
    char shorter[128];
    snprintf(shorter, sizeof shorter, "%.*s", (int)strlen(t) - 1, t);
    assert_int_equal(check("github-fine-grained", shorter), 0);
    assert_int_equal(check("github-fine-grained", "github_pat_"), 0);
}

static const char jwt_sig[] = "PTTrltpC4F6GuxJWpfkI9urYSIXUxzdfOMj9au5_HZk";

static void test_jwt(void **state)
{
    (void)state;
    const char *good = "eyJhbGciOiAiSFMyNTYiLCAidHlwIjogIkpXVCJ9."
                       "eyJzdWIiOiAidS00MDI4NTEiLCAiZXhwIjogMTg5MzQ1NjAwMH0."
                       "PTTrltpC4F6GuxJWpfkI9urYSIXUxzdfOMj9au5_HZk";
    assert_int_equal(check("jwt", good), 1);
    /* Unsigned tokens (alg none) end in an empty signature. */
    assert_int_equal(check("jwt", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiAidS00MDI4NTEiLCAiZXhwIjogMTg5MzQ1NjAwMH0."), 1);

    char buf[256];
    /* header without "alg" */
    snprintf(buf, sizeof buf, "eyJ0eXAiOiJKV1QifQ.eyJzdWIiOiAidS00MDI4NTEiLCAiZXhwIjogMTg5MzQ1NjAwMH0.%s", jwt_sig);
    assert_int_equal(check("jwt", buf), 0);
    /* payload "hello world" */
    snprintf(buf, sizeof buf, "eyJhbGciOiJIUzI1NiJ9.aGVsbG8gd29ybGQ.%s", jwt_sig);
    assert_int_equal(check("jwt", buf), 0);
    /* header is a JSON array */
    snprintf(buf, sizeof buf, "WyJhbGciXQ.eyJzdWIiOiAidS00MDI4NTEiLCAiZXhwIjogMTg5MzQ1NjAwMH0.%s", jwt_sig);
    assert_int_equal(check("jwt", buf), 0);
    /* payload holds a control byte */
    snprintf(buf, sizeof buf, "eyJhbGciOiJIUzI1NiJ9.eyJhIjoiASJ9.%s", jwt_sig);
    assert_int_equal(check("jwt", buf), 0);

    assert_int_equal(check("jwt", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiAidS00MDI4NTEiLCAiZXhwIjogMTg5MzQ1NjAwMH0"), 0);
    assert_int_equal(check("jwt", "a.b.c.d"), 0);
    assert_int_equal(check("jwt", ".."), 0);
    assert_int_equal(check("jwt", ""), 0);
    assert_int_equal(check_edit("jwt", good, 5, '*'), 0);
    assert_int_equal(check_edit("jwt", good, strlen(good) - 2, '!'), 0);
}

static void test_pypi_macaroon(void **state)
{
    (void)state;
    const char *prod = "pypi-AgEIcHlwaS5vcmcCIDc1ZmY3ZTNmZDc4ZWE5ZmI2MDdjYTEwMjBjOTM0NGE0AAYgO6r0"
                       "TMHcfbzk5VRK2ZlX736-YTOqkmj0F44VkYOmVoU";
    const char *test = "pypi-AgENdGVzdC5weXBpLm9yZwIgZGJkYmY0NTdhNjljODRkNmRlNzBmYjFmMjhmNTdkN2UA"
                       "BiDuxPzCRzoj14oo23sJNNn-PUpnTeInTWbywAzqXeJaTA";
    const char *other = "pypi-AgEJZXZpbC5vcmchAiAwY2FkYWY4YWU4ZTVmM2VlNmIxYmQwY2NhMGIzMjc1NAAGIMjq"
                        "zv9CTMHGy8AsSEB7hD8d4Pi27bC8e_-bSb2sWI3T";
    assert_int_equal(check("pypi-macaroon", prod), 1);
    assert_int_equal(check("pypi-macaroon", test), 1);
    assert_int_equal(check("pypi-macaroon", other), 0);       /* location evil.org! */
    /* pypi.org present, but in a field of type 3 rather than the location. */
    assert_int_equal(check("pypi-macaroon", "pypi-AgMIcHlwaS5vcmcCIDhiMGU3MTUzYmY3YzM3MDZkODVjNTI0ZTQ0"
                                            "MDA2NjU1AAYglKBlaF1kxJgLuNRUSochqZoBrSGetZz2oV728Vodgws"), 0);
    assert_int_equal(check("pypi-macaroon", prod + 5), 0);    /* no pypi- prefix */
    assert_int_equal(check_edit("pypi-macaroon", prod, 5, 'B'), 0); /* version byte */
    assert_int_equal(check_edit("pypi-macaroon", prod, 40, '.'), 0); /* not base64url */
    assert_int_equal(check("pypi-macaroon", "pypi-AgEIcHlwaS5vcmc"), 0); /* nothing after location */
    assert_int_equal(check("pypi-macaroon", "pypi-"), 0);
}

static void test_luhn(void **state)
{
    (void)state;
    assert_int_equal(check("luhn", "2508751288011258"), 1);
    assert_int_equal(check("luhn", "5291565755872651"), 1);
    assert_int_equal(check("luhn", "5691 8608 9423 9508"), 1);
    assert_int_equal(check("luhn", "5691-8608-9423-9508"), 1);
    assert_int_equal(check("luhn", "5691860894239509"), 0);
    assert_int_equal(check("luhn", "2508751288011285"), 0); /* transposed digits */
    assert_int_equal(check("luhn", "0"), 0);                 /* too short */
    assert_int_equal(check("luhn", "00000000000000000000"), 0); /* too long */
    assert_int_equal(check("luhn", "25087512880112a8"), 0);
    assert_int_equal(check("luhn", ""), 0);
}

static void test_slack_webhook(void **state)
{
    (void)state;
    const char *url = "https://hooks.slack.com/services/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";
    assert_int_equal(check("slack-webhook", url), 1);
    assert_int_equal(check("slack-webhook", url + 8), 1); /* without scheme */
    assert_int_equal(check("slack-webhook", "T8EQJL0RTU7/BXGICDKBU96/NHK6O3RxiPUt1atLlcbUKb3h"), 1);
    assert_int_equal(check_edit("slack-webhook", url, 33, 'X'), 0);  /* T -> X */
    assert_int_equal(check_edit("slack-webhook", url, 36, 'q'), 0);  /* lowercase in team id */
    assert_int_equal(check_edit("slack-webhook", url, 57, '-'), 0);  /* secret not base62 */
    assert_int_equal(check("slack-webhook", "https://hooks.slack.com/services/T8EQJL0RTU7/BXGICDKBU96"), 0);
    assert_int_equal(check("slack-webhook", "https://hooks.slack.com/services/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/x"), 0);
    assert_int_equal(check("slack-webhook", "https://hooks.slack.com/services/T0/B0/short"), 0);
}

static void test_aws_key_id(void **state)
{
    (void)state;
    assert_int_equal(check("aws-key-id", "AKIALECQOWJVN3BPAA33"), 1);
    static const char *const prefixes[] = {"ASIA", "ABIA", "ACCA", "AGPA", "AIDA", "AIPA",
                                           "ANPA", "ANVA", "APKA", "AROA", "ASCA", "A3TX", "A3T7"};
    char buf[21];
    for (size_t i = 0; i < sizeof prefixes / sizeof prefixes[0]; i++) {
        snprintf(buf, sizeof buf, "%sLECQOWJVN3BPAA33", prefixes[i]);
        assert_int_equal(check("aws-key-id", buf), 1);
    }
    assert_int_equal(check("aws-key-id", "AKIBLECQOWJVN3BPAA33"), 0);  /* unknown prefix */
    assert_int_equal(check("aws-key-id", "AKIALECQOWJVN3BPAA38"), 0);  /* 8 is not base32 */
    assert_int_equal(check("aws-key-id", "AKIALECQOWJVN3BPAA3a"), 0);  /* lowercase */
    assert_int_equal(check("aws-key-id", "AKIALECQOWJVN3BPAA3"), 0);   /* 19 chars */
    assert_int_equal(check("aws-key-id", "AKIALECQOWJVN3BPAA333"), 0); /* 21 chars */
    assert_int_equal(check("aws-key-id", "A3T-LECQOWJVN3BPAA33"), 0);
}

static void test_uuid(void **state)
{
    (void)state;
    assert_int_equal(check("uuid", "3f2b9c1e-7d4a-4e8b-9a61-0c5d2e7f8a91"), 1);
    assert_int_equal(check("uuid", "3F2B9C1E-7D4A-4E8B-BA61-0C5D2E7F8A91"), 1);
    assert_int_equal(check("uuid", "3f2b9c1e-7d4a-0e8b-9a61-0c5d2e7f8a91"), 0); /* version 0 */
    assert_int_equal(check("uuid", "3f2b9c1e-7d4a-4e8b-ca61-0c5d2e7f8a91"), 0); /* variant */
    assert_int_equal(check("uuid", "3f2b9c1e7d4a-4e8b-9a61-0c5d2e7f8a91a"), 0);
    assert_int_equal(check("uuid", "3f2b9c1e-7d4a-4e8b-9a61-0c5d2e7f8a9g"), 0);
    assert_int_equal(check("uuid", "00000000-0000-0000-0000-000000000000"), 0);
}

static int implied(const char *s)
{
    return triage_checksum_implied((const uint8_t *)s, strlen(s));
}

/* Self-checking shapes are judged whatever detector found them (make eval
 * found generic "token =" and "Bearer" rules reporting ghp_ tokens with a
 * broken CRC and JWTs whose payload is not JSON). */
static void test_implied(void **state)
{
    (void)state;
    for (size_t i = 0; i + 1 < sizeof crc_tokens / sizeof crc_tokens[0]; i++)
        assert_int_equal(implied(crc_tokens[i]), 1);
    assert_int_equal(implied("ghp_SV67OrGwTVvE3P4rpzE9fKtAoVHwl71GdxoS"), -1);
    assert_int_equal(implied("npm_sJHrIDf40b0cDqOdLvPMlTTeAxEu8F0UPjDe"), -1);
    assert_int_equal(implied("gha_SV67OrGwTVvE3P4rpzE9fKtAoVHwl71Gdxos"), 0); /* no such prefix */
    assert_int_equal(implied("ghp_SV67OrGwTVvE3P4rpzE9fKtAoVHwl71Gdxo"), 0);   /* 39 chars */
    assert_int_equal(implied("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiI0MiIsImlhdCI6MTcwMDAwMDAwMH0.abcDEF123_-xyz"), 1);
    assert_int_equal(implied("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiI0MiI.abcDEF123_-xyz"), -1); /* payload not JSON */
    assert_int_equal(implied("eyJhbGciOi.eyJzdWIi"), 0);                     /* one dot */
    /* UUIDs are left to detectors that ask for "uuid" */
    assert_int_equal(implied("3f2b9c1e-7d4a-0e8b-9a61-0c5d2e7f8a91"), 0);
    assert_int_equal(implied("just-some-text"), 0);
    assert_int_equal(triage_checksum_implied(NULL, 0), 0);
}

static const char pem_good[] =
    "-----BEGIN PRIVATE KEY-----\n"
    "6OKL+itl6O3b1uB1QvRG4Jbo6yMoeTLQ+JSfWj53WzxSX/hSHbLfEaM+sMrCzpjS\n"
    "pFg28zhWa6mJA2P2aZwBtE0SHKmWbxcByqO66oNY09Cp+sk33k2p7wR2ZXwy+Tqw\n"
    "kjrp8txvdotE0rYz1lPk2bG6FOrbcXiQ\n"
    "-----END PRIVATE KEY-----";

static void test_pem(void **state)
{
    (void)state;
    assert_int_equal(check("pem", pem_good), 1);
    assert_int_equal(check("pem",
                           "-----BEGIN RSA PRIVATE KEY-----\\n"
                           "6OKL+itl6O3b1uB1QvRG4Jbo6yMoeTLQ+JSfWj53WzxSX/hSHbLfEaM+sMrCzpjS\\n"
                           "pFg28zhWa6mJA2P2aZwBtE0SHKmWbxcByqO66oNY09Cp+sk33k2p7wR2ZXwy\\n"
                           "-----END RSA PRIVATE KEY-----"),
                     1); /* newlines escaped, as in a JSON string */
    assert_int_equal(check("pem",
                           "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBg...\n-----END PRIVATE KEY-----"),
                     0);
    assert_int_equal(check("pem",
                           "-----BEGIN PRIVATE KEY-----\n"
                           "6OKL+itl6O3b1uB1QvRG4Jbo6yMoeTLQ+JSfWj53WzxSX/hSHbLfEaM+sMrCzpjS\n"
                           "pFg28zhWa6mJA2P2aZwBtE0SHKmWbxcByqO66oNY09Cp+sk33k2p7wR2ZXwy+Tqw\n"
                           "-----END RSA PRIVATE KEY-----"),
                     0); /* labels differ */
    assert_int_equal(check("pem", "-----BEGIN PRIVATE KEY-----\n-----END PRIVATE KEY-----"), 0);
    assert_int_equal(check("pem", "-----BEGIN -----"), 0);
    /* Cut off before the END line. */
    assert_int_equal(triage_checksum("pem", (const uint8_t *)pem_good, sizeof pem_good - 10), 0);
}

static void test_openai(void **state)
{
    (void)state;
    const char *t = "sk-proj-jkzGz30ObnPtL2M8qjgUm-9gWf-ZmwhgH7rv5TkgT3BlbkFJDc0L4naMqxl3YO13BCcAUOa0A5W7dHQ2av8qDDvv";
    assert_int_equal(check("openai", t), 1);
    assert_int_equal(check("openai", "sk-AbCdEfGhIjKlMnOpQrStT3BlbkFJuVwXyZaBcDeFgHiJ"), 1);
    assert_int_equal(check_edit("openai", t, 50, 'X'), 0); /* marker broken */
    assert_int_equal(check("openai", "sk-T3BlbkFJuVwXyZaBcDeFgHiJklmnop"), 0); /* nothing before */
    assert_int_equal(check_edit("openai", t, 20, '.'), 0);
}

/* Validators must not read past `len`: hand each one every prefix of a long
 * passing input, each copied into an exact-size heap buffer so ASan sees
 * any overread. */
static void test_prefixes_are_safe(void **state)
{
    (void)state;
    static const char *const names[] = {"github-crc32", "github-fine-grained", "jwt", "pypi-macaroon",
                                        "luhn", "slack-webhook", "aws-key-id", "uuid", "pem", "openai"};
    static const char *const inputs[] = {
        "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",
        "eyJhbGciOiJIUzI1NiJ9.eyJhIjoiASJ9.PTTrltpC4F6GuxJWpfkI9urYSIXUxzdfOMj9au5_HZk",
        "pypi-AgEIcHlwaS5vcmcCIDc1ZmY3ZTNmZDc4ZWE5ZmI2MDdjYTEwMjBjOTM0NGE0AAYgO6r0",
        "https://hooks.slack.com/services/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",
        pem_good,
    };
    for (size_t k = 0; k < sizeof inputs / sizeof inputs[0]; k++) {
        size_t n = strlen(inputs[k]);
        for (size_t len = 0; len <= n; len++) {
            uint8_t *copy = malloc(len ? len : 1);
            assert_non_null(copy);
            memcpy(copy, inputs[k], len);
            for (size_t v = 0; v < sizeof names / sizeof names[0]; v++) {
                int r = triage_checksum(names[v], copy, len);
                assert_true(r == 0 || r == 1);
            }
            free(copy);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_github_crc32_valid),
        cmocka_unit_test(test_github_crc32_every_edit_fails),
        cmocka_unit_test(test_github_crc32_shapes),
        cmocka_unit_test(test_github_fine_grained),
        cmocka_unit_test(test_implied),
        cmocka_unit_test(test_jwt),
        cmocka_unit_test(test_pypi_macaroon),
        cmocka_unit_test(test_luhn),
        cmocka_unit_test(test_slack_webhook),
        cmocka_unit_test(test_aws_key_id),
        cmocka_unit_test(test_uuid),
        cmocka_unit_test(test_pem),
        cmocka_unit_test(test_openai),
        cmocka_unit_test(test_prefixes_are_safe),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
