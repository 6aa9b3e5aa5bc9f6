/*
 * test_decode.c - decode-through: the single decoders, then decode_find on
 * the everyday cases (Kubernetes Secrets, docker config, JWTs, wrapped PEM
 * and YAML, URLs, JSON, HTML, e-mail) and on hostile input (binary, huge,
 * near misses).  Every decode_find result is checked for the invariants the
 * engine relies on (spans inside the input, decodings inside buf, sorted)
 * before the test looks at its content.
 *
 * Fixtures live in tests/data/decode/ and are read relative to the working
 * directory, which tests/run.sh and `make test` keep at the repository root
 * (KEYHOG_TEST_DATA overrides it).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "decode/decode.h"
#include "decode/trigger.h"

/* ------------------------------------------------------------------ */
/* Helpers                                                              */
/* ------------------------------------------------------------------ */

static void check_invariants(const uint8_t *in, size_t len, const decode_result *r,
                             size_t first_span)
{
    (void)in;
    assert_true(r->len <= r->cap);
    for (size_t i = first_span; i < r->count; i++) {
        const decode_span *s = &r->spans[i];
        assert_non_null(s->kind);
        assert_true(s->length > 0);
        assert_true(s->offset <= len && s->length <= len - s->offset);
        assert_true(s->out_len > 0);
        assert_true(s->out_offset <= r->len && s->out_len <= r->len - s->out_offset);
        if (i > first_span)
            assert_true(r->spans[i - 1].offset <= s->offset);
    }
}

/* Runs decode_find on a string with a generous budget and checks it. */
static void find_str(const char *text, decode_result *r)
{
    size_t first = r->count;
    assert_int_equal(decode_find((const uint8_t *)text, strlen(text), 1 << 20, r), 0);
    check_invariants((const uint8_t *)text, strlen(text), r, first);
}

/* The first span whose decoding contains needle, or NULL. */
static const decode_span *span_with(const decode_result *r, const char *needle)
{
    size_t n = strlen(needle);
    for (size_t i = 0; i < r->count; i++) {
        const decode_span *s = &r->spans[i];
        const uint8_t *p = r->buf + s->out_offset;
        for (size_t j = 0; n <= s->out_len && j <= s->out_len - n; j++)
            if (memcmp(p + j, needle, n) == 0)
                return s;
    }
    return NULL;
}

static const decode_span *span_of_kind(const decode_result *r, const char *kind)
{
    for (size_t i = 0; i < r->count; i++)
        if (strcmp(r->spans[i].kind, kind) == 0)
            return &r->spans[i];
    return NULL;
}

static int out_equals(const decode_result *r, const decode_span *s, const char *want)
{
    return s->out_len == strlen(want) && memcmp(r->buf + s->out_offset, want, s->out_len) == 0;
}

/* The encoded text of a span must be exactly `want` in the input. */
static void assert_span_text(const char *in, const decode_span *s, const char *want)
{
    assert_int_equal(s->length, strlen(want));
    assert_memory_equal(in + s->offset, want, s->length);
}

static char *read_fixture(const char *name, size_t *len)
{
    const char *dir = getenv("KEYHOG_TEST_DATA");
    char path[512];
    snprintf(path, sizeof path, "%s/decode/%s", dir ? dir : "tests/data", name);
    FILE *fp = fopen(path, "rb");
    if (!fp)
        fail_msg("cannot open fixture %s (run from the repository root)", path);
    char *buf = malloc(1 << 16);
    assert_non_null(buf);
    *len = fread(buf, 1, (1 << 16) - 1, fp);
    buf[*len] = 0;
    fclose(fp);
    return buf;
}

