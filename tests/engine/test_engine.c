/*
 * test_engine.c - the engine through the public API: capture groups, many
 * secrets in one buffer, results independent of block size, the PCRE2
 * fallback for patterns Vectorscan refuses, companions, line and column.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "keyhog.h"
#include "engine/engine.h" /* engine_scan_regions: the SOM database alone */
#include "fixtures.h"

typedef struct found {
    char id[64];
    char secret[256];
    uint64_t offset;
    size_t length;
    uint32_t line, column, end_line, end_column;
    char companion[128];
    char decoded[64];
} found;

typedef struct collector {
    found items[4096];
    size_t n;
} collector;

static int collect(const kh_finding *f, void *ctx)
{
    collector *c = ctx;
    if (c->n == 4096)
        return 1;
    found *o = &c->items[c->n++];
    memset(o, 0, sizeof *o);
    snprintf(o->id, sizeof o->id, "%s", f->detector->id);
    snprintf(o->secret, sizeof o->secret, "%.*s", (int)f->secret_len, (const char *)f->secret);
    o->offset = f->offset;
    o->length = f->length;
    o->line = f->line;
    o->column = f->column;
    o->end_line = f->end_line;
    o->end_column = f->end_column;
    if (f->companion_count)
        snprintf(o->companion, sizeof o->companion, "%s=%.*s", f->companions[0].name,
                 (int)f->companions[0].value_len, (const char *)f->companions[0].value);
    for (size_t i = 0; i < f->decode_depth; i++) {
        strncat(o->decoded, f->decoded_from[i], sizeof o->decoded - strlen(o->decoded) - 2);
        strcat(o->decoded, ">");
    }
    return 0;
}

static const char token_spec[] =
    "[detector]\n"
    "id = \"test-token\"\nname = \"Test Token\"\nservice = \"test\"\nseverity = \"high\"\n"
    "keywords = [\"tkn_\"]\n"
    "[[detector.patterns]]\n"
    "regex = '\\b(tkn_[A-Za-z0-9]{24})\\b'\ngroup = 1\n";

static const char assign_spec[] =
    "[detector]\n"
    "id = \"test-assign\"\nname = \"Assigned\"\nservice = \"test\"\nseverity = \"medium\"\n"
    "keywords = [\"zapkey\"]\n"
    "[[detector.patterns]]\n"
    "regex = 'zapkey\\s{0,3}=\\s{0,3}\"([A-Za-z0-9]{16,32})\"'\ngroup = 1\n";

/* A backreference: Vectorscan refuses it, so it must go to the fallback. */
static const char backref_spec[] =
    "[detector]\n"
    "id = \"test-backref\"\nname = \"Quoted\"\nservice = \"test\"\nseverity = \"low\"\n"
    "keywords = [\"qkey\"]\n"
    "[[detector.patterns]]\n"
    "regex = \"qkey=([\\\"'])([A-Za-z0-9]{20})\\\\1\"\ngroup = 2\n";

static const char pair_spec[] =
    "[detector]\n"
    "id = \"test-pair\"\nname = \"Pair\"\nservice = \"test\"\nseverity = \"critical\"\n"
    "keywords = [\"PID\"]\n"
    "[[detector.patterns]]\n"
    "regex = '\\b(PID[0-9A-Z]{13})\\b'\ngroup = 1\n"
    "[[detector.companions]]\n"
    "name = \"secret\"\nregex = 'psecret\\s{0,3}[:=]\\s{0,3}([A-Za-z0-9]{30})'\n"
    "within_lines = 3\nrequired = true\n";

static kh_detectors *make_set(void)
{
    const char *const specs[] = {token_spec, assign_spec, backref_spec, pair_spec};
    return fixture_detectors(specs, sizeof specs / sizeof *specs, "test.toml");
}

static void scan_with(const char *text, size_t len, size_t block, collector *out)
{
    kh_detectors *set = make_set();
    kh_engine *e = NULL;
    kh_error err = {0};
    kh_engine_opts o = {.block_size = block, .decode_depth = 0};
    assert_int_equal(kh_engine_compile(set, &o, &e, &err), KH_OK);
    kh_scratch *s = NULL;
    assert_int_equal(kh_scratch_alloc(e, &s), KH_OK);
    kh_chunk c = {.data = (const uint8_t *)text, .len = len, .path = "src/app.conf"};
    out->n = 0;
    assert_int_equal(kh_scan(e, s, &c, collect, out), KH_OK);
    kh_scratch_free(s);
    kh_engine_free(e);
    kh_detectors_free(set);
}

