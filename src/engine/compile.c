/*
 * compile.c - detectors -> engine.
 *
 * Every pattern goes into one Vectorscan block-mode database with
 * HS_FLAG_SOM_LEFTMOST, so a report gives the leftmost start of a match and
 * PCRE2 (JIT) can then re-run the pattern anchored at that start to get the
 * capture group.  Vectorscan refuses some patterns (lookarounds,
 * backreferences, SOM too costly): those go to a fallback list that PCRE2
 * scans whole, but only in chunks where one of the detector's keywords
 * occurs; the keywords themselves are literals in the same database.  No
 * detector is ever silently dropped.
 *
 * Refusals are found without compiling patterns one by one: hs_expression_info
 * catches unsupported syntax cheaply, and hs_compile_multi names the first
 * failing expression, which is moved to the fallback before retrying.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine.h"
#include "triage/triage.h"

static const spec_detector *detector_at(const kh_detectors *set, uint32_t i)
{
    return set->items[i];
}

static pcre2_code *compile_pcre2(const char *regex, const char *id, const char *what,
                                 kh_error *err)
{
    int code;
    PCRE2_SIZE at;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)regex, PCRE2_ZERO_TERMINATED, 0, &code, &at,
                                   NULL);
    if (!re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(code, msg, sizeof msg);
        kh_error_set(err, KH_EREGEX, "detector %s: %s: at offset %zu: %s", id, what,
                     (size_t)at, (const char *)msg);
        return NULL;
    }
    /* JIT is an optimisation; a build or machine without it still matches. */
    (void)pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);
    return re;
}

static uint32_t capture_count(const pcre2_code *re)
{
    uint32_t n = 0;
    pcre2_pattern_info(re, PCRE2_INFO_CAPTURECOUNT, &n);
    return n;
}

/* --- expression lists for hs_compile_multi ------------------------------
 * Every Vectorscan database here is one hs_compile_multi call over three
 * parallel arrays (expression, flags, id).  An expr_list builds them, and
 * owns the keyword literals it escapes, so the databases differ only in
 * which patterns and keywords they add, in what order, with what flags. */
typedef struct {
    const char **exprs;
    unsigned *flags;
    unsigned *ids;
    char **owned; /* escaped keywords, freed with the list */
    uint32_t count, owned_count;
} expr_list;

static void expr_list_free(expr_list *l)
{
    for (uint32_t i = 0; l->owned && i < l->owned_count; i++)
        free(l->owned[i]);
    free(l->owned);
    free(l->exprs);
    free(l->flags);
    free(l->ids);
    memset(l, 0, sizeof *l);
}

/* Room for cap expressions; on failure nothing is left to free. */
static int expr_list_alloc(expr_list *l, uint32_t cap, kh_error *err)
{
    memset(l, 0, sizeof *l);
    l->exprs = calloc(cap, sizeof *l->exprs);
    l->flags = calloc(cap, sizeof *l->flags);
    l->ids = calloc(cap, sizeof *l->ids);
    l->owned = calloc(cap, sizeof *l->owned);
    if (!l->exprs || !l->flags || !l->ids || !l->owned) {
        expr_list_free(l);
        return kh_error_set(err, KH_ENOMEM, "out of memory compiling detectors");
    }
    return KH_OK;
}

/* Pattern i's regex, reported with id i. */
static void expr_list_add_pattern(expr_list *l, const kh_engine *e, uint32_t i, unsigned flags)
{
    const spec_detector *d = detector_at(e->set, e->patterns[i].detector);
    l->exprs[l->count] = d->patterns[e->patterns[i].index].regex;
    l->flags[l->count] = flags;
    l->ids[l->count++] = i;
}

/* A keyword as a caseless literal: every byte escaped as \xNN, so no byte
 * of it is regex syntax.  Reports once per scan: the keyword only says
 * "this detector may be here". */
static int expr_list_add_keyword(expr_list *l, const char *kw, unsigned id, kh_error *err)
{
    size_t len = strlen(kw);
    char *q = malloc(len * 4 + 1), *o = q;
    if (!q)
        return kh_error_set(err, KH_ENOMEM, "out of memory compiling detectors");
    for (size_t c = 0; c < len; c++)
        o += sprintf(o, "\\x%02x", (unsigned char)kw[c]);
    *o = 0;
    l->owned[l->owned_count++] = q;
    l->exprs[l->count] = q;
    l->flags[l->count] = HS_FLAG_CASELESS | HS_FLAG_SINGLEMATCH;
    l->ids[l->count++] = id;
    return KH_OK;
}

