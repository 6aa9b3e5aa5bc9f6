/*
 * test_gpu.c - the GPU backend's CPU side, on any machine: the loader's
 * fallback when the library or device is missing, the keyword finder the
 * device kernel mirrors, and parity of kh_scan_batch (keyword hits -> regions
 * -> engine_scan_regions) with kh_scan, driven by the reference backend that
 * implements the device ABI on the CPU, through every forced fallback.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "engine/engine.h"
#include "engine/gpu.h"
#include "fixtures.h"
#include "keyhog.h"
#include "spec/spec.h"

static uint64_t xorshift64(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* Findings as text lines, so two scans compare with one strcmp. */
typedef struct text {
    char *buf;
    size_t len, cap;
    size_t count;
    size_t stop_after; /* 0 = never stop */
} text;

static void text_add(text *t, const char *s)
{
    size_t n = strlen(s);
    if (t->len + n + 1 > t->cap) {
        t->cap = (t->len + n + 1) * 2;
        t->buf = realloc(t->buf, t->cap);
        assert_non_null(t->buf);
    }
    memcpy(t->buf + t->len, s, n + 1);
    t->len += n;
}

static void describe(const kh_finding *f, size_t chunk, text *t)
{
    char line[1024];
    snprintf(line, sizeof line, "%zu %s %.*s @%llu+%zu %u:%u-%u:%u c=%.6f k=%d d=%zu\n", chunk,
             f->detector->id, (int)(f->secret_len > 200 ? 200 : f->secret_len),
             (const char *)f->secret, (unsigned long long)f->offset, f->length, f->line,
             f->column, f->end_line, f->end_column, f->confidence, f->checksum_valid,
             f->decode_depth);
    text_add(t, line);
    t->count++;
}

typedef struct single_ctx {
    text *t;
    size_t chunk;
} single_ctx;

static int on_single(const kh_finding *f, void *ctx)
{
    single_ctx *c = ctx;
    describe(f, c->chunk, c->t);
    return 0;
}

static int on_batch(const kh_finding *f, size_t chunk, void *ctx)
{
    text *t = ctx;
    describe(f, chunk, t);
    return t->stop_after && t->count >= t->stop_after;
}

/* The embedded detectors' own test texts, each as a chunk, plus the same
 * texts with upper-cased keywords context and padding, so keywords sit at
 * chunk starts, ends and everywhere between. */
typedef struct corpus {
    kh_chunk *chunks;
    char **owned;
    size_t n;
} corpus;

static void corpus_add(corpus *c, char *data, size_t len)
{
    c->chunks = realloc(c->chunks, (c->n + 1) * sizeof *c->chunks);
    c->owned = realloc(c->owned, (c->n + 1) * sizeof *c->owned);
    assert_non_null(c->chunks);
    assert_non_null(c->owned);
    c->owned[c->n] = data;
    c->chunks[c->n] = (kh_chunk){.data = (const uint8_t *)data, .len = len, .path = "t.txt"};
    c->n++;
}

static void corpus_build(const kh_detectors *set, corpus *c)
{
    memset(c, 0, sizeof *c);
    size_t big_cap = 256 << 10, big_len = 0;
    char *big = malloc(big_cap);
    assert_non_null(big);
    for (size_t i = 0; i < set->count; i++) {
        const spec_detector *d = set->items[i];
        for (size_t j = 0; j < d->test_count; j++) {
            const char *s = d->tests[j].text;
            size_t n = strlen(s);
            corpus_add(c, strdup(s), n);
            /* Upper case: keywords must match case-insensitively. */
            char *up = strdup(s);
            for (size_t k = 0; k < n; k++)
                if (up[k] >= 'a' && up[k] <= 'z' && k % 3 == 0)
                    up[k] = (char)(up[k] - 32);
            corpus_add(c, up, n);
            if (big_len + n + 64 < big_cap) {
                big_len += (size_t)sprintf(big + big_len, "line %zu: ", i);
                memcpy(big + big_len, s, n);
                big_len += n;
                big[big_len++] = '\n';
            }
        }
    }
    corpus_add(c, big, big_len);
    corpus_add(c, strdup(""), 0);
}

static void corpus_free(corpus *c)
{
    for (size_t i = 0; i < c->n; i++)
        free(c->owned[i]);
    free(c->owned);
    free(c->chunks);
}

