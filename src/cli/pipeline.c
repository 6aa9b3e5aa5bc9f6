/*
 * pipeline.c - bounded queue and worker pool of a scan.
 *
 * The producer (the walker, git reader or archive reader on the main
 * thread) hands items to a ring of fixed size that is also bounded in
 * bytes, so memory stays bounded whatever the input: a file on disk costs
 * only its path until a worker reads it into that worker's reusable
 * buffer.  Each worker owns a scratch and a findings vector; nothing is
 * shared on the hot path but the queue lock.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/pipeline.h"
#include "engine/gpu.h"
#include "triage/triage.h"

#define QUEUE_ITEMS 1024
#define QUEUE_BYTES (256u << 20)
/* A producer that found the queue full sleeps until it has drained to
 * here, so it is woken once per QUEUE_ITEMS / 2 items rather than once per
 * item taken (on the Linux tree that was a context switch per file). */
#define QUEUE_LOW (QUEUE_ITEMS / 2)

struct work_item {
    char *path, *fs_path;
    uint8_t *data;
    size_t len;
    char *commit, *author, *email, *date;
    uint64_t seq; /* emission order */
};

/* A worker's batch for the GPU backend.  Files are read straight into
 * the worker's arena, a page-locked buffer lent by the kh_gpu, laid out as
 * the device takes it (chunk, NUL, chunk, NUL, ..., zero pad), so the batch
 * needs no packing copy; an item that does not fit there keeps a buffer of
 * its own (bufs), and the library packs that batch itself. */
#define BATCH_BYTES (16u << 20)
#define BATCH_ITEMS 4096
#define ARENA_BYTES (BATCH_BYTES + BATCH_ITEMS + KH_GPU_BUFFER_PAD)
typedef struct batch {
    work_item *items;
    uint8_t **bufs;
    kh_chunk *chunks;
    int *status;
    size_t n, bytes;
    kh_gpu *arena_gpu; /* the kh_gpu that lent arena */
    uint8_t *arena;
    size_t used; /* arena bytes taken: chunks and their NULs */
} batch;

/* A span of the chunk being scanned, for cutting context (--format html):
 * a finding's secret or a companion's value, shown as `redacted` in any
 * context that covers it.  finding is the index in the worker's findings
 * of the one whose context is still to be cut, or SIZE_MAX. */
typedef struct span_mark {
    const uint8_t *data; /* the chunk; alive until context_fill */
    size_t len;
    uint64_t offset, length;
    size_t finding;
    char redacted[64];
} span_mark;

typedef struct worker {
    batch batch;
    pipeline *p;
    pthread_t thread;
    kh_scratch *scratch;
    uint8_t *buf;
    size_t cap;
    findings_vec found;
    /* Written by this worker only, read by the progress thread. */
    _Atomic uint64_t files, bytes, shown;
    uint64_t suppressed;
    span_mark *marks;
    size_t nmarks, marks_cap;
    /* the item being scanned, for the finding callback */
    const work_item *item;
    const uint8_t *data;
    size_t len;
    /* UTF-16 text is scanned narrowed into wide (one byte per code unit);
     * wide_start is where its code units began, for mapping offsets back,
     * or SIZE_MAX when the item is not UTF-16. */
    uint8_t *wide;
    size_t wide_cap, wide_start;
} worker;

struct pipeline {
    scan_config cfg;
    pthread_mutex_t mu;
    pthread_cond_t not_empty, not_full;
    work_item ring[QUEUE_ITEMS];
    size_t head, count, bytes;
    uint64_t next_seq;
    int closed;
    int joined; /* pipeline_drain has joined the workers */
    uint64_t skipped;
    worker *workers;
    int nworkers;
    /* The lazily opened GPU (scan_config.gpu_open). */
    _Atomic(kh_gpu *) lazy_gpu;
    _Atomic uint64_t seen; /* bytes taken from the queue so far */
    atomic_int opening;
    pthread_t opener;
    int opener_started; /* written by the worker that won `opening` */
};

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

/* One writer: a relaxed load and store, which compile to a plain add,
 * rather than a locked read-modify-write. */
