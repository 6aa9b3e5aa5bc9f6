/*
 * scan.c - one chunk -> findings.
 *
 * A chunk is scanned in blocks: block k "owns" the starts in
 * [k*B, (k+1)*B) and Vectorscan sees a window reaching `overlap` bytes
 * further on each side, so every match up to the overlap in length is seen
 * whole by exactly the block that owns its start.  Reports are only
 * candidates (pattern, leftmost start): after each block they are sorted and
 * each is confirmed by the pattern's PCRE2 program anchored at that start on
 * the whole chunk, which also yields the capture group.  A per-pattern
 * "confirmed up to" offset carried across blocks skips starts inside an
 * earlier match, which makes the result the same for any block size.
 *
 * Start-of-match tracking is what makes that database slow (about six
 * times the cost per byte of the same patterns without it), and matches
 * are rare, so a whole buffer is first scanned with the prefilter database
 * (every pattern, no SOM), which gives each match's end only.  A match of
 * pattern p ending at e starts in [e - width(p), e): those stretches, merged,
 * are the regions in which the SOM database then looks for starts, with
 * the reach of their own patterns as context (as for the GPU's keyword
 * regions, engine_scan_regions).  Every match the block scan would see
 * starts in a region, and its window sees every earlier start of its end,
 * so the findings are the same; a buffer with too many reports is scanned
 * whole.
 *
 * Confirmed matches pass the detector's gates (shape, checksum, entropy,
 * placeholder), get companions and a confidence, and are kept in the
 * scratch until the whole chunk (and its decoded children) is done; then
 * they are sorted by offset, given line and column, and handed to the
 * callback.  Secret bytes are copied into a scratch arena because decoded
 * buffers are reused while the chunk is still being scanned.
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "decode/decode.h"
#include "engine/engine.h"
#include "triage/triage.h"

#define MAX_DECODE_LEVELS 8

typedef struct candidate {
    uint32_t pattern;
    uint32_t start; /* from own_start */
    uint32_t end;   /* furthest end Vectorscan reported for this start */
} candidate;

typedef struct hit_companion {
    uint32_t name_index; /* companion index in the detector */
    size_t value_at, value_len; /* arena */
    uint64_t offset;
    long line_delta; /* lines from the secret's line */
} hit_companion;

typedef struct hit {
    uint32_t detector;
    uint64_t offset, length; /* in the root chunk: secret, or encoded span */
    size_t secret_at, secret_len; /* arena */
    size_t companion_at, companion_count;
    double confidence;
    int checksum;
    uint8_t depth;
    const char *chain[MAX_DECODE_LEVELS];
} hit;

struct kh_scratch {
    const kh_engine *engine;
    hs_scratch_t *hs;
    pcre2_match_data *md;
    candidate *cands;
    size_t ncands, cands_cap;
    int cands_overflow;
    uint64_t deadline_ns; /* monotonic; past it the scan stops (KH_ELIMIT) */
    unsigned ticks;
    int timed_out;
    size_t *last_end; /* per pattern, within the current buffer */
    uint32_t *touched; /* the patterns whose last_end is not 0 */
    size_t ntouched;
    uint8_t *triggered; /* per detector: a fallback keyword was seen */
    engine_hints *hints; /* the GPU's decode marks for the root buffer, or NULL */
    hit *hits;
    size_t nhits, hits_cap;
    hit_companion *comps;
    size_t ncomps, comps_cap;
    uint8_t *arena;
    size_t arena_len, arena_cap;
    decode_result decoded[MAX_DECODE_LEVELS];
    size_t decode_budget;
    /* state of the buffer being scanned */
    const uint8_t *data;
    size_t len;
    size_t window_start, own_start, own_end;
    int region_mode;     /* scanning keyword regions: anchored patterns only */
    int only_unanchored; /* whole-buffer pass of a region scan */
    size_t match_start;   /* start of the last match confirm() saw */
    engine_region *pre;   /* regions from the prefilter reports */
    size_t npre, pre_cap;
    size_t pre_base;      /* buffer offset of the prefilter window */
    int pre_whole;        /* too many reports, or a keyword asks for it */
    size_t confirm_limit; /* unanchored confirm: ignore matches starting here on */
};

/* Where a buffer's findings go in the root chunk. */
typedef struct scan_frame {
    const kh_chunk *root;
    int depth;
    uint64_t span_offset, span_length; /* root span when depth > 0 */
    const char *chain[MAX_DECODE_LEVELS];
} scan_frame;

int kh_scratch_alloc(const kh_engine *e, kh_scratch **out)
{
    if (!e || !out)
        return KH_EINVAL;
    kh_scratch *s = calloc(1, sizeof *s);
    if (!s)
        return KH_ENOMEM;
    s->engine = e;
    if (e->db && hs_alloc_scratch(e->db, &s->hs) != HS_SUCCESS)
        goto fail;
    if (e->db_unanchored && hs_alloc_scratch(e->db_unanchored, &s->hs) != HS_SUCCESS)
        goto fail;
    if (e->db_prefilter && hs_alloc_scratch(e->db_prefilter, &s->hs) != HS_SUCCESS)
        goto fail;
    s->md = pcre2_match_data_create(e->max_capture + 1, NULL);
    s->last_end = calloc(e->pattern_count + 1, sizeof *s->last_end);
    s->touched = calloc(e->pattern_count + 1, sizeof *s->touched);
    s->triggered = calloc(e->set->count + 1, 1);
    if (!s->md || !s->last_end || !s->touched || !s->triggered)
        goto fail;
    *out = s;
    return KH_OK;
fail:
    kh_scratch_free(s);
    return KH_ENOMEM;
}

void kh_scratch_free(kh_scratch *s)
{
    if (!s)
        return;
    if (s->hs)
        hs_free_scratch(s->hs);
    pcre2_match_data_free(s->md);
    free(s->cands);
    free(s->pre);
    free(s->last_end);
    free(s->touched);
    free(s->triggered);
    free(s->hits);
    free(s->comps);
    free(s->arena);
    for (int i = 0; i < MAX_DECODE_LEVELS; i++)
        decode_result_free(&s->decoded[i]);
    free(s);
}