typedef struct fixture {
    kh_detectors *set;
    kh_engine *engine;
    kh_scratch *scratch;
    corpus corpus;
    text expected;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    f->set = kh_detectors_embedded();
    if (!f->set)
        return -1;
    /* Every sixth detector: compiling the whole set takes seconds, and a
     * sample still spans prefixes, checksums, companions and decoding. */
    size_t total = kh_detectors_count(f->set);
    char **drop = calloc(total, sizeof *drop);
    size_t ndrop = 0;
    for (size_t i = 0; i < total; i++)
        if (i % 6)
            drop[ndrop++] = strdup(kh_detectors_get(f->set, i)->id);
    for (size_t i = 0; i < ndrop; i++) {
        kh_detectors_remove(f->set, drop[i]);
        free(drop[i]);
    }
    free(drop);
    kh_error err = {0};
    /* A small block makes regions cross block boundaries. */
    kh_engine_opts eo = {.block_size = 4096, .decode_depth = -1};
    if (kh_engine_compile(f->set, &eo, &f->engine, &err) != KH_OK)
        return -1;
    if (kh_scratch_alloc(f->engine, &f->scratch) != KH_OK)
        return -1;
    corpus_build(f->set, &f->corpus);
    for (size_t i = 0; i < f->corpus.n; i++) {
        single_ctx sc = {&f->expected, i};
        kh_scan(f->engine, f->scratch, &f->corpus.chunks[i], on_single, &sc);
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    corpus_free(&f->corpus);
    free(f->expected.buf);
    kh_scratch_free(f->scratch);
    kh_engine_free(f->engine);
    kh_detectors_free(f->set);
    free(f);
    return 0;
}

static void test_missing_library_is_unsupported(void **state)
{
    fixture *f = *state;
    kh_gpu *g = (kh_gpu *)1;
    kh_error err = {0};
    kh_gpu_opts o = {.library = "/nonexistent/libkeyhog_gpu.so", .all_devices = 1};
    assert_int_equal(kh_gpu_open(f->engine, &o, &g, &err), KH_EUNSUPPORTED);
    assert_null(g);
    assert_non_null(strstr(err.message, "cannot load backend"));
    /* A library that is not a keyhog backend. */
    o.library = "libm.so.6";
    assert_int_equal(kh_gpu_open(f->engine, &o, &g, &err), KH_EUNSUPPORTED);
    assert_non_null(strstr(err.message, "keyhog_gpu_get_api"));
    o.library = NULL;
    o.force_fail = "load";
    assert_int_equal(kh_gpu_open(f->engine, &o, &g, &err), KH_EUNSUPPORTED);
    assert_non_null(strstr(err.message, "forced"));
    assert_string_equal(kh_gpu_status(NULL), "cpu: no gpu");
}

static int no_devices(int *count, char *msg, size_t cap)
{
    *count = 0;
    snprintf(msg, cap, "no CUDA-capable device is detected");
    return 1;
}

static int wrong_version(void)
{
    return GPU_ABI_VERSION + 1;
}

static void test_no_device_or_wrong_abi_is_unsupported(void **state)
{
    fixture *f = *state;
    gpu_api api = *gpu_reference_api();
    api.device_count = no_devices;
    kh_gpu *g = NULL;
    kh_error err = {0};
    assert_int_equal(gpu_open_api(f->engine, &api, NULL, &g, &err), KH_EUNSUPPORTED);
    assert_null(g);
    assert_non_null(strstr(err.message, "no CUDA-capable device"));
    api = *gpu_reference_api();
    api.api_version = wrong_version;
    assert_int_equal(gpu_open_api(f->engine, &api, NULL, &g, &err), KH_EUNSUPPORTED);
    kh_gpu_opts o = {.force_fail = "open", .all_devices = 1};
    assert_int_equal(gpu_open_api(f->engine, gpu_reference_api(), &o, &g, &err),
                     KH_EUNSUPPORTED);
    assert_non_null(strstr(err.message, "forced"));
    kh_gpu_opts bad = {.device = 3};
    assert_int_equal(gpu_open_api(f->engine, gpu_reference_api(), &bad, &g, &err), KH_EINVAL);
}

static void test_keyword_finder(void **state)
{
    (void)state;
    const char *kws[] = {"key", "api_key", "ab", "Token"};
    const char *data = "API_KEY=1 aBab tokEN keY";
    gpu_hit *hits = NULL;
    size_t n = 0, cap = 0;
    size_t found = gpu_find_keywords_cpu(kws, 4, (const uint8_t *)data, strlen(data), 7, &hits,
                                         &n, &cap);
    /* api_key@0, key@4, ab@11, ab@13... "aBab": ab@10, ab@12; token@15; key@21 */
    assert_int_equal(found, 6);
    assert_int_equal(n, 6);
    uint64_t want_off[] = {0, 4, 10, 12, 15, 21};
    uint32_t want_kw[] = {1, 0, 2, 2, 3, 0};
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(hits[i].offset, want_off[i]);
        assert_int_equal(hits[i].keyword, want_kw[i]);
        assert_int_equal(hits[i].chunk, 7);
    }
    /* A keyword cut by the end of the data is no hit. */
    n = 0;
    assert_int_equal(gpu_find_keywords_cpu(kws, 4, (const uint8_t *)"xx api_ke", 9, 0, &hits,
                                           &n, &cap),
                     0);
    free(hits);
}

