/*
 * gpu_check.c - checks libkeyhog_gpu.so on a machine with a GPU, without
 * the rest of keyhog: loads it as libkeyhog does (dlopen + the ABI), feeds
 * random text with keywords planted in mixed case, at chunk edges and
 * across piece cuts, and requires exactly the hits of a plain CPU search,
 * in persistent and per-launch mode and through each forced failure.
 * Encoded fragments are planted too; every position where dt_trigger holds
 * must be covered by a decode mark of its chunk at most 15 bytes before it.
 *
 *   gpu_check LIB KEYWORDS_FILE      (one keyword per line; exit 0 = pass)
 */
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "decode/trigger.h"
#include "engine/gpu.h"

static int fold(int c)
{
    return c >= 'A' && c <= 'Z' ? c | 0x20 : c;
}

static int cmp_hit(const void *a, const void *b)
{
    const gpu_hit *x = a, *y = b;
    if (x->chunk != y->chunk)
        return x->chunk < y->chunk ? -1 : 1;
    if (x->offset != y->offset)
        return x->offset < y->offset ? -1 : 1;
    return (x->keyword > y->keyword) - (x->keyword < y->keyword);
}

static size_t reference(char **kw, uint32_t nkw, uint8_t **data, size_t *len, size_t n,
                        gpu_hit *out, size_t cap)
{
    size_t m = 0;
    for (size_t c = 0; c < n; c++)
        for (size_t at = 0; at < len[c]; at++)
            for (uint32_t k = 0; k < nkw; k++) {
                size_t j = 0;
                while (kw[k][j] && at + j < len[c] &&
                       fold(data[c][at + j]) == fold((unsigned char)kw[k][j]))
                    j++;
                if (!kw[k][j] && m < cap)
                    out[m++] = (gpu_hit){at, (uint32_t)c, k};
            }
    return m;
}

/* The session's hits are packed positions in device order (gpu.h): to
 * chunks and chunk offsets, with the batch's starts. */
static int map_hits(gpu_hit *hits, size_t n, const uint64_t *starts, size_t nchunks)
{
    for (size_t i = 0; i < n; i++) {
        if (hits[i].chunk != GPU_CHUNK_PACKED || hits[i].offset >= starts[nchunks])
            return 0;
        size_t lo = 0, hi = nchunks;
        while (hi - lo > 1) {
            size_t mid = (lo + hi) / 2;
            if (starts[mid] <= hits[i].offset)
                lo = mid;
            else
                hi = mid;
        }
        hits[i].offset -= starts[lo];
        hits[i].chunk = (uint32_t)lo;
    }
    return 1;
}

/* Moves the decode marks out of hits[0..n) into marks (sorted by chunk and
 * offset); returns how many keyword hits are left. */
static size_t split_marks(gpu_hit *hits, size_t n, gpu_hit *marks, size_t *nmarks)
{
    size_t w = 0;
    *nmarks = 0;
    for (size_t i = 0; i < n; i++) {
        if (hits[i].keyword == GPU_DECODE_MARK)
            marks[(*nmarks)++] = hits[i];
        else
            hits[w++] = hits[i];
    }
    qsort(marks, *nmarks, sizeof *marks, cmp_hit);
    return w;
}

/* Every trigger of every chunk (as the packed batch shows it) has a mark of
 * its chunk within DT_SEG bytes before it. */
