/*
 * fuzz_scan.c - libFuzzer target for the engine: arbitrary bytes scanned
 * with the full embedded detector set, decode-through on.
 *
 * What it checks is what every consumer of kh_scan relies on: each
 * finding's span [offset, offset+length) lies inside the chunk; a plain
 * (not decoded) finding's secret is exactly the bytes at that span, and its
 * line/column pairs agree with the newlines before it; decoded findings
 * carry a decoding path no deeper than the engine allows; companions of
 * plain findings point at their own bytes; findings come in offset order.
 * It also scans every input a second time with a 7-byte block size, which
 * cuts the input into many blocks, and requires the same findings: the
 * block scanner promises results that never depend on the block size for
 * matches shorter than its overlap, and fuzz inputs are far shorter.
 *
 * Compiling the detector set takes seconds (close to a minute under ASan,
 * whose allocator Vectorscan's compiler pays for), so both engines are
 * built once in LLVMFuzzerInitialize and kept in statics, which libFuzzer's
 * model needs (the library itself has no such state), and the compiled
 * databases are kept in the file named by $KEYHOG_FUZZ_CACHE (fuzz/run.sh
 * sets it) through the engine's own cache format, which it ignores when the
 * detector set changed.
 *
 *   make fuzz FUZZ_TARGETS=fuzz_scan FUZZ_SECONDS=60
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keyhog.h"

typedef struct seen {
    const kh_detector_info *detector;
    uint64_t offset;
    size_t length;
    size_t secret_len;
    uint8_t secret[64]; /* prefix: enough to tell findings apart */
    size_t depth;
} seen;

typedef struct ctx {
    const uint8_t *data;
    size_t size;
    seen list[4096];
    size_t count;
    int overflow;
    uint64_t last_offset;
} ctx;

static kh_detectors *fuzz_set;
static kh_engine *fuzz_engine, *fuzz_engine_small;
static kh_scratch *fuzz_scratch, *fuzz_scratch_small;

static void die(const char *what, const kh_finding *f)
{
    fprintf(stderr, "fuzz_scan: %s (detector %s, offset %llu, length %zu, depth %zu)\n",
            what, f ? f->detector->id : "-", f ? (unsigned long long)f->offset : 0ULL,
            f ? f->length : (size_t)0, f ? f->decode_depth : (size_t)0);
    abort();
}

/* Line (1-based) and column (1-based, bytes) of data[at]. */
static void line_col(const uint8_t *data, size_t at, uint32_t *line, uint32_t *col)
{
    uint32_t l = 1;
    size_t start = 0;
    for (size_t i = 0; i < at; i++)
        if (data[i] == '\n') {
            l++;
            start = i + 1;
        }
    *line = l;
    *col = (uint32_t)(at - start + 1);
}

static int on_finding(const kh_finding *f, void *arg)
{
    ctx *c = arg;
    if (!f->detector || !f->detector->id)
        die("finding without a detector", f);
    if (f->length == 0 || f->offset > c->size || f->length > c->size - f->offset)
        die("span outside the input", f);
    if (f->offset < c->last_offset)
        die("findings out of offset order", f);
    c->last_offset = f->offset;
    if (f->confidence < 0 || f->confidence > 1 || f->confidence != f->confidence)
        die("confidence outside [0, 1]", f);
    if (f->checksum_valid < -1 || f->checksum_valid > 1)
        die("checksum_valid outside {-1, 0, 1}", f);
    if (f->secret_len == 0 || !f->secret)
        die("empty secret", f);
    uint32_t line, col;
    line_col(c->data, (size_t)f->offset, &line, &col);
    if (line != f->line || col != f->column)
        die("line/column do not match the offset", f);
    line_col(c->data, (size_t)f->offset + f->length - 1, &line, &col);
    if (line != f->end_line || col != f->end_column)
        die("end line/column do not match the span", f);
    if (f->decode_depth == 0) {
        if (f->decoded_from)
            die("plain finding with a decoding path", f);
        if (f->secret_len != f->length ||
            memcmp(c->data + f->offset, f->secret, f->secret_len) != 0)
            die("secret is not the bytes of its span", f);
    } else {
        if (!f->decoded_from || f->decode_depth > 3) /* the default depth */
            die("decoded finding with a bad decoding path", f);
        for (size_t i = 0; i < f->decode_depth; i++)
            if (!f->decoded_from[i] || !*f->decoded_from[i])
                die("empty decoding step", f);
        volatile uint8_t sink = f->secret[f->secret_len - 1]; /* ASan checks it */
        (void)sink;
    }
    for (size_t i = 0; i < f->companion_count; i++) {
        const kh_companion *k = &f->companions[i];
        if (!k->name || (k->value_len && !k->value))
            die("companion without a name or value", f);
        if (f->decode_depth == 0 &&
            (k->offset > c->size || k->value_len > c->size - k->offset ||
             memcmp(c->data + k->offset, k->value, k->value_len) != 0))
            die("companion is not the bytes at its offset", f);
    }
    if (c->count < sizeof c->list / sizeof c->list[0]) {
        seen *s = &c->list[c->count++];
        s->detector = f->detector;
        s->offset = f->offset;
        s->length = f->length;
        s->secret_len = f->secret_len;
        s->depth = f->decode_depth;
        memset(s->secret, 0, sizeof s->secret);
        memcpy(s->secret, f->secret, f->secret_len < 64 ? f->secret_len : 64);
    } else {
        c->overflow = 1;
    }
    return 0;
}