static int grow(void **ptr, size_t *cap, size_t need, size_t size)
{
    if (need <= *cap)
        return 0;
    size_t n = *cap ? *cap * 2 : 64;
    while (n < need)
        n *= 2;
    void *p = realloc(*ptr, n * size);
    if (!p)
        return -1;
    *ptr = p;
    *cap = n;
    return 0;
}

static int arena_put(kh_scratch *s, const uint8_t *bytes, size_t len, size_t *at)
{
    if (grow((void **)&s->arena, &s->arena_cap, s->arena_len + len + 1, 1))
        return -1;
    memcpy(s->arena + s->arena_len, bytes, len);
    s->arena[s->arena_len + len] = 0;
    *at = s->arena_len;
    s->arena_len += len + 1;
    return 0;
}

static int on_report(unsigned id, unsigned long long from, unsigned long long to,
                     unsigned flags, void *ctx)
{
    (void)to;
    (void)flags;
    kh_scratch *s = ctx;
    const kh_engine *e = s->engine;
    if (id >= e->pattern_count) {
        /* Ids come from a database that may have been read from a cache
         * file: one this engine did not assign is ignored, never indexed. */
        if (id - e->pattern_count < e->keyword_count)
            s->triggered[e->keyword_detector[id - e->pattern_count]] = 1;
        return 0;
    }
    size_t start = s->window_start + (size_t)from;
    if (start < s->own_start || start >= s->own_end)
        return 0;
    /* In region mode the anchored patterns come from the regions alone and
     * the others from the whole-buffer pass. */
    if (s->only_unanchored ? e->patterns[id].anchored : s->region_mode && !e->patterns[id].anchored)
        return 0;
    /* Vectorscan reports every end of a match; consecutive reports of one
     * start are one candidate. */
    uint32_t rel_end = (uint32_t)(s->window_start + (size_t)to - s->own_start);
    if (s->ncands && s->cands[s->ncands - 1].pattern == id &&
        s->cands[s->ncands - 1].start == start - s->own_start) {
        if (rel_end > s->cands[s->ncands - 1].end)
            s->cands[s->ncands - 1].end = rel_end;
        return 0;
    }
    if (s->ncands >= ENGINE_MAX_CANDIDATES) {
        s->cands_overflow = 1;
        return 1; /* stop this block; the rest is reported as truncated */
    }
    if (grow((void **)&s->cands, &s->cands_cap, s->ncands + 1, sizeof *s->cands))
        return 1;
    s->cands[s->ncands].pattern = id;
    s->cands[s->ncands].start = (uint32_t)(start - s->own_start);
    s->cands[s->ncands].end = rel_end;
    s->ncands++;
    return 0;
}

static uint64_t now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

/* True once the chunk's time budget is spent; reads the clock only every
 * 256 calls, so it costs nothing in the loops that call it. */
static int over_budget(kh_scratch *s)
{
    if (!s->timed_out && (++s->ticks & 255) == 0 && now_ns() > s->deadline_ns)
        s->timed_out = 1;
    return s->timed_out;
}

static int cmp_candidate(const void *a, const void *b)
{
    const candidate *x = a, *y = b;
    if (x->pattern != y->pattern)
        return x->pattern < y->pattern ? -1 : 1;
    return (x->start > y->start) - (x->start < y->start);
}

/* Lines between two offsets of a buffer, signed. */
static long lines_between(const uint8_t *d, size_t from, size_t to)
{
    long n = 0;
    size_t lo = from < to ? from : to, hi = from < to ? to : from;
    for (const uint8_t *p = d + lo; (p = memchr(p, '\n', (size_t)(d + hi - p))) != NULL; p++)
        n++;
    return from <= to ? n : -n;
}

/* Finds each companion of detector `di` within its line window around the
 * secret [so, so+sl).  Returns 0 if every required companion was found. */
static int find_companions(kh_scratch *s, uint32_t di, size_t so, size_t sl, hit *h)
{
    const kh_engine *e = s->engine;
    const spec_detector *d = e->set->items[di];
    h->companion_at = s->ncomps;
    h->companion_count = 0;
    for (size_t ci = 0; ci < d->companion_count; ci++) {
        const spec_companion *c = &d->companions[ci];
        size_t lo = so, hi = so + sl;
        size_t lo_min = so > ENGINE_COMPANION_WINDOW ? so - ENGINE_COMPANION_WINDOW : 0;
        size_t hi_max = s->len - hi > ENGINE_COMPANION_WINDOW ? hi + ENGINE_COMPANION_WINDOW
                                                              : s->len;
        for (int n = 0; lo > lo_min && n <= c->within_lines; lo--)
            if (s->data[lo - 1] == '\n' && ++n > c->within_lines)
                break;
        for (int n = 0; hi < hi_max; hi++)
            if (s->data[hi] == '\n' && ++n > c->within_lines)
                break;
        const engine_companion *ec = &e->companions[di][ci];
        size_t best_off = 0, best_len = 0, best_dist = SIZE_MAX;
        PCRE2_SIZE at = lo;
        while (at < hi) {
            int rc = pcre2_match(ec->re, s->data, hi, at, 0, s->md, e->match_context);
            if (rc < 0)
                break;
            PCRE2_SIZE *ov = pcre2_get_ovector_pointer(s->md);
            int g = ec->group < rc ? ec->group : -1;
            if (g >= 0 && ov[2 * g] != PCRE2_UNSET && ov[2 * g + 1] > ov[2 * g]) {
                size_t vo = ov[2 * g], vl = ov[2 * g + 1] - ov[2 * g];
                int same = vl == sl && memcmp(s->data + vo, s->data + so, sl) == 0;
                size_t dist = vo > so ? vo - so : so - vo;
                if (!same && dist < best_dist) {
                    best_dist = dist;
                    best_off = vo;
                    best_len = vl;
                }
            }
            at = ov[1] > at ? ov[1] : at + 1;
        }
        if (best_dist == SIZE_MAX) {
            if (c->required)
                return -1;
            continue;
        }
        if (grow((void **)&s->comps, &s->comps_cap, s->ncomps + 1, sizeof *s->comps))
            return -1;
        hit_companion *hc = &s->comps[s->ncomps];
        hc->name_index = (uint32_t)ci;
        if (arena_put(s, s->data + best_off, best_len, &hc->value_at))
            return -1;
        hc->value_len = best_len;
        hc->offset = best_off;
        hc->line_delta = lines_between(s->data, so, best_off);
        s->ncomps++;
        h->companion_count++;
    }
    return 0;
}