static void check_parity(fixture *f, kh_gpu *g, const char *want_status)
{
    text got = {0};
    int *status = calloc(f->corpus.n, sizeof *status);
    assert_int_equal(kh_scan_batch(f->engine, g, f->scratch, f->corpus.chunks, f->corpus.n,
                                   on_batch, &got, status),
                     KH_OK);
    assert_true(f->expected.count > 20); /* the corpus does exercise detectors */
    assert_int_equal(got.count, f->expected.count);
    assert_string_equal(got.buf, f->expected.buf);
    for (size_t i = 0; i < f->corpus.n; i++)
        assert_int_equal(status[i], KH_OK);
    if (want_status)
        assert_non_null(strstr(kh_gpu_status(g), want_status));
    free(status);
    free(got.buf);
}

static void test_cpu_batch_equals_kh_scan(void **state)
{
    check_parity(*state, NULL, NULL);
}

static void test_region_mode_parity(void **state)
{
    fixture *f = *state;
    kh_gpu *g = NULL;
    kh_error err = {0};
    kh_gpu_opts o = {.all_devices = 1, .quiet = 1};
    assert_int_equal(gpu_open_api(f->engine, gpu_reference_api(), &o, &g, &err), KH_OK);
    assert_string_equal(kh_gpu_status(g), "gpu: 1 device, persistent kernel");
    check_parity(f, g, "persistent");
    /* Twice: sessions are reused across batches. */
    check_parity(f, g, "persistent");
    kh_gpu_close(g);
}

static void test_forced_fallbacks_keep_findings(void **state)
{
    fixture *f = *state;
    kh_gpu *g = NULL;
    kh_error err = {0};
    kh_gpu_opts o = {.all_devices = 1, .quiet = 1, .force_fail = "persistent"};
    assert_int_equal(gpu_open_api(f->engine, gpu_reference_api(), &o, &g, &err), KH_OK);
    check_parity(f, g, "per-batch");
    kh_gpu_close(g);
    o.force_fail = "persistent,launch";
    assert_int_equal(gpu_open_api(f->engine, gpu_reference_api(), &o, &g, &err), KH_OK);
    check_parity(f, g, "cpu: kernel launch failed");
    check_parity(f, g, "cpu:"); /* stays on the CPU */
    kh_gpu_close(g);
    /* Without the resident kernel at all. */
    kh_gpu_opts np = {.all_devices = 1, .quiet = 1, .no_persistent = 1, .force_fail = "launch"};
    assert_int_equal(gpu_open_api(f->engine, gpu_reference_api(), &np, &g, &err), KH_OK);
    check_parity(f, g, "cpu:");
    kh_gpu_close(g);
}

/* A batch read straight into a kh_gpu_buffer_take buffer (chunk, NUL,
 * chunk, NUL, ..., zero pad) goes to the device without the packing copy
 * and finds what kh_scan finds; laid out any other way (a pad byte that is
 * not zero, a chunk out of place) it is packed as before, with the same
 * findings. */
static void test_buffer_skips_packing(void **state)
{
    fixture *f = *state;
    kh_gpu *g = NULL;
    kh_error err = {0};
    kh_gpu_opts o = {.all_devices = 1, .quiet = 1};
    assert_null(kh_gpu_buffer_take(NULL, 100));
    assert_int_equal(gpu_open_api(f->engine, gpu_reference_api(), &o, &g, &err), KH_OK);
    const corpus *c = &f->corpus;
    size_t total = KH_GPU_BUFFER_PAD;
    for (size_t i = 0; i < c->n; i++)
        total += c->chunks[i].len + 1;
    uint8_t *buf = kh_gpu_buffer_take(g, total);
    assert_non_null(buf);
    kh_chunk *laid = calloc(c->n, sizeof *laid);
    assert_non_null(laid);
    size_t at = 0;
    for (size_t i = 0; i < c->n; i++) {
        memcpy(buf + at, c->chunks[i].data, c->chunks[i].len);
        laid[i] = (kh_chunk){.data = buf + at, .len = c->chunks[i].len, .path = "t.txt"};
        at += c->chunks[i].len;
        buf[at++] = 0;
    }
    memset(buf + at, 0, KH_GPU_BUFFER_PAD);
    for (int round = 0; round < 3; round++) {
        if (round == 1)
            buf[at + KH_GPU_BUFFER_PAD - 1] = 'x'; /* the pad is not zero */
        if (round == 2) {
            buf[at + KH_GPU_BUFFER_PAD - 1] = 0;
            laid[1].data++; /* chunk 1 is not where its predecessor ends */
            laid[1].len--;
        }
        gpu_stats before, after;
        gpu_stats_get(g, &before);
        text got = {0};
        assert_int_equal(kh_scan_batch(f->engine, g, f->scratch, laid, c->n, on_batch, &got, NULL),
                         KH_OK);
        gpu_stats_get(g, &after);
        assert_int_equal(after.prepacked - before.prepacked, round == 0);
        assert_int_equal(after.batches - before.batches, 1);
        if (round < 2)
            assert_string_equal(got.buf, f->expected.buf);
        else
            assert_true(got.count > 0);
        free(got.buf);
    }
    kh_gpu_buffer_give(g, buf);
    kh_gpu_buffer_give(g, buf); /* twice, or a stranger's: ignored */
    free(laid);
    kh_gpu_close(g);
}