static const char *tok(unsigned seed, char buf[29])
{
    static const char al[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    memcpy(buf, "tkn_", 4);
    for (int i = 0; i < 24; i++) {
        seed = seed * 1103515245u + 12345u;
        buf[4 + i] = al[(seed >> 16) % 62];
    }
    buf[28] = 0;
    return buf;
}

static void test_capture_group_and_position(void **state)
{
    (void)state;
    char t[29];
    char text[256];
    snprintf(text, sizeof text, "first line\n  token: %s\nlast\n", tok(7, t));
    collector *c = calloc(1, sizeof *c);
    scan_with(text, strlen(text), 0, c);
    assert_int_equal(c->n, 1);
    assert_string_equal(c->items[0].id, "test-token");
    assert_string_equal(c->items[0].secret, t);
    assert_int_equal(c->items[0].line, 2);
    assert_int_equal(c->items[0].column, 10);
    assert_int_equal(c->items[0].end_line, 2);
    assert_int_equal(c->items[0].end_column, 10 + 28 - 1);
    assert_int_equal(c->items[0].offset, 11 + 9);
    assert_int_equal(c->items[0].length, 28);
    free(c);
}

static void test_word_boundary_rejects_longer_run(void **state)
{
    (void)state;
    char t[29];
    char text[128];
    snprintf(text, sizeof text, "x %sEXTRA\n", tok(3, t));
    collector *c = calloc(1, sizeof *c);
    scan_with(text, strlen(text), 0, c);
    assert_int_equal(c->n, 0);
    free(c);
}

/* Builds a buffer with many tokens and assignments at irregular places. */
static char *many_secrets(size_t *len, size_t count)
{
    size_t cap = count * 96 + 64;
    char *buf = malloc(cap);
    size_t n = 0;
    char t[29];
    for (size_t i = 0; i < count; i++) {
        switch (i % 3) {
        case 0: n += (size_t)sprintf(buf + n, "k%zu = %s\n", i, tok((unsigned)i + 1, t)); break;
        case 1:
            n += (size_t)sprintf(buf + n, "%*szapkey = \"%s\"\n", (int)(i % 17), "",
                                 tok((unsigned)i + 1, t) + 4 + (i % 5));
            break;
        default: n += (size_t)sprintf(buf + n, "noise %zu %s;", i, tok((unsigned)i + 1, t)); break;
        }
    }
    *len = n;
    return buf;
}

static void test_many_secrets_in_one_buffer(void **state)
{
    (void)state;
    size_t len;
    char *buf = many_secrets(&len, 300);
    collector *c = calloc(1, sizeof *c);
    scan_with(buf, len, 0, c);
    assert_int_equal(c->n, 300);
    for (size_t i = 1; i < c->n; i++)
        assert_true(c->items[i].offset >= c->items[i - 1].offset);
    free(c);
    free(buf);
}

static void test_block_size_independence(void **state)
{
    (void)state;
    size_t len;
    char *buf = many_secrets(&len, 200);
    collector *whole = calloc(1, sizeof *whole), *blocks = calloc(1, sizeof *blocks);
    scan_with(buf, len, 0, whole);
    assert_int_equal(whole->n, 200);
    size_t sizes[] = {1, 7, 13, 28, 29, 64, 100, 997, 4096};
    for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++) {
        scan_with(buf, len, sizes[k], blocks);
        assert_int_equal(blocks->n, whole->n);
        assert_memory_equal(blocks->items, whole->items, whole->n * sizeof(found));
    }
    free(whole);
    free(blocks);
    free(buf);
}