/* Gates and records one confirmed match of pattern p at [ms, me) whose
 * secret is [so, so+sl) of the current buffer. */
static void record(kh_scratch *s, const scan_frame *f, uint32_t p, size_t ms, size_t me,
                   size_t so, size_t sl)
{
    const kh_engine *e = s->engine;
    uint32_t di = e->patterns[p].detector;
    const spec_detector *d = e->set->items[di];
    const uint8_t *secret = s->data + so;
    if (s->nhits >= ENGINE_MAX_FINDINGS || sl == 0)
        return;
    if (!triage_shape_ok(&d->shape, secret, sl))
        return;
    int checksum = 0;
    if (d->validate.checksum) {
        if (triage_checksum(d->validate.checksum, secret, sl) != 1)
            return;
        checksum = 1;
    }
    if (d->validate.min_entropy > 0 && triage_entropy(secret, sl) < d->validate.min_entropy)
        return;
    if (d->validate.reject_placeholders && triage_is_placeholder(secret, sl))
        return;
    /* One detector, one span: a second pattern of the same detector adds
     * nothing. */
    uint64_t off = f->depth ? f->span_offset : f->root->base_offset + so;
    uint64_t len = f->depth ? f->span_length : sl;
    for (size_t i = s->nhits; i-- > 0 && s->hits[i].offset == off;)
        if (s->hits[i].detector == di && s->hits[i].length == len &&
            s->hits[i].secret_len == sl && !memcmp(s->arena + s->hits[i].secret_at, secret, sl))
            return;
    if (grow((void **)&s->hits, &s->hits_cap, s->nhits + 1, sizeof *s->hits))
        return;
    hit *h = &s->hits[s->nhits];
    memset(h, 0, sizeof *h);
    size_t comps_mark = s->ncomps, arena_mark = s->arena_len;
    if (find_companions(s, di, so, sl, h) != 0 || arena_put(s, secret, sl, &h->secret_at)) {
        s->ncomps = comps_mark;
        s->arena_len = arena_mark;
        return;
    }
    h->detector = di;
    h->offset = off;
    h->length = len;
    h->secret_len = sl;
    h->checksum = checksum;
    h->depth = (uint8_t)f->depth;
    memcpy(h->chain, f->chain, sizeof h->chain);
    triage_input in = {
        .detector = d,
        .data = s->data,
        .data_len = s->len,
        .secret_offset = so,
        .secret_len = sl,
        .match_offset = ms,
        .match_len = me - ms,
        .path = f->root->path,
        .checksum = checksum,
        .decoded = f->depth > 0,
    };
    h->confidence = triage_confidence(&in);
    s->nhits++;
}

/* Runs pattern p's PCRE2 program at `start` (anchored or not) and records a
 * match.  Returns the match end, or 0 if none. */
static size_t confirm(kh_scratch *s, const scan_frame *f, uint32_t p, size_t start,
                      uint32_t options)
{
    const kh_engine *e = s->engine;
    const engine_pattern *ep = &e->patterns[p];
    /* An anchored match is cut at the overlap: the block and region scans
     * see whole matches only up to that length, and a greedy unbounded
     * pattern must not swallow a later secret of its own kind. */
    size_t subject = s->len;
    if ((options & PCRE2_ANCHORED) && subject - start > ENGINE_MAX_OVERLAP)
        subject = start + ENGINE_MAX_OVERLAP;
    else if (s->confirm_limit && subject - s->confirm_limit > ENGINE_MAX_OVERLAP)
        subject = s->confirm_limit + ENGINE_MAX_OVERLAP;
    int rc = pcre2_match(ep->re, s->data, subject, start, options, s->md, e->match_context);
    if (rc <= 0)
        return 0;
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(s->md);
    size_t ms = ov[0], me = ov[1];
    if (me <= ms)
        return 0;
    s->match_start = ms;
    if (!(options & PCRE2_ANCHORED) && s->confirm_limit && ms >= s->confirm_limit)
        return me; /* beyond the stretch asked about: not recorded */
    if (ep->group < rc && ov[2 * ep->group] != PCRE2_UNSET)
        record(s, f, p, ms, me, ov[2 * ep->group], ov[2 * ep->group + 1] - ov[2 * ep->group]);
    return me;
}

static void confirm_candidates(kh_scratch *s, const scan_frame *f)
{
    if (s->ncands > 1) /* cands is NULL before the first candidate */
        qsort(s->cands, s->ncands, sizeof *s->cands, cmp_candidate);
    for (size_t i = 0; i < s->ncands && !over_budget(s); i++) {
        uint32_t p = s->cands[i].pattern;
        size_t start = s->own_start + s->cands[i].start;
        size_t far = s->own_start + s->cands[i].end;
        /* One start may have been reported apart (other reports came
         * between); its furthest end counts. */
        while (i + 1 < s->ncands && s->cands[i + 1].pattern == p &&
               s->cands[i + 1].start == s->cands[i].start) {
            i++;
            if (s->own_start + s->cands[i].end > far)
                far = s->own_start + s->cands[i].end;
        }
        if (start < s->last_end[p])
            continue;
        size_t end = confirm(s, f, p, start, PCRE2_ANCHORED);
        if (!end)
            continue;
        if (!s->last_end[p])
            s->touched[s->ntouched++] = p;
        s->last_end[p] = end;
        /* Vectorscan gives only the leftmost start of each end: when its
         * furthest match from here ends past the one PCRE2 chose (a lazy
         * or alternating pattern), matches that start inside that stretch
         * are hidden behind this start.  Find them the way a regex scan
         * does, so the result never depends on where a window began. */
        s->confirm_limit = far;
        while (far > s->last_end[p]) {
            size_t next = confirm(s, f, p, s->last_end[p], 0);
            if (!next || s->match_start >= far)
                break;
            s->last_end[p] = next;
        }
        s->confirm_limit = 0;
    }
    s->ncands = 0;
}