static inline void counter_add(_Atomic uint64_t *c, uint64_t n)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
                          memory_order_relaxed);
}

/* ---- context: the lines around a finding, secrets redacted ---- */

#define CONTEXT_SIDE 400 /* bytes kept on each side of a span, whatever the lines */

static void mark_add(worker *w, uint64_t offset, uint64_t length, size_t finding,
                     const char *redacted)
{
    if (offset > w->len || length > w->len - offset)
        return; /* not in these bytes (a decoded child's span) */
    if (w->nmarks == w->marks_cap) {
        size_t n = w->marks_cap ? w->marks_cap * 2 : 32;
        span_mark *m = realloc(w->marks, n * sizeof *m);
        if (!m)
            return; /* no context is better than no finding */
        w->marks = m;
        w->marks_cap = n;
    }
    span_mark *m = &w->marks[w->nmarks++];
    *m = (span_mark){.data = w->data, .len = w->len, .offset = offset, .length = length,
                     .finding = finding};
    snprintf(m->redacted, sizeof m->redacted, "%s", redacted);
}

/* Marks a finding's secret and its companions' values. */
static void mark_finding(worker *w, const kh_finding *f, size_t finding, const char *redacted)
{
    mark_add(w, f->offset, f->length, finding, redacted);
    for (size_t i = 0; i < f->companion_count; i++) {
        const kh_companion *c = &f->companions[i];
        char r[64];
        kh_redact(c->value, c->value_len, r, sizeof r);
        mark_add(w, c->offset, c->value_len, SIZE_MAX, r);
    }
}

static int cmp_mark_offset(const void *a, const void *b)
{
    const span_mark *x = *(span_mark *const *)a, *y = *(span_mark *const *)b;
    if (x->offset != y->offset)
        return x->offset < y->offset ? -1 : 1;
    return (x->length < y->length) - (x->length > y->length); /* longest first */
}

static int token_char(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '+' || c == '/' || c == '_' || c == '-';
}

/* A safety net under the marks: a secret no detector claimed (a password a
 * line below, a key too long for its companion pattern) must not show in
 * clear either.  Runs of 16 or more token characters that mix letters and
 * digits, and either both cases or 32 or more characters, are shown
 * redacted; names like AWS_SECRET_ACCESS_KEY and paths keep their text. */
static void context_mask_tokens(FILE *out, const char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        if (!token_char((unsigned char)s[i])) {
            fputc(s[i++], out);
            continue;
        }
        size_t j = i;
        int digit = 0, upper = 0, lower = 0;
        for (; j < n && token_char((unsigned char)s[j]); j++) {
            unsigned char c = (unsigned char)s[j];
            digit |= c >= '0' && c <= '9';
            upper |= c >= 'A' && c <= 'Z';
            lower |= c >= 'a' && c <= 'z';
        }
        for (int pad = 0; pad < 2 && j < n && s[j] == '='; pad++)
            j++; /* base64 padding; any other '=' separates, as in KEY=value */
        size_t len = j - i;
        if (len >= 16 && digit && (upper || lower) && ((upper && lower) || len >= 32)) {
            char r[64];
            kh_redact((const uint8_t *)s + i, len, r, sizeof r);
            fputs(r, out);
        } else {
            fwrite(s + i, 1, len, out);
        }
        i = j;
    }
}

/* The lines around mark m, every marked span in them replaced by its
 * redacted form (unless show), long lines cut to CONTEXT_SIDE bytes each
 * side.  NULL when out of memory. */