static void test_fallback_pattern_is_not_dropped(void **state)
{
    (void)state;
    kh_detectors *set = make_set();
    kh_engine *e = NULL;
    kh_error err = {0};
    assert_int_equal(kh_engine_compile(set, NULL, &e, &err), KH_OK);
    kh_engine_stats st;
    kh_engine_stats_get(e, &st);
    assert_int_equal(st.patterns, 4);
    assert_int_equal(st.fallback_patterns, 1);
    kh_engine_free(e);
    kh_detectors_free(set);

    const char text[] = "a qkey='Qx7Lm2Vb9Rt4Yw8Kd3Hz' b qkey='Zc5Np8Gt2Wq6Ej9Ub4Ls\" c\n";
    collector *c = calloc(1, sizeof *c);
    scan_with(text, strlen(text), 0, c);
    assert_int_equal(c->n, 1);
    assert_string_equal(c->items[0].id, "test-backref");
    assert_string_equal(c->items[0].secret, "Qx7Lm2Vb9Rt4Yw8Kd3Hz");
    /* Same result in tiny blocks. */
    scan_with(text, strlen(text), 5, c);
    assert_int_equal(c->n, 1);
    free(c);
}

static void test_required_companion(void **state)
{
    (void)state;
    const char with[] = "id: PID7X3K9Q2M8W4R1\nother\npsecret = q8Wm3Rk7Tz1Xv5Np9Lc2Hb6Jd4Fg0S\n";
    const char without[] = "id: PID7X3K9Q2M8W4R1\nother\n\n\n\n\n\n"
                           "psecret = q8Wm3Rk7Tz1Xv5Np9Lc2Hb6Jd4Fg0S\n";
    collector *c = calloc(1, sizeof *c);
    scan_with(with, strlen(with), 0, c);
    assert_int_equal(c->n, 1);
    assert_string_equal(c->items[0].companion, "secret=q8Wm3Rk7Tz1Xv5Np9Lc2Hb6Jd4Fg0S");
    scan_with(without, strlen(without), 0, c);
    assert_int_equal(c->n, 0);
    free(c);
}

static void test_empty_and_binary_input(void **state)
{
    (void)state;
    collector *c = calloc(1, sizeof *c);
    scan_with("", 0, 0, c);
    assert_int_equal(c->n, 0);
    uint8_t *bin = malloc(1 << 16);
    unsigned x = 1;
    for (size_t i = 0; i < (1 << 16); i++) {
        x = x * 1664525u + 1013904223u;
        bin[i] = (uint8_t)(x >> 24);
    }
    scan_with((const char *)bin, 1 << 16, 0, c);
    assert_true(c->n < 4);
    free(bin);
    free(c);
}

static void test_decode_through_base64(void **state)
{
    (void)state;
    /* base64 of "zapkey = \"AbCdEfGhIjKlMnOpQr12\"" */
    const char text[] = "data:\n  cfg: emFwa2V5ID0gIkFiQ2RFZkdoSWpLbE1uT3BRcjEyIg==\n";
    kh_detectors *set = make_set();
    kh_engine *e = NULL;
    kh_error err = {0};
    kh_engine_opts o = {.decode_depth = 2};
    assert_int_equal(kh_engine_compile(set, &o, &e, &err), KH_OK);
    kh_scratch *s = NULL;
    assert_int_equal(kh_scratch_alloc(e, &s), KH_OK);
    collector *c = calloc(1, sizeof *c);
    kh_chunk ch = {.data = (const uint8_t *)text, .len = strlen(text), .path = "k8s.yaml"};
    assert_int_equal(kh_scan(e, s, &ch, collect, c), KH_OK);
    assert_int_equal(c->n, 1);
    assert_string_equal(c->items[0].secret, "AbCdEfGhIjKlMnOpQr12");
    assert_string_equal(c->items[0].decoded, "base64>");
    assert_int_equal(c->items[0].line, 2);
    assert_int_equal(c->items[0].column, 8);
    /* The same engine with decoding off in a fresh compile finds nothing. */
    kh_scratch_free(s);
    kh_engine_free(e);
    o.decode_depth = 0;
    assert_int_equal(kh_engine_compile(set, &o, &e, &err), KH_OK);
    assert_int_equal(kh_scratch_alloc(e, &s), KH_OK);
    c->n = 0;
    assert_int_equal(kh_scan(e, s, &ch, collect, c), KH_OK);
    assert_int_equal(c->n, 0);
    kh_scratch_free(s);
    kh_engine_free(e);
    kh_detectors_free(set);
    free(c);
}

/* A lazy pattern whose body may span its own terminator: Vectorscan's
 * leftmost start for the second block's end is the first block's start, yet
 * a regex scan finds both, in any block size. */