/* Fallback patterns: PCRE2 over the whole buffer, for detectors whose
 * keyword occurred (or that have none). */
static void scan_fallback(kh_scratch *s, const scan_frame *f)
{
    const kh_engine *e = s->engine;
    for (uint32_t i = 0; i < e->fallback_count; i++) {
        uint32_t p = e->fallback[i];
        const spec_detector *d = e->set->items[e->patterns[p].detector];
        if (d->keyword_count && !s->triggered[e->patterns[p].detector])
            continue;
        size_t at = 0;
        while (at < s->len && !over_budget(s)) {
            size_t end = confirm(s, f, p, at, 0);
            if (!end)
                break;
            at = end;
        }
    }
}

static int scan_buffer(kh_scratch *s, const scan_frame *f, const uint8_t *data, size_t len);

/* Decode-through: scan what decodes from encoded spans of the buffer. */
static int scan_decoded(kh_scratch *s, const scan_frame *f, const uint8_t *data, size_t len)
{
    const kh_engine *e = s->engine;
    if (f->depth >= e->decode_depth || f->depth >= MAX_DECODE_LEVELS - 1 ||
        s->decode_budget == 0)
        return KH_OK;
    decode_result *res = &s->decoded[f->depth];
    decode_result_reset(res);
    engine_hints *h = f->depth == 0 ? s->hints : NULL;
    if (h ? decode_find_marked(data, len, h->marks, h->nmarks, s->decode_budget, res,
                               &h->decoded_bytes) != 0
          : decode_find(data, len, s->decode_budget, res) != 0)
        return KH_ENOMEM;
    s->decode_budget = res->len >= s->decode_budget ? 0 : s->decode_budget - res->len;
    for (size_t i = 0; i < res->count && !over_budget(s); i++) {
        const decode_span *sp = &res->spans[i];
        scan_frame child = *f;
        child.depth = f->depth + 1;
        if (f->depth == 0) {
            child.span_offset = f->root->base_offset + sp->offset;
            child.span_length = sp->length;
        }
        child.chain[f->depth] = sp->kind;
        int rc = scan_buffer(s, &child, res->buf + sp->out_offset, sp->out_len);
        if (rc != KH_OK)
            return rc;
    }
    return KH_OK;
}

/* Scans the window of own region [own_start, own_end), `reach` bytes of
 * context on each side (the overlap for blocks, less for GPU regions). */
static int scan_region(kh_scratch *s, const scan_frame *f, const hs_database_t *db,
                       size_t own_start, size_t own_end, size_t reach)
{
    s->own_start = own_start;
    s->own_end = own_end;
    s->window_start = own_start > reach ? own_start - reach : 0;
    size_t wend = own_end + reach < s->len ? own_end + reach : s->len;
    s->ncands = 0;
    if (db) {
        hs_error_t rc = hs_scan(db, (const char *)s->data + s->window_start,
                                (unsigned)(wend - s->window_start), 0, s->hs, on_report, s);
        if (rc != HS_SUCCESS && rc != HS_SCAN_TERMINATED)
            return KH_EINTERNAL;
    }
    confirm_candidates(s, f);
    return KH_OK;
}

/* Most regions one buffer's prefilter pass keeps; past it the buffer is
 * scanned whole (a report per few bytes: hostile or generated input). */
#define PREFILTER_MAX_REGIONS 65536u

/* Context a region made by pattern p needs on each side: its widest match
 * plus the slack the block overlap has (compile: overlap = widest + 64). */
static size_t pattern_reach(const kh_engine *e, const engine_pattern *p, size_t *width)
{
    size_t w = p->prefilter == ENGINE_PF_EXACT && p->max_width < ENGINE_MAX_OVERLAP
                   ? p->max_width
                   : ENGINE_MAX_OVERLAP;
    *width = w;
    return w + 64 < e->overlap ? w + 64 : e->overlap;
}

/* Context of a GPU keyword region: its own reach, at most the overlap. */
static size_t region_reach(const kh_engine *e, const engine_region *r)
{
    return r->reach && r->reach < e->overlap ? r->reach : e->overlap;
}

/* Two regions whose windows touch are scanned as one: fewer bytes seen
 * twice, fewer calls. */
static int regions_touch(const engine_region *a, const engine_region *b)
{
    return b->start <= a->end + a->reach + b->reach;
}

static void region_merge(engine_region *a, const engine_region *b)
{
    if (b->start < a->start)
        a->start = b->start;
    if (b->end > a->end)
        a->end = b->end;
    if (b->reach > a->reach)
        a->reach = b->reach;
}

/* What a prefilter report with id `id` ending at buffer offset `end` asks
 * for (on_prefilter, on_prefilter_batch): PRE_TRIGGER, detector *di's
 * fallback runs (and *whole: it wants the whole buffer); PRE_REGION, *r
 * around the end; PRE_NONE, nothing (an id this engine did not assign). */
enum { PRE_NONE, PRE_TRIGGER, PRE_REGION };
static int prefilter_report(const kh_engine *e, unsigned id, size_t end, uint32_t *di,
                            int *whole, engine_region *r)
{
    *whole = 0;
    if (id >= e->pattern_count) {
        if (id - e->pattern_count >= e->pf_keyword_count)
            return PRE_NONE; /* not an id this engine assigned (see on_report) */
        *di = e->pf_keyword_detector[id - e->pattern_count];
        *whole = e->pf_whole[*di];
        return PRE_TRIGGER;
    }
    const engine_pattern *p = &e->patterns[id];
    if (!p->on_vectorscan) {
        *di = p->detector; /* its PCRE2 fallback runs */
        return PRE_TRIGGER;
    }
    size_t width;
    r->end = end;
    r->reach = pattern_reach(e, p, &width);
    r->start = end > width ? end - width : 0;
    return PRE_REGION;
}