static char *context_cut(worker *w, const span_mark *m, int lines, int show)
{
    const uint8_t *d = m->data;
    size_t n = m->len, s = (size_t)m->offset, e = (size_t)(m->offset + m->length);
    size_t ws = s, we = e;
    for (int k = 0; k <= lines; k++) {
        if (k) {
            if (ws == 0)
                break;
            ws--;
        }
        while (ws > 0 && d[ws - 1] != '\n')
            ws--;
    }
    while (we < n && d[we] != '\n')
        we++;
    for (int k = 0; k < lines && we < n; k++) {
        we++;
        while (we < n && d[we] != '\n')
            we++;
    }
    int cut_left = s - ws > CONTEXT_SIDE, cut_right = we - e > CONTEXT_SIDE;
    if (cut_left)
        ws = s - CONTEXT_SIDE;
    if (cut_right)
        we = e + CONTEXT_SIDE;
    /* Spans that straddle an edge are taken whole, so no part of a secret
     * shows outside its redaction. */
    span_mark **in = malloc((w->nmarks + 1) * sizeof *in);
    if (!in)
        return NULL;
    size_t nin = 0;
    for (size_t i = 0; i < w->nmarks; i++) {
        const span_mark *o = &w->marks[i];
        if (o->data != d || o->offset >= we || o->offset + o->length <= ws || !o->length)
            continue;
        if (o->offset < ws)
            ws = (size_t)o->offset;
        if (o->offset + o->length > we)
            we = (size_t)(o->offset + o->length);
        in[nin++] = (span_mark *)o;
    }
    qsort(in, nin, sizeof *in, cmp_mark_offset);
    char *text = NULL;
    size_t tlen = 0;
    FILE *f = open_memstream(&text, &tlen);
    if (!f) {
        free(in);
        return NULL;
    }
    if (cut_left)
        fputs("\xe2\x80\xa6", f); /* U+2026 */
    size_t at = ws, k = 0;
    while (at < we) {
        while (k < nin && in[k]->offset + in[k]->length <= at)
            k++; /* inside a span already written */
        size_t next = k < nin && in[k]->offset > at ? (size_t)in[k]->offset : we;
        if (k < nin && in[k]->offset <= at) {
            fputs(show ? "" : in[k]->redacted, f);
            if (show)
                fwrite(d + at, 1, (size_t)(in[k]->offset + in[k]->length) - at, f);
            at = (size_t)(in[k]->offset + in[k]->length);
            continue;
        }
        if (show)
            fwrite(d + at, 1, next - at, f);
        else
            context_mask_tokens(f, (const char *)d + at, next - at);
        at = next;
    }
    if (cut_right)
        fputs("\xe2\x80\xa6", f);
    free(in);
    if (fclose(f) != 0) {
        free(text);
        return NULL;
    }
    while (tlen && (text[tlen - 1] == '\n' || text[tlen - 1] == '\r'))
        text[--tlen] = '\0';
    return text;
}

/* Cuts the context of every finding of the chunk(s) just scanned, while
 * their bytes are still there, then forgets the marks. */
static void context_fill(worker *w)
{
    pipeline *p = w->p;
    for (size_t i = 0; i < w->nmarks; i++) {
        const span_mark *m = &w->marks[i];
        if (m->finding == SIZE_MAX || m->finding >= w->found.count)
            continue;
        report_finding *r = &w->found.items[m->finding];
        if (r->location_count && !r->locations[0].context)
            r->locations[0].context = context_cut(w, m, p->cfg.context_lines,
                                                  p->cfg.show_secrets);
    }
    w->nmarks = 0;
}

static void item_free(work_item *it)
{
    if (it->fs_path != it->path)
        free(it->fs_path);
    free(it->path);
    free(it->data);
    free(it->commit);
    free(it->author);
    free(it->email);
    free(it->date);
    memset(it, 0, sizeof *it);
}

void findings_vec_free(findings_vec *v)
{
    for (size_t i = 0; i < v->count; i++)
        report_finding_clear(&v->items[i]);
    free(v->items);
    memset(v, 0, sizeof *v);
}