/* gpu_hits_group against a linear search: chunks of every size (empty,
 * one byte, many in one 4 KiB page, longer than a page), hits anywhere
 * including past the end (dropped), in any order. */
static void test_hits_group(void **state)
{
    (void)state;
    uint64_t seed = 0x9E3779B97F4A7C15u;
    for (int round = 0; round < 200; round++) {
        size_t nchunks = 1 + (size_t)(xorshift64(&seed) % 300);
        uint64_t *starts = malloc((nchunks + 1) * sizeof *starts);
        assert_non_null(starts);
        starts[0] = 0;
        for (size_t c = 0; c < nchunks; c++) {
            uint64_t r = xorshift64(&seed) % 8;
            uint64_t len = r < 3 ? r : r < 6 ? xorshift64(&seed) % 200 : xorshift64(&seed) % 20000;
            starts[c + 1] = starts[c] + len + 1;
        }
        size_t n = (size_t)(xorshift64(&seed) % 500);
        gpu_hit *hits = malloc((n + 1) * sizeof *hits), *out = malloc((n + 1) * sizeof *out);
        assert_non_null(hits);
        assert_non_null(out);
        size_t want = 0;
        for (size_t i = 0; i < n; i++) {
            hits[i] = (gpu_hit){.offset = xorshift64(&seed) % (starts[nchunks] + 50),
                                .keyword = (uint32_t)i};
            want += hits[i].offset < starts[nchunks];
        }
        size_t kept = gpu_hits_group(hits, n, starts, nchunks, out);
        assert_int_equal(kept, want);
        for (size_t i = 0; i < kept; i++) {
            const gpu_hit *h = &hits[out[i].keyword];
            size_t c = 0;
            while (starts[c + 1] <= h->offset)
                c++;
            assert_int_equal(out[i].chunk, c);
            assert_int_equal(out[i].offset, h->offset - starts[c]);
            if (i)
                assert_true(out[i - 1].chunk < out[i].chunk ||
                            (out[i - 1].chunk == out[i].chunk &&
                             out[i - 1].keyword < out[i].keyword));
        }
        free(starts);
        free(hits);
        free(out);
    }
}

static void test_batch_stop_and_arguments(void **state)
{
    fixture *f = *state;
    kh_gpu *g = NULL;
    kh_error err = {0};
    kh_gpu_opts o = {.all_devices = 1, .quiet = 1};
    assert_int_equal(gpu_open_api(f->engine, gpu_reference_api(), &o, &g, &err), KH_OK);
    text got = {.stop_after = 3};
    assert_int_equal(kh_scan_batch(f->engine, g, f->scratch, f->corpus.chunks, f->corpus.n,
                                   on_batch, &got, NULL),
                     KH_ESTOPPED);
    assert_int_equal(got.count, 3);
    free(got.buf);
    got = (text){.stop_after = 2};
    assert_int_equal(kh_scan_batch(f->engine, NULL, f->scratch, f->corpus.chunks, f->corpus.n,
                                   on_batch, &got, NULL),
                     KH_ESTOPPED);
    assert_int_equal(got.count, 2);
    free(got.buf);
    assert_int_equal(kh_scan_batch(f->engine, g, f->scratch, NULL, 1, on_batch, &got, NULL),
                     KH_EINVAL);
    assert_int_equal(kh_scan_batch(f->engine, g, f->scratch, f->corpus.chunks, 0, on_batch,
                                   &got, NULL),
                     KH_OK);
    /* A kh_gpu belongs to the engine it was opened for (checked before
     * the engine is touched, so any other pointer stands in for one). */
    const kh_engine *other = (const kh_engine *)f;
    assert_int_equal(kh_scan_batch(other, g, f->scratch, f->corpus.chunks, 1, on_batch, &got,
                                   NULL),
                     KH_EINVAL);
    kh_gpu_close(g);
    kh_gpu_close(NULL);
}