static int marks_cover(const uint8_t *packed, const uint64_t *starts, const size_t *len,
                       size_t nchunks, const gpu_hit *marks, size_t nmarks, size_t *ntrig)
{
    size_t limit = starts[nchunks] + GPU_PACK_PAD, k = 0;
    *ntrig = 0;
    for (size_t c = 0; c < nchunks; c++) {
        for (size_t p = 0; p < len[c]; p++) {
            if (!dt_trigger(packed, starts[c] + p, limit))
                continue;
            ++*ntrig;
            while (k < nmarks && (marks[k].chunk < c || (marks[k].chunk == c &&
                                                         marks[k].offset + DT_SEG <= p)))
                k++;
            if (k >= nmarks || marks[k].chunk != c || marks[k].offset > p) {
                printf("chunk %zu: trigger at %zu has no mark\n", c, p);
                return 0;
            }
        }
    }
    return 1;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: gpu_check LIB KEYWORDS_FILE\n");
        return 2;
    }
    void *dl = dlopen(argv[1], RTLD_NOW);
    if (!dl) {
        fprintf(stderr, "%s\n", dlerror());
        return 2;
    }
    gpu_get_api_fn get = (gpu_get_api_fn)(uintptr_t)dlsym(dl, GPU_GET_API_SYMBOL);
    gpu_api api;
    if (!get || get(&api) || api.api_version() != GPU_ABI_VERSION)
        return 2;
    FILE *f = fopen(argv[2], "r");
    if (!f)
        return 2;
    char *kw[4096], line[256];
    uint32_t nkw = 0;
    while (nkw < 4096 && fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n")] = 0;
        if (strlen(line) >= 2)
            kw[nkw++] = strdup(line);
    }
    fclose(f);
    char msg[256];
    int ndev = 0;
    if (api.device_count(&ndev, msg, sizeof msg) || ndev < 1) {
        fprintf(stderr, "no device: %s\n", msg);
        return 2;
    }
    /* Chunks: empty, tiny, and bigger than a piece (pieces are 64 KiB here). */
    enum { NCHUNK = 300 };
    uint8_t *data[NCHUNK];
    size_t len[NCHUNK];
    uint64_t x = 12345;
    size_t total = 0;
    for (int c = 0; c < NCHUNK; c++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        len[c] = c == 0 ? 0 : c % 50 == 0 ? 200000 + x % 100000 : x % 3000;
        data[c] = malloc(len[c] + 1);
        for (size_t i = 0; i < len[c]; i++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            data[c][i] = (uint8_t)(" etaoinsrhldcu_=:\"'\n0123456789ABCDEFxyz-kKpP"[x % 44]);
        }
        /* Plant keywords, some at the very start and end of the chunk. */
        for (int p = 0; p < 6 && len[c] > 40; p++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            const char *k = kw[x % nkw];
            size_t kl = strlen(k);
            size_t at = p == 0 ? 0 : p == 1 ? len[c] - kl : (x >> 20) % (len[c] - kl);
            for (size_t j = 0; j < kl; j++)
                data[c][at + j] = (uint8_t)((x >> j) & 1 && k[j] >= 'a' && k[j] <= 'z'
                                                ? k[j] - 32
                                                : k[j]);
        }
        /* And encoded fragments, some at the chunk's edges. */
        static const char *const enc[] = {
            "dGhpcyBpcyBhIHNlY3JldCB0b2tlbiB2YWx1ZQ==", "%41%50%49", "\\u0041\\x42",
            "&amp;&#65;", "=4F=50", "6170695f6b65793d313233343536373839616263",
            "c2VjcmV0X2tleV9pc19oZXJlX2FuZF9pdF9pc19sb25nX2Vub3VnaA\n"};
        for (int p = 0; p < 4 && len[c] > 80; p++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            const char *e = enc[x % 7];
            size_t el = strlen(e);
            size_t at = p == 0 ? 0 : p == 1 ? len[c] - el : (x >> 20) % (len[c] - el);
            memcpy(data[c] + at, e, el);
        }
        total += len[c];
    }
    size_t cap = 1 << 22;
    gpu_hit *want = malloc(cap * sizeof *want), *got = malloc(cap * sizeof *got);
    gpu_hit *marks = malloc(cap * sizeof *marks);
    size_t nwant = reference(kw, nkw, data, len, NCHUNK, want, cap);
    qsort(want, nwant, sizeof *want, cmp_hit);
    printf("%zu bytes in %d chunks, %zu keyword hits expected\n", total, NCHUNK, nwant);
    const char *cases[][2] = {{"persistent", NULL},       {"launch", NULL},
                              {"persistent", "persistent"}, {"persistent", "launch"},
                              {"launch", "launch"},       {"persistent", "open"}};
    int failures = 0;
    /* The same chunks packed as libkeyhog packs them, in memory from
     * host_alloc (allocated before any resident kernel runs). */
    uint8_t *packed = NULL, *one = NULL;
    uint64_t starts[NCHUNK + 1];
    if (api.host_alloc(total + NCHUNK + GPU_PACK_PAD, (void **)&packed) ||
        api.host_alloc(300000 + 1 + GPU_PACK_PAD, (void **)&one)) {
        printf("host_alloc failed\n");
        return 1;
    }
    {
        uint64_t at = 0;
        for (int c = 0; c < NCHUNK; c++) {
            starts[c] = at;
            memcpy(packed + at, data[c], len[c]);
            at += len[c];
            packed[at++] = 0;
        }
        starts[NCHUNK] = at;
        memset(packed + at, 0, GPU_PACK_PAD);
    }
    for (size_t t = 0; t < sizeof cases / sizeof cases[0]; t++) {
        gpu_session_opts o = {.device = 0,
                              .persistent = !strcmp(cases[t][0], "persistent"),
                              .force_fail = cases[t][1],
                              .piece_bytes = 64 << 10};
        gpu_session *s = NULL;
        int want_fail_open = cases[t][1] && !strcmp(cases[t][1], "open");
        int want_fail_submit = cases[t][1] && !strcmp(cases[t][1], "launch") &&
                               (!o.persistent);
        if (api.session_open((const char *const *)kw, nkw, &o, &s, msg, sizeof msg)) {
            printf("%-10s force=%-10s open failed: %s -> %s\n", cases[t][0],
                   cases[t][1] ? cases[t][1] : "-", msg, want_fail_open ? "ok" : "FAIL");
            failures += !want_fail_open;
            continue;
        }
        for (int round = 0; round < 4; round++) {
            gpu_batch_result r;
            int rc;
            if (round < 2) {
                rc = api.session_submit_batch(s, (const uint8_t *const *)data, len, NCHUNK, &r,
                                              msg, sizeof msg);
            } else if (round == 2) {
                rc = api.session_submit_packed(s, packed, starts, NCHUNK, &r, msg, sizeof msg);
            } else {
                /* One chunk a batch (small ones are read in place by the
                 * resident kernel), hits collected into one list. */
                size_t n = 0;
                rc = 0;
                for (int c = 0; c < NCHUNK && !rc; c++) {
                    uint64_t st[2] = {0, starts[c + 1] - starts[c]};
                    memcpy(one, packed + starts[c], st[1]);
                    memset(one + st[1], 0, GPU_PACK_PAD);
                    rc = api.session_submit_packed(s, one, st, 1, &r, msg, sizeof msg);
                    for (size_t i = 0; !rc && i < r.nhits && n < cap; i++) {
                        got[n] = r.hits[i];
                        if (got[n].chunk != GPU_CHUNK_PACKED)
                            rc = 1;
                        got[n++].chunk = (uint32_t)c;
                    }
                }
                r.hits = got;
                r.nhits = n;
            }
            if (rc) {
                printf("%-10s force=%-10s submit failed: %s -> %s\n", cases[t][0],
                       cases[t][1] ? cases[t][1] : "-", msg, want_fail_submit ? "ok" : "FAIL");
                failures += !want_fail_submit;
                break;
            }
            if (r.hits != got) {
                memcpy(got, r.hits, r.nhits * sizeof *got);
                if (!map_hits(got, r.nhits, starts, NCHUNK)) {
                    printf("hits not at packed positions\n");
                    failures++;
                    break;
                }
            }
            size_t nmarks, ntrig;
            r.nhits = split_marks(got, r.nhits, marks, &nmarks);
            qsort(got, r.nhits, sizeof *got, cmp_hit);
            int same = r.nhits == nwant && !memcmp(got, want, nwant * sizeof *got);
            same &= marks_cover(packed, starts, len, NCHUNK, marks, nmarks, &ntrig);
            printf("%-10s force=%-10s round %d mode=%s hits=%zu marks=%zu (triggers %zu) "
                   "%.2f ms -> %s\n",
                   cases[t][0], cases[t][1] ? cases[t][1] : "-", round, api.session_mode(s),
                   r.nhits, nmarks, ntrig, r.device_ms, same && !want_fail_submit ? "ok" : "FAIL");
            failures += !same || want_fail_submit;
        }
        api.session_close(s);
    }
    printf("%s\n", failures ? "FAILED" : "PASSED");
    return failures ? 1 : 0;
}