static void test_lazy_pattern_hidden_start(void **state)
{
    (void)state;
    static const char spec2[] =
        "[detector]\nid = \"test-lazy\"\nname = \"Lazy\"\nservice = \"test\"\n"
        "severity = \"high\"\nkeywords = [\"begin blob\"]\n"
        "[detector.validate]\nreject_placeholders = false\n"
        "[[detector.patterns]]\nregex = 'BEGIN BLOB ([\\x20-\\x7e]{8,}?) END BLOB'\ngroup = 1\n";
    kh_detectors *set = NULL;
    kh_error err = {0};
    assert_int_equal(kh_detectors_parse(spec2, strlen(spec2), "lazy.toml", &set, &err), KH_OK);
    char text[4096];
    int n = snprintf(text, sizeof text, "BEGIN BLOB q8Wm3Rk7Tz1X END BLOB ");
    for (int i = 0; i < 60; i++)
        n += snprintf(text + n, sizeof text - (size_t)n, "filler %d; ", i);
    n += snprintf(text + n, sizeof text - (size_t)n, "BEGIN BLOB Zc5Np8Gt2Wq6 END BLOB\n");
    size_t blocks[] = {0, 50, 333, 700};
    for (size_t b = 0; b < 4; b++) {
        kh_engine *e = NULL;
        kh_engine_opts o = {.block_size = blocks[b], .decode_depth = 0};
        assert_int_equal(kh_engine_compile(set, &o, &e, &err), KH_OK);
        kh_scratch *s = NULL;
        assert_int_equal(kh_scratch_alloc(e, &s), KH_OK);
        collector *c = calloc(1, sizeof *c);
        kh_chunk ch = {.data = (const uint8_t *)text, .len = (size_t)n, .path = "x"};
        assert_int_equal(kh_scan(e, s, &ch, collect, c), KH_OK);
        assert_int_equal(c->n, 2);
        assert_string_equal(c->items[0].secret, "q8Wm3Rk7Tz1X");
        assert_string_equal(c->items[1].secret, "Zc5Np8Gt2Wq6");
        free(c);
        kh_scratch_free(s);
        kh_engine_free(e);
    }
    kh_detectors_free(set);
}

/* kh_scan runs the SOM database only around the match ends the prefilter
 * database reports; a region scan over one region covering the whole
 * buffer runs it everywhere (the scan as it was before the prefilter).
 * Both must find the same: secrets packed together, far apart across
 * block edges, at the very start and end, and inside base64. */
static void test_prefilter_equals_whole_scan(void **state)
{
    (void)state;
    size_t n1, n2;
    char *a = many_secrets(&n1, 120), *b = many_secrets(&n2, 40);
    static const char filler[] = "static int quiet_line(void) { return 0; } /* nothing */\n";
    size_t fill = 300 * 1024, cap = n1 + n2 + 2 * fill + 256;
    char *buf = malloc(cap), t[29];
    size_t len = (size_t)sprintf(buf, "%s ", tok(7, t));
    memcpy(buf + len, a, n1);
    len += n1;
    for (size_t i = 0; i + sizeof filler < fill; i += sizeof filler - 1, len += sizeof filler - 1)
        memcpy(buf + len, filler, sizeof filler - 1);
    memcpy(buf + len, b, n2);
    len += n2;
    /* "k = tkn_..." in base64, found only through decode-through. */
    len += (size_t)sprintf(buf + len, "\nblob: azEgPSB0a25fUTd2UjJtWHA5TGtUNHdaczhOY1kzYkhk\n");
    for (size_t i = 0; i + sizeof filler < fill; i += sizeof filler - 1, len += sizeof filler - 1)
        memcpy(buf + len, filler, sizeof filler - 1);
    len += (size_t)sprintf(buf + len, "last %s", tok(9, t));
    assert_true(len <= cap);

    kh_detectors *set = make_set();
    size_t blocks[] = {0, 4096, 65536 + 7};
    for (size_t k = 0; k < sizeof blocks / sizeof *blocks; k++) {
        kh_engine *e = NULL;
        kh_error err = {0};
        kh_engine_opts o = {.block_size = blocks[k], .decode_depth = 2};
        assert_int_equal(kh_engine_compile(set, &o, &e, &err), KH_OK);
        kh_scratch *s = NULL;
        assert_int_equal(kh_scratch_alloc(e, &s), KH_OK);
        kh_chunk ch = {.data = (const uint8_t *)buf, .len = len, .path = "src/app.c"};
        collector *pre = calloc(1, sizeof *pre), *whole = calloc(1, sizeof *whole);
        assert_int_equal(kh_scan(e, s, &ch, collect, pre), KH_OK);
        engine_region all = {.start = 0, .end = len, .reach = 0};
        assert_int_equal(engine_scan_regions(e, s, &ch, &all, 1, collect, whole), KH_OK);
        assert_int_equal(pre->n, 120 + 40 + 3);
        assert_int_equal(pre->n, whole->n);
        assert_memory_equal(pre->items, whole->items, pre->n * sizeof(found));
        free(pre);
        free(whole);
        kh_scratch_free(s);
        kh_engine_free(e);
    }
    kh_detectors_free(set);
    free(buf);
    free(a);
    free(b);
}