/* Compiles the list into *db; returns 1 on success.  On failure *db is
 * NULL, *refused is the pattern Vectorscan names as the cause (UINT32_MAX
 * when it names none, or a keyword), and the caller frees *ce. */
static int expr_list_compile(const expr_list *l, const kh_engine *e, hs_database_t **db,
                             uint32_t *refused, hs_compile_error_t **ce)
{
    *refused = UINT32_MAX;
    *ce = NULL;
    if (hs_compile_multi(l->exprs, l->flags, l->ids, l->count, HS_MODE_BLOCK, NULL, db, ce) ==
        HS_SUCCESS)
        return 1;
    *db = NULL;
    if (*ce && (*ce)->expression >= 0 && (uint32_t)(*ce)->expression < l->count &&
        l->ids[(*ce)->expression] < e->pattern_count)
        *refused = l->ids[(*ce)->expression];
    return 0;
}

/* Builds the Vectorscan database from patterns still marked on_vectorscan
 * plus the keyword literals of fallback detectors.  On a refused pattern,
 * sets *refused to its pattern index and returns KH_EREGEX. */
static int build_database(kh_engine *e, uint32_t *refused, kh_error *err)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < e->pattern_count; i++)
        n += e->patterns[i].on_vectorscan != 0;
    uint32_t total = n + e->keyword_count;
    *refused = UINT32_MAX;
    if (total == 0)
        return KH_OK;
    expr_list l;
    int rc = expr_list_alloc(&l, total, err);
    if (rc != KH_OK)
        return rc;
    for (uint32_t i = 0; i < e->pattern_count; i++)
        if (e->patterns[i].on_vectorscan)
            expr_list_add_pattern(&l, e, i, HS_FLAG_SOM_LEFTMOST);
    /* Keyword literals of fallback detectors. */
    for (uint32_t j = 0; j < e->keyword_count && rc == KH_OK; j++) {
        const spec_detector *d = detector_at(e->set, e->keyword_detector[j]);
        rc = expr_list_add_keyword(&l, d->keywords[e->keyword_index[j]], e->pattern_count + j,
                                   err);
    }
    hs_compile_error_t *ce = NULL;
    if (rc == KH_OK && !expr_list_compile(&l, e, &e->db, refused, &ce)) {
        if (*refused != UINT32_MAX)
            rc = KH_EREGEX;
        else
            rc = kh_error_set(err, KH_EINTERNAL, "vectorscan: %s",
                              ce ? ce->message : "compile failed");
        hs_free_compile_error(ce);
    }
    expr_list_free(&l);
    return rc;
}

static int pattern_compiles(const kh_engine *e, uint32_t i)
{
    const spec_detector *d = detector_at(e->set, e->patterns[i].detector);
    hs_database_t *db = NULL;
    hs_compile_error_t *ce = NULL;
    if (hs_compile(d->patterns[e->patterns[i].index].regex, HS_FLAG_SOM_LEFTMOST, HS_MODE_BLOCK,
                   NULL, &db, &ce) != HS_SUCCESS) {
        hs_free_compile_error(ce);
        return 0;
    }
    hs_free_database(db);
    return 1;
}

/* Asks Vectorscan whether it parses each pattern and how wide its matches
 * can be.  A pattern it parses goes on Vectorscan (until a compile refuses
 * it); one it does not stays on the PCRE2 fallback. */
static void measure_widths(kh_engine *e)
{
    for (uint32_t i = 0; i < e->pattern_count; i++) {
        engine_pattern *p = &e->patterns[i];
        const char *regex = detector_at(e->set, p->detector)->patterns[p->index].regex;
        hs_expr_info_t *info = NULL;
        hs_compile_error_t *ce = NULL;
        if (hs_expression_info(regex, HS_FLAG_SOM_LEFTMOST, &info, &ce) == HS_SUCCESS) {
            p->parsed = 1;
            p->on_vectorscan = 1; /* confirmed by pattern_compiles */
            p->max_width = info->max_width;
            free(info);
        } else {
            hs_free_compile_error(ce);
        }
    }
}