/* Keywords next to each other, at the very end of a chunk, and hidden by
 * case: every region the kernel's hits imply is covered. */
static void test_regions_cover_every_keyword(void **state)
{
    fixture *f = *state;
    const kh_engine *e = f->engine;
    size_t nk = engine_keyword_count(e);
    assert_true(nk > 10);
    const char **kws = malloc(nk * sizeof *kws);
    for (size_t i = 0; i < nk; i++)
        kws[i] = engine_keyword(e, i, NULL);
    gpu_hit *hits = NULL;
    size_t n = 0, cap = 0;
    for (size_t i = 0; i < nk; i++) {
        char buf[128];
        int len = snprintf(buf, sizeof buf, "%s", kws[i]);
        for (int k = 0; k < len; k++)
            if (buf[k] >= 'a' && buf[k] <= 'z')
                buf[k] = (char)(buf[k] - 32);
        size_t before = n;
        gpu_find_keywords_cpu(kws, (uint32_t)nk, (const uint8_t *)buf, (size_t)len, 0, &hits, &n,
                              &cap);
        int seen = 0;
        for (size_t h = before; h < n; h++)
            seen |= hits[h].keyword == i && hits[h].offset == 0;
        assert_true(seen);
    }
    free(hits);
    free(kws);
}

/* kh_scan_batch through the reference backend (filters on, as
 * gpu_open_api computes them) gives kh_scan's findings, at least `min`. */
static void assert_batch_equals_scan(const kh_engine *e, const kh_chunk *chunks, size_t n,
                                     size_t min)
{
    kh_error err;
    kh_scratch *s = NULL;
    assert_int_equal(kh_scratch_alloc(e, &s), KH_OK);
    text want = {0}, got = {0};
    for (size_t i = 0; i < n; i++) {
        single_ctx sc = {&want, i};
        assert_int_equal(kh_scan(e, s, &chunks[i], on_single, &sc), KH_OK);
    }
    kh_gpu *g = NULL;
    kh_gpu_opts go = {.quiet = 1};
    assert_int_equal(gpu_open_api(e, gpu_reference_api(), &go, &g, &err), KH_OK);
    assert_int_equal(kh_scan_batch(e, g, s, chunks, n, on_batch, &got, NULL), KH_OK);
    assert_true(want.count >= min);
    assert_string_equal(got.buf ? got.buf : "", want.buf ? want.buf : "");
    kh_gpu_close(g);
    free(want.buf);
    free(got.buf);
    kh_scratch_free(s);
}

/* Token filters read from regexes: a keyword followed by a class run gets a
 * test, one followed by a group gets a test of the byte that can start an
 * alternative, and of the byte the match reaches next ('_' after
 * tr_(?:prod|dev)); keywords in the alternatives of a group are relied on
 * each with what follows the group; an assignment after a keyword within a
 * bounded distance is a stop test; the byte before a keyword is tested
 * against what may stand there (\b, the literals and optional classes
 * before it, across the start of an alternative); and with the filters on,
 * a batch still finds exactly what kh_scan finds. */
static const char *const filter_specs[] = {
    "[detector]\nid = \"f-hex\"\nname = \"F hex\"\nservice = \"fhex\"\nseverity = \"high\"\n"
    "keywords = [\"sk_x\"]\n[[detector.patterns]]\nregex = '\\bsk_x[0-9a-f]{32}\\b'\n",
    "[detector]\nid = \"f-alt-after\"\nname = \"F alt\"\nservice = \"falt\"\nseverity = \"high\"\n"
    "keywords = [\"tr_\"]\n[[detector.patterns]]\nregex = '\\btr_(?:prod|dev)_[a-z]{5}'\n",
    "[detector]\nid = \"f-alt-around\"\nname = \"F around\"\nservice = \"faround\"\n"
    "severity = \"high\"\nkeywords = [\"apq\", \"kyq\"]\n[[detector.patterns]]\n"
    "regex = '(?:apq|kyq)[=:][a-z]{8}'\n",
    "[detector]\nid = \"f-inner\"\nname = \"F inner\"\nservice = \"finner\"\nseverity = \"high\"\n"
    "keywords = [\"o.\"]\n[[detector.patterns]]\n"
    "regex = '(?i:pushq)[^\\n]{0,9}?\\b(o\\.[A-Za-z0-9]{12})\\b'\ngroup = 1\n",
    "[detector]\nid = \"f-assign\"\nname = \"F assign\"\nservice = \"fassign\"\n"
    "severity = \"high\"\nkeywords = [\"zork\"]\n[[detector.patterns]]\n"
    "regex = '(?i:zork[\\w.-]{0,10}\\s{0,2}[:=]\\s{0,2})\"([a-z0-9]{10})\"'\ngroup = 1\n",
    "[detector]\nid = \"f-two\"\nname = \"F two\"\nservice = \"ftwo\"\n"
    "severity = \"high\"\nkeywords = [\"qlin\"]\n[[detector.patterns]]\n"
    "regex = '(?i:qlin[_.-]?(?:chan|bot)[\\w.-]{0,8}[:=])([a-z0-9]{10})'\ngroup = 1\n",
    "[detector]\nid = \"f-walk\"\nname = \"F walk\"\nservice = \"fwalk\"\n"
    "severity = \"high\"\nkeywords = [\"zprod:\", \"zdev:\"]\n[[detector.patterns]]\n"
    "regex = '\\b((?:zprod|zdev):[a-z]{4}-[0-9]{2})'\n",
    "[detector]\nid = \"f-before\"\nname = \"F before\"\nservice = \"fbefore\"\n"
    "severity = \"high\"\nkeywords = [\"zkey\"]\n[[detector.patterns]]\n"
    "regex = '(?:zapi[_.-]?zkey|zapizkey)=([a-z0-9]{10})'\ngroup = 1\n",
};