static int on_prefilter(unsigned id, unsigned long long from, unsigned long long to,
                        unsigned flags, void *ctx)
{
    (void)from;
    (void)flags;
    kh_scratch *s = ctx;
    uint32_t di;
    int whole;
    engine_region r;
    int what = prefilter_report(s->engine, id, s->pre_base + (size_t)to, &di, &whole, &r);
    if (what == PRE_TRIGGER) {
        s->triggered[di] = 1;
        s->pre_whole |= whole;
    }
    if (what != PRE_REGION || s->pre_whole)
        return 0;
    if (s->npre && regions_touch(&s->pre[s->npre - 1], &r)) {
        region_merge(&s->pre[s->npre - 1], &r);
        return 0;
    }
    if (s->npre >= PREFILTER_MAX_REGIONS ||
        grow((void **)&s->pre, &s->pre_cap, s->npre + 1, sizeof *s->pre)) {
        s->pre_whole = 1;
        return 0;
    }
    s->pre[s->npre++] = r;
    return 0;
}

static int cmp_region_start(const void *a, const void *b)
{
    const engine_region *x = a, *y = b;
    return (x->start > y->start) - (x->start < y->start);
}

/* The prefilter pass over buffer bytes [lo, hi): appends to s->pre the
 * regions of the ends it reports, or sets s->pre_whole. */
static int prefilter_range(kh_scratch *s, size_t lo, size_t hi)
{
    const kh_engine *e = s->engine;
    /* In blocks, each window reaching back by the overlap (not before lo)
     * so that a match ending in the block is seen whole; ends seen twice
     * merge. */
    for (size_t own = lo; own < hi && !s->pre_whole; own += e->block_size) {
        size_t own_end = own + e->block_size < hi ? own + e->block_size : hi;
        s->pre_base = own - lo > e->overlap ? own - e->overlap : lo;
        hs_error_t rc = hs_scan(e->db_prefilter, (const char *)s->data + s->pre_base,
                                (unsigned)(own_end - s->pre_base), 0, s->hs, on_prefilter, s);
        if (rc != HS_SUCCESS && rc != HS_SCAN_TERMINATED)
            return KH_EINTERNAL;
    }
    return KH_OK;
}

/* Sorts and merges s->pre after the prefilter passes. */
static void prefilter_merge(kh_scratch *s)
{
    if (s->pre_whole || s->npre < 2)
        return;
    qsort(s->pre, s->npre, sizeof *s->pre, cmp_region_start);
    size_t m = 0;
    for (size_t i = 1; i < s->npre; i++) {
        if (regions_touch(&s->pre[m], &s->pre[i]))
            region_merge(&s->pre[m], &s->pre[i]);
        else
            s->pre[++m] = s->pre[i];
    }
    s->npre = m + 1;
}

/* The window [*a, *z) the prefilter reads for keyword region r of a
 * buffer of len bytes: a match holding the region's keyword lies in
 * [start, end + width), width = reach - 64, and the prefilter, which needs
 * only to see it whole, looks 64 bytes before it for assertions.  *done
 * (the end of the previous window: windows of adjacent regions may
 * overlap) advances; 0 when nothing is left to read. */
static int region_window(const kh_engine *e, const engine_region *r, size_t len, size_t *done,
                         size_t *a, size_t *z)
{
    size_t reach = region_reach(e, r);
    size_t before = reach < 64 ? reach : 64;
    *a = r->start > before ? r->start - before : 0;
    *z = r->end + reach < len ? r->end + reach : len;
    if (*a < *done)
        *a = *done;
    if (*z > *done)
        *done = *z;
    return *a < *z;
}

/* The prefilter pass over a whole buffer, or over the windows of the GPU's
 * keyword regions (each region with its reach on both sides): fills s->pre
 * with sorted, merged regions, or sets s->pre_whole.  A match of a keyword
 * pattern lies whole in a keyword region's window (engine_regions_from_hits),
 * so the prefilter sees its end there as it would in the whole buffer. */
static int prefilter_buffer(kh_scratch *s, const engine_region *regions, size_t nregions)
{
    s->npre = 0;
    s->pre_whole = 0;
    int rc = KH_OK;
    if (!regions) {
        rc = prefilter_range(s, 0, s->len);
    } else {
        size_t done = 0, a, b;
        for (size_t i = 0; i < nregions && rc == KH_OK && !s->pre_whole; i++)
            if (region_window(s->engine, &regions[i], s->len, &done, &a, &b))
                rc = prefilter_range(s, a, b);
    }
    if (rc == KH_OK)
        prefilter_merge(s);
    return rc;
}

/* ------------------------------------------------------------------ */
/* The prefilter pass of a batch (engine.h: engine_prefilter_batch)     */
/* ------------------------------------------------------------------ */

/* A window of a chunk inside the buffer one hs_scan call sees. */
typedef struct pre_window {
    size_t at;    /* its first byte in the scanned buffer */
    size_t chunk;
    size_t orig;  /* its first byte in the chunk */
    size_t len;
} pre_window;

typedef struct pre_item {
    size_t chunk;
    engine_region r;
} pre_item;

typedef struct pre_trig {
    size_t chunk;
    uint32_t detector;
} pre_trig;

struct engine_batch_pre {
    size_t n;
    uint8_t *whole;         /* per chunk: scan its GPU regions with the SOM database */
    size_t *first, *count;  /* per chunk: its regions in regs */
    size_t *tfirst, *tcount; /* per chunk: its triggered detectors in trig */
    engine_region *regs;
    pre_trig *trig;
};

typedef struct pre_run {
    const kh_engine *e;
    const pre_window *w;
    size_t nw;
    pre_item *items;
    size_t nitems, items_cap;
    pre_trig *trig;
    size_t ntrig, trig_cap;
    uint8_t *whole;
    size_t *count; /* regions so far per chunk (PREFILTER_MAX_REGIONS) */
} pre_run;