static int on_finding(const kh_finding *f, void *ctx)
{
    worker *w = ctx;
    size_t at = (size_t)f->offset;
    if (at < w->len && triage_inline_ignored(w->data, w->len, at, f->detector->id)) {
        if (w->p->cfg.context_lines) { /* not reported, still not shown in others' context */
            char r[64];
            kh_redact(f->secret, f->secret_len, r, sizeof r);
            mark_finding(w, f, SIZE_MAX, r);
        }
        w->suppressed++;
        return 0;
    }
    if (f->confidence >= w->p->cfg.min_confidence &&
        (int)f->detector->severity >= w->p->cfg.min_severity)
        counter_add(&w->shown, 1);
    findings_vec *v = &w->found;
    if (v->count == v->cap) {
        size_t n = v->cap ? v->cap * 2 : 16;
        report_finding *items = realloc(v->items, n * sizeof *items);
        if (!items)
            return 1;
        v->items = items;
        v->cap = n;
    }
    report_finding *r = &v->items[v->count];
    memset(r, 0, sizeof *r);
    r->detector = f->detector;
    r->severity = f->detector->severity;
    r->confidence = f->confidence;
    r->secret = malloc(f->secret_len + 1);
    r->locations = calloc(1, sizeof *r->locations);
    if (!r->secret || !r->locations) {
        report_finding_clear(r);
        return 1;
    }
    memcpy(r->secret, f->secret, f->secret_len);
    r->secret[f->secret_len] = 0;
    r->secret_len = f->secret_len;
    kh_redact(f->secret, f->secret_len, r->redacted, sizeof r->redacted);
    kh_fingerprint(f->detector->id, f->secret, f->secret_len, r->fingerprint);
    r->location_count = 1;
    report_location *l = &r->locations[0];
    l->path = strdup(w->item->path);
    l->offset = f->offset;
    l->length = f->length;
    if (w->wide_start != SIZE_MAX) { /* back to bytes of the UTF-16 original */
        l->offset = w->wide_start + 2 * f->offset;
        l->length = 2 * f->length;
    }
    l->line = f->line;
    l->column = f->column;
    l->end_line = f->end_line;
    l->end_column = f->end_column;
    l->commit = dup_or_null(w->item->commit);
    l->author = dup_or_null(w->item->author);
    l->email = dup_or_null(w->item->email);
    l->date = dup_or_null(w->item->date);
    l->seq = w->item->seq;
    if (f->companion_count) {
        r->companions = calloc(f->companion_count, sizeof *r->companions);
        if (r->companions) {
            r->companion_count = f->companion_count;
            for (size_t i = 0; i < f->companion_count; i++) {
                r->companions[i].name = strdup(f->companions[i].name);
                r->companions[i].value = strndup((const char *)f->companions[i].value,
                                                 f->companions[i].value_len);
                r->companions[i].line = f->companions[i].line;
            }
        }
    }
    if (f->decode_depth) {
        r->decoded_from = calloc(f->decode_depth, sizeof *r->decoded_from);
        if (r->decoded_from) {
            r->decoded_count = f->decode_depth;
            for (size_t i = 0; i < f->decode_depth; i++)
                r->decoded_from[i] = strdup(f->decoded_from[i]);
        }
    }
    if (w->p->cfg.context_lines)
        mark_finding(w, f, v->count, r->redacted);
    v->count++;
    return 0;
}

/* Scans bytes already in memory as the item `it` describes. */
static void scan_bytes(worker *w, const work_item *it, const uint8_t *data, size_t len)
{
    pipeline *p = w->p;
    size_t mark;
    if (sources_classify(data, len, &mark))
        return;
    counter_add(&w->files, 1);
    counter_add(&w->bytes, len);
    w->wide_start = SIZE_MAX;
    if (mark) {
        if (sources_utf16_narrow(data, len, mark, &w->wide, &w->wide_cap, &len)) {
            pipeline_skip(it->path, "out of memory", p);
            return;
        }
        data = w->wide;
        w->wide_start = sources_utf16_start(mark);
    }
    w->item = it;
    w->data = data;
    w->len = len;
    kh_chunk chunk = {.data = data, .len = len, .path = it->path};
    int rc = kh_scan(p->cfg.engine, w->scratch, &chunk, on_finding, w);
    context_fill(w);
    if (rc == KH_ELIMIT)
        pipeline_skip(it->path,
                      "scanned in part: hit an engine limit (time budget, candidates or "
                      "findings per file)",
                      p);
    else if (rc != KH_OK && rc != KH_ESTOPPED)
        pipeline_skip(it->path, kh_strerror(rc), p);
}

typedef struct member_ctx {
    worker *w;
    const work_item *parent;
} member_ctx;

/* An archive or image member: scanned at once, on this worker, while the
 * reader still holds its bytes; it keeps the parent's git attribution. */