static int in_class(const gpu_keyword_filter *f, unsigned b)
{
    return (f->cls[b >> 5] >> (b & 31)) & 1u;
}

/* Whether byte b may stand before the keyword (no test: any may). */
static int may_precede(const gpu_keyword_filter *f, unsigned b)
{
    return !f->before_test || GPU_IN_CLASS(f->before, b);
}

static void test_keyword_filters(void **state)
{
    (void)state;
    kh_error err;
    kh_detectors *set =
        fixture_detectors(filter_specs, sizeof filter_specs / sizeof *filter_specs, "f.toml");
    kh_engine *e = NULL;
    kh_engine_opts eo = {.decode_depth = 0};
    assert_int_equal(kh_engine_compile(set, &eo, &e, &err), KH_OK);
    size_t nk = engine_keyword_count(e);
    gpu_keyword_filter *f = calloc(nk, sizeof *f);
    assert_non_null(f);
    assert_int_equal(gpu_keyword_filters(e, f), 10);
    for (size_t k = 0; k < nk; k++) {
        const char *kw = engine_keyword(e, k, NULL);
        /* \b before a word byte, through capture groups and the start of
         * an alternative; none where the match may start at the keyword. */
        int word_boundary = !strcmp(kw, "sk_x") || !strcmp(kw, "tr_") || !strcmp(kw, "o.") ||
                            !strcmp(kw, "zprod:") || !strcmp(kw, "zdev:");
        if (word_boundary) {
            assert_true(f[k].before_test);
            assert_true(may_precede(&f[k], ' ') && may_precede(&f[k], '-') &&
                        may_precede(&f[k], 0) && may_precede(&f[k], 0x80));
            assert_false(may_precede(&f[k], 'a') || may_precede(&f[k], 'Z') ||
                         may_precede(&f[k], '_') || may_precede(&f[k], '7'));
        } else if (strcmp(kw, "zkey") != 0) {
            assert_false(f[k].before_test);
        }
        if (!strcmp(kw, "zkey")) {
            /* zapi[_.-]?zkey or zapizkey: the optional class, then 'i' */
            assert_true(f[k].before_test);
            assert_true(may_precede(&f[k], '_') && may_precede(&f[k], '.') &&
                        may_precede(&f[k], '-') && may_precede(&f[k], 'i') &&
                        may_precede(&f[k], 'I') && may_precede(&f[k], 0));
            assert_false(may_precede(&f[k], ' ') || may_precede(&f[k], '>') ||
                         may_precede(&f[k], 'a') || may_precede(&f[k], 'p'));
        } else if (!strcmp(kw, "sk_x")) {
            assert_int_equal(f[k].min_run, 32);
            assert_true(in_class(&f[k], '0') && in_class(&f[k], 'f') && in_class(&f[k], 'F'));
            assert_false(in_class(&f[k], 'g') || in_class(&f[k], '_') || in_class(&f[k], 0));
        } else if (!strcmp(kw, "o.")) {
            assert_int_equal(f[k].min_run, 12);
            assert_true(in_class(&f[k], 'Z') && in_class(&f[k], '9'));
            assert_false(in_class(&f[k], '.'));
        } else if (!strcmp(kw, "tr_")) {
            assert_int_equal(f[k].min_run, 1); /* (?:prod|dev) */
            assert_true(in_class(&f[k], 'p') && in_class(&f[k], 'D'));
            assert_false(in_class(&f[k], 'r') || in_class(&f[k], '_'));
            const gpu_stop_test *st = &f[k].stops[0];
            assert_int_equal(st->within, 5); /* then '_' */
            assert_true(GPU_IN_CLASS(st->stop, '_') && GPU_IN_CLASS(st->skip, 'R'));
            assert_false(GPU_IN_CLASS(st->skip, '_') || GPU_IN_CLASS(st->skip, 'a'));
            assert_int_equal(f[k].stops[1].within, 0); /* [a-z]{5}: too wide */
        } else if (!strcmp(kw, "zork")) {
            const gpu_stop_test *st = &f[k].stops[0];
            assert_int_equal(f[k].min_run, 0);
            assert_int_equal(st->within, 13); /* [\w.-]{0,10}\s{0,2}[:=] */
            assert_true(GPU_IN_CLASS(st->stop, '=') && GPU_IN_CLASS(st->stop, ':'));
            assert_true(GPU_IN_CLASS(st->skip, '.') && GPU_IN_CLASS(st->skip, ' '));
            assert_false(GPU_IN_CLASS(st->skip, '(') || GPU_IN_CLASS(st->stop, '"'));
            st = &f[k].stops[1]; /* then \s{0,2}" */
            assert_int_equal(st->within, 16);
            assert_true(GPU_IN_CLASS(st->stop, '"') && GPU_IN_CLASS(st->skip, '='));
        } else if (!strcmp(kw, "qlin")) {
            const gpu_stop_test *st = &f[k].stops[0]; /* [_.-]?(?:chan|bot) */
            assert_int_equal(f[k].min_run, 0);
            assert_int_equal(st->within, 2);
            assert_true(GPU_IN_CLASS(st->stop, 'c') && GPU_IN_CLASS(st->stop, 'B'));
            assert_false(GPU_IN_CLASS(st->stop, 'h') || GPU_IN_CLASS(st->skip, 'c'));
            st = &f[k].stops[1]; /* then [\w.-]{0,8}[:=] */
            assert_int_equal(st->within, 14);
            assert_true(GPU_IN_CLASS(st->stop, '=') && GPU_IN_CLASS(st->skip, 'h'));
            assert_false(GPU_IN_CLASS(st->skip, ' '));
        } else if (!strcmp(kw, "zdev:") || !strcmp(kw, "zprod:")) {
            /* (?:zprod|zdev): spells each keyword out of the group */
            assert_int_equal(f[k].min_run, 4);
            assert_true(in_class(&f[k], 'q') && !in_class(&f[k], '-'));
            assert_int_equal(f[k].stops[0].within, 5); /* [a-z]{4}- */
            assert_true(GPU_IN_CLASS(f[k].stops[0].stop, '-'));
        } else {
            /* apq, kyq: each alternative of (?:apq|kyq), then [=:] */
            assert_int_equal(f[k].min_run, 1);
            assert_true(in_class(&f[k], '=') && in_class(&f[k], ':'));
            assert_false(in_class(&f[k], 'a'));
            assert_int_equal(f[k].stops[0].within, 0); /* [a-z]{8}: too wide */
        }
    }
    free(f);
    /* Parity with the filters on (gpu_open_api computes them): keywords
     * with and without their token after them, at chunk ends too. */
    const char *texts[] = {
        "a sk_x0123456789abcdef0123456789abcdef end",
        "sk_xZZ sk_x0123 task_x sk_x0123456789ABCDEF0123456789abcdef",
        "pushq me o.Ab3Cd4Ef5Gh6 and o.short and o.",
        "tr_prod_abcde tr_xyz apq=abcdefgh kyq:zzzzzzzz apq TR_DEV_QWERT attr_dev_abcde tr_",
        "sk_x0123456789abcdef0123456789abcde",
        "zork_name = \"m4k9x2q7z1\" zork(x) = \"p8v3n6w1r5\" ZORK0123456789  :\"q1w2e3r4t5\" "
        "zork01234567890 =\"h2j8d5s1a6\" zork.a=\"c7f3b9g2e4\" zork",
        "zork_key  =",
        "qlin_chan_x=k4m8q2w7z1 qlin_count = 3 QLINBOT:p9x3v6n2b8 qlin-botxx zdev:abcd-12 "
        "zprod:wxyz-98 zdev:ab-12 zprod:",
        "qlinchan",
        "x->zkey=abcdefghij zapi_zkey=abcdefgh12 zapizkey=0123456789 ZAPI-ZKEY=qwertyuio1 "
        "azkey=aaaaaaaaaa zapi zkey=bbbbbbbbbb",
        "zkey=cccccccccc tr_dev_abcde",
    };
    enum { NT = sizeof texts / sizeof *texts };
    kh_chunk chunks[NT];
    for (int i = 0; i < NT; i++)
        chunks[i] = (kh_chunk){.data = (const uint8_t *)texts[i], .len = strlen(texts[i]),
                               .path = "f.txt"};
    /* sk_x, o., three zork, two qlin, two z tokens, a zkey at least */
    assert_batch_equals_scan(e, chunks, NT, 10);
    kh_engine_free(e);
    kh_detectors_free(set);
}