static int pre_trigger(pre_run *b, size_t chunk, uint32_t detector)
{
    if (grow((void **)&b->trig, &b->trig_cap, b->ntrig + 1, sizeof *b->trig)) {
        b->whole[chunk] = 1; /* the SOM database over its regions: still right */
        return 0;
    }
    b->trig[b->ntrig++] = (pre_trig){chunk, detector};
    return 0;
}

/* on_prefilter for a batch: the report's window (by its last byte), then
 * the same region on_prefilter would make, for that window's chunk. */
static int on_prefilter_batch(unsigned id, unsigned long long from, unsigned long long to,
                              unsigned flags, void *ctx)
{
    (void)from;
    (void)flags;
    pre_run *b = ctx;
    if (to == 0)
        return 0;
    size_t last = (size_t)to - 1, lo = 0, hi = b->nw;
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (b->w[mid].at <= last)
            lo = mid;
        else
            hi = mid;
    }
    const pre_window *w = &b->w[lo];
    if (last < w->at || last - w->at >= w->len)
        return 0; /* ends on a join: no match of the chunk ends there */
    size_t chunk = w->chunk;
    uint32_t di;
    int whole;
    engine_region r;
    int what = prefilter_report(b->e, id, w->orig + ((size_t)to - w->at), &di, &whole, &r);
    if (what == PRE_TRIGGER) {
        b->whole[chunk] |= (uint8_t)whole;
        return pre_trigger(b, chunk, di);
    }
    if (what != PRE_REGION || b->whole[chunk])
        return 0;
    if (b->count[chunk] >= PREFILTER_MAX_REGIONS ||
        grow((void **)&b->items, &b->items_cap, b->nitems + 1, sizeof *b->items)) {
        b->whole[chunk] = 1;
        return 0;
    }
    b->items[b->nitems++] = (pre_item){chunk, r};
    b->count[chunk]++;
    return 0;
}

static int pre_scan(kh_scratch *s, pre_run *b, const uint8_t *buf, size_t len,
                    const pre_window *w, size_t nw)
{
    b->w = w;
    b->nw = nw;
    hs_error_t rc = hs_scan(b->e->db_prefilter, (const char *)buf, (unsigned)len, 0, s->hs,
                            on_prefilter_batch, b);
    return rc == HS_SUCCESS || rc == HS_SCAN_TERMINATED ? KH_OK : KH_EINTERNAL;
}

static int cmp_pre_item(const void *a, const void *b)
{
    const pre_item *x = a, *y = b;
    if (x->chunk != y->chunk)
        return x->chunk < y->chunk ? -1 : 1;
    return (x->r.start > y->r.start) - (x->r.start < y->r.start);
}

static int cmp_pre_trig(const void *a, const void *b)
{
    const pre_trig *x = a, *y = b;
    return (x->chunk > y->chunk) - (x->chunk < y->chunk);
}

void engine_batch_pre_free(engine_batch_pre *bp)
{
    if (!bp)
        return;
    free(bp->whole);
    free(bp->first);
    free(bp->count);
    free(bp->tfirst);
    free(bp->tcount);
    free(bp->regs);
    free(bp->trig);
    free(bp);
}

int engine_prefilter_batch(const kh_engine *e, kh_scratch *s, const kh_chunk *chunks,
                           size_t n, const engine_region *regions, const size_t *rfirst,
                           const size_t *rcount, engine_batch_pre **out)
{
    *out = NULL;
    if (!e->db || !e->db_prefilter || s->engine != e)
        return KH_EINVAL;
    /* The joined buffer and its windows grow as windows come (most
     * batches need a few KiB of a block). */
    size_t long_window = e->block_size / 4;
    engine_batch_pre *bp = calloc(1, sizeof *bp);
    pre_run b = {.e = e};
    uint8_t *cat = NULL;
    pre_window *w = NULL;
    size_t cat_cap = 0, w_cap = 0;
    int rc = KH_ENOMEM;
    if (!bp)
        goto done;
    bp->n = n;
    bp->whole = calloc(n + 1, 1);
    bp->first = calloc(n + 1, sizeof *bp->first);
    bp->count = calloc(n + 1, sizeof *bp->count);
    bp->tfirst = calloc(n + 1, sizeof *bp->tfirst);
    bp->tcount = calloc(n + 1, sizeof *bp->tcount);
    if (!bp->whole || !bp->first || !bp->count || !bp->tfirst || !bp->tcount)
        goto done;
    b.whole = bp->whole;
    b.count = bp->count;
    rc = KH_OK;
    size_t catlen = 0, nw = 0;
    for (size_t c = 0; c < n && rc == KH_OK; c++) {
        const uint8_t *data = chunks[c].data;
        size_t len = chunks[c].len, done = 0, a, z;
        /* The windows prefilter_buffer would scan for this chunk. */
        for (size_t i = rfirst[c]; i < rfirst[c] + rcount[c] && rc == KH_OK; i++) {
            if (!region_window(e, &regions[i], len, &done, &a, &z))
                continue;
            if (a == 0 || z == len || z - a > long_window) {
                /* On its own, in blocks reaching back by the overlap, as
                 * prefilter_range does. */
                for (size_t own = a; own < z && rc == KH_OK; own += e->block_size) {
                    size_t own_end = own + e->block_size < z ? own + e->block_size : z;
                    size_t base = own - a > e->overlap ? own - e->overlap : a;
                    pre_window one = {0, c, base, own_end - base};
                    rc = pre_scan(s, &b, data + base, own_end - base, &one, 1);
                }
                continue;
            }
            if (catlen + (z - a) + 1 > e->block_size) {
                rc = pre_scan(s, &b, cat, catlen, w, nw);
                catlen = nw = 0;
            }
            if (grow((void **)&cat, &cat_cap, catlen + (z - a) + 1, 1) ||
                grow((void **)&w, &w_cap, nw + 1, sizeof *w)) {
                rc = KH_ENOMEM;
                break;
            }
            w[nw++] = (pre_window){catlen, c, a, z - a};
            memcpy(cat + catlen, data + a, z - a);
            catlen += z - a;
            cat[catlen++] = '\n';
        }
    }
    if (rc == KH_OK && nw)
        rc = pre_scan(s, &b, cat, catlen, w, nw);
    if (rc != KH_OK)
        goto done;
    /* Per chunk: sorted by start, touching regions merged (prefilter_merge). */
    if (b.nitems > 1)
        qsort(b.items, b.nitems, sizeof *b.items, cmp_pre_item);
    if (b.ntrig > 1)
        qsort(b.trig, b.ntrig, sizeof *b.trig, cmp_pre_trig);
    bp->regs = malloc((b.nitems + 1) * sizeof *bp->regs);
    bp->trig = b.trig;
    b.trig = NULL;
    if (!bp->regs) {
        rc = KH_ENOMEM;
        goto done;
    }
    memset(bp->count, 0, (n + 1) * sizeof *bp->count);
    size_t m = 0;
    for (size_t i = 0; i < b.nitems; i++) {
        size_t c = b.items[i].chunk;
        if (bp->whole[c])
            continue;
        if (bp->count[c] && regions_touch(&bp->regs[m - 1], &b.items[i].r)) {
            region_merge(&bp->regs[m - 1], &b.items[i].r);
            continue;
        }
        if (!bp->count[c])
            bp->first[c] = m;
        bp->regs[m++] = b.items[i].r;
        bp->count[c]++;
    }
    for (size_t i = 0; i < b.ntrig; i++) {
        size_t c = bp->trig[i].chunk;
        if (!bp->tcount[c])
            bp->tfirst[c] = i;
        bp->tcount[c]++;
    }
done:
    free(cat);
    free(w);
    free(b.items);
    free(b.trig);
    if (rc != KH_OK) {
        engine_batch_pre_free(bp);
        return rc;
    }
    *out = bp;
    return KH_OK;
}