static void test_embedded_set_compiles(void **state)
{
    (void)state;
    kh_detectors *set = kh_detectors_embedded();
    assert_non_null(set);
    kh_engine *e = NULL;
    kh_error err = {0};
    int rc = kh_engine_compile(set, NULL, &e, &err);
    if (rc != KH_OK)
        fail_msg("%s", err.message);
    kh_engine_free(e);
    kh_detectors_free(set);
}

/* An engine built from its own serialized cache is the same engine: same
 * pattern placement, widths and overlap, so the same regions and findings,
 * without asking Vectorscan about each pattern again. */
static void test_cache_round_trip(void **state)
{
    (void)state;
    kh_detectors *set = make_set(); /* with a pattern Vectorscan cannot parse */
    kh_engine *a = NULL, *b = NULL;
    kh_error err = {0};
    assert_int_equal(kh_engine_compile(set, NULL, &a, &err), KH_OK);
    void *bytes = NULL;
    size_t len = 0;
    assert_int_equal(kh_engine_serialize(a, &bytes, &len), KH_OK);
    kh_engine_opts o = {.cache = bytes, .cache_len = len, .decode_depth = 3};
    assert_int_equal(kh_engine_compile(set, &o, &b, &err), KH_OK);
    assert_true(kh_engine_from_cache(b));
    assert_false(kh_engine_from_cache(a));
    assert_int_equal(a->pattern_count, b->pattern_count);
    assert_int_equal(a->overlap, b->overlap);
    for (uint32_t i = 0; i < a->pattern_count; i++) {
        assert_int_equal(a->patterns[i].max_width, b->patterns[i].max_width);
        assert_int_equal(a->patterns[i].parsed, b->patterns[i].parsed);
        assert_int_equal(a->patterns[i].on_vectorscan, b->patterns[i].on_vectorscan);
        assert_int_equal(a->patterns[i].prefilter, b->patterns[i].prefilter);
    }
    int unparsed = 0;
    for (uint32_t i = 0; i < a->pattern_count; i++)
        unparsed += !a->patterns[i].parsed;
    assert_int_equal(unparsed, 1);
    for (size_t d = 0; d < set->count; d++)
        assert_int_equal(a->detector_width[d], b->detector_width[d]);
    /* A cache cut short is not used, and compiling still works. */
    kh_engine *c = NULL;
    o.cache_len = len - 1;
    assert_int_equal(kh_engine_compile(set, &o, &c, &err), KH_OK);
    assert_false(kh_engine_from_cache(c));
    kh_engine_free(c);
    free(bytes);
    kh_engine_free(a);
    kh_engine_free(b);
    kh_detectors_free(set);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_capture_group_and_position),
        cmocka_unit_test(test_word_boundary_rejects_longer_run),
        cmocka_unit_test(test_many_secrets_in_one_buffer),
        cmocka_unit_test(test_block_size_independence),
        cmocka_unit_test(test_fallback_pattern_is_not_dropped),
        cmocka_unit_test(test_required_companion),
        cmocka_unit_test(test_empty_and_binary_input),
        cmocka_unit_test(test_decode_through_base64),
        cmocka_unit_test(test_lazy_pattern_hidden_start),
        cmocka_unit_test(test_prefilter_equals_whole_scan),
        cmocka_unit_test(test_embedded_set_compiles),
        cmocka_unit_test(test_cache_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