/* The batch prefilter pass (engine_prefilter_batch) joins the windows of
 * many chunks with newlines: matches at chunk edges (\b, (?m)^, a $ that
 * only the chunk's end satisfies), windows cut into blocks, and joins that
 * a pattern could match across must give kh_scan's findings.  A small
 * block size makes the joined buffer flush often and some windows long. */
static const char *const join_specs[] = {
    "[detector]\nid = \"j-word\"\nname = \"J word\"\nservice = \"jword\"\nseverity = \"high\"\n"
    "keywords = [\"qk_\"]\n[[detector.patterns]]\nregex = '\\bqk_([a-z0-9]{16})\\b'\n"
    "group = 1\n",
    "[detector]\nid = \"j-line\"\nname = \"J line\"\nservice = \"jline\"\nseverity = \"high\"\n"
    "keywords = [\"qline=\"]\n[[detector.patterns]]\n"
    "regex = '(?m)^qline=([A-Za-z0-9]{12})$'\ngroup = 1\n",
    "[detector]\nid = \"j-end\"\nname = \"J end\"\nservice = \"jend\"\nseverity = \"high\"\n"
    "keywords = [\"qend:\"]\n[[detector.patterns]]\nregex = 'qend:([0-9a-f]{12})$'\ngroup = 1\n",
    "[detector]\nid = \"j-across\"\nname = \"J across\"\nservice = \"jacross\"\n"
    "severity = \"high\"\nkeywords = [\"qx=\"]\n[[detector.patterns]]\n"
    "regex = 'qx=[^;]{0,40};([A-Za-z0-9]{14})'\ngroup = 1\n",
};