/* --- the compiled-database cache ---------------------------------------
 * Layout: "KHDB4\n", the 32-byte key, the SHA-256 of everything after it
 * (a torn or damaged file is never deserialized), u32 pattern count, one byte per
 * pattern (bit 0: on Vectorscan; bits 1-2: how it is in the prefilter
 * database; bit 3: Vectorscan parses it), one u32 per pattern (its maximum
 * match width), then three length-prefixed serialized Vectorscan databases
 * (main, keyword-less, prefilter).  The key hashes the Vectorscan version,
 * the CPU features Vectorscan compiles for, and every pattern and keyword,
 * so any change to the detector set, the library or the machine makes the
 * cache stale (a database built for other CPU features is one Vectorscan
 * may refuse or run slower: under valgrind, say), and a stale or corrupt
 * cache is simply not used. */
#include <openssl/evp.h>

static const char cache_magic[6] = {'K', 'H', 'D', 'B', '4', '\n'};

static void digest(const void *data, size_t len, unsigned char out[32])
{
    unsigned int n = 32;
    EVP_Digest(data, len, out, &n, EVP_sha256(), NULL);
}

static void cache_key_of(const kh_detectors *set, unsigned char key[32])
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    EVP_DigestInit_ex(md, EVP_sha256(), NULL);
    const char *v = hs_version();
    EVP_DigestUpdate(md, v, strlen(v) + 1);
    hs_platform_info_t plat;
    memset(&plat, 0, sizeof plat);
    if (hs_populate_platform(&plat) == HS_SUCCESS) {
        unsigned long long feats = plat.cpu_features;
        unsigned tune = plat.tune;
        EVP_DigestUpdate(md, &feats, sizeof feats);
        EVP_DigestUpdate(md, &tune, sizeof tune);
    }
    for (uint32_t di = 0; di < set->count; di++) {
        const spec_detector *d = detector_at(set, di);
        for (size_t k = 0; k < d->keyword_count; k++)
            EVP_DigestUpdate(md, d->keywords[k], strlen(d->keywords[k]) + 1);
        for (size_t p = 0; p < d->pattern_count; p++)
            EVP_DigestUpdate(md, d->patterns[p].regex, strlen(d->patterns[p].regex) + 1);
        EVP_DigestUpdate(md, "\x01", 1);
    }
    unsigned int n = 32;
    EVP_DigestFinal_ex(md, key, &n);
    EVP_MD_CTX_free(md);
}

static void cache_key(const kh_engine *e, unsigned char key[32])
{
    cache_key_of(e->set, key);
}

void kh_engine_cache_key(const kh_detectors *set, char out[65])
{
    unsigned char key[32];
    cache_key_of(set, key);
    for (int i = 0; i < 32; i++)
        sprintf(out + 2 * i, "%02x", key[i]);
}

static int read_db(const unsigned char **p, const unsigned char *end, hs_database_t **db)
{
    uint64_t len;
    if ((size_t)(end - *p) < sizeof len)
        return -1;
    memcpy(&len, *p, sizeof len);
    *p += sizeof len;
    if (len > (uint64_t)(end - *p))
        return -1;
    if (len && hs_deserialize_database((const char *)*p, (size_t)len, db) != HS_SUCCESS)
        return -1;
    *p += len;
    return 0;
}

/* Uses a serialized cache if it matches this detector set exactly. */
static int load_cache(kh_engine *e, const void *buf, size_t len)
{
    const unsigned char *p = buf, *end = p + len;
    unsigned char key[32], sum[32];
    uint32_t n;
    if (len < sizeof cache_magic + 64 + sizeof n || memcmp(p, cache_magic, sizeof cache_magic))
        return 0;
    p += sizeof cache_magic;
    cache_key(e, key);
    if (memcmp(p, key, 32))
        return 0;
    p += 32;
    digest(p + 32, (size_t)(end - p - 32), sum);
    if (memcmp(p, sum, 32))
        return 0;
    p += 32;
    memcpy(&n, p, sizeof n);
    p += sizeof n;
    if (n != e->pattern_count || (size_t)(end - p) / 5 < n)
        return 0;
    const unsigned char *flags = p;
    p += n;
    const unsigned char *widths = p;
    p += (size_t)n * 4;
    hs_database_t *db = NULL, *un = NULL, *pf = NULL;
    if (read_db(&p, end, &db) || read_db(&p, end, &un) || read_db(&p, end, &pf) || p != end) {
        if (db)
            hs_free_database(db);
        if (un)
            hs_free_database(un);
        if (pf)
            hs_free_database(pf);
        return 0;
    }
    for (uint32_t i = 0; i < n; i++) { /* flags a build never writes: not ours */
        if ((flags[i] >> 1 & 3) == 3 || ((flags[i] & 1) && !(flags[i] & 8)) || flags[i] > 15) {
            if (db) hs_free_database(db);
            if (un) hs_free_database(un);
            if (pf) hs_free_database(pf);
            return 0;
        }
    }
    for (uint32_t i = 0; i < n; i++) {
        e->patterns[i].on_vectorscan = flags[i] & 1;
        e->patterns[i].prefilter = (flags[i] >> 1) & 3;
        e->patterns[i].parsed = (flags[i] >> 3) & 1;
        memcpy(&e->patterns[i].max_width, widths + 4 * (size_t)i, 4);
    }
    e->db = db;
    e->db_unanchored = un;
    e->db_prefilter = pf;
    e->from_cache = 1;
    return 1;
}