static void fail_init(const char *what, const kh_error *err)
{
    fprintf(stderr, "fuzz_scan: %s: %s\n", what, err ? err->message : "");
    abort();
}

static void *cache_read(const char *path, size_t *len)
{
    FILE *f = path ? fopen(path, "rb") : NULL;
    if (!f)
        return NULL;
    char *buf = NULL;
    size_t cap = 0, n = 0, got;
    do {
        if (n == cap) {
            char *nb = realloc(buf, cap = cap ? cap * 2 : 1 << 20);
            if (!nb)
                break;
            buf = nb;
        }
        got = fread(buf + n, 1, cap - n, f);
        n += got;
    } while (got > 0);
    fclose(f);
    *len = n;
    return buf;
}

static void cache_write(const char *path, const void *buf, size_t len)
{
    char tmp[4096];
    if (!path || snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp)
        return;
    FILE *f = fopen(tmp, "wb");
    if (!f)
        return;
    int ok = fwrite(buf, 1, len, f) == len;
    ok &= fclose(f) == 0;
    if (!ok || rename(tmp, path) != 0)
        remove(tmp);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    kh_error err = {0};
    if (!(fuzz_set = kh_detectors_embedded()))
        fail_init("kh_detectors_embedded", NULL);
    const char *cache_path = getenv("KEYHOG_FUZZ_CACHE");
    size_t cache_len = 0;
    void *cache = cache_read(cache_path, &cache_len);
    kh_engine_opts big = {.decode_depth = -1, .cache = cache, .cache_len = cache_len};
    if (kh_engine_compile(fuzz_set, &big, &fuzz_engine, &err) != KH_OK)
        fail_init("kh_engine_compile", &err);
    /* The second engine reuses the first one's databases: only the block
     * size differs, and compiling twice would double the start-up time. */
    if (!kh_engine_from_cache(fuzz_engine)) {
        free(cache);
        cache = NULL;
        if (kh_engine_serialize(fuzz_engine, &cache, &cache_len) != KH_OK)
            fail_init("kh_engine_serialize", NULL);
        cache_write(cache_path, cache, cache_len);
    }
    kh_engine_opts small = {.block_size = 7, .decode_depth = -1, .cache = cache,
                            .cache_len = cache_len};
    if (kh_engine_compile(fuzz_set, &small, &fuzz_engine_small, &err) != KH_OK)
        fail_init("kh_engine_compile (small blocks)", &err);
    free(cache);
    if (kh_scratch_alloc(fuzz_engine, &fuzz_scratch) != KH_OK ||
        kh_scratch_alloc(fuzz_engine_small, &fuzz_scratch_small) != KH_OK)
        fail_init("kh_scratch_alloc", NULL);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static ctx a, b; /* 300 KiB each: too big for the stack */
    a.count = b.count = 0;
    a.overflow = b.overflow = 0;
    a.last_offset = b.last_offset = 0;
    a.data = b.data = data;
    a.size = b.size = size;
    kh_chunk chunk = {.data = data, .len = size, .path = "fuzz/input.txt"};
    int ra = kh_scan(fuzz_engine, fuzz_scratch, &chunk, on_finding, &a);
    int rb = kh_scan(fuzz_engine_small, fuzz_scratch_small, &chunk, on_finding, &b);
    if (ra != KH_OK && ra != KH_ELIMIT)
        die(kh_strerror(ra), NULL);
    if (rb != KH_OK && rb != KH_ELIMIT)
        die(kh_strerror(rb), NULL);
    /* A limit hit in one scan and not the other makes the lists differ
     * legitimately; so does a list too long to keep. */
    if (ra != KH_OK || rb != KH_OK || a.overflow || b.overflow)
        return 0;
    if (a.count != b.count) {
        fprintf(stderr, "fuzz_scan: %zu findings with 8 MiB blocks, %zu with 7-byte blocks\n",
                a.count, b.count);
        for (size_t i = 0; i < a.count; i++)
            fprintf(stderr, "  big:   %s @%llu+%zu\n", a.list[i].detector->id,
                    (unsigned long long)a.list[i].offset, a.list[i].length);
        for (size_t i = 0; i < b.count; i++)
            fprintf(stderr, "  small: %s @%llu+%zu\n", b.list[i].detector->id,
                    (unsigned long long)b.list[i].offset, b.list[i].length);
        abort();
    }
    for (size_t i = 0; i < a.count; i++) {
        const seen *x = &a.list[i], *y = &b.list[i];
        if (strcmp(x->detector->id, y->detector->id) || x->offset != y->offset ||
            x->length != y->length || x->secret_len != y->secret_len || x->depth != y->depth ||
            memcmp(x->secret, y->secret, sizeof x->secret)) {
            fprintf(stderr, "fuzz_scan: finding %zu differs with the block size: %s @%llu+%zu "
                            "vs %s @%llu+%zu\n",
                    i, x->detector->id, (unsigned long long)x->offset, x->length,
                    y->detector->id, (unsigned long long)y->offset, y->length);
            abort();
        }
    }
    return 0;
}