static void test_batch_prefilter_joins(void **state)
{
    (void)state;
    kh_error err;
    kh_detectors *set =
        fixture_detectors(join_specs, sizeof join_specs / sizeof *join_specs, "j.toml");
    kh_engine *e = NULL;
    kh_engine_opts eo = {.decode_depth = 0, .block_size = 4096};
    assert_int_equal(kh_engine_compile(set, &eo, &e, &err), KH_OK);
    enum { NC = 60 };
    kh_chunk chunks[NC];
    char *bufs[NC];
    uint64_t x = 0x9E3779B97F4A7C15ull;
    static const char *plant[] = {"qk_", "\nqline=", "qend:", "qx=", ";"};
    for (int c = 0; c < NC; c++) {
        size_t len = 200 + (size_t)(c * 977 % 9000);
        char *b = malloc(len + 1);
        assert_non_null(b);
        for (size_t i = 0; i < len; i++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            unsigned r = (unsigned)(x % 64);
            b[i] = r < 8 ? ' ' : r < 9 ? '\n' : "abcdef0123456789ghijkLMNOPQRstuvwxyz"[r % 36];
            if (r == 63 && i + 40 < len) { /* a keyword, often with its token */
                const char *k = plant[(x >> 8) % 5];
                size_t kl = strlen(k);
                memcpy(b + i, k, kl);
                i += kl - 1;
            }
        }
        if (c % 3 == 0 && len > 20)
            memcpy(b + len - 17, "qend:0123abcd4567", 17); /* at the very end */
        if (c % 4 == 1 && len > 20)
            memcpy(b, "qk_a1b2c3d4e5f6g7h8 ", 20); /* at the very start */
        if (c % 5 == 2 && len > 40)
            memcpy(b + len / 2, "\nqline=AbCdEf012345\n", 20);
        b[len] = 0;
        bufs[c] = b;
        chunks[c] = (kh_chunk){.data = (const uint8_t *)b, .len = len, .path = "j.txt"};
    }
    assert_batch_equals_scan(e, chunks, NC, 20);
    for (int c = 0; c < NC; c++)
        free(bufs[c]);
    kh_engine_free(e);
    kh_detectors_free(set);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_missing_library_is_unsupported),
        cmocka_unit_test(test_no_device_or_wrong_abi_is_unsupported),
        cmocka_unit_test(test_keyword_finder),
        cmocka_unit_test(test_cpu_batch_equals_kh_scan),
        cmocka_unit_test(test_region_mode_parity),
        cmocka_unit_test(test_forced_fallbacks_keep_findings),
        cmocka_unit_test(test_buffer_skips_packing),
        cmocka_unit_test(test_hits_group),
        cmocka_unit_test(test_batch_stop_and_arguments),
        cmocka_unit_test(test_regions_cover_every_keyword),
        cmocka_unit_test(test_keyword_filters),
        cmocka_unit_test(test_batch_prefilter_joins),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