static int append(unsigned char **buf, size_t *len, size_t *cap, const void *data, size_t n)
{
    if (*len + n > *cap) {
        size_t c = (*cap ? *cap : 4096);
        while (c < *len + n)
            c *= 2;
        unsigned char *b = realloc(*buf, c);
        if (!b)
            return -1;
        *buf = b;
        *cap = c;
    }
    if (n) /* an absent database appends (NULL, 0): memcpy must not see NULL */
        memcpy(*buf + *len, data, n);
    *len += n;
    return 0;
}

static int append_db(unsigned char **buf, size_t *len, size_t *cap, const hs_database_t *db)
{
    char *bytes = NULL;
    size_t n = 0;
    if (db && hs_serialize_database(db, &bytes, &n) != HS_SUCCESS)
        return -1;
    uint64_t n64 = n;
    int rc = append(buf, len, cap, &n64, sizeof n64) || append(buf, len, cap, bytes, n);
    free(bytes);
    return rc ? -1 : 0;
}

int kh_engine_serialize(const kh_engine *e, void **out, size_t *out_len)
{
    unsigned char *buf = NULL, key[32];
    size_t len = 0, cap = 0;
    uint32_t n = e->pattern_count;
    cache_key(e, key);
    unsigned char sum[32] = {0};
    int rc = append(&buf, &len, &cap, cache_magic, sizeof cache_magic) ||
             append(&buf, &len, &cap, key, 32) || append(&buf, &len, &cap, sum, 32) ||
             append(&buf, &len, &cap, &n, sizeof n);
    for (uint32_t i = 0; !rc && i < n; i++) {
        unsigned char f = (unsigned char)((e->patterns[i].on_vectorscan != 0) |
                                          (e->patterns[i].prefilter << 1) |
                                          ((e->patterns[i].parsed != 0) << 3));
        rc = append(&buf, &len, &cap, &f, 1);
    }
    for (uint32_t i = 0; !rc && i < n; i++) {
        uint32_t w = e->patterns[i].max_width;
        rc = append(&buf, &len, &cap, &w, sizeof w);
    }
    if (!rc)
        rc = append_db(&buf, &len, &cap, e->db) || append_db(&buf, &len, &cap, e->db_unanchored) ||
             append_db(&buf, &len, &cap, e->db_prefilter);
    if (rc) {
        free(buf);
        return KH_ENOMEM;
    }
    size_t body = sizeof cache_magic + 64;
    digest(buf + body, len - body, buf + sizeof cache_magic + 32);
    *out = buf;
    *out_len = len;
    return KH_OK;
}

int kh_engine_from_cache(const kh_engine *e)
{
    return e->from_cache;
}

/* The patterns of detectors without keywords, alone: a region scan (GPU
 * candidates) must still look for them in the whole chunk. */
static int build_unanchored(kh_engine *e, kh_error *err)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < e->pattern_count; i++)
        n += e->patterns[i].on_vectorscan && !e->patterns[i].anchored;
    if (n == 0)
        return KH_OK;
    expr_list l;
    int rc = expr_list_alloc(&l, n, err);
    if (rc != KH_OK)
        return rc;
    for (uint32_t i = 0; i < e->pattern_count; i++)
        if (e->patterns[i].on_vectorscan && !e->patterns[i].anchored)
            expr_list_add_pattern(&l, e, i, HS_FLAG_SOM_LEFTMOST);
    uint32_t refused;
    hs_compile_error_t *ce = NULL;
    if (!expr_list_compile(&l, e, &e->db_unanchored, &refused, &ce)) {
        rc = kh_error_set(err, KH_EINTERNAL, "vectorscan: %s", ce ? ce->message : "compile failed");
        hs_free_compile_error(ce);
    }
    expr_list_free(&l);
    return rc;
}