static int scan_member(const source_item *m, void *ctx)
{
    member_ctx *mc = ctx;
    work_item view = *mc->parent;
    view.path = (char *)m->path;
    view.fs_path = NULL;
    scan_bytes(mc->w, &view, m->data, m->len);
    return cli_interrupted();
}

static void skip_member(const char *path, const char *reason, void *ctx)
{
    pipeline_skip(path, reason, ((member_ctx *)ctx)->w->p);
}

/* Archives and container images are opened and their members scanned;
 * returns 1 if `data` was one. */
static int scan_container(worker *w, const work_item *it, const uint8_t *data, size_t len)
{
    pipeline *p = w->p;
    if (p->cfg.no_archives || !sources_is_archive(it->path, data, len))
        return 0;
    member_ctx mc = {w, it};
    archive_opts ao = {.max_member_size = p->cfg.max_file_size};
    if (it->fs_path && sources_is_image(it->fs_path)) {
        image_opts io = {.max_file_size = p->cfg.max_file_size, .archives = &ao};
        sources_image(it->fs_path, &io, scan_member, skip_member, &mc);
    } else {
        sources_archive(data, len, it->path, &ao, scan_member, skip_member, &mc);
    }
    return 1;
}

static void scan_item(worker *w, const work_item *it)
{
    pipeline *p = w->p;
    const uint8_t *data = it->data;
    size_t len = it->len;
    if (it->fs_path) {
        /* Archives may be larger than a text file may be: their members
         * are held to the limit one by one. */
        uint64_t max = p->cfg.no_archives ? p->cfg.max_file_size : p->cfg.max_archive_size;
        int e = sources_read_file(it->fs_path, max, &w->buf, &w->cap, &len);
        if (e) {
            char reason[128];
            if (e == EFBIG)
                snprintf(reason, sizeof reason, "larger than --max-file-size (%llu bytes)",
                         (unsigned long long)p->cfg.max_file_size);
            else
                snprintf(reason, sizeof reason, "%s", strerror(e));
            pipeline_skip(it->path, reason, p);
            return;
        }
        data = w->buf;
        if (len > p->cfg.max_file_size && p->cfg.max_file_size &&
            !sources_is_archive(it->path, data, len)) {
            char reason[128];
            snprintf(reason, sizeof reason, "larger than --max-file-size (%llu bytes)",
                     (unsigned long long)p->cfg.max_file_size);
            pipeline_skip(it->path, reason, p);
            return;
        }
    }
    if (scan_container(w, it, data, len))
        return;
    scan_bytes(w, it, data, len);
}

static int on_batch_finding(const kh_finding *f, size_t chunk, void *ctx)
{
    worker *w = ctx;
    w->item = &w->batch.items[chunk];
    w->data = w->batch.chunks[chunk].data;
    w->wide_start = SIZE_MAX; /* UTF-16 never goes to the GPU */
    w->len = w->batch.chunks[chunk].len;
    return on_finding(f, w);
}

/* KEYHOG_GPU_STATS=1: one line on stderr of where the GPU path's time
 * went, summed over the worker threads. */
static void gpu_report(const kh_gpu *gpu)
{
    const char *want = getenv("KEYHOG_GPU_STATS");
    if (!gpu || !want || strcmp(want, "1"))
        return;
    gpu_stats st;
    gpu_stats_get(gpu, &st);
    fprintf(stderr,
            "keyhog: gpu: %llu batches (%llu read in place), %llu bytes; thread seconds: pack "
            "%.3f, lock wait %.3f, device %.3f, confirm %.3f\n",
            (unsigned long long)st.batches, (unsigned long long)st.prepacked,
            (unsigned long long)st.bytes, st.pack_ns / 1e9, st.wait_ns / 1e9,
            st.device_ns / 1e9, st.confirm_ns / 1e9);
}

static void *gpu_opener(void *arg)
{
    pipeline *p = arg;
    atomic_store(&p->lazy_gpu, p->cfg.gpu_open(p->cfg.gpu_open_ctx));
    return NULL;
}