/* Deterministic bytes, so a failure reproduces. */
static uint64_t xorshift(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ------------------------------------------------------------------ */
/* Single decoders                                                      */
/* ------------------------------------------------------------------ */

static void test_base64_codec(void **state)
{
    (void)state;
    uint8_t out[64];
    const char *in = "aGVsbG8gd29ybGQ=";
    assert_int_equal(decode_base64((const uint8_t *)in, strlen(in), out, sizeof out), 11);
    assert_memory_equal(out, "hello world", 11);
    /* unpadded, both alphabets, wrapped */
    in = "aGVsbG8gd29ybGQ";
    assert_int_equal(decode_base64((const uint8_t *)in, strlen(in), out, sizeof out), 11);
    in = "-_-_";
    assert_int_equal(decode_base64((const uint8_t *)in, strlen(in), out, sizeof out), 3);
    assert_memory_equal(out, "\xfb\xff\xbf", 3);
    in = "+/+/";
    assert_int_equal(decode_base64((const uint8_t *)in, strlen(in), out, sizeof out), 3);
    assert_memory_equal(out, "\xfb\xff\xbf", 3);
    in = "aGVs\r\n  bG8g\nd29y bGQ=";
    assert_int_equal(decode_base64((const uint8_t *)in, strlen(in), out, sizeof out), 11);
    assert_memory_equal(out, "hello world", 11);
    assert_int_equal(decode_base64((const uint8_t *)"", 0, out, sizeof out), 0);
    /* invalid: bad char, one char too many, padding inside, wrong padding */
    const char *bad[] = {"aGVs!G8=", "aGVsb", "aG=Vs", "aGVsbG8===", "aGVsbG8gd29ybGQ=="};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(decode_base64((const uint8_t *)bad[i], strlen(bad[i]), out, sizeof out),
                         -1);
    /* too small an output is an error, not a silent truncation */
    in = "aGVsbG8gd29ybGQ=";
    assert_int_equal(decode_base64((const uint8_t *)in, strlen(in), out, 10), -1);
    assert_int_equal(decode_base64((const uint8_t *)in, strlen(in), out, 11), 11);
}

static void test_hex_codec(void **state)
{
    (void)state;
    uint8_t out[32];
    const char *in = "6b657968FF00";
    assert_int_equal(decode_hex((const uint8_t *)in, strlen(in), out, sizeof out), 6);
    assert_memory_equal(out, "keyh\xff\x00", 6);
    assert_int_equal(decode_hex((const uint8_t *)"abc", 3, out, sizeof out), -1);
    assert_int_equal(decode_hex((const uint8_t *)"zz", 2, out, sizeof out), -1);
    assert_int_equal(decode_hex((const uint8_t *)"6b65", 4, out, 1), -1);
}

static void test_percent_codec(void **state)
{
    (void)state;
    uint8_t out[64];
    const char *in = "a%40b%2fc+d%zz%4";
    long n = decode_percent((const uint8_t *)in, strlen(in), out, sizeof out);
    assert_int_equal(n, 12);
    assert_memory_equal(out, "a@b/c+d%zz%4", 12);
    assert_int_equal(decode_percent((const uint8_t *)in, strlen(in), out, 5), -1);
}

/* ------------------------------------------------------------------ */
/* Everyday cases                                                       */
/* ------------------------------------------------------------------ */

static void test_k8s_secret(void **state)
{
    (void)state;
    size_t len;
    char *doc = read_fixture("k8s-secret.yaml", &len);
    decode_result r = {0};
    find_str(doc, &r);
    const decode_span *s = span_with(&r, "kh-demo-Passw0rd!-2024-rotated");
    assert_non_null(s);
    assert_string_equal(s->kind, "base64");
    assert_true(out_equals(&r, s, "kh-demo-Passw0rd!-2024-rotated"));
    assert_span_text(doc, s, "a2gtZGVtby1QYXNzdzByZCEtMjAyNC1yb3RhdGVk");
    s = span_with(&r, "kh_live_9f8Q2mZr7LtY1vXc4Nb6Hj3Kd5Ws0Pa");
    assert_non_null(s);
    assert_true(out_equals(&r, s, "kh_live_9f8Q2mZr7LtY1vXc4Nb6Hj3Kd5Ws0Pa"));
    /* padded value: the span covers its padding */
    s = span_with(&r, "payments-service");
    assert_non_null(s);
    assert_span_text(doc, s, "cGF5bWVudHMtc2VydmljZQ==");
    /* "Mw==" is too short to bother; nothing else in the file decodes */
    assert_int_equal(r.count, 3);
    decode_result_free(&r);
    free(doc);
}

static void test_dockerconfigjson_two_levels(void **state)
{
    (void)state;
    size_t len;
    char *doc = read_fixture("dockerconfig-secret.yaml", &len);
    decode_result l1 = {0}, l2 = {0};
    find_str(doc, &l1);
    const decode_span *s = span_with(&l1, "\"auths\"");
    assert_non_null(s);
    assert_string_equal(s->kind, "base64");
    assert_non_null(span_with(&l1, "Reg1stry-Pull-Secret-7731"));
    /* The engine re-runs decode_find on each decoding: the "auth" field is
     * base64 of user:password. */
    size_t first = l2.count;
    assert_int_equal(decode_find(l1.buf + s->out_offset, s->out_len, 1 << 20, &l2), 0);
    check_invariants(l1.buf + s->out_offset, s->out_len, &l2, first);
    const decode_span *a = span_with(&l2, "ci-builder:Reg1stry-Pull-Secret-7731");
    assert_non_null(a);
    assert_true(out_equals(&l2, a, "ci-builder:Reg1stry-Pull-Secret-7731"));
    assert_memory_equal(l1.buf + s->out_offset + a->offset, "Y2ktYnVpbGRlcjpSZWcx", 20);
    decode_result_free(&l1);
    decode_result_free(&l2);
    free(doc);
}

static void test_jwt_parts(void **state)
{
    (void)state;
    /* header {"alg":"HS256","typ":"JWT"}, payload of our own, and a
     * signature that is 32 bytes of binary */
    const char *jwt =
        "Authorization: Bearer "
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
        "eyJzdWIiOiJrZXlob2ctdGVzdCIsInJvbGUiOiJhZG1pbiIsImV4cCI6MTkwMDAwMDAwMH0."
        "3q2-7wABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhs";
    decode_result r = {0};
    find_str(jwt, &r);
    const decode_span *h = span_with(&r, "\"alg\":\"HS256\"");
    const decode_span *p = span_with(&r, "\"sub\":\"keyhog-test\"");
    assert_non_null(h);
    assert_non_null(p);
    assert_true(out_equals(&r, p, "{\"sub\":\"keyhog-test\",\"role\":\"admin\",\"exp\":1900000000}"));
    assert_int_equal(r.count, 2); /* the signature decodes to binary */
    assert_true(h->offset < p->offset);
    decode_result_free(&r);
}

static void test_base64url(void **state)
{
    (void)state;
    /* base64url of "token=kh~a1b2c3?ok>>>yes??", unpadded, with '-' */
    const char *in = "cookie: dG9rZW49a2h-YTFiMmMzP29rPj4-eWVzPz8 next";
    decode_result r = {0};
    find_str(in, &r);
    const decode_span *s = span_with(&r, "token=kh~a1b2c3?ok>>>yes??");
    assert_non_null(s);
    assert_string_equal(s->kind, "base64url");
    decode_result_free(&r);
}

static void test_binary_base64_dropped(void **state)
{
    (void)state;
    /* 96 chars of base64 over 72 pseudo-random bytes; and a PEM-shaped
     * block whose body is binary (as every real key or certificate is) */
    uint64_t seed = 42;
    uint8_t raw[72];
    for (size_t i = 0; i < sizeof raw; i++)
        raw[i] = (uint8_t)xorshift(&seed);
    static const char alpha[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char enc[200] = "blob = ";
    size_t n = strlen(enc);
    for (size_t i = 0; i < sizeof raw; i += 3) {
        uint32_t v = (uint32_t)raw[i] << 16 | (uint32_t)raw[i + 1] << 8 | raw[i + 2];
        for (int k = 3; k >= 0; k--)
            enc[n++] = alpha[(v >> (6 * k)) & 63];
    }
    enc[n] = 0;
    decode_result r = {0};
    find_str(enc, &r);
    assert_int_equal(r.count, 0);
    /* the same with a NUL-heavy payload: "AAAAAAAA..." decodes to zeros */
    find_str("zeros: AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA== end", &r);
    assert_int_equal(r.count, 0);
    decode_result_free(&r);
}

static void test_identifiers_not_base64(void **state)
{
    (void)state;
    const char *words[] = {
        "ThisIsJustACamelCaseIdentifierName",
        "getUserAccountSettingsFromDatabase",
        "AbstractSingletonProxyFactoryBean",
        "HTTPRequestHandlerRegistryConfigV2",
        "/usr/local/share/applications/defaults",
        "src/engine/compile/PatternDatabaseBuilder",
        "org.apache.commons.lang3.StringUtils",
        "abcdefghijklmnopqrstuvwxyzabcdefghij",
        "0123456789012345678901234567890123456789",
        "deadbeefcafebabe0123456789abcdef01234567",
        "550e8400-e29b-41d4-a716-446655440000",
    };
    decode_result r = {0};
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++) {
        decode_result_reset(&r);
        find_str(words[i], &r);
        if (r.count != 0)
            fail_msg("'%s' decoded as %s", words[i], r.spans[0].kind);
    }
    decode_result_free(&r);
}

static void test_hex_text(void **state)
{
    (void)state;
    /* hex of "aws_secret=Kh7/wJalrXUtnFEMI" in both cases, a 0x prefix, and
     * a SHA-256 that must not decode (binary) */
    const char *in =
        "a = 6177735f7365637265743d4b68372f774a616c725855746e46454d49\n"
        "b = 0x6177735F7365637265743D4B68372F774A616C725855746E46454D49\n"
        "c = 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\n"
        "d = 6177735f7365637265743D4B68372f774a616c725855746e46454d49\n";
    decode_result r = {0};
    find_str(in, &r);
    assert_int_equal(r.count, 2);
    for (size_t i = 0; i < r.count; i++) {
        assert_string_equal(r.spans[i].kind, "hex");
        assert_true(out_equals(&r, &r.spans[i], "aws_secret=Kh7/wJalrXUtnFEMI"));
    }
    assert_memory_equal(in + r.spans[1].offset, "6177735F", 8);
    decode_result_free(&r);
}

static void test_url_connection_string(void **state)
{
    (void)state;
    const char *in = "DATABASE_URL=\"postgres://app%40prod:s3cr%23t%2Fpass@db.example.com:5432/main\"";
    decode_result r = {0};
    find_str(in, &r);
    const decode_span *s = span_of_kind(&r, "url");
    assert_non_null(s);
    assert_true(out_equals(&r, s, "postgres://app@prod:s3cr#t/pass@db.example.com:5432/main"));
    assert_span_text(in, s, "postgres://app%40prod:s3cr%23t%2Fpass@db.example.com:5432/main");
    /* a single escape is not enough, and '+' stays '+' */
    decode_result_reset(&r);
    find_str("q=a%20b c+d%2Be+f%2B", &r);
    s = span_of_kind(&r, "url");
    assert_non_null(s);
    assert_true(out_equals(&r, s, "c+d+e+f+"));
    decode_result_reset(&r);
    find_str("see https://example.com/a%20b and more", &r);
    assert_null(span_of_kind(&r, "url"));
    /* one escape is enough when it is the assignment of a form-encoded
     * "NAME=value" long enough to hold a secret (make eval planted these) */
    decode_result_reset(&r);
    find_str("cfg=CLARIFAI_PAT%3D1352f9242c21076a931e5be563f24b50 end", &r);
    s = span_of_kind(&r, "url");
    assert_non_null(s);
    assert_true(out_equals(&r, s, "cfg=CLARIFAI_PAT=1352f9242c21076a931e5be563f24b50"));
    decode_result_reset(&r);
    find_str("see a%3Db", &r);
    assert_null(span_of_kind(&r, "url"));
    decode_result_free(&r);
}

static void test_json_unicode_escapes(void **state)
{
    (void)state;
    const char *in =
        "{\"name\": \"ok\", \"secret\": \"kh\\u005flive\\u005fp\\u00e4ss\\ud83d\\ude00\\/x\"}";
    decode_result r = {0};
    find_str(in, &r);
    const decode_span *s = span_of_kind(&r, "unicode-escape");
    assert_non_null(s);
    assert_true(out_equals(&r, s, "kh_live_p\xc3\xa4ss\xf0\x9f\x98\x80/x"));
    assert_span_text(in, s, "kh\\u005flive\\u005fp\\u00e4ss\\ud83d\\ude00\\/x");
    decode_result_free(&r);
}

static void test_backslash_escapes(void **state)
{
    (void)state;
    /* \x bytes; escaped quotes keep the string in one run; a lone surrogate
     * becomes U+FFFD; whitespace-only escapes are not worth a span */
    const char *in = "s = \"\\x6b\\x68_\\x74ok\"\n"
                     "j = \"{\\\"token\\\":\\\"kh_abc\\\"}\"\n"
                     "u = \"a\\ud800b\\u0041\"\n"
                     "p = \"line\\n\\tnext\"\n";
    decode_result r = {0};
    find_str(in, &r);
    const decode_span *s = span_with(&r, "kh_tok");
    assert_non_null(s);
    assert_string_equal(s->kind, "escape");
    assert_true(out_equals(&r, s, "kh_tok"));
    s = span_with(&r, "{\"token\":\"kh_abc\"}");
    assert_non_null(s);
    assert_true(out_equals(&r, s, "{\"token\":\"kh_abc\"}"));
    s = span_with(&r, "a\xef\xbf\xbd" "bA");
    assert_non_null(s);
    assert_string_equal(s->kind, "unicode-escape");
    assert_null(span_with(&r, "line\n"));
    decode_result_free(&r);
}

static void test_html_entities(void **state)
{
    (void)state;
    const char *in = "<a href=\"https://x.example/cb?user=ops&amp;key=kh&#95;live&#x5f;Z9\">"
                     "&lt;password&gt;hunter2-kh&lt;/password&gt;</a>\n"
                     "<p>Fish &amp; chips</p>";
    decode_result r = {0};
    find_str(in, &r);
    const decode_span *s = span_with(&r, "user=ops&key=kh_live_Z9");
    assert_non_null(s);
    assert_string_equal(s->kind, "html");
    s = span_with(&r, "<password>hunter2-kh</password>");
    assert_non_null(s);
    assert_null(span_with(&r, "Fish & chips")); /* one entity only */
    decode_result_free(&r);
}

static void test_quoted_printable_email(void **state)
{
    (void)state;
    size_t len;
    char *doc = read_fixture("email-qp.eml", &len);
    decode_result r = {0};
    find_str(doc, &r);
    const decode_span *s = span_of_kind(&r, "quoted-printable");
    assert_non_null(s);
    assert_non_null(span_with(&r, "postgresql://stage_user:Gr\xc3\xbcn-Apfel-42@stage-db.example."
                                   "org:5432/app?sslmode=require"));
    assert_memory_equal(doc + s->offset + s->length - 3, "ire", 3);
    decode_result_free(&r);
    free(doc);
}

static void test_wrapped_pem(void **state)
{
    (void)state;
    size_t len;
    char *doc = read_fixture("wrapped-pem.txt", &len);
    decode_result r = {0};
    find_str(doc, &r);
    assert_int_equal(r.count, 1);
    const char *url = "postgres://reporting:Wh1sper-Quiet-Lake-88@db.internal.example:5432/"
                      "reports?sslmode=require\n";
    char want[256];
    snprintf(want, sizeof want, "%s%s", url, url);
    assert_true(out_equals(&r, &r.spans[0], want));
    assert_memory_equal(doc + r.spans[0].offset, "cG9zdGdyZXM6", 12);
    assert_memory_equal(doc + r.spans[0].offset + r.spans[0].length - 4, "Cg==", 4);
    decode_result_free(&r);
    free(doc);
}

static void test_wrapped_yaml_block(void **state)
{
    (void)state;
    size_t len;
    char *doc = read_fixture("wrapped-yaml.yaml", &len);
    decode_result r = {0};
    find_str(doc, &r);
    assert_int_equal(r.count, 1);
    assert_true(out_equals(&r, &r.spans[0],
                           "export DEPLOY_TOKEN=kh_deploy_Zq8Wm3Rt6Yp1Lk4Hg7Fd2Sa9 # rotated "
                           "monthly by the release bot"));
    decode_result_free(&r);
    free(doc);
}

static void test_wrap_does_not_swallow_next_line(void **state)
{
    (void)state;
    /* a long base64 line followed by a bare word: the joined run fails, and
     * the line alone still decodes */
    const char *in = "dG9rZW46IGtoX3Rlc3RfYWJjZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXo\n"
                     "Thanks\n";
    decode_result r = {0};
    find_str(in, &r);
    const decode_span *s = span_with(&r, "token: kh_test_abcdefghijklmnopqrstuvwxyz");
    assert_non_null(s);
    assert_span_text(in, s, "dG9rZW46IGtoX3Rlc3RfYWJjZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXo");
    decode_result_free(&r);
}

static void test_base64_glued_to_word(void **state)
{
    (void)state;
    const char *in = "GET /api/v1/dG9rZW49a2hfcGF0aF9zZWNyZXRfOTk5 HTTP/1.1\n"
                     "my_secret_dG9rZW49a2hfcGF0aF9zZWNyZXRfOTk5\n";
    decode_result r = {0};
    find_str(in, &r);
    assert_int_equal(r.count, 2);
    for (size_t i = 0; i < r.count; i++) {
        assert_true(out_equals(&r, &r.spans[i], "token=kh_path_secret_999"));
        assert_span_text(in, &r.spans[i], "dG9rZW49a2hfcGF0aF9zZWNyZXRfOTk5");
    }
    decode_result_free(&r);
}

/* A base64 piece or a hex word inside a long run of short pieces, at every
 * offset across the 64-byte windows the stretch search looks at, with data
 * after the run and with the run at the end of the buffer. */
static void test_piece_at_every_offset(void **state)
{
    (void)state;
    const char *b64 = "dG9rZW49a2hfcGF0aF9zZWNyZXRfOTk5";
    const char *hex = "6177735f7365637265743d4b68372f774a616c725855746e46454d49";
    for (int which = 0; which < 2; which++) {
        const char *word = which ? hex : b64;
        const char *want = which ? "aws_secret=Kh7/wJalrXUtnFEMI" : "token=kh_path_secret_999";
        for (size_t k = 0; k < 140; k++) {
            for (int tail = 0; tail < 2; tail++) {
                char in[512];
                size_t n = 0;
                for (size_t i = 0; i < k; i++) in[n++] = i % 2 ? '_' : 'q';
                in[n++] = '_';
                memcpy(in + n, word, strlen(word));
                n += strlen(word);
                for (size_t i = 0; i < 30; i++) in[n++] = i % 2 ? 'z' : '_';
                if (tail) {
                    memcpy(in + n, "\n", 1);
                    n++;
                    memset(in + n, ' ', 100);
                    n += 100;
                }
                in[n] = '\0';
                decode_result r = {0};
                find_str(in, &r);
                assert_int_equal(r.count, 1);
                assert_true(out_equals(&r, &r.spans[0], want));
                assert_span_text(in, &r.spans[0], word);
                decode_result_free(&r);
            }
        }
    }
}

static void test_two_levels_base64_of_url(void **state)
{
    (void)state;
    /* base64 of "redis://:kh%21pass%40word@cache.local:6379" */
    const char *in = "REDIS=cmVkaXM6Ly86a2glMjFwYXNzJTQwd29yZEBjYWNoZS5sb2NhbDo2Mzc5";
    decode_result l1 = {0}, l2 = {0};
    find_str(in, &l1);
    assert_int_equal(l1.count, 1);
    assert_true(out_equals(&l1, &l1.spans[0], "redis://:kh%21pass%40word@cache.local:6379"));
    assert_int_equal(decode_find(l1.buf + l1.spans[0].out_offset, l1.spans[0].out_len, 4096, &l2), 0);
    const decode_span *s = span_of_kind(&l2, "url");
    assert_non_null(s);
    assert_true(out_equals(&l2, s, "redis://:kh!pass@word@cache.local:6379"));
    decode_result_free(&l1);
    decode_result_free(&l2);
}

/* ------------------------------------------------------------------ */
/* Bounds and hostile input                                             */
/* ------------------------------------------------------------------ */

static void test_empty_and_null(void **state)
{
    (void)state;
    decode_result r = {0};
    assert_int_equal(decode_find(NULL, 0, 1024, &r), 0);
    assert_int_equal(decode_find((const uint8_t *)"", 0, 1024, &r), 0);
    assert_int_equal(r.count, 0);
    assert_int_equal(r.len, 0);
    /* budget 0: nothing decoded, and the caller learns why */
    assert_int_equal(decode_find((const uint8_t *)"x=a%41%42", 9, 0, &r), 0);
    assert_int_equal(r.count, 0);
    assert_true(r.truncated);
    decode_result_free(&r);
    decode_result_free(&r); /* free leaves it reusable */
}

static void test_appends_to_result(void **state)
{
    (void)state;
    decode_result r = {0};
    find_str("a=%41%42%43", &r);
    assert_int_equal(r.count, 1);
    find_str("b=%44%45%46", &r);
    assert_int_equal(r.count, 2);
    assert_true(out_equals(&r, &r.spans[0], "a=ABC"));
    assert_true(out_equals(&r, &r.spans[1], "b=DEF"));
    decode_result_reset(&r);
    assert_int_equal(r.count, 0);
    assert_int_equal(r.len, 0);
    assert_false(r.truncated);
    decode_result_free(&r);
}

/* decode_find_marked with decode_marks' marks gives decode_find's spans,
 * byte for byte; returns how many bytes it decoded. */
static size_t assert_marked_same(const uint8_t *d, size_t n, size_t budget)
{
    uint64_t *marks = malloc(((n + DT_SEG - 1) / DT_SEG + 1) * sizeof *marks);
    assert_non_null(marks);
    size_t nm = decode_marks(d, n, marks), fed = 0;
    decode_result a = {0}, b = {0};
    assert_int_equal(decode_find(d, n, budget, &a), 0);
    assert_int_equal(decode_find_marked(d, n, marks, nm, budget, &b, &fed), 0);
    assert_int_equal(a.count, b.count);
    assert_int_equal(a.truncated, b.truncated);
    for (size_t i = 0; i < a.count; i++) {
        const decode_span *x = &a.spans[i], *y = &b.spans[i];
        assert_int_equal(x->offset, y->offset);
        assert_int_equal(x->length, y->length);
        assert_string_equal(x->kind, y->kind);
        assert_int_equal(x->out_len, y->out_len);
        assert_memory_equal(a.buf + x->out_offset, b.buf + y->out_offset, x->out_len);
    }
    decode_result_free(&a);
    decode_result_free(&b);
    free(marks);
    return fed;
}

/* The GPU's decode marks: decoding only the marked paragraphs finds what
 * decoding everything finds, on every kind of span, next to paragraph cuts
 * and line joins, and on random mixtures of them. */
static void test_marked_paragraphs(void **state)
{
    (void)state;
    static const char *const frags[] = {
        "token: dGhpcyBpcyBhIHNlY3JldCB0b2tlbiB2YWx1ZQ==\n",
        "-----BEGIN PRIVATE KEY-----\nTUlJRXZRSUJBREFOQmdrcWhraUc5dzBCQVFFRkFBU0NCS2N3Z2dTakFnRUFB\n"
        "b0lCQVFDN1ZKVFV0OVVzOGNLalpkQ2RCNGFCQ2RFZkdoSWpLbE1uT3BRclN0VXZX\nZ2hp\n"
        "-----END PRIVATE KEY-----\n",
        "  key: |\n    c2VjcmV0X2tleV9pc19oZXJlX2FuZF9pdF9pc19sb25nX2Vub3VnaA\n"
        "    X2FuZF9tb3JlX2Jhc2U2NF9vbl90aGVfbmV4dF9saW5lX2hlcmU=\n",
        "url=https://h/x?k=%41%50%49%5F%4B%45%59%3Dabc123def456ghi789jkl\n",
        "form: API_KEY%3Dsk_live_abcdefghijklmnopqrstuvwx\n",
        "\"\\u0041\\u0042\\x43\\\"q\\\"\"\n",
        "body=3D=\nSGVsbG8=3D=20world=\n\n",
        "Subject: =?utf-8?Q?a?= x=3Dy=20z=\r\n",
        "<a title=\"&quot;secret&quot; &amp; &#x41;&#66;\">\n",
        "hex 0x6170695f6b65793d31323334353637383961626364656667 end\n",
        "id_5f6b65793d313233343536373839616263646566_x\n",
        "path /api/dGhpcy1pcy1hLXNlY3JldC10b2tlbi12YWx1ZQ/more\n",
        "static int ath10k_wmi_tlv_op_gen_vdev_start(struct ath10k *ar)\n",
        "printk(\"%02x:%02x\\n\", a, b);\n",
        "#define X(a) \\\n\tdo { } while (0)\n",
        "\n", "\n\n", "\r\n\r\n", "=\n", "\\", "%4", "&am", "AAAA",
        "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo0NTY3ODkw",
        "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo0NTY3ODkwYWJjZGVmZ2hpamtsbW5vcA\n",
        /* Base64 of UTF-8 text (2-, 3- and 4-byte sequences), of text then
         * binary, with a NUL inside, with trailing NULs, with a broken
         * sequence: the trigger judges every whole quad, as is_text does. */
        "v: aMOpbGxvIHfDtnJsZCDDvG7Dr2PDtmTDqSDml6XmnKzoqp7jga7jg4bjgq3jgrnjg4gg8J+ZgiBzZWNyZXQ9YWJj\n",
        "v: cGxhaW4gdGV4dCBmaXJzdCB0aGVuIGJpbmFyeSD//oCBgoOEhYaHiIk=\n",
        "v: YXBpX2tleT1hYmNkZWYAZ2hpamts\n", "v: YXBpX2tleT1hYmNkZWZnaGlqa2wAAAA=\n",
        "v: dG9rZW4gw6kgb2sg4oIgYnJva2VuIGxlYWQgYW5kIG1vcmUgdGV4dCBoZXJl\n",
        /* Lines of 40 base64 characters or more, and what may follow them:
         * another run (joined), indented, padded, a word, both alphabets. */
        "CONFIG_HAVE_ARCH_TRANSPARENT_HUGEPAGE_PUD\nstatic inline void f(void)\n",
        "c2VjcmV0X2tleV9pc19oZXJlX2FuZF9pdF9pc19sb25n\n  X2FuZF9tb3Jl  \n",
        "c2VjcmV0X2tleV9pc19oZXJlX2FuZF9pdF9pc19sb\n  25nX2Vub3VnaF90b193cmFwIQ==\n",
        "c2VjcmV0X2tleV9pc19oZXJlX2FuZF9pdF9pc19sb\r\n25nX2Vub3VnaF90b193cmFwIQ\t\n",
        "c2VjcmV0X2tleV9pc19oZXJlX2FuZF9pdF9pc19sb25n\nX2FuZF9tb3Jl== \r\n",
        "c2VjcmV0X2tleV9pc19oZXJlX2FuZF9pdF9pc19sb25n\n\tX2Fu ZF9tb3Jl\n",
        "c2VjcmV0+2tleV9pc19oZXJlX2FuZF9pdF9pc19sb25n\nX2FuZF9tb3Jl\n",
        "------------------------------------------------\nDOCUMENTATION\n",
        /* Percent escapes alone, in pairs, apart, and the one that may do
         * alone. */
        "a%41b %42c\n", "q=%41%42\n", "x%3dAPI_KEY_abcdefghijklmnopqrstu\n", "%3A", "%41-%4",
    };
    size_t nf = sizeof frags / sizeof frags[0];
    uint64_t seed = 0x243F6A8885A308D3u;
    uint8_t *buf = malloc(1 << 16);
    assert_non_null(buf);
    for (int doc = 0; doc < 3000; doc++) {
        size_t n = 0, parts = 1 + xorshift(&seed) % 24;
        for (size_t k = 0; k < parts; k++) {
            const char *f = frags[xorshift(&seed) % nf];
            size_t l = strlen(f);
            if (n + l + 2 > (1 << 16))
                break;
            /* Cut some fragments short, so runs end anywhere. */
            if (xorshift(&seed) % 4 == 0)
                l = 1 + xorshift(&seed) % l;
            memcpy(buf + n, f, l);
            n += l;
        }
        /* A small budget now and then takes the whole-buffer way. */
        assert_marked_same(buf, n, doc % 7 == 0 ? 64 : 1u << 20);
    }
    /* A budget smaller than a base64 run no mark covers: decoding all of
     * it truncates (the run is tried with too little room), so must this
     * (found by fuzz_decode). */
    static const char small[] =
        "<a+++++++c+++++++++++++++++++++++++a++++++++++++++++++++++++++++++++++++++++++61"
        "6c76cccccccccccccccccc+++++++++++++++++++++616c76cccccccccccccccccc++;c5548++c55"
        "48+49\n";
    assert_marked_same((const uint8_t *)small, sizeof small - 1, 64);
    /* Many paragraphs, one with a secret: only that one is decoded. */
    size_t n = 0;
    for (int k = 0; k < 200; k++)
        n += (size_t)sprintf((char *)buf + n, "int f%d(void)\n{\n\treturn %d;\n}\n\n", k, k);
    n += (size_t)sprintf((char *)buf + n, "%s", frags[0]);
    size_t fed = assert_marked_same(buf, n, 1u << 20);
    assert_true(fed > 0 && fed < n / 20);
    free(buf);
}

/* trigger.h's dt_urlish is the percent pass's URL class (decode.c keeps it
 * in a table): two escapes with byte c between are one run, and decode,
 * exactly when dt_urlish(c). */
static void test_urlish_matches_percent_pass(void **state)
{
    (void)state;
    for (unsigned c = 0; c < 256; c++) {
        uint8_t doc[] = {'k', '%', '4', '1', (uint8_t)c, '%', '4', '2', ' '};
        decode_result r = {0};
        assert_int_equal(decode_find(doc, sizeof doc, 1u << 20, &r), 0);
        int url = 0;
        for (size_t i = 0; i < r.count; i++)
            url |= !strcmp(r.spans[i].kind, "url");
        if (url != dt_urlish(c))
            fail_msg("byte 0x%02x: percent pass %d, dt_urlish %d", c, url, dt_urlish(c));
        decode_result_free(&r);
    }
}

static void test_random_10mb_fast(void **state)
{
    (void)state;
    size_t len = 10u << 20;
    uint8_t *buf = malloc(len);
    assert_non_null(buf);
    uint64_t seed = 0x9E3779B97F4A7C15u;
    for (size_t i = 0; i < len; i += 8) {
        uint64_t v = xorshift(&seed);
        memcpy(buf + i, &v, 8);
    }
    decode_result r = {0};
    double t0 = now_seconds();
    assert_int_equal(decode_find(buf, len, 1 << 20, &r), 0);
    double dt = now_seconds() - t0;
    check_invariants(buf, len, &r, 0);
    print_message("10 MB random: %.3f s, %zu spans\n", dt, r.count);
    /* about 10 ms optimised, 20 ms under sanitizers */
    assert_true(dt < 1.0);
    decode_result_free(&r);
    free(buf);
}

static void test_huge_run_respects_budget(void **state)
{
    (void)state;
    /* 8 MB of base64 on one line ("kh-secret-" repeated), and 8 MB of
     * percent escapes: budget 64 KB.  Spans that do not fit are dropped,
     * never cut. */
    size_t len = 8u << 20;
    uint8_t *buf = malloc(len);
    assert_non_null(buf);
    const char *unit = "a2gtc2VjcmV0LWtoLXNlY3Jl"; /* "kh-secret-kh-secre" */
    size_t ul = strlen(unit);
    for (size_t i = 0; i < len; i++)
        buf[i] = (uint8_t)unit[i % ul];
    decode_result r = {0};
    double t0 = now_seconds();
    assert_int_equal(decode_find(buf, len, 1 << 16, &r), 0);
    check_invariants(buf, len, &r, 0);
    assert_true(r.len <= 1 << 16);
    assert_true(r.truncated);
    /* with room for it, the whole run decodes */
    decode_result_reset(&r);
    assert_int_equal(decode_find(buf, len, 8u << 20, &r), 0);
    assert_int_equal(r.count, 1);
    assert_int_equal(r.spans[0].out_len, len / 4 * 3);
    assert_false(r.truncated);
    for (size_t i = 0; i < len; i++)
        buf[i] = (uint8_t)"%41"[i % 3];
    decode_result_reset(&r);
    assert_int_equal(decode_find(buf, len, 1 << 16, &r), 0);
    check_invariants(buf, len, &r, 0);
    assert_true(r.len <= 1 << 16);
    assert_true(r.truncated);
    double dt = now_seconds() - t0;
    print_message("16 MB of runs, three passes: %.3f s\n", dt);
    assert_true(dt < 5.0);
    decode_result_free(&r);
    free(buf);
}

static void test_span_cap(void **state)
{
    (void)state;
    /* 70000 tiny url spans: one call keeps DECODE_MAX_SPANS of them */
    const char *unit = "x%41%42 ";
    size_t ul = strlen(unit), n = 70000, len = ul * n;
    uint8_t *buf = malloc(len);
    assert_non_null(buf);
    for (size_t i = 0; i < n; i++)
        memcpy(buf + i * ul, unit, ul);
    decode_result r = {0};
    assert_int_equal(decode_find(buf, len, 1 << 20, &r), 0);
    check_invariants(buf, len, &r, 0);
    assert_int_equal(r.count, DECODE_MAX_SPANS);
    assert_true(r.truncated);
    decode_result_free(&r);
    free(buf);
}

static void test_pathological_shapes(void **state)
{
    (void)state;
    /* many long lines that join and then fail (each retried once), runs cut
     * by separators every other byte, unterminated escapes and entities at
     * the very end of the buffer */
    size_t len = 2u << 20;
    uint8_t *buf = malloc(len);
    assert_non_null(buf);
    uint64_t seed = 7;
    for (size_t i = 0; i < len; i++) {
        size_t col = i % 61;
        buf[i] = col == 60 ? '\n' : "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"[xorshift(&seed) & 63];
    }
    decode_result r = {0};
    double t0 = now_seconds();
    assert_int_equal(decode_find(buf, len, 1 << 20, &r), 0);
    check_invariants(buf, len, &r, 0);
    /* A random 20-40 character word passes the text gate about once in
     * 10^5 tries (a handful of valid UTF-8 pairs); none of the joined
     * multi-line runs may. */
    assert_true(r.count <= 2);
    for (size_t i = 0; i < r.count; i++)
        assert_true(r.spans[i].length <= 60);
    for (size_t i = 0; i < len; i++)
        buf[i] = i % 2 ? '_' : 'a';
    assert_int_equal(decode_find(buf, len, 1 << 20, &r), 0);
    for (size_t i = 0; i < len; i++)
        buf[i] = "\\u00&#x%=A"[i % 10];
    assert_int_equal(decode_find(buf, len, 1 << 20, &r), 0);
    check_invariants(buf, len, &r, 0);
    const char *tails[] = {"\\u12", "\\", "&#x1", "&am", "%4", "=4", "\\ud83d\\u", "abc="};
    for (size_t i = 0; i < sizeof tails / sizeof tails[0]; i++) {
        size_t first = r.count;
        assert_int_equal(decode_find((const uint8_t *)tails[i], strlen(tails[i]), 64, &r), 0);
        check_invariants((const uint8_t *)tails[i], strlen(tails[i]), &r, first);
    }
    double dt = now_seconds() - t0;
    print_message("pathological shapes, 6 MB: %.3f s\n", dt);
    assert_true(dt < 3.0);
    decode_result_free(&r);
    free(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_base64_codec),
        cmocka_unit_test(test_hex_codec),
        cmocka_unit_test(test_percent_codec),
        cmocka_unit_test(test_k8s_secret),
        cmocka_unit_test(test_dockerconfigjson_two_levels),
        cmocka_unit_test(test_jwt_parts),
        cmocka_unit_test(test_base64url),
        cmocka_unit_test(test_binary_base64_dropped),
        cmocka_unit_test(test_identifiers_not_base64),
        cmocka_unit_test(test_hex_text),
        cmocka_unit_test(test_url_connection_string),
        cmocka_unit_test(test_json_unicode_escapes),
        cmocka_unit_test(test_backslash_escapes),
        cmocka_unit_test(test_html_entities),
        cmocka_unit_test(test_quoted_printable_email),
        cmocka_unit_test(test_wrapped_pem),
        cmocka_unit_test(test_wrapped_yaml_block),
        cmocka_unit_test(test_wrap_does_not_swallow_next_line),
        cmocka_unit_test(test_base64_glued_to_word),
        cmocka_unit_test(test_piece_at_every_offset),
        cmocka_unit_test(test_two_levels_base64_of_url),
        cmocka_unit_test(test_empty_and_null),
        cmocka_unit_test(test_appends_to_result),
        cmocka_unit_test(test_marked_paragraphs),
        cmocka_unit_test(test_urlish_matches_percent_pass),
        cmocka_unit_test(test_random_10mb_fast),
        cmocka_unit_test(test_huge_run_respects_budget),
        cmocka_unit_test(test_span_cap),
        cmocka_unit_test(test_pathological_shapes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