/* Which detectors the prefilter database must catch by keyword: those with
 * a pattern missing from it.  Such a pattern on the PCRE2 fallback is then
 * triggered by the keyword as before; one on Vectorscan makes the keyword
 * mean "scan the whole buffer with db" (pf_whole). */
static int plan_prefilter(kh_engine *e, kh_error *err)
{
    free(e->pf_keyword_detector);
    free(e->pf_whole);
    e->pf_keyword_count = 0;
    e->pf_whole = calloc(e->set->count + 1, 1);
    uint8_t *missing = calloc(e->set->count + 1, 1);
    uint32_t nk = 0;
    if (!e->pf_whole || !missing) {
        free(missing);
        e->pf_keyword_detector = NULL;
        return kh_error_set(err, KH_ENOMEM, "out of memory compiling detectors");
    }
    for (uint32_t p = 0; p < e->pattern_count; p++) {
        if (e->patterns[p].prefilter)
            continue;
        uint32_t di = e->patterns[p].detector;
        if (!missing[di])
            nk += (uint32_t)detector_at(e->set, di)->keyword_count;
        missing[di] = 1;
        e->pf_whole[di] |= e->patterns[p].on_vectorscan != 0;
    }
    e->pf_keyword_detector = calloc(nk + 1, sizeof *e->pf_keyword_detector);
    if (!e->pf_keyword_detector) {
        free(missing);
        return kh_error_set(err, KH_ENOMEM, "out of memory compiling detectors");
    }
    for (uint32_t di = 0; di < e->set->count; di++)
        for (size_t w = 0; missing[di] && w < detector_at(e->set, di)->keyword_count; w++)
            e->pf_keyword_detector[e->pf_keyword_count++] = di;
    free(missing);
    return KH_OK;
}

/* The prefilter database: every pattern without HS_FLAG_SOM_LEFTMOST.
 * Start-of-match tracking is most of what the SOM database costs per byte
 * (on Linux source, 4.3 ns/byte for the embedded set against 0.7 without),
 * and matches are rare, so the SOM database runs only around the ends this
 * one reports.  A pattern Vectorscan refuses is retried as a prefilter
 * approximation, then left out (its detector's keywords stand in). */
static int build_prefilter(kh_engine *e, kh_error *err)
{
    for (;;) {
        int rc = plan_prefilter(e, err);
        if (rc != KH_OK)
            return rc;
        uint32_t total = e->pf_keyword_count;
        for (uint32_t i = 0; i < e->pattern_count; i++)
            total += e->patterns[i].prefilter != 0;
        if (total == 0)
            return KH_OK;
        expr_list l;
        if ((rc = expr_list_alloc(&l, total, err)) != KH_OK)
            return rc;
        for (uint32_t i = 0; i < e->pattern_count; i++) {
            unsigned approx = e->patterns[i].prefilter == ENGINE_PF_APPROX;
            if (e->patterns[i].prefilter)
                expr_list_add_pattern(&l, e, i, approx ? HS_FLAG_PREFILTER : 0);
        }
        for (uint32_t j = 0; j < e->pf_keyword_count && rc == KH_OK;) {
            /* The keywords of one detector are consecutive. */
            const spec_detector *d = detector_at(e->set, e->pf_keyword_detector[j]);
            for (size_t w = 0; w < d->keyword_count && rc == KH_OK; w++, j++)
                rc = expr_list_add_keyword(&l, d->keywords[w], e->pattern_count + j, err);
        }
        int retry = 0;
        uint32_t refused;
        hs_compile_error_t *ce = NULL;
        if (rc == KH_OK && !expr_list_compile(&l, e, &e->db_prefilter, &refused, &ce)) {
            if (refused != UINT32_MAX) {
                engine_pattern *p = &e->patterns[refused];
                p->prefilter = p->prefilter == ENGINE_PF_EXACT ? ENGINE_PF_APPROX : 0;
                retry = 1;
            }
            /* Otherwise (a limit, not one pattern): no prefilter database,
             * and every buffer is scanned whole with the main one, which
             * finds the same. */
            hs_free_compile_error(ce);
        }
        expr_list_free(&l);
        if (rc != KH_OK || !retry)
            return rc;
    }
}