static void batch_flush(worker *w)
{
    batch *b = &w->batch;
    if (!b->n)
        return;
    pipeline *p = w->p;
    kh_gpu *gpu = p->cfg.gpu ? p->cfg.gpu : atomic_load(&p->lazy_gpu);
    if (b->bytes < p->cfg.gpu_min_batch)
        gpu = NULL;
    if (b->arena)
        memset(b->arena + b->used, 0, KH_GPU_BUFFER_PAD);
    kh_scan_batch(p->cfg.engine, gpu, w->scratch, b->chunks, b->n, on_batch_finding, w,
                  b->status);
    context_fill(w);
    for (size_t i = 0; i < b->n; i++) {
        if (b->status[i] != KH_OK && b->status[i] != KH_ESTOPPED)
            pipeline_skip(b->items[i].path, kh_strerror(b->status[i]), p);
        item_free(&b->items[i]);
        free(b->bufs[i]);
    }
    b->n = 0;
    b->bytes = 0;
    b->used = 0;
}

/* Bytes an item may still take in the arena: its NUL and the pad follow. */
static size_t arena_room(const batch *b)
{
    return ARENA_BYTES - KH_GPU_BUFFER_PAD - 1 - b->used;
}

/* Reads the file of `it` into the arena; 0 with *len, ENOSPC when it does
 * not fit (even into an empty arena), or the errno of the read. */
static int arena_read(worker *w, const work_item *it, size_t *len)
{
    batch *b = &w->batch;
    for (int tries = 0;; tries++) {
        int e = sources_read_into(it->fs_path, w->p->cfg.max_file_size, b->arena + b->used,
                                  arena_room(b), len);
        if (e != ENOSPC || tries || !b->n)
            return e;
        batch_flush(w); /* and again into the emptied arena */
    }
}

/* Takes the item over (it is zeroed); reads a file into its own buffer,
 * since the batch outlives the worker's reusable one. */
static void batch_add(worker *w, work_item *it)
{
    batch *b = &w->batch;
    pipeline *p = w->p;
    if (!b->items) {
        b->items = calloc(BATCH_ITEMS, sizeof *b->items);
        b->bufs = calloc(BATCH_ITEMS, sizeof *b->bufs);
        b->chunks = calloc(BATCH_ITEMS, sizeof *b->chunks);
        b->status = calloc(BATCH_ITEMS, sizeof *b->status);
        if (!b->items || !b->bufs || !b->chunks || !b->status) {
            pipeline_skip(it->path, "out of memory", p);
            return;
        }
    }
    kh_gpu *gpu = p->cfg.gpu ? p->cfg.gpu : atomic_load(&p->lazy_gpu);
    if (!b->arena && gpu && (b->arena = kh_gpu_buffer_take(gpu, ARENA_BYTES)) != NULL)
        b->arena_gpu = gpu;
    uint8_t *buf = NULL;
    const uint8_t *data = it->data;
    size_t len = it->len, cap = 0;
    int in_arena = 0;
    if (it->fs_path) {
        int e = ENOSPC;
        if (b->arena && (e = arena_read(w, it, &len)) == 0) {
            data = b->arena + b->used;
            in_arena = 1;
        }
        if (e == ENOSPC) {
            e = sources_read_file(it->fs_path, p->cfg.max_file_size, &buf, &cap, &len);
            data = buf;
        }
        if (e) {
            free(buf);
            scan_item(w, it); /* reports the reason exactly as the CPU path does */
            return;
        }
    }
    if (!p->cfg.no_archives && sources_is_archive(it->path, data, len)) {
        free(buf);
        scan_item(w, it); /* archives are opened on the CPU path */
        return;
    }
    if (sources_is_binary(data, len)) {
        free(buf);
        return;
    }
    if (sources_utf16(data, len)) {
        free(buf);
        scan_item(w, it); /* UTF-16 is narrowed on the CPU path */
        return;
    }
    /* Bytes already in memory (a git blob, stdin) are copied into the
     * arena when they fit: the copy packing would make anyway. */
    if (!in_arena && !buf && b->arena && len <= arena_room(b)) {
        memcpy(b->arena + b->used, data, len);
        data = b->arena + b->used;
        in_arena = 1;
    }
    if (in_arena) {
        b->arena[b->used + len] = 0;
        b->used += len + 1;
    }
    counter_add(&w->files, 1);
    counter_add(&w->bytes, len);
    b->items[b->n] = *it;
    memset(it, 0, sizeof *it);
    b->bufs[b->n] = buf;
    b->chunks[b->n] = (kh_chunk){.data = data, .len = len, .path = b->items[b->n].path};
    b->n++;
    b->bytes += len;
    if (b->n == BATCH_ITEMS || b->bytes >= BATCH_BYTES)
        batch_flush(w);
}