/* The batch pass's result for this chunk in place of its own pass. */
static int prefilter_load(kh_scratch *s, const engine_batch_pre *bp, size_t c)
{
    s->pre_whole = bp->whole[c];
    s->npre = 0;
    for (size_t i = bp->tfirst[c]; i < bp->tfirst[c] + bp->tcount[c]; i++)
        s->triggered[bp->trig[i].detector] = 1;
    if (s->pre_whole || !bp->count[c])
        return KH_OK;
    if (grow((void **)&s->pre, &s->pre_cap, bp->count[c], sizeof *s->pre)) {
        s->pre_whole = 1;
        return KH_OK;
    }
    memcpy(s->pre, bp->regs + bp->first[c], bp->count[c] * sizeof *s->pre);
    s->npre = bp->count[c];
    return KH_OK;
}

/* Scans a whole buffer in blocks, or only the given regions (sorted,
 * disjoint) when `regions` is set: then every pattern of a detector without
 * keywords is still looked for everywhere, in blocks, and only the
 * keyword-anchored patterns are limited to the regions. */
static int scan_buffer_regions(kh_scratch *s, const scan_frame *f, const uint8_t *data,
                               size_t len, const engine_region *regions, size_t nregions)
{
    const kh_engine *e = s->engine;
    /* Save the caller's buffer state: decoded children reuse the fields. */
    const uint8_t *saved_data = s->data;
    size_t saved_len = s->len;
    s->data = data;
    s->len = len;
    /* last_end back to 0 where it was set: a decoded child is a buffer of
     * its own, and clearing every pattern's cost more than scanning it. */
    for (size_t i = 0; i < s->ntouched; i++)
        s->last_end[s->touched[i]] = 0;
    s->ntouched = 0;
    memset(s->triggered, 0, e->set->count);
    int rc = KH_OK;
    s->region_mode = 0;
    /* Everything in blocks; for a region scan only the patterns that have no
     * keyword, from their own database. */
    const hs_database_t *whole = regions ? e->db_unanchored : e->db;
    /* Without regions every pattern, with them the keyword patterns: the
     * SOM database runs only around the ends the prefilter reports (see the
     * top), over the whole buffer or over the keyword regions' windows. */
    int prefiltered = 0;
    if (e->db && e->db_prefilter) {
        const engine_hints *h = f->depth == 0 ? s->hints : NULL;
        if (regions && h && h->pre && h->pre_chunk < h->pre->n)
            rc = prefilter_load(s, h->pre, h->pre_chunk);
        else
            rc = prefilter_buffer(s, regions, nregions);
        prefiltered = rc == KH_OK && !s->pre_whole;
    }
    if (!regions && prefiltered)
        whole = NULL;
    if (whole && rc == KH_OK) {
        s->only_unanchored = regions != NULL;
        for (size_t own = 0; own < len && rc == KH_OK && !s->timed_out; own += e->block_size)
            rc = scan_region(s, f, whole, own,
                             own + e->block_size < len ? own + e->block_size : len, e->overlap);
        s->only_unanchored = 0;
    }
    s->region_mode = regions != NULL;
    if (prefiltered) {
        regions = s->pre;
        nregions = s->npre;
    }
    for (size_t i = 0; i < nregions && rc == KH_OK; i++) {
        size_t a = regions[i].start < len ? regions[i].start : len;
        size_t b = regions[i].end < len ? regions[i].end : len;
        size_t reach = region_reach(e, &regions[i]);
        /* Regions longer than a block are cut into blocks. */
        for (size_t own = a; own < b && rc == KH_OK && !s->timed_out; own += e->block_size)
            rc = scan_region(s, f, e->db, own, own + e->block_size < b ? own + e->block_size : b,
                             reach);
    }
    s->region_mode = 0;
    if (rc == KH_OK)
        scan_fallback(s, f);
    if (rc == KH_OK)
        rc = scan_decoded(s, f, data, len);
    s->data = saved_data;
    s->len = saved_len;
    return rc;
}

static int scan_buffer(kh_scratch *s, const scan_frame *f, const uint8_t *data, size_t len)
{
    return scan_buffer_regions(s, f, data, len, NULL, 0);
}