/* Recomputes which detectors need keyword literals (those with a pattern on
 * the fallback). */
static int plan_keywords(kh_engine *e, kh_error *err)
{
    free(e->keyword_detector);
    free(e->keyword_index);
    e->keyword_detector = NULL;
    e->keyword_index = NULL;
    e->keyword_count = 0;
    free(e->fallback);
    e->fallback = NULL;
    e->fallback_count = 0;
    uint32_t nk = 0, nf = 0;
    for (uint32_t p = 0; p < e->pattern_count; p++)
        nf += !e->patterns[p].on_vectorscan;
    for (uint32_t di = 0; di < e->set->count; di++) {
        int needs = 0;
        for (uint32_t p = 0; p < e->pattern_count; p++)
            needs |= e->patterns[p].detector == di && !e->patterns[p].on_vectorscan;
        if (needs)
            nk += (uint32_t)detector_at(e->set, di)->keyword_count;
    }
    e->keyword_detector = calloc(nk + 1, sizeof *e->keyword_detector);
    e->keyword_index = calloc(nk + 1, sizeof *e->keyword_index);
    e->fallback = calloc(nf + 1, sizeof *e->fallback);
    if (!e->keyword_detector || !e->keyword_index || !e->fallback)
        return kh_error_set(err, KH_ENOMEM, "out of memory compiling detectors");
    for (uint32_t di = 0; di < e->set->count; di++) {
        int needs = 0;
        for (uint32_t p = 0; p < e->pattern_count; p++)
            needs |= e->patterns[p].detector == di && !e->patterns[p].on_vectorscan;
        if (!needs)
            continue;
        for (size_t w = 0; w < detector_at(e->set, di)->keyword_count; w++) {
            e->keyword_detector[e->keyword_count] = di;
            e->keyword_index[e->keyword_count++] = (uint32_t)w;
        }
    }
    for (uint32_t p = 0; p < e->pattern_count; p++)
        if (!e->patterns[p].on_vectorscan)
            e->fallback[e->fallback_count++] = p;
    return KH_OK;
}