static void *worker_main(void *arg)
{
    worker *w = arg;
    pipeline *p = w->p;
    for (;;) {
        pthread_mutex_lock(&p->mu);
        while (p->count == 0 && !p->closed) {
            if (w->batch.n) { /* nothing queued: scan what is gathered */
                pthread_mutex_unlock(&p->mu);
                batch_flush(w);
                pthread_mutex_lock(&p->mu);
                continue;
            }
            pthread_cond_wait(&p->not_empty, &p->mu);
        }
        if (p->count == 0 && p->closed) {
            pthread_mutex_unlock(&p->mu);
            break;
        }
        work_item it = p->ring[p->head];
        p->head = (p->head + 1) % QUEUE_ITEMS;
        p->count--;
        p->bytes -= it.len;
        if (p->count <= QUEUE_LOW) /* cheap when no producer waits */
            pthread_cond_signal(&p->not_full);
        pthread_mutex_unlock(&p->mu);
        /* After Ctrl-C the queue is drained unscanned so the walker,
         * perhaps blocked on a full queue, wakes and sees the signal. */
        /* auto: the GPU opens once enough went through; until it has
         * (or when it cannot), items take the plain CPU path. */
        kh_gpu *lazy = NULL;
        if (p->cfg.gpu_open) {
            /* Counted only until the opener starts: no shared counter per
             * item for the rest of a big scan. */
            if (!atomic_load_explicit(&p->opening, memory_order_relaxed) &&
                atomic_fetch_add(&p->seen, it.len) + it.len >= p->cfg.gpu_open_after &&
                !atomic_exchange(&p->opening, 1))
                p->opener_started = pthread_create(&p->opener, NULL, gpu_opener, p) == 0;
            lazy = atomic_load(&p->lazy_gpu);
        }
        if (!cli_interrupted() && (p->cfg.gpu || lazy))
            batch_add(w, &it);
        else if (!cli_interrupted())
            scan_item(w, &it);
        item_free(&it);
    }
    batch_flush(w);
    kh_gpu_buffer_give(w->batch.arena_gpu, w->batch.arena);
    free(w->batch.items);
    free(w->batch.bufs);
    free(w->batch.chunks);
    free(w->batch.status);
    return NULL;
}

pipeline *pipeline_start(const scan_config *cfg)
{
    pipeline *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->cfg = *cfg;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->not_empty, NULL);
    pthread_cond_init(&p->not_full, NULL);
    int n = cfg->threads > 0 ? cfg->threads : 1;
    p->workers = calloc((size_t)n, sizeof *p->workers);
    if (!p->workers) {
        free(p);
        return NULL;
    }
    for (int i = 0; i < n; i++) {
        worker *w = &p->workers[i];
        w->p = p;
        if (kh_scratch_alloc(cfg->engine, &w->scratch) != KH_OK ||
            pthread_create(&w->thread, NULL, worker_main, w) != 0) {
            cli_error("cannot start worker %d", i);
            kh_scratch_free(w->scratch);
            w->scratch = NULL;
            break;
        }
        p->nworkers++;
    }
    if (p->nworkers == 0) {
        free(p->workers);
        free(p);
        return NULL;
    }
    return p;
}