static int cmp_hit(const void *a, const void *b)
{
    const hit *x = a, *y = b;
    if (x->offset != y->offset)
        return x->offset < y->offset ? -1 : 1;
    if (x->detector != y->detector)
        return x->detector < y->detector ? -1 : 1;
    if (x->depth != y->depth)
        return x->depth < y->depth ? -1 : 1;
    return (x->secret_at > y->secret_at) - (x->secret_at < y->secret_at);
}

/* A generic detector (service "generic": passwords assigned in code, ...)
 * says less than a vendor detector about the same bytes: when both report
 * the same secret at the same place, only the vendor's finding is kept.
 * Hits are sorted by offset, so the others at this offset are adjacent. */
static int generic_shadowed(const kh_engine *e, const kh_scratch *s, size_t i)
{
    const hit *h = &s->hits[i];
    if (strcmp(e->set->items[h->detector]->service, "generic") != 0)
        return 0;
    for (size_t j = i; j-- > 0 && s->hits[j].offset == h->offset;)
        if (s->hits[j].length == h->length &&
            strcmp(e->set->items[s->hits[j].detector]->service, "generic") != 0)
            return 1;
    for (size_t j = i + 1; j < s->nhits && s->hits[j].offset == h->offset; j++)
        if (s->hits[j].length == h->length &&
            strcmp(e->set->items[s->hits[j].detector]->service, "generic") != 0)
            return 1;
    return 0;
}

/* Line and column of a root offset, advancing a cursor (offsets ascend). */
typedef struct line_cursor {
    size_t pos;        /* bytes of the chunk counted so far */
    uint32_t line;     /* line at pos */
    size_t line_start; /* offset of that line's first byte */
} line_cursor;

static void cursor_advance(line_cursor *c, const uint8_t *d, size_t to)
{
    while (c->pos < to) {
        const uint8_t *nl = memchr(d + c->pos, '\n', to - c->pos);
        if (!nl) {
            c->pos = to;
            break;
        }
        c->line++;
        c->pos = (size_t)(nl - d) + 1;
        c->line_start = c->pos;
    }
}

static int scan_chunk(const kh_engine *e, kh_scratch *s, const kh_chunk *chunk,
                      const engine_region *regions, size_t nregions, engine_hints *h,
                      kh_on_finding cb, void *ctx)
{
    if (!e || !s || !chunk || (!chunk->data && chunk->len) || s->engine != e)
        return KH_EINVAL;
    s->nhits = 0;
    s->ncomps = 0;
    s->arena_len = 0;
    s->cands_overflow = 0;
    s->timed_out = 0;
    s->ticks = 0;
    s->deadline_ns = now_ns() + ENGINE_TIME_BUDGET_BASE_NS +
                     ENGINE_TIME_BUDGET_NS_PER_MIB * (uint64_t)(chunk->len >> 20);
    s->decode_budget = e->decode_max_bytes;
    scan_frame root = {.root = chunk};
    s->hints = h;
    int rc = scan_buffer_regions(s, &root, chunk->data, chunk->len, regions, nregions);
    s->hints = NULL;
    if (rc != KH_OK)
        return rc;
    if (s->nhits > 1) /* hits is NULL before the first hit */
        qsort(s->hits, s->nhits, sizeof *s->hits, cmp_hit);
    line_cursor lc = {0, chunk->base_line ? chunk->base_line : 1, 0};
    kh_companion comps[16];
    for (size_t i = 0; i < s->nhits; i++) {
        const hit *h = &s->hits[i];
        const spec_detector *d = e->set->items[h->detector];
        if (generic_shadowed(e, s, i))
            continue;
        size_t rel = (size_t)(h->offset - chunk->base_offset);
        size_t rel_end = rel + (size_t)h->length - 1;
        kh_finding out = {0};
        cursor_advance(&lc, chunk->data, rel);
        out.line = lc.line;
        out.column = (uint32_t)(rel - lc.line_start + 1);
        line_cursor end = lc;
        cursor_advance(&end, chunk->data, rel_end);
        out.end_line = end.line;
        out.end_column = (uint32_t)(rel_end - end.line_start + 1);
        out.detector = &d->info;
        out.secret = s->arena + h->secret_at;
        out.secret_len = h->secret_len;
        out.offset = h->offset;
        out.length = (size_t)h->length;
        out.confidence = h->confidence;
        out.checksum_valid = h->checksum;
        size_t nc = h->companion_count < 16 ? h->companion_count : 16;
        for (size_t c = 0; c < nc; c++) {
            const hit_companion *hc = &s->comps[h->companion_at + c];
            comps[c].name = d->companions[hc->name_index].name;
            comps[c].value = s->arena + hc->value_at;
            comps[c].value_len = hc->value_len;
            comps[c].offset = h->depth ? h->offset : chunk->base_offset + hc->offset;
            comps[c].line = h->depth ? out.line : (uint32_t)((long)out.line + hc->line_delta);
        }
        out.companions = nc ? comps : NULL;
        out.companion_count = nc;
        out.decoded_from = h->depth ? h->chain : NULL;
        out.decode_depth = h->depth;
        if (cb && cb(&out, ctx))
            return KH_ESTOPPED;
    }
    return s->cands_overflow || s->timed_out || s->nhits >= ENGINE_MAX_FINDINGS ? KH_ELIMIT
                                                                               : KH_OK;
}

int engine_scan_regions(const kh_engine *e, kh_scratch *s, const kh_chunk *chunk,
                        const engine_region *regions, size_t nregions, kh_on_finding cb,
                        void *ctx)
{
    return scan_chunk(e, s, chunk, regions, nregions, NULL, cb, ctx);
}

int engine_scan_hinted(const kh_engine *e, kh_scratch *s, const kh_chunk *chunk,
                       engine_hints *h, kh_on_finding cb, void *ctx)
{
    if (!h)
        return KH_EINVAL;
    h->decoded_bytes = 0;
    return scan_chunk(e, s, chunk, h->regions, h->nregions, h, cb, ctx);
}

int kh_scan(const kh_engine *e, kh_scratch *s, const kh_chunk *chunk, kh_on_finding cb,
            void *ctx)
{
    return scan_chunk(e, s, chunk, NULL, 0, NULL, cb, ctx);
}