int kh_engine_compile(const kh_detectors *set, const kh_engine_opts *opts, kh_engine **out,
                      kh_error *err)
{
    if (!set || !out)
        return kh_error_set(err, KH_EINVAL, "kh_engine_compile: NULL argument");
    *out = NULL;
    kh_engine *e = calloc(1, sizeof *e);
    if (!e)
        return kh_error_set(err, KH_ENOMEM, "out of memory");
    e->set = set;
    e->block_size = opts && opts->block_size ? opts->block_size : ENGINE_DEFAULT_BLOCK;
    e->decode_depth = opts && opts->decode_depth >= 0 ? opts->decode_depth
                                                      : ENGINE_DEFAULT_DECODE_DEPTH;
    if (!opts)
        e->decode_depth = ENGINE_DEFAULT_DECODE_DEPTH;
    e->decode_max_bytes = opts && opts->decode_max_bytes ? opts->decode_max_bytes
                                                         : ENGINE_DEFAULT_DECODE_BYTES;
    int rc = KH_OK;
    size_t np = 0;
    for (size_t i = 0; i < set->count; i++)
        np += set->items[i]->pattern_count;
    e->patterns = calloc(np + 1, sizeof *e->patterns);
    e->companions = calloc(set->count + 1, sizeof *e->companions);
    e->detector_width = calloc(set->count + 1, sizeof *e->detector_width);
    e->match_context = pcre2_match_context_create(NULL);
    size_t nkw = 0;
    for (size_t i = 0; i < set->count; i++)
        nkw += set->items[i]->keyword_count;
    e->all_keywords = calloc(nkw + 1, sizeof *e->all_keywords);
    e->all_keyword_detector = calloc(nkw + 1, sizeof *e->all_keyword_detector);
    if (!e->patterns || !e->companions || !e->detector_width || !e->match_context ||
        !e->all_keywords || !e->all_keyword_detector) {
        rc = kh_error_set(err, KH_ENOMEM, "out of memory");
        goto fail;
    }
    for (uint32_t di = 0; di < set->count; di++)
        for (size_t k = 0; k < set->items[di]->keyword_count; k++) {
            e->all_keywords[e->all_keyword_count] = set->items[di]->keywords[k];
            e->all_keyword_detector[e->all_keyword_count++] = di;
        }
    pcre2_set_match_limit(e->match_context, ENGINE_PCRE2_MATCH_LIMIT);
    pcre2_set_depth_limit(e->match_context, 10000);

    unsigned overlap = 0;
    for (uint32_t di = 0; di < set->count; di++) {
        const spec_detector *d = set->items[di];
        if (d->validate.checksum && !triage_checksum_known(d->validate.checksum)) {
            rc = kh_error_set(err, KH_EPARSE, "%s: detector %s: unknown checksum \"%s\"",
                              d->origin, d->id, d->validate.checksum);
            goto fail;
        }
        for (size_t pi = 0; pi < d->pattern_count; pi++) {
            engine_pattern *p = &e->patterns[e->pattern_count++];
            char what[32];
            snprintf(what, sizeof what, "pattern %zu", pi + 1);
            p->detector = di;
            p->index = (uint32_t)pi;
            p->anchored = d->keyword_count > 0;
            p->prefilter = ENGINE_PF_EXACT; /* until Vectorscan says otherwise */
            e->unanchored_count += !p->anchored;
            p->group = d->patterns[pi].group;
            p->re = compile_pcre2(d->patterns[pi].regex, d->id, what, err);
            if (!p->re) {
                rc = KH_EREGEX;
                goto fail;
            }
            uint32_t caps = capture_count(p->re);
            if (caps > e->max_capture)
                e->max_capture = caps;
        }
        if (d->companion_count) {
            e->companions[di] = calloc(d->companion_count, sizeof **e->companions);
            if (!e->companions[di]) {
                rc = kh_error_set(err, KH_ENOMEM, "out of memory");
                goto fail;
            }
            for (size_t ci = 0; ci < d->companion_count; ci++) {
                char what[64];
                snprintf(what, sizeof what, "companion %s", d->companions[ci].name);
                e->companions[di][ci].re =
                    compile_pcre2(d->companions[ci].regex, d->id, what, err);
                if (!e->companions[di][ci].re) {
                    rc = KH_EREGEX;
                    goto fail;
                }
                e->companions[di][ci].group = d->companions[ci].group;
                uint32_t caps = capture_count(e->companions[di][ci].re);
                if (caps > e->max_capture)
                    e->max_capture = caps;
            }
        }
    }
    /* A cache holds each pattern's width too: asking Vectorscan for them
     * again (parsing every regex) was most of a cached start-up. */
    int checked = opts && opts->cache && load_cache(e, opts->cache, opts->cache_len);
    if (!e->from_cache)
        measure_widths(e);
    for (uint32_t i = 0; i < e->pattern_count; i++) {
        const engine_pattern *p = &e->patterns[i];
        if (!p->parsed) {
            e->detector_width[p->detector] = ENGINE_MAX_OVERLAP;
            continue;
        }
        unsigned w = p->max_width > ENGINE_MAX_OVERLAP ? ENGINE_MAX_OVERLAP : p->max_width;
        if (w > overlap)
            overlap = w;
        if (w > e->detector_width[p->detector])
            e->detector_width[p->detector] = w;
    }
    e->overlap = overlap + 64;
    for (;;) {
        if (e->from_cache)
            break;
        if (e->db) {
            hs_free_database(e->db);
            e->db = NULL;
        }
        if ((rc = plan_keywords(e, err)) != KH_OK)
            goto fail;
        uint32_t refused;
        rc = build_database(e, &refused, err);
        if (rc == KH_OK)
            break;
        if (refused == UINT32_MAX)
            goto fail;
        e->patterns[refused].on_vectorscan = 0; /* to the PCRE2 fallback */
        if (!checked) {
            /* Some patterns pass the parser but not SOM compilation
             * ("pattern too large").  After the first such refusal, find
             * the rest alone: cheaper than one failed whole-database
             * compile per pattern. */
            for (uint32_t i = 0; i < e->pattern_count; i++)
                if (e->patterns[i].on_vectorscan && !pattern_compiles(e, i))
                    e->patterns[i].on_vectorscan = 0;
            checked = 1;
        }
    }
    if (e->from_cache) {
        if ((rc = plan_keywords(e, err)) != KH_OK || (rc = plan_prefilter(e, err)) != KH_OK)
            goto fail;
    } else if ((rc = build_unanchored(e, err)) != KH_OK || (rc = build_prefilter(e, err)) != KH_OK) {
        goto fail;
    }
    *out = e;
    return KH_OK;
fail:
    kh_engine_free(e);
    return rc;
}