int pipeline_emit(const source_item *src, void *ctx)
{
    pipeline *p = ctx;
    if (cli_interrupted())
        return 1; /* stops the walker */
    work_item it = {0};
    it.path = strdup(src->path);
    /* The walker's files are opened by the path they are shown by: one
     * copy serves both (item_free knows). */
    it.fs_path = src->fs_path && it.path && strcmp(src->fs_path, src->path) == 0
                     ? it.path
                     : dup_or_null(src->fs_path);
    it.commit = dup_or_null(src->commit);
    it.author = dup_or_null(src->author);
    it.email = dup_or_null(src->email);
    it.date = dup_or_null(src->date);
    if (src->data) {
        it.data = malloc(src->len ? src->len : 1);
        if (it.data)
            memcpy(it.data, src->data, src->len);
        it.len = src->len;
    }
    if (!it.path || (src->data && !it.data)) {
        pipeline_skip(src->path, "out of memory", p);
        item_free(&it);
        return 0;
    }
    pthread_mutex_lock(&p->mu);
    if (p->count == QUEUE_ITEMS || (p->count > 0 && p->bytes + it.len > QUEUE_BYTES)) {
        /* Full: wait for the low mark (every take below it signals, and
         * at count 0 the item fits whatever its size). */
        while (p->count > QUEUE_LOW || (p->count > 0 && p->bytes + it.len > QUEUE_BYTES))
            pthread_cond_wait(&p->not_full, &p->mu);
    }
    it.seq = p->next_seq++;
    p->ring[(p->head + p->count) % QUEUE_ITEMS] = it;
    p->count++;
    p->bytes += it.len;
    pthread_cond_signal(&p->not_empty);
    pthread_mutex_unlock(&p->mu);
    return 0;
}

void pipeline_skip(const char *path, const char *reason, void *ctx)
{
    pipeline *p = ctx;
    pthread_mutex_lock(&p->mu);
    p->skipped++;
    if (!p->cfg.quiet)
        fprintf(stderr, "%skeyhog: %s: skipped: %s\n", p->cfg.progress ? "\r\033[K" : "",
                path, reason);
    pthread_mutex_unlock(&p->mu);
}

void pipeline_totals(pipeline *p, uint64_t *files, uint64_t *bytes, uint64_t *findings)
{
    uint64_t f = 0, b = 0, n = 0;
    for (int i = 0; i < p->nworkers; i++) {
        worker *w = &p->workers[i];
        f += atomic_load_explicit(&w->files, memory_order_relaxed);
        b += atomic_load_explicit(&w->bytes, memory_order_relaxed);
        n += atomic_load_explicit(&w->shown, memory_order_relaxed);
    }
    *files = f;
    *bytes = b;
    *findings = n;
}

void pipeline_drain(pipeline *p)
{
    if (p->joined)
        return;
    pthread_mutex_lock(&p->mu);
    p->closed = 1;
    pthread_cond_broadcast(&p->not_empty);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->nworkers; i++)
        pthread_join(p->workers[i].thread, NULL);
    if (p->opener_started) /* the workers' writes are visible after their join */
        pthread_join(p->opener, NULL);
    p->joined = 1;
}

void pipeline_finish(pipeline *p, findings_vec *out, report_stats *stats)
{
    pipeline_drain(p);
    size_t total = 0;
    for (int i = 0; i < p->nworkers; i++)
        total += p->workers[i].found.count;
    out->items = calloc(total + 1, sizeof *out->items);
    out->cap = total + 1;
    out->count = 0;
    for (int i = 0; i < p->nworkers; i++) {
        worker *w = &p->workers[i];
        if (out->items) {
            if (w->found.count) /* items is NULL for a worker that found nothing */
                memcpy(out->items + out->count, w->found.items,
                       w->found.count * sizeof *w->found.items);
            out->count += w->found.count;
            free(w->found.items);
        } else {
            findings_vec_free(&w->found);
        }
        stats->files_scanned += atomic_load(&w->files);
        stats->bytes_scanned += atomic_load(&w->bytes);
        stats->suppressed += w->suppressed;
        kh_scratch_free(w->scratch);
        free(w->buf);
        free(w->marks);
        free(w->wide);
    }
    stats->files_skipped += p->skipped;
    gpu_report(p->cfg.gpu ? p->cfg.gpu : atomic_load(&p->lazy_gpu));
    kh_gpu_close(atomic_load(&p->lazy_gpu));
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->not_empty);
    pthread_cond_destroy(&p->not_full);
    free(p->workers);
    free(p);
}