void kh_engine_free(kh_engine *e)
{
    if (!e)
        return;
    for (uint32_t i = 0; i < e->pattern_count; i++)
        pcre2_code_free(e->patterns[i].re);
    if (e->companions) {
        for (size_t di = 0; di < e->set->count; di++) {
            if (!e->companions[di])
                continue;
            for (size_t ci = 0; ci < e->set->items[di]->companion_count; ci++)
                pcre2_code_free(e->companions[di][ci].re);
            free(e->companions[di]);
        }
    }
    free(e->companions);
    free(e->detector_width);
    free(e->all_keywords);
    free(e->all_keyword_detector);
    free(e->patterns);
    free(e->keyword_detector);
    free(e->keyword_index);
    free(e->fallback);
    free(e->pf_keyword_detector);
    free(e->pf_whole);
    if (e->db)
        hs_free_database(e->db);
    if (e->db_prefilter)
        hs_free_database(e->db_prefilter);
    if (e->db_unanchored)
        hs_free_database(e->db_unanchored);
    pcre2_match_context_free(e->match_context);
    free(e);
}

void kh_engine_stats_get(const kh_engine *e, kh_engine_stats *out)
{
    memset(out, 0, sizeof *out);
    out->patterns = e->pattern_count;
    out->fallback_patterns = e->fallback_count;
    out->vectorscan_patterns = e->pattern_count - e->fallback_count;
}

size_t engine_keyword_count(const kh_engine *e)
{
    return e->all_keyword_count;
}

const char *engine_keyword(const kh_engine *e, size_t i, uint32_t *detector)
{
    if (i >= e->all_keyword_count)
        return NULL;
    if (detector)
        *detector = e->all_keyword_detector[i];
    return e->all_keywords[i];
}

typedef struct region_key {
    size_t start, end, reach;
} region_key;

static int cmp_region(const void *a, const void *b)
{
    const region_key *x = a, *y = b;
    return (x->start > y->start) - (x->start < y->start);
}

size_t engine_regions_from_hits(const kh_engine *e, const uint64_t *hit_offsets,
                                const uint32_t *hit_keywords, size_t nhits, size_t chunk_len,
                                engine_region *out, size_t cap)
{
    if (cap == 0)
        return 0;
    region_key *tmp = malloc((nhits + 1) * sizeof *tmp);
    if (!tmp) {
        /* Out of memory: one region covering everything is still correct. */
        out[0].start = 0;
        out[0].end = chunk_len;
        out[0].reach = e->overlap;
        return 1;
    }
    size_t n = 0;
    for (size_t i = 0; i < nhits; i++) {
        if (hit_keywords[i] >= e->all_keyword_count || hit_offsets[i] >= chunk_len)
            continue;
        uint32_t d = e->all_keyword_detector[hit_keywords[i]];
        size_t w = e->detector_width[d];
        size_t at = (size_t)hit_offsets[i];
        /* A match holding this keyword starts at most w bytes before the
         * keyword's end and no later than the keyword itself. */
        size_t kl = strlen(e->all_keywords[hit_keywords[i]]);
        tmp[n].start = at + kl > w ? at + kl - w : 0;
        tmp[n].end = at + 1;
        /* The same 64 bytes of slack over the widest match as the block
         * overlap (compile: overlap = widest + 64). */
        tmp[n].reach = w + 64 < e->overlap ? w + 64 : e->overlap;
        n++;
    }
    qsort(tmp, n, sizeof *tmp, cmp_region);
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        /* Regions whose scan windows (reach on each side) would overlap are
         * one region: the bytes between them are scanned once, not twice.
         * Owning the starts in between adds no finding: a match starting
         * there would hold a keyword, hence lie in a region of its own. */
        if (m && tmp[i].start <= out[m - 1].end + out[m - 1].reach + tmp[i].reach) {
            if (tmp[i].end > out[m - 1].end)
                out[m - 1].end = tmp[i].end;
            if (tmp[i].reach > out[m - 1].reach)
                out[m - 1].reach = tmp[i].reach;
        } else if (m < cap) {
            out[m].start = tmp[i].start;
            out[m].end = tmp[i].end;
            out[m].reach = tmp[i].reach;
            m++;
        } else {
            out[m - 1].end = tmp[i].end > out[m - 1].end ? tmp[i].end : out[m - 1].end;
            if (tmp[i].reach > out[m - 1].reach)
                out[m - 1].reach = tmp[i].reach;
        }
    }
    free(tmp);
    return m;
}
