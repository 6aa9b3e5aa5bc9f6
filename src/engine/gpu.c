/*
 * gpu.c - loads the CUDA backend and dispatches batches to it.
 *
 * Plain C, always built into libkeyhog: the CUDA code is in a separate
 * libkeyhog_gpu.so that this file dlopens (next to the executable, then
 * $KEYHOG_GPU_LIB, then the default search path), so the binary runs the
 * same on machines without CUDA.  The backend returns keyword occurrences;
 * engine_regions_from_hits turns them into windows and engine_scan_regions
 * confirms them with the CPU path's code, so findings are identical.
 *
 * Fallback chain: the backend itself drops from its resident kernel to one
 * launch per batch; when a batch fails in that mode too, the kh_gpu drops
 * to the CPU for good (one line on stderr) and rescans the batch with
 * kh_scan, so a failure never loses findings.  With several devices there
 * is one session per device, each behind its own lock; callers take them
 * round robin, so worker threads keep every device busy while they confirm
 * earlier batches on their cores.
 */
#include <dlfcn.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "decode/decode.h"
#include "decode/trigger.h"
#include "engine/engine.h"
#include "engine/gpu.h"

#define GPU_MAX_DEVICES 16
#define GPU_MAX_LANES 8
#define GPU_DEFAULT_LANES 3
#define GPU_LIB_NAME "libkeyhog_gpu.so"

/* One session on one device: a lane.  A device has several, each with its
 * own streams, buffers and lock, so that one batch's copy overlaps
 * another's kernel and a worker never waits for a whole batch of someone
 * else's while the device has room. */
typedef struct gpu_device {
    gpu_session *session;
    pthread_mutex_t mu;
    atomic_int alive;
    int ordinal; /* the CUDA device */
    int lane;    /* 0 is the one with the resident kernel */
} gpu_device;

/* A caller's packing buffer (pinned when the backend has host_alloc). */
typedef struct gpu_pack {
    uint8_t *bytes;
    size_t cap;
    uint64_t *starts;
    size_t starts_cap;
    struct gpu_pack *next;
} gpu_pack;

struct kh_gpu {
    const kh_engine *engine;
    gpu_api api;
    void *dl; /* dlopen handle, NULL for a built-in api */
    gpu_device devices[GPU_MAX_DEVICES * GPU_MAX_LANES]; /* lanes, device by device */
    int ndevices; /* lanes, in fact */
    atomic_uint next;
    atomic_int cpu_only;
    int quiet;
    pthread_mutex_t status_mu;
    char status[320];
    /* Free packing buffers: a worker takes one per batch, so there are as
     * many as batches in flight at once. */
    pthread_mutex_t pack_mu;
    gpu_pack *packs;
    gpu_pack *lent; /* handed out by kh_gpu_buffer_take */
    /* Where the time goes (gpu_stats_get). */
    atomic_ullong st_batches, st_prepacked, st_bytes, st_pack_ns, st_wait_ns, st_device_ns,
        st_confirm_ns, st_hits, st_regions, st_region_bytes, st_decoded_bytes;
};

static uint64_t clock_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

void gpu_stats_get(const kh_gpu *g, gpu_stats *out)
{
    memset(out, 0, sizeof *out);
    if (!g)
        return;
    out->batches = atomic_load(&g->st_batches);
    out->bytes = atomic_load(&g->st_bytes);
    out->prepacked = atomic_load(&g->st_prepacked);
    out->pack_ns = atomic_load(&g->st_pack_ns);
    out->wait_ns = atomic_load(&g->st_wait_ns);
    out->device_ns = atomic_load(&g->st_device_ns);
    out->confirm_ns = atomic_load(&g->st_confirm_ns);
    out->hits = atomic_load(&g->st_hits);
    out->regions = atomic_load(&g->st_regions);
    out->region_bytes = atomic_load(&g->st_region_bytes);
    out->decoded_bytes = atomic_load(&g->st_decoded_bytes);
}

/* The smallest free buffer that holds `need` bytes, else the largest:
 * growing a page-locked buffer stops the device, so reuse what fits. */
static gpu_pack *pack_take(kh_gpu *g, size_t need)
{
    pthread_mutex_lock(&g->pack_mu);
    gpu_pack **best = NULL;
    for (gpu_pack **q = &g->packs; *q; q = &(*q)->next) {
        size_t c = (*q)->cap, b = best ? (*best)->cap : 0;
        if (!best || (c >= need ? b < need || c < b : b < need && c > b))
            best = q;
    }
    gpu_pack *p = NULL;
    if (best) {
        p = *best;
        *best = p->next;
    }
    pthread_mutex_unlock(&g->pack_mu);
    return p ? p : calloc(1, sizeof *p);
}

static void pack_give(kh_gpu *g, gpu_pack *p)
{
    pthread_mutex_lock(&g->pack_mu);
    p->next = g->packs;
    g->packs = p;
    pthread_mutex_unlock(&g->pack_mu);
}

static void pack_free(const kh_gpu *g, gpu_pack *p)
{
    if (g->api.host_alloc && g->api.host_free)
        g->api.host_free(p->bytes);
    else
        free(p->bytes);
    free(p->starts);
    free(p);
}

static void packs_free(const kh_gpu *g, gpu_pack *list)
{
    while (list) {
        gpu_pack *next = list->next;
        pack_free(g, list);
        list = next;
    }
}

/* pause 1: takes every device's lock and stops its resident kernel;
 * pause 0: starts them again and releases the locks. */
static void gpu_pause_all(kh_gpu *m, int pause)
{
    for (int i = 0; i < m->ndevices; i++) {
        gpu_device *d = &m->devices[pause ? i : m->ndevices - 1 - i];
        if (pause)
            pthread_mutex_lock(&d->mu);
        if (d->alive && m->api.session_pause)
            m->api.session_pause(d->session, pause);
        if (!pause)
            pthread_mutex_unlock(&d->mu);
    }
}

/* Grows p to hold at least `need` bytes and `n` + 1 chunk starts (a
 * page-locked buffer when the backend allocates them).  0 or KH_ENOMEM. */
static int pack_reserve(kh_gpu *g, gpu_pack *p, size_t need, size_t n, int exact)
{
    if (need > p->cap) {
        size_t cap = p->cap ? p->cap : (1u << 20);
        while (cap < need && !exact)
            cap *= 2;
        if (exact) /* a lent buffer: what was asked, in whole MiB */
            cap = (need + (1u << 20) - 1) & ~(size_t)((1u << 20) - 1);
        void *b = NULL;
        if (g->api.host_alloc && g->api.host_free) {
            /* A page-locked allocation waits for the device to be idle:
             * with every device lock held, stop the resident kernels
             * around it.  Buffers only grow, so this happens a few times
             * per worker, at the start. */
            gpu_pause_all(g, 1);
            g->api.host_free(p->bytes);
            p->bytes = NULL;
            p->cap = 0;
            if (g->api.host_alloc(cap, &b) != 0)
                b = NULL;
            gpu_pause_all(g, 0);
        } else {
            free(p->bytes);
            p->bytes = NULL;
            p->cap = 0;
            b = malloc(cap);
        }
        if (!b)
            return KH_ENOMEM;
        p->bytes = b;
        p->cap = cap;
    }
    if (n + 1 > p->starts_cap) {
        uint64_t *st = realloc(p->starts, (n + 1) * sizeof *st);
        if (!st)
            return KH_ENOMEM;
        p->starts = st;
        p->starts_cap = n + 1;
    }
    return KH_OK;
}

/* Packs the chunks back to back, a NUL after each and GPU_PACK_PAD zero
 * bytes at the end, into p (grown as needed).  Returns 0 or KH_ENOMEM. */
static int pack_batch(kh_gpu *g, gpu_pack *p, const kh_chunk *chunks, size_t n)
{
    uint64_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += chunks[i].len + 1;
    if (pack_reserve(g, p, (size_t)total + GPU_PACK_PAD, n, 0) != KH_OK)
        return KH_ENOMEM;
    uint64_t at = 0;
    for (size_t i = 0; i < n; i++) {
        p->starts[i] = at;
        if (chunks[i].len)
            memcpy(p->bytes + at, chunks[i].data, chunks[i].len);
        at += chunks[i].len;
        p->bytes[at++] = 0;
    }
    p->starts[n] = at;
    memset(p->bytes + at, 0, GPU_PACK_PAD);
    return KH_OK;
}

_Static_assert(KH_GPU_BUFFER_PAD == GPU_PACK_PAD, "the pad callers leave is the device's");

uint8_t *kh_gpu_buffer_take(kh_gpu *g, size_t bytes)
{
    if (!g)
        return NULL;
    gpu_pack *p = pack_take(g, bytes);
    if (!p)
        return NULL;
    if (pack_reserve(g, p, bytes ? bytes : 1, 0, 1) != KH_OK) {
        pack_give(g, p);
        return NULL;
    }
    pthread_mutex_lock(&g->pack_mu);
    p->next = g->lent;
    g->lent = p;
    pthread_mutex_unlock(&g->pack_mu);
    return p->bytes;
}

/* The lent buffer whose first byte is `bytes`, unlinked when `unlink`. */
static gpu_pack *lent_find(kh_gpu *g, const uint8_t *bytes, int unlink)
{
    gpu_pack *p = NULL;
    pthread_mutex_lock(&g->pack_mu);
    for (gpu_pack **q = &g->lent; *q; q = &(*q)->next)
        if ((*q)->bytes == bytes) {
            p = *q;
            if (unlink)
                *q = p->next;
            break;
        }
    pthread_mutex_unlock(&g->pack_mu);
    return p;
}

void kh_gpu_buffer_give(kh_gpu *g, uint8_t *buf)
{
    gpu_pack *p = g && buf ? lent_find(g, buf, 1) : NULL;
    if (p)
        pack_give(g, p);
}

/* The lent buffer the batch is laid out in as kh_gpu_buffer_take asks
 * (chunk 0 at its first byte, a NUL after each chunk, the zero pad after
 * the last), its starts filled; NULL for any other batch, which is packed. */
static gpu_pack *prepacked(kh_gpu *g, const kh_chunk *chunks, size_t n)
{
    gpu_pack *p = n ? lent_find(g, chunks[0].data, 0) : NULL;
    if (!p || pack_reserve(g, p, 0, n, 0) != KH_OK)
        return NULL;
    static const uint8_t zeros[GPU_PACK_PAD];
    uint64_t at = 0;
    for (size_t i = 0; i < n; i++) {
        if (chunks[i].data != p->bytes + at || chunks[i].len >= p->cap - at ||
            p->bytes[at + chunks[i].len] != 0)
            return NULL;
        p->starts[i] = at;
        at += chunks[i].len + 1;
    }
    p->starts[n] = at;
    if (p->cap - at < GPU_PACK_PAD || memcmp(p->bytes + at, zeros, GPU_PACK_PAD) != 0)
        return NULL;
    return p;
}

static void set_error(kh_error *err, int code, const char *fmt, const char *a, const char *b)
{
    if (!err)
        return;
    err->code = code;
    snprintf(err->message, sizeof err->message, fmt, a ? a : "", b ? b : "");
}

/* Whether `what` is an item of the comma list `list`. */
static int forced(const char *list, const char *what)
{
    size_t n = strlen(what);
    for (const char *p = list; p && (p = strstr(p, what)) != NULL; p += n)
        if ((p == list || p[-1] == ',') && (p[n] == 0 || p[n] == ','))
            return 1;
    return 0;
}

static const char *force_fail_of(const kh_gpu_opts *opts)
{
    if (opts && opts->force_fail)
        return opts->force_fail;
    const char *env = getenv("KEYHOG_GPU_FORCE_FAIL");
    return env && *env ? env : NULL;
}

/* dlopen in the documented order; the reason of the last failure is kept. */
static void *load_library(const kh_gpu_opts *opts, char *why, size_t cap)
{
    snprintf(why, cap, "%s not found", GPU_LIB_NAME);
    if (opts && opts->library) {
        void *h = dlopen(opts->library, RTLD_NOW | RTLD_LOCAL);
        if (!h)
            snprintf(why, cap, "%s", dlerror());
        return h;
    }
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = 0;
        char *slash = strrchr(exe, '/');
        if (slash && (size_t)(slash - exe) + sizeof GPU_LIB_NAME + 1 < sizeof exe) {
            strcpy(slash + 1, GPU_LIB_NAME);
            if (access(exe, R_OK) == 0) {
                void *h = dlopen(exe, RTLD_NOW | RTLD_LOCAL);
                if (h)
                    return h;
                snprintf(why, cap, "%s", dlerror());
            }
        }
    }
    const char *env = getenv("KEYHOG_GPU_LIB");
    if (env && *env) {
        void *h = dlopen(env, RTLD_NOW | RTLD_LOCAL);
        if (h)
            return h;
        snprintf(why, cap, "%s", dlerror());
        return NULL;
    }
    void *h = dlopen(GPU_LIB_NAME, RTLD_NOW | RTLD_LOCAL);
    if (!h)
        snprintf(why, cap, "%s", dlerror());
    return h;
}

static void gpu_set_status(kh_gpu *g, const char *text)
{
    pthread_mutex_lock(&g->status_mu);
    snprintf(g->status, sizeof g->status, "%s", text);
    pthread_mutex_unlock(&g->status_mu);
}

static void gpu_update_status(kh_gpu *g)
{
    if (atomic_load(&g->cpu_only))
        return;
    int alive = 0, last = -1;
    const char *mode = "launch";
    for (int i = 0; i < g->ndevices; i++) {
        if (!g->devices[i].alive)
            continue;
        alive += g->devices[i].ordinal != last; /* lanes of a device are adjacent */
        last = g->devices[i].ordinal;
        /* Modes only ever drop, and reading a constant string is safe;
         * the resident kernel is lane 0's. */
        if (g->devices[i].lane == 0)
            mode = g->api.session_mode(g->devices[i].session);
    }
    char text[128];
    snprintf(text, sizeof text, "gpu: %d device%s, %s kernel", alive, alive == 1 ? "" : "s",
             !strcmp(mode, "persistent") ? "persistent" : "per-batch");
    gpu_set_status(g, text);
}

static void gpu_drop_to_cpu(kh_gpu *g, const char *why)
{
    int expected = 0;
    if (!atomic_compare_exchange_strong(&g->cpu_only, &expected, 1))
        return;
    char text[320];
    snprintf(text, sizeof text, "cpu: %.300s", why);
    gpu_set_status(g, text);
    if (!g->quiet)
        fprintf(stderr, "keyhog: gpu: %s; scanning on the CPU\n", why);
}

/* ------------------------------------------------------------------ */
/* Keyword filters: what must follow a keyword                          */
/* ------------------------------------------------------------------ */

/*
 * Most vendor tokens are a literal prefix and a run of one character class
 * ('SK' and 32 hex digits), and most keyword-context patterns are a name
 * then an assignment ('api[_.-]?key[\w.-]{0,20}...[:=]').  When every
 * pattern of a detector passes through one of its keywords in every match,
 * an occurrence of that keyword not followed by what the pattern needs
 * there (the run; the next byte the match must reach over the bytes it may
 * cross; the assignment after it) cannot be the one inside a match: the
 * device drops it, and the CPU confirms far fewer windows.  The match's own
 * occurrence always passes, so its window is still there and the findings
 * do not change.
 *
 * The reader below understands just enough regex to prove that: literals,
 * escaped punctuation, classes and \w \d \s, groups, alternation and
 * quantifiers.  Anything else (lookaround, backreferences, \p, \x...) makes
 * the pattern unprovable and leaves the detector's keywords unfiltered.
 */

enum { RX_LIT, RX_CLASS, RX_OPEN, RX_CLOSE, RX_ALT, RX_ASSERT };

typedef struct rx_token {
    int kind;
    uint8_t lit;        /* RX_LIT */
    uint32_t cls[8];    /* RX_LIT (one byte) and RX_CLASS */
    unsigned min, max;  /* quantifier; 1,1 when none; max UINT_MAX unbounded */
    int match;          /* RX_OPEN: index of its RX_CLOSE, and back */
    char assert_kind;   /* RX_ASSERT: 'b' for \b, else what it is */
} rx_token;

static void cls_set(uint32_t *c, unsigned b)
{
    c[b >> 5] |= 1u << (b & 31);
}

static void cls_add_shorthand(uint32_t *c, char what)
{
    for (unsigned b = 0; b < 256; b++) {
        int in = 0;
        if (what == 'w' || what == 'W')
            in = (b >= '0' && b <= '9') || (b >= 'a' && b <= 'z') || (b >= 'A' && b <= 'Z') ||
                 b == '_';
        else if (what == 'd' || what == 'D')
            in = b >= '0' && b <= '9';
        else if (what == 's' || what == 'S')
            in = b == ' ' || (b >= 9 && b <= 13);
        if (what >= 'A' && what <= 'Z')
            in = !in;
        if (in)
            cls_set(c, b);
    }
}

/* Escaped bytes that stand for themselves. */
static int rx_plain_escape(char c)
{
    return c && strchr(".-/\\_:@#~!%&=,;'\"<>`[](){}|*+?^$ ", c) != NULL;
}

static int rx_escape_byte(char c, uint8_t *b)
{
    switch (c) {
    case 'n': *b = '\n'; return 1;
    case 't': *b = '\t'; return 1;
    case 'r': *b = '\r'; return 1;
    default:
        if (rx_plain_escape(c)) {
            *b = (uint8_t)c;
            return 1;
        }
        return 0;
    }
}

/* Parses [...] at r[*i] (just past '['); 0 on success. */
static int rx_class(const char *r, size_t *i, uint32_t *cls)
{
    int negate = 0;
    uint32_t c[8] = {0};
    if (r[*i] == '^') {
        negate = 1;
        (*i)++;
    }
    int first = 1;
    while (r[*i] && (r[*i] != ']' || first)) {
        first = 0;
        unsigned lo;
        if (r[*i] == '[')
            return 1; /* POSIX classes and nesting: not handled */
        if (r[*i] == '\\') {
            char e = r[*i + 1];
            if (!e)
                return 1;
            *i += 2;
            if (strchr("wWdDsS", e)) {
                cls_add_shorthand(c, e);
                continue;
            }
            uint8_t b;
            if (!rx_escape_byte(e, &b))
                return 1;
            lo = b;
        } else {
            lo = (uint8_t)r[(*i)++];
        }
        unsigned hi = lo;
        if (r[*i] == '-' && r[*i + 1] && r[*i + 1] != ']') {
            (*i)++;
            if (r[*i] == '\\') {
                uint8_t b;
                if (!rx_escape_byte(r[*i + 1], &b))
                    return 1;
                hi = b;
                *i += 2;
            } else {
                hi = (uint8_t)r[(*i)++];
            }
            if (hi < lo)
                return 1;
        }
        for (unsigned b = lo; b <= hi; b++)
            cls_set(c, b);
    }
    if (r[*i] != ']')
        return 1;
    (*i)++;
    for (int k = 0; k < 8; k++)
        cls[k] = negate ? ~c[k] : c[k];
    return 0;
}

/* Reads a quantifier at r[*i], if any, into min/max. */
static int rx_quantifier(const char *r, size_t *i, unsigned *min, unsigned *max)
{
    *min = *max = 1;
    char q = r[*i];
    if (q == '?' || q == '*' || q == '+') {
        *min = q == '+';
        *max = q == '?' ? 1 : UINT_MAX;
        (*i)++;
    } else if (q == '{') {
        char *end;
        unsigned long a = strtoul(r + *i + 1, &end, 10);
        if (end == r + *i + 1)
            return 0; /* a literal '{' */
        unsigned long b = a;
        if (*end == ',') {
            if (end[1] == '}') {
                b = UINT_MAX;
                end++;
            } else {
                char *e2;
                b = strtoul(end + 1, &e2, 10);
                if (e2 == end + 1)
                    return 1;
                end = e2;
            }
        }
        if (*end != '}')
            return 1;
        *min = a > 1000 ? 1000 : (unsigned)a;
        *max = b > UINT_MAX ? UINT_MAX : (unsigned)b;
        *i = (size_t)(end - r) + 1;
    } else {
        return 0;
    }
    if (r[*i] == '?' || r[*i] == '+')
        (*i)++; /* lazy or possessive: same lengths */
    return 0;
}

/* Tokenizes a regex; returns the count, or -1 for anything not handled. */
static int rx_tokens(const char *r, rx_token *t, int cap)
{
    int n = 0, stack[64], depth = 0;
    size_t i = 0;
    while (r[i]) {
        if (n >= cap)
            return -1;
        rx_token *k = &t[n];
        memset(k, 0, sizeof *k);
        char c = r[i];
        if (c == '(') {
            i++;
            if (r[i] == '?') {
                /* (?: (?i: (?im: and inline (?i): flags only. */
                size_t j = i + 1;
                while (r[j] && strchr("imsx-", r[j]))
                    j++;
                if (r[j] == ')') { /* inline flags: nothing to match */
                    i = j + 1;
                    continue;
                }
                if (r[j] != ':')
                    return -1; /* lookaround, named groups, ... */
                i = j + 1;
            }
            if (depth == 64)
                return -1;
            k->kind = RX_OPEN;
            stack[depth++] = n++;
            continue;
        }
        if (c == ')') {
            if (!depth)
                return -1;
            i++;
            k->kind = RX_CLOSE;
            int open = stack[--depth];
            k->match = open;
            t[open].match = n;
            if (rx_quantifier(r, &i, &k->min, &k->max))
                return -1;
            n++;
            continue;
        }
        if (c == '|') {
            k->kind = RX_ALT;
            i++;
            n++;
            continue;
        }
        if (c == '^' || c == '$') {
            k->kind = RX_ASSERT;
            k->assert_kind = c;
            i++;
            n++;
            continue;
        }
        if (c == '[') {
            i++;
            k->kind = RX_CLASS;
            if (rx_class(r, &i, k->cls))
                return -1;
        } else if (c == '.') {
            i++;
            k->kind = RX_CLASS;
            for (unsigned b = 0; b < 256; b++)
                if (b != '\n')
                    cls_set(k->cls, b);
        } else if (c == '\\') {
            char e = r[i + 1];
            i += 2;
            if (e == 'b' || e == 'B' || e == 'A' || e == 'z' || e == 'Z') {
                k->kind = RX_ASSERT;
                k->assert_kind = e;
                n++;
                continue;
            }
            if (e && strchr("wWdDsS", e)) {
                k->kind = RX_CLASS;
                cls_add_shorthand(k->cls, e);
            } else {
                uint8_t b;
                if (!rx_escape_byte(e, &b))
                    return -1;
                k->kind = RX_LIT;
                k->lit = b;
                cls_set(k->cls, b);
            }
        } else if (c == '*' || c == '+' || c == '?' || c == '{' || c == ']' || c == '}') {
            if (c != '{' && c != ']' && c != '}')
                return -1;
            i++;
            k->kind = RX_LIT;
            k->lit = (uint8_t)c;
            cls_set(k->cls, (uint8_t)c);
        } else {
            i++;
            k->kind = RX_LIT;
            k->lit = (uint8_t)c;
            cls_set(k->cls, (uint8_t)c);
        }
        if (rx_quantifier(r, &i, &k->min, &k->max))
            return -1;
        n++;
    }
    return depth ? -1 : n;
}

static uint8_t ascii_lower(uint8_t c)
{
    return c >= 'A' && c <= 'Z' ? (uint8_t)(c | 0x20) : c;
}

/* The bytes that can start group t[open] ("(?:prod|dev|stg)"): each
 * alternative must begin with a literal or class that is not optional.
 * Returns 0 when some alternative may start otherwise (empty, optional,
 * nested group, assertion). */
static int rx_group_first(const rx_token *t, int open, uint32_t *cls)
{
    memset(cls, 0, 8 * sizeof *cls);
    int close = t[open].match, at_start = 1;
    for (int k = open + 1; k < close; k++) {
        if (t[k].kind == RX_OPEN && !at_start) {
            k = t[k].match; /* inside an alternative: skip the group */
            continue;
        }
        if (t[k].kind == RX_ALT) {
            if (at_start)
                return 0; /* an empty alternative */
            at_start = 1;
            continue;
        }
        if (!at_start)
            continue;
        if ((t[k].kind != RX_LIT && t[k].kind != RX_CLASS) || t[k].min == 0)
            return 0;
        for (int w = 0; w < 8; w++)
            cls[w] |= t[k].cls[w];
        at_start = 0;
    }
    return !at_start;
}

static unsigned sat_add(unsigned a, unsigned b)
{
    return a > UINT_MAX - b ? UINT_MAX : a + b;
}

static unsigned sat_mul(unsigned a, unsigned b)
{
    return a && b > UINT_MAX / a ? UINT_MAX : a * b;
}

static void cls_fold(uint32_t *c)
{
    for (unsigned b = 'A'; b <= 'Z'; b++)
        if (GPU_IN_CLASS(c, b) || GPU_IN_CLASS(c, b | 0x20)) {
            cls_set(c, b);
            cls_set(c, b | 0x20);
        }
}

static unsigned cls_count(const uint32_t *c)
{
    unsigned n = 0;
    for (int w = 0; w < 8; w++)
        n += (unsigned)__builtin_popcount(c[w]);
    return n;
}

/* The RX_CLOSE ending the group that token pos is in (nested groups
 * skipped), or n at the top level. */
static int rx_level_end(const rx_token *t, int n, int pos)
{
    for (int k = pos; k < n; k++) {
        if (t[k].kind == RX_OPEN)
            k = t[k].match;
        else if (t[k].kind == RX_CLOSE)
            return k;
    }
    return n;
}

/* Where a match goes on from token pos: the end of an alternative leads
 * to the end of its group, the end of a group that does not repeat to what
 * follows it, assertions match nothing.  n at the end of the pattern, -1
 * when a repeating group could lead back. */
static int rx_next(const rx_token *t, int n, int pos)
{
    while (pos < n) {
        if (t[pos].kind == RX_ALT)
            pos = rx_level_end(t, n, pos);
        else if (t[pos].kind == RX_CLOSE && t[pos].max > 1)
            return -1;
        else if (t[pos].kind == RX_CLOSE || t[pos].kind == RX_ASSERT)
            pos++;
        else
            return pos;
    }
    return n;
}

/* The longest text tokens [lo, hi) match; UINT_MAX when unbounded. */
static unsigned rx_max_len(const rx_token *t, int lo, int hi)
{
    unsigned best = 0, cur = 0;
    for (int k = lo; k < hi; k++) {
        if (t[k].kind == RX_ALT) {
            best = cur > best ? cur : best;
            cur = 0;
        } else if (t[k].kind == RX_OPEN) {
            int c = t[k].match;
            cur = sat_add(cur, sat_mul(rx_max_len(t, k + 1, c), t[c].max));
            k = c;
        } else if (t[k].kind == RX_LIT || t[k].kind == RX_CLASS) {
            cur = sat_add(cur, t[k].max);
        }
    }
    return cur > best ? cur : best;
}

/* Whether token p must match at least one byte, all of them from `first`:
 * a literal or class, or a group whose alternatives each start so. */
static int rx_first_byte(const rx_token *t, int p, uint32_t *first)
{
    if ((t[p].kind == RX_CLASS || t[p].kind == RX_LIT) && t[p].min > 0) {
        memcpy(first, t[p].cls, 8 * sizeof *first);
        return 1;
    }
    return t[p].kind == RX_OPEN && t[t[p].match].min > 0 && rx_group_first(t, p, first);
}

/* A stop class with more bytes than this is crossed, not tested. */
#define STOP_CLASS_MAX 40

static int cls_has_alnum(const uint32_t *c)
{
    for (unsigned b = '0'; b <= 'z'; b++)
        if (GPU_IN_CLASS(c, b) && ((b >= '0' && b <= '9') || (b >= 'a' && b <= 'z') ||
                                   (b >= 'A' && b <= 'Z')))
            return 1;
    return 0;
}

/* The test for a keyword occurrence whose last byte is token after-1:
 * the run that must follow it (min_run), and the stop tests: the first
 * byte the match must reach within GPU_MAX_STOP bytes, then the first
 * punctuation after that one.  Each token the walk crosses on the way
 * (optional, of a class too wide to test, or tested already) adds its
 * bytes to `skip` and its longest length to the distance.  Any of them
 * may be absent. */
static void rx_occurrence_filter(const rx_token *t, int n, int after, gpu_keyword_filter *f)
{
    memset(f, 0, sizeof *f);
    int p = rx_next(t, n, after), run = -1;
    if (p >= 0 && p < n && rx_first_byte(t, p, f->cls)) {
        f->min_run = t[p].kind == RX_OPEN ? 1 : t[p].min;
        if (f->min_run > GPU_MAX_RUN)
            f->min_run = GPU_MAX_RUN;
        cls_fold(f->cls);
        run = p;
    }
    /* Stop bytes are looked for past the run's token, which the run test
     * already covers: 'tr_' then (?:prod|dev|stg) then '_'. */
    uint32_t skip[8] = {0};
    unsigned reach = 0;
    int found = 0;
    for (p = after; found < GPU_STOP_TESTS && (p = rx_next(t, n, p)) >= 0 && p < n;) {
        const rx_token *k = &t[p];
        uint32_t first[8];
        if (p != run && rx_first_byte(t, p, first)) {
            cls_fold(first);
            if (cls_count(first) <= STOP_CLASS_MAX && (found == 0 || !cls_has_alnum(first))) {
                gpu_stop_test *st = &f->stops[found++];
                memcpy(st->stop, first, sizeof st->stop);
                memcpy(st->skip, skip, sizeof st->skip);
                cls_fold(st->skip);
                st->within = reach + 1;
            }
        }
        unsigned len = k->max;
        int end = p;
        if (k->kind == RX_OPEN) {
            end = k->match;
            len = sat_mul(rx_max_len(t, p + 1, end), t[end].max);
        }
        for (int q = p; q <= end; q++)
            if (t[q].kind == RX_LIT || t[q].kind == RX_CLASS)
                for (int w = 0; w < 8; w++)
                    skip[w] |= t[q].cls[w];
        reach = sat_add(reach, len);
        if (reach >= GPU_MAX_STOP)
            return;
        p = end + 1;
    }
}

/* The RX_OPEN of the group that token pos is in, or -1 at the top level. */
static int rx_level_open(const rx_token *t, int pos)
{
    for (int k = pos - 1; k >= 0; k--) {
        if (t[k].kind == RX_CLOSE)
            k = t[k].match;
        else if (t[k].kind == RX_OPEN)
            return k;
    }
    return -1;
}

/* The bytes that can stand right before a keyword occurrence whose first
 * byte (`first`) is token k, walking back: optional literals and classes
 * add theirs, the first one that must match ends the walk; at the start of
 * an alternative or a group that does not repeat, what stands before the
 * group; \b says the byte's word class.  0 when anything may (the match
 * can start there, or a group ends right before it). */
static int rx_before(const rx_token *t, int k, uint8_t first, uint32_t *cls)
{
    memset(cls, 0, 8 * sizeof *cls);
    for (int p = k - 1;;) {
        if (p < 0)
            return 0; /* the match may start at the keyword */
        const rx_token *q = &t[p];
        if (q->kind == RX_LIT || q->kind == RX_CLASS) {
            for (int w = 0; w < 8; w++)
                cls[w] |= q->cls[w];
            if (q->min > 0)
                break;
            p--;
        } else if (q->kind == RX_ASSERT && q->assert_kind == 'b') {
            uint32_t word[8] = {0};
            cls_add_shorthand(word, 'w');
            cls_add_shorthand(cls, GPU_IN_CLASS(word, first) ? 'W' : 'w');
            break;
        } else if (q->kind == RX_OPEN || q->kind == RX_ALT) {
            int open = q->kind == RX_OPEN ? p : rx_level_open(t, p);
            if (open < 0 || t[t[open].match].max > 1)
                return 0;
            p = open - 1;
        } else {
            return 0; /* another assertion, or a group's end */
        }
    }
    cls_fold(cls);
    cls_set(cls, 0);
    return 1;
}

/* Whether a filter tests anything. */
static int filter_tests(const gpu_keyword_filter *f)
{
    return f->min_run || f->stops[0].within || f->stops[1].within || f->before_test;
}

/* A set of keyword occurrences every match of some tokens passes through
 * at least one of, with the test each gets; `good` when every one has a
 * test. */
#define COVER_MAX 16
typedef struct rx_cover {
    int n, good;
    uint32_t keyword[COVER_MAX];
    gpu_keyword_filter f[COVER_MAX];
} rx_cover;

/* A detector's keywords. */
typedef struct rx_keywords {
    const char *const *kw;
    size_t n;
} rx_keywords;

static int rx_cover_alts(const rx_token *t, int n, int lo, int hi, const rx_keywords *d,
                         int depth, rx_cover *c);

/* One alternative, tokens [lo, hi) without '|' at their level: it is
 * covered by a keyword spelt out by its literals, or by a group it cannot
 * skip that is covered.  The first covering place with tests wins, else the
 * first covering place. */
static int rx_cover_seq(const rx_token *t, int n, int lo, int hi, const rx_keywords *d,
                        int depth, rx_cover *best)
{
    int have = 0;
    rx_cover *cand = malloc(sizeof *cand);
    if (!cand)
        return 0;
    for (int k = lo; k < hi && !(have && best->good); k++) {
        if (t[k].kind == RX_OPEN) {
            int close = t[k].match;
            if (t[close].min > 0 && rx_cover_alts(t, n, k + 1, close, d, depth + 1, cand) &&
                (!have || cand->good)) {
                *best = *cand;
                have = 1;
            }
            k = close;
            continue;
        }
        if (t[k].kind != RX_LIT)
            continue;
        for (uint32_t q = 0; q < d->n; q++) {
            /* The keyword's bytes one literal each, along the only way a
             * match can go: out of the group at the end of an alternative
             * ('(?:prod|dev):' spells 'dev:'). */
            const char *kw = d->kw[q];
            int kl = (int)strlen(kw), m = 0, at = k;
            while (m < kl && at >= 0 && at < n && t[at].kind == RX_LIT && t[at].min == 1 &&
                   t[at].max == 1 && ascii_lower(t[at].lit) == ascii_lower((uint8_t)kw[m])) {
                m++;
                at = m < kl ? rx_next(t, n, at + 1) : at + 1;
            }
            if (m < kl || kl == 0)
                continue;
            cand->n = 1;
            cand->keyword[0] = q;
            rx_occurrence_filter(t, n, at, &cand->f[0]);
            cand->f[0].before_test = rx_before(t, k, (uint8_t)kw[0], cand->f[0].before);
            cand->good = filter_tests(&cand->f[0]);
            if (!have || (cand->good && !best->good)) {
                *best = *cand;
                have = 1;
            }
        }
    }
    free(cand);
    return have;
}

/* Tokens [lo, hi), alternatives at their level: each must be covered. */
static int rx_cover_alts(const rx_token *t, int n, int lo, int hi, const rx_keywords *d,
                         int depth, rx_cover *c)
{
    if (depth > 8)
        return 0;
    rx_cover *alt = malloc(sizeof *alt);
    if (!alt)
        return 0;
    c->n = 0;
    c->good = 1;
    int ok = 1;
    for (int k = lo, start = lo; ok && k <= hi; k++) {
        if (k < hi && t[k].kind == RX_OPEN) {
            k = t[k].match;
            continue;
        }
        if (k < hi && t[k].kind != RX_ALT)
            continue;
        ok = rx_cover_seq(t, n, start, k, d, depth, alt) && c->n + alt->n <= COVER_MAX;
        if (ok) {
            memcpy(c->keyword + c->n, alt->keyword, (size_t)alt->n * sizeof *c->keyword);
            memcpy(c->f + c->n, alt->f, (size_t)alt->n * sizeof *c->f);
            c->n += alt->n;
            c->good &= alt->good;
        }
        start = k + 1;
    }
    free(alt);
    return ok;
}

/* A keyword's test when several occurrences rely on it: any of them may be
 * the one, so each part of the test is the weaker of the two. */
static void filter_merge(gpu_keyword_filter *into, const gpu_keyword_filter *f)
{
    if (!into->min_run || !f->min_run) {
        into->min_run = 0;
        memset(into->cls, 0, sizeof into->cls);
    } else {
        into->min_run = f->min_run < into->min_run ? f->min_run : into->min_run;
        for (int w = 0; w < 8; w++)
            into->cls[w] |= f->cls[w];
    }
    for (int k = 0; k < GPU_STOP_TESTS; k++) {
        gpu_stop_test *a = &into->stops[k];
        const gpu_stop_test *b = &f->stops[k];
        if (!a->within || !b->within) {
            memset(a, 0, sizeof *a);
            continue;
        }
        a->within = b->within > a->within ? b->within : a->within;
        for (int w = 0; w < 8; w++) {
            a->stop[w] |= b->stop[w];
            a->skip[w] |= b->skip[w];
        }
    }
    if (!into->before_test || !f->before_test) {
        into->before_test = 0;
        memset(into->before, 0, sizeof into->before);
    } else {
        for (int w = 0; w < 8; w++)
            into->before[w] |= f->before[w];
    }
}

/*
 * Each pattern of a detector must pass through one of its keywords in
 * every match: a keyword spelt out by literals at a place the match cannot
 * skip, or inside each alternative of a group it cannot skip
 * ('(?:api[_.-]?key|apikey)').  Those occurrences are the ones the regions
 * rely on; each gets the test of what follows it, and a keyword's filter is
 * the weakest over the occurrences that rely on it (a keyword none relies
 * on keeps every hit: its filter tests nothing).
 */
int gpu_regex_filters(const char *const *regexes, size_t npatterns,
                      const char *const *keywords, size_t nkeywords, gpu_keyword_filter *f)
{
    if (nkeywords == 0 || nkeywords > 64)
        return 0;
    memset(f, 0, nkeywords * sizeof *f);
    rx_token *t = malloc(1024 * sizeof *t);
    rx_cover *c = malloc(sizeof *c);
    int ok = t && c;
    uint8_t relied[64] = {0};
    rx_keywords kw = {keywords, nkeywords};
    for (size_t pi = 0; ok && pi < npatterns; pi++) {
        int n = rx_tokens(regexes[pi], t, 1024);
        ok = n >= 0 && rx_cover_alts(t, n, 0, n, &kw, 0, c);
        for (int u = 0; ok && u < c->n; u++) {
            uint32_t k = c->keyword[u];
            if (relied[k])
                filter_merge(&f[k], &c->f[u]);
            else
                f[k] = c->f[u];
            relied[k] = 1;
        }
    }
    free(t);
    free(c);
    if (!ok)
        memset(f, 0, nkeywords * sizeof *f);
    return ok;
}

int gpu_filter_pass(const gpu_keyword_filter *f, const uint8_t *data, size_t len, size_t start,
                    size_t at)
{
    if (f->before_test && !GPU_IN_CLASS(f->before, start ? data[start - 1] : 0u))
        return 0;
    uint32_t r = 0;
    for (; r < f->min_run; r++) {
        size_t p = at + r;
        if (p > len)
            break; /* past the separator: the device reads on; keep */
        unsigned b = p < len ? data[p] : 0;
        if (!GPU_IN_CLASS(f->cls, b))
            break;
    }
    if (r < f->min_run && at + r <= len)
        return 0;
    for (int k = 0; k < GPU_STOP_TESTS; k++) {
        const gpu_stop_test *st = &f->stops[k];
        uint32_t q = 0;
        for (; q < st->within && at + q <= len; q++) {
            unsigned b = at + q < len ? data[at + q] : 0;
            if (GPU_IN_CLASS(st->stop, b))
                break;
            if (!GPU_IN_CLASS(st->skip, b))
                q = st->within;
        }
        if (st->within && q >= st->within)
            return 0;
    }
    return 1;
}

int gpu_keyword_filters(const kh_engine *e, gpu_keyword_filter *out)
{
    size_t nk = engine_keyword_count(e);
    memset(out, 0, (nk ? nk : 1) * sizeof *out);
    int filtered = 0;
    const kh_detectors *set = e->set;
    /* Keyword entries are laid out detector by detector, in set order. */
    size_t base = 0;
    for (uint32_t di = 0; di < set->count; di++) {
        const spec_detector *d = set->items[di];
        size_t kc = d->keyword_count;
        int ok = kc > 0 && kc <= 64 && base + kc <= nk;
        /* Patterns off Vectorscan are found through their keywords
         * anywhere in the chunk: their keywords must all stay. */
        for (uint32_t p = 0; p < e->pattern_count && ok; p++)
            if (e->patterns[p].detector == di && !e->patterns[p].on_vectorscan)
                ok = 0;
        const char *rx[64];
        gpu_keyword_filter f[64];
        ok = ok && d->pattern_count <= 64;
        for (size_t pi = 0; ok && pi < d->pattern_count; pi++)
            rx[pi] = d->patterns[pi].regex;
        if (ok && gpu_regex_filters(rx, d->pattern_count, (const char *const *)d->keywords, kc, f))
            for (size_t k = 0; k < kc; k++)
                if (filter_tests(&f[k])) {
                    out[base + k] = f[k];
                    filtered++;
                }
        base += kc;
    }
    return filtered;
}

/* Lanes (sessions) per device: KEYHOG_GPU_LANES, 1 to GPU_MAX_LANES; any
 * other value is named on stderr and the default kept. */
static int lanes_wanted(int quiet)
{
    const char *v = getenv("KEYHOG_GPU_LANES");
    if (!v || !*v)
        return GPU_DEFAULT_LANES;
    char *end;
    long n = strtol(v, &end, 10);
    if (*end || n < 1 || n > GPU_MAX_LANES) {
        if (!quiet)
            fprintf(stderr, "keyhog: KEYHOG_GPU_LANES=%s: not a number from 1 to %d; using %d\n",
                    v, GPU_MAX_LANES, GPU_DEFAULT_LANES);
        return GPU_DEFAULT_LANES;
    }
    return (int)n;
}

int gpu_open_api(const kh_engine *e, const gpu_api *api, const kh_gpu_opts *opts,
                 kh_gpu **out, kh_error *err)
{
    if (!e || !api || !out)
        return KH_EINVAL;
    *out = NULL;
    if (!api->api_version || api->api_version() != GPU_ABI_VERSION) {
        set_error(err, KH_EUNSUPPORTED, "gpu: backend ABI version mismatch%s%s", NULL, NULL);
        return KH_EUNSUPPORTED;
    }
    size_t nk = engine_keyword_count(e);
    gpu_keyword_filter *filters = NULL;
    const char **kw = malloc((nk + 1) * sizeof *kw);
    kh_gpu *g = calloc(1, sizeof *g);
    if (!kw || !g) {
        free(kw);
        free(g);
        return KH_ENOMEM;
    }
    for (size_t i = 0; i < nk; i++) {
        kw[i] = engine_keyword(e, i, NULL);
        size_t l = strlen(kw[i]);
        if (l < 2 || l > GPU_MAX_KEYWORD) {
            set_error(err, KH_EUNSUPPORTED, "gpu: keyword '%s' is too %s for the device tables",
                      kw[i], l < 2 ? "short" : "long");
            free(kw);
            free(g);
            return KH_EUNSUPPORTED;
        }
    }
    g->engine = e;
    g->api = *api;
    g->quiet = opts ? opts->quiet : 0;
    pthread_mutex_init(&g->status_mu, NULL);
    pthread_mutex_init(&g->pack_mu, NULL);
    char msg[256] = "no device";
    int count = 0;
    if (api->device_count(&count, msg, sizeof msg) != 0 || count <= 0) {
        set_error(err, KH_EUNSUPPORTED, "gpu: %s%s", msg, NULL);
        goto fail;
    }
    int first = 0, last = count;
    if (opts && !opts->all_devices) {
        if (opts->device < 0 || opts->device >= count) {
            set_error(err, KH_EINVAL, "gpu: no device %s%s", "with that index", NULL);
            goto fail;
        }
        first = opts->device;
        last = first + 1;
    }
    if (last - first > GPU_MAX_DEVICES)
        last = first + GPU_MAX_DEVICES;
    /* KEYHOG_GPU_FILTERS=0 turns the token-shape filters off (to measure
     * what they save; the findings are the same either way). */
    const char *fenv = getenv("KEYHOG_GPU_FILTERS");
    filters = calloc(nk + 1, sizeof *filters);
    if (filters && !(fenv && !strcmp(fenv, "0")))
        gpu_keyword_filters(e, filters);
    gpu_session_opts so = {
        .persistent = !(opts && opts->no_persistent),
        .force_fail = force_fail_of(opts),
        .quiet = g->quiet,
        .filters = filters,
    };
    int lanes = lanes_wanted(g->quiet), persistent = so.persistent;
    for (int d = first; d < last; d++) {
        so.device = d;
        for (int l = 0; l < lanes; l++) {
            so.persistent = persistent && l == 0; /* one resident kernel a device */
            gpu_session *s = NULL;
            if (api->session_open(kw, (uint32_t)nk, &so, &s, msg, sizeof msg) != 0)
                break; /* keep the devices (and lanes) that work */
            gpu_device *dev = &g->devices[g->ndevices++];
            dev->session = s;
            dev->alive = 1;
            dev->ordinal = d;
            dev->lane = l;
            pthread_mutex_init(&dev->mu, NULL);
        }
    }
    if (g->ndevices == 0) {
        set_error(err, KH_EUNSUPPORTED, "gpu: %s%s", msg, NULL);
        goto fail;
    }
    free(kw);
    free(filters);
    gpu_update_status(g);
    *out = g;
    return KH_OK;
fail:
    pthread_mutex_destroy(&g->status_mu);
    pthread_mutex_destroy(&g->pack_mu);
    free(kw);
    free(filters);
    free(g);
    return err ? err->code : KH_EUNSUPPORTED;
}

int kh_gpu_open(const kh_engine *e, const kh_gpu_opts *opts, kh_gpu **out, kh_error *err)
{
    if (!e || !out)
        return KH_EINVAL;
    *out = NULL;
    const char *ff = force_fail_of(opts);
    if (forced(ff, "load")) {
        set_error(err, KH_EUNSUPPORTED, "gpu: %s not loaded (forced by %s)", GPU_LIB_NAME,
                  "KEYHOG_GPU_FORCE_FAIL=load");
        return KH_EUNSUPPORTED;
    }
    /* Test hook: the device ABI implemented on the CPU (slow keyword
     * search), so the GPU path's CPU side - the CLI's batch arena, packing,
     * confirmation - runs end to end on machines without a device. */
    const char *ref = getenv("KEYHOG_GPU_REFERENCE");
    if (ref && !strcmp(ref, "1"))
        return gpu_open_api(e, gpu_reference_api(), opts, out, err);
    char why[400];
    void *dl = load_library(opts, why, sizeof why);
    if (!dl) {
        set_error(err, KH_EUNSUPPORTED, "gpu: cannot load backend: %s%s", why, NULL);
        return KH_EUNSUPPORTED;
    }
    gpu_get_api_fn get = (gpu_get_api_fn)(uintptr_t)dlsym(dl, GPU_GET_API_SYMBOL);
    gpu_api api = {0};
    if (!get || get(&api) != 0) {
        set_error(err, KH_EUNSUPPORTED, "gpu: %s lacks %s", GPU_LIB_NAME, GPU_GET_API_SYMBOL);
        dlclose(dl);
        return KH_EUNSUPPORTED;
    }
    int rc = gpu_open_api(e, &api, opts, out, err);
    if (rc != KH_OK) {
        dlclose(dl);
        return rc;
    }
    (*out)->dl = dl;
    return KH_OK;
}

void kh_gpu_close(kh_gpu *g)
{
    if (!g)
        return;
    for (int i = 0; i < g->ndevices; i++) {
        g->api.session_close(g->devices[i].session);
        pthread_mutex_destroy(&g->devices[i].mu);
    }
    pthread_mutex_destroy(&g->status_mu);
    packs_free(g, g->packs);
    packs_free(g, g->lent); /* buffers not given back */
    pthread_mutex_destroy(&g->pack_mu);
    /* libcudart registers exit handlers: unloading it before exit can run
     * them on freed code, so the library stays mapped (dlclose is skipped). */
    free(g);
}

const char *kh_gpu_status(const kh_gpu *g)
{
    return g ? g->status : "cpu: no gpu";
}

/* ------------------------------------------------------------------ */
/* Batches                                                             */
/* ------------------------------------------------------------------ */

typedef struct batch_ctx {
    kh_on_batch_finding cb;
    void *ctx;
    size_t chunk;
} batch_ctx;

static int batch_trampoline(const kh_finding *f, void *ctx)
{
    batch_ctx *b = ctx;
    return b->cb ? b->cb(f, b->chunk, b->ctx) : 0;
}

static int scan_batch_cpu(const kh_engine *e, kh_scratch *s, const kh_chunk *chunks,
                          size_t from, size_t n, batch_ctx *bc, int *status)
{
    for (size_t i = from; i < n; i++) {
        bc->chunk = i;
        int rc = kh_scan(e, s, &chunks[i], batch_trampoline, bc);
        if (status)
            status[i] = rc;
        if (rc == KH_ESTOPPED)
            return KH_ESTOPPED;
    }
    return KH_OK;
}

/* Packs the batch on the calling thread (into pinned memory, outside any
 * lock, so workers pack in parallel), then submits under one device's lock
 * and copies the hits out: the lock is held only while the device works,
 * never while the CPU packs or confirms. */
/* Where each of n chunks of lengths len starts when packed (a NUL after
 * each), and the total at [n]: malloc'd, NULL when out of memory. */
static uint64_t *packed_starts(const size_t *len, size_t n)
{
    uint64_t *starts = malloc((n + 1) * sizeof *starts);
    if (starts) {
        starts[0] = 0;
        for (size_t i = 0; i < n; i++)
            starts[i + 1] = starts[i] + len[i] + 1;
    }
    return starts;
}

/* A lane for one batch, locked, or NULL when none is alive.  A small
 * batch waits for lane 0 of a device (the resident kernel's); a big one
 * takes any lane that is free, else waits for the next in round robin. */
static gpu_device *lane_take(kh_gpu *g, int small)
{
    uint64_t w0 = clock_ns();
    gpu_device *got = NULL;
    /* Pass 0: a small batch waits for a lane 0, a big one tries each lane
     * without waiting; pass 1 (no lane 0 alive, or every lane busy) waits
     * for the next alive lane. */
    for (int pass = 0; pass < 2 && !got; pass++) {
        unsigned start = atomic_fetch_add(&g->next, 1);
        for (int i = 0; i < g->ndevices && !got; i++) {
            gpu_device *d = &g->devices[(start + (unsigned)i) % (unsigned)g->ndevices];
            if (!atomic_load(&d->alive) || (pass == 0 && small && d->lane != 0))
                continue;
            if (pass == 0 && !small) {
                if (pthread_mutex_trylock(&d->mu) != 0)
                    continue;
            } else {
                pthread_mutex_lock(&d->mu);
            }
            if (atomic_load(&d->alive))
                got = d;
            else
                pthread_mutex_unlock(&d->mu);
        }
    }
    atomic_fetch_add(&g->st_wait_ns, clock_ns() - w0);
    return got;
}

static int gpu_collect_hits(kh_gpu *g, const kh_chunk *chunks, size_t n, gpu_hit **hits,
                            size_t *nhits)
{
    const uint8_t **data = NULL;
    size_t *len = NULL;
    gpu_pack *pk = NULL, *mine = NULL;
    uint64_t t0 = clock_ns();
    if (g->api.session_submit_packed && (mine = prepacked(g, chunks, n)) != NULL) {
        pk = mine; /* read there by the caller: no packing copy */
        atomic_fetch_add(&g->st_prepacked, 1);
    } else if (g->api.session_submit_packed) {
        size_t need = GPU_PACK_PAD;
        for (size_t i = 0; i < n; i++)
            need += chunks[i].len + 1;
        pk = pack_take(g, need);
        if (!pk)
            return KH_ENOMEM;
        if (pack_batch(g, pk, chunks, n) != KH_OK) {
            pack_give(g, pk);
            return KH_ENOMEM;
        }
    } else {
        data = malloc((n + 1) * sizeof *data);
        len = malloc((n + 1) * sizeof *len);
        if (!data || !len) {
            free(data);
            free(len);
            return KH_ENOMEM;
        }
        for (size_t i = 0; i < n; i++) {
            data[i] = chunks[i].data;
            len[i] = chunks[i].len;
        }
    }
    uint64_t t1 = clock_ns();
    atomic_fetch_add(&g->st_pack_ns, t1 - t0);
    int rc = KH_EUNSUPPORTED;
    size_t bytes = pk ? (size_t)pk->starts[n] : 0;
    gpu_device *d;
    while (rc == KH_EUNSUPPORTED && (d = lane_take(g, pk && bytes <= GPU_SMALL_BATCH)) != NULL) {
        uint64_t w1 = clock_ns();
        gpu_batch_result res = {0};
        char msg[256] = "batch failed";
        const char *mode_before = g->api.session_mode(d->session);
        int src = pk ? g->api.session_submit_packed(d->session, pk->bytes, pk->starts, n, &res,
                                                    msg, sizeof msg)
                     : g->api.session_submit_batch(d->session, data, len, n, &res, msg,
                                                   sizeof msg);
        if (src != 0) {
            atomic_store(&d->alive, 0);
            pthread_mutex_unlock(&d->mu);
            int left = 0;
            for (int i = 0; i < g->ndevices; i++)
                left += g->devices[i].alive;
            if (!left)
                gpu_drop_to_cpu(g, msg);
            continue;
        }
        if (res.overflow) {
            rc = KH_ELIMIT;
        } else {
            *hits = malloc((res.nhits + 1) * sizeof **hits);
            if (*hits) {
                memcpy(*hits, res.hits, res.nhits * sizeof **hits);
                *nhits = res.nhits;
                rc = KH_OK;
            } else {
                rc = KH_ENOMEM;
            }
        }
        int dropped = strcmp(mode_before, g->api.session_mode(d->session)) != 0;
        pthread_mutex_unlock(&d->mu);
        atomic_fetch_add(&g->st_device_ns, clock_ns() - w1);
        if (dropped)
            gpu_update_status(g);
    }
    /* The device's hits (packed positions) to chunks, off the device lock;
     * out of memory, the caller scans the batch on the CPU. */
    if (rc == KH_OK) {
        uint64_t *starts = pk ? pk->starts : packed_starts(len, n);
        gpu_hit *grouped = malloc((*nhits + 1) * sizeof *grouped);
        size_t kept = starts && grouped ? gpu_hits_group(*hits, *nhits, starts, n, grouped)
                                        : SIZE_MAX;
        free(*hits);
        *hits = grouped;
        *nhits = kept;
        if (kept == SIZE_MAX) {
            free(grouped);
            *hits = NULL;
            *nhits = 0;
            rc = KH_ENOMEM;
        }
        if (!pk)
            free(starts);
    }
    if (pk && pk != mine)
        pack_give(g, pk);
    free(data);
    free(len);
    return rc;
}

#define GROUP_PAGE_LOG 12

size_t gpu_hits_group(const gpu_hit *hits, size_t n, const uint64_t *starts, size_t nchunks,
                      gpu_hit *out)
{
    /* A counting sort by chunk.  A hit's chunk: page[k] is the chunk that
     * holds byte k << GROUP_PAGE_LOG, so a binary search runs only between
     * the chunks of the hit's page and the next (one, mostly: a file is
     * usually longer than a page), not over the whole batch. */
    uint64_t total = starts[nchunks];
    size_t npages = (size_t)(total >> GROUP_PAGE_LOG) + 2;
    size_t *first = calloc(nchunks + 2, sizeof *first);
    uint32_t *of = malloc((n + 1) * sizeof *of);
    uint32_t *page = malloc(npages * sizeof *page);
    if (!first || !of || !page) {
        free(first);
        free(of);
        free(page);
        return SIZE_MAX;
    }
    for (size_t k = 0, c = 0; k < npages; k++) {
        uint64_t at = (uint64_t)k << GROUP_PAGE_LOG;
        while (c + 1 < nchunks && starts[c + 1] <= at)
            c++;
        page[k] = (uint32_t)c;
    }
    for (size_t i = 0; i < n; i++) {
        uint64_t pos = hits[i].offset;
        if (pos >= total) {
            of[i] = UINT32_MAX;
            continue;
        }
        size_t k = (size_t)(pos >> GROUP_PAGE_LOG);
        size_t lo = page[k], hi = (size_t)page[k + 1] + 1; /* starts[lo] <= pos < starts[hi] */
        if (hi > nchunks)
            hi = nchunks;
        while (hi - lo > 1) {
            size_t mid = (lo + hi) / 2;
            if (starts[mid] <= pos)
                lo = mid;
            else
                hi = mid;
        }
        of[i] = (uint32_t)lo;
        first[lo + 1]++;
    }
    for (size_t c = 0; c < nchunks; c++)
        first[c + 1] += first[c];
    size_t kept = first[nchunks];
    for (size_t i = 0; i < n; i++) {
        if (of[i] == UINT32_MAX)
            continue;
        size_t c = of[i];
        out[first[c]++] = (gpu_hit){.offset = hits[i].offset - starts[c], .chunk = (uint32_t)c,
                                    .keyword = hits[i].keyword};
    }
    free(first);
    free(of);
    free(page);
    return kept;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

int kh_scan_batch(const kh_engine *e, kh_gpu *g, kh_scratch *s, const kh_chunk *chunks,
                  size_t n, kh_on_batch_finding cb, void *ctx, int *status)
{
    if (!e || !s || (!chunks && n))
        return KH_EINVAL;
    batch_ctx bc = {.cb = cb, .ctx = ctx};
    if (!g || atomic_load(&g->cpu_only) || n == 0)
        return scan_batch_cpu(e, s, chunks, 0, n, &bc, status);
    if (g->engine != e)
        return KH_EINVAL;
    gpu_hit *hits = NULL;
    size_t nhits = 0;
    if (gpu_collect_hits(g, chunks, n, &hits, &nhits) != KH_OK)
        return scan_batch_cpu(e, s, chunks, 0, n, &bc, status); /* same findings */
    uint64_t *offsets = malloc((nhits + 1) * sizeof *offsets);
    uint64_t *marks = malloc((nhits + 1) * sizeof *marks);
    uint32_t *keywords = malloc((nhits + 1) * sizeof *keywords);
    engine_region *regions = malloc((nhits + n + 1) * sizeof *regions);
    size_t *rfirst = malloc((n + 1) * sizeof *rfirst), *rcount = malloc((n + 1) * sizeof *rcount);
    size_t *hfirst = malloc((n + 1) * sizeof *hfirst);
    if (!offsets || !marks || !keywords || !regions || !rfirst || !rcount || !hfirst) {
        free(offsets);
        free(marks);
        free(keywords);
        free(regions);
        free(rfirst);
        free(rcount);
        free(hfirst);
        free(hits);
        return scan_batch_cpu(e, s, chunks, 0, n, &bc, status);
    }
    int rc = KH_OK;
    uint64_t c0 = clock_ns(), nregions = 0, region_bytes = 0, bytes = 0, decoded = 0;
    /* Every chunk's keyword regions first, so that the prefilter pass runs
     * over the whole batch's windows at once (engine_prefilter_batch). */
    size_t h = 0, nr_all = 0;
    for (size_t i = 0; i < n; i++) {
        size_t m = 0;
        while (h < nhits && hits[h].chunk < i)
            h++; /* a stray index would be a backend bug; skip it */
        hfirst[i] = h;
        for (; h < nhits && hits[h].chunk == i; h++) {
            if (hits[h].keyword == GPU_DECODE_MARK)
                continue;
            offsets[m] = hits[h].offset;
            keywords[m] = hits[h].keyword;
            m++;
        }
        rfirst[i] = nr_all;
        rcount[i] = engine_regions_from_hits(e, offsets, keywords, m, chunks[i].len,
                                             regions + nr_all, m + 1);
        nr_all += rcount[i];
        for (size_t r = 0; r < rcount[i]; r++)
            region_bytes += regions[rfirst[i] + r].end - regions[rfirst[i] + r].start;
    }
    hfirst[n] = nhits;
    nregions = nr_all;
    engine_batch_pre *bp = NULL;
    if (engine_prefilter_batch(e, s, chunks, n, regions, rfirst, rcount, &bp) != KH_OK)
        bp = NULL; /* each chunk runs its own prefilter pass: the same result */
    for (size_t i = 0; i < n && rc == KH_OK; i++) {
        size_t nm = 0;
        for (h = hfirst[i]; h < nhits && hits[h].chunk == i; h++)
            if (hits[h].keyword == GPU_DECODE_MARK)
                marks[nm++] = hits[h].offset;
        if (nm > 1)
            qsort(marks, nm, sizeof *marks, cmp_u64);
        bytes += chunks[i].len;
        bc.chunk = i;
        engine_hints hints = {.regions = regions + rfirst[i],
                              .nregions = rcount[i],
                              .marks = marks,
                              .nmarks = nm,
                              .pre = bp,
                              .pre_chunk = i};
        int crc = engine_scan_hinted(e, s, &chunks[i], &hints, batch_trampoline, &bc);
        decoded += hints.decoded_bytes;
        if (status)
            status[i] = crc;
        if (crc == KH_ESTOPPED)
            rc = KH_ESTOPPED;
    }
    engine_batch_pre_free(bp);
    atomic_fetch_add(&g->st_confirm_ns, clock_ns() - c0);
    atomic_fetch_add(&g->st_batches, 1);
    atomic_fetch_add(&g->st_bytes, bytes);
    atomic_fetch_add(&g->st_hits, nhits);
    atomic_fetch_add(&g->st_regions, nregions);
    atomic_fetch_add(&g->st_region_bytes, region_bytes);
    atomic_fetch_add(&g->st_decoded_bytes, decoded);
    free(offsets);
    free(marks);
    free(keywords);
    free(regions);
    free(rfirst);
    free(rcount);
    free(hfirst);
    free(hits);
    return rc;
}

/* ------------------------------------------------------------------ */
/* Reference backend: the same ABI on the CPU                          */
/* ------------------------------------------------------------------ */

static inline uint8_t fold(uint8_t c)
{
    return c >= 'A' && c <= 'Z' ? (uint8_t)(c | 0x20) : c;
}

/* Room for need hits in *hits (capacity *cap, doubled); 0 or -1. */
static int hits_reserve(gpu_hit **hits, size_t *cap, size_t need)
{
    if (need <= *cap)
        return 0;
    size_t ncap = *cap ? *cap : 64;
    while (ncap < need)
        ncap *= 2;
    gpu_hit *grown = realloc(*hits, ncap * sizeof *grown);
    if (!grown)
        return -1;
    *hits = grown;
    *cap = ncap;
    return 0;
}

size_t gpu_find_keywords_cpu(const char *const *keywords, uint32_t nkeywords,
                             const uint8_t *data, size_t len, uint32_t chunk, gpu_hit **hits,
                             size_t *nhits, size_t *cap)
{
    /* Keywords by folded first byte, in index order (the order of a
     * position's hits), so each position tries only its own. */
    uint32_t first[257] = {0};
    uint32_t *byfirst = malloc((nkeywords + 1) * sizeof *byfirst);
    if (!byfirst)
        return (size_t)-1;
    for (uint32_t k = 0; k < nkeywords; k++)
        first[fold((uint8_t)keywords[k][0]) + 1]++;
    for (int c = 0; c < 256; c++)
        first[c + 1] += first[c];
    uint32_t fill[256];
    memcpy(fill, first, sizeof fill);
    for (uint32_t k = 0; k < nkeywords; k++)
        byfirst[fill[fold((uint8_t)keywords[k][0])]++] = k;
    size_t found = 0;
    for (size_t at = 0; at < len; at++) {
        uint8_t c = fold(data[at]);
        for (uint32_t i = first[c]; i < first[c + 1]; i++) {
            uint32_t k = byfirst[i];
            const uint8_t *kw = (const uint8_t *)keywords[k];
            size_t j = 1;
            while (kw[j] && at + j < len && fold(data[at + j]) == fold(kw[j]))
                j++;
            if (kw[j])
                continue;
            if (hits_reserve(hits, cap, *nhits + 1)) {
                free(byfirst);
                return (size_t)-1;
            }
            (*hits)[(*nhits)++] = (gpu_hit){.offset = at, .chunk = chunk, .keyword = k};
            found++;
        }
    }
    free(byfirst);
    return found;
}

struct gpu_session {
    char **keywords;
    uint32_t nkeywords;
    gpu_keyword_filter *filters; /* NULL: none */
    int persistent;
    int fail_launch;
    gpu_hit *hits;
    size_t nhits, cap;
};

static int ref_version(void)
{
    return GPU_ABI_VERSION;
}

static int ref_device_count(int *count, char *msg, size_t cap)
{
    (void)msg;
    (void)cap;
    *count = 1;
    return 0;
}

static int ref_device_name(int device, char *name, size_t cap)
{
    snprintf(name, cap, "reference %d", device);
    return 0;
}

static void ref_close(gpu_session *s)
{
    if (!s)
        return;
    for (uint32_t i = 0; i < s->nkeywords; i++)
        free(s->keywords[i]);
    free(s->keywords);
    free(s->filters);
    free(s->hits);
    free(s);
}

/* Drops the hits from `from` on whose keyword's filter fails, as the
 * device does (the byte after the chunk reads as its NUL separator). */
static void ref_filter(gpu_session *s, size_t from, const uint8_t *data, size_t len)
{
    if (!s->filters)
        return;
    size_t w = from;
    for (size_t i = from; i < s->nhits; i++) {
        const gpu_hit *h = &s->hits[i];
        const gpu_keyword_filter *f = &s->filters[h->keyword];
        size_t at = (size_t)h->offset + strlen(s->keywords[h->keyword]);
        if (gpu_filter_pass(f, data, len, (size_t)h->offset, at))
            s->hits[w++] = *h;
    }
    s->nhits = w;
}

/* Appends chunk's decode marks (decode_marks: segments from the chunk's
 * start, which the device's contract allows as well). */
static int ref_marks(gpu_session *s, const uint8_t *data, size_t len, uint32_t chunk)
{
    size_t room = (len + DT_SEG - 1) / DT_SEG + 1;
    uint64_t *marks = malloc(room * sizeof *marks);
    if (!marks)
        return 1;
    size_t n = decode_marks(data, len, marks);
    if (hits_reserve(&s->hits, &s->cap, s->nhits + n)) {
        free(marks);
        return 1;
    }
    for (size_t i = 0; i < n; i++)
        s->hits[s->nhits++] = (gpu_hit){.offset = marks[i], .chunk = chunk,
                                        .keyword = GPU_DECODE_MARK};
    free(marks);
    return 0;
}

static int ref_open(const char *const *keywords, uint32_t n, const gpu_session_opts *o,
                    gpu_session **out, char *msg, size_t cap)
{
    const char *ff = o->force_fail;
    if (forced(ff, "open")) {
        snprintf(msg, cap, "session open failed (forced)");
        return 1;
    }
    gpu_session *s = calloc(1, sizeof *s);
    if (!s || !(s->keywords = calloc(n + 1, sizeof *s->keywords))) {
        free(s);
        snprintf(msg, cap, "out of memory");
        return 1;
    }
    s->nkeywords = n;
    for (uint32_t i = 0; i < n; i++)
        if (!(s->keywords[i] = strdup(keywords[i]))) {
            ref_close(s);
            snprintf(msg, cap, "out of memory");
            return 1;
        }
    if (o->filters) {
        s->filters = malloc((n + 1) * sizeof *s->filters);
        if (!s->filters) {
            ref_close(s);
            snprintf(msg, cap, "out of memory");
            return 1;
        }
        memcpy(s->filters, o->filters, n * sizeof *s->filters);
    }
    s->persistent = o->persistent && !forced(ff, "persistent");
    if (o->persistent && !s->persistent && !o->quiet)
        fprintf(stderr, "keyhog: gpu: persistent kernel not started (forced); "
                        "one launch per batch\n");
    /* As on the device, a failing launch matters only without the
     * resident kernel. */
    s->fail_launch = !s->persistent && forced(ff, "launch");
    *out = s;
    return 0;
}

/* The device's order and positions: hits of s->hits (grouped by chunk,
 * chunk-relative) become packed positions, last first. */
static void ref_unmap(gpu_session *s, const uint64_t *starts)
{
    for (size_t i = 0; i < s->nhits; i++) {
        s->hits[i].offset += starts[s->hits[i].chunk];
        s->hits[i].chunk = GPU_CHUNK_PACKED;
    }
    for (size_t i = 0, j = s->nhits; i + 1 < j; i++, j--) {
        gpu_hit t = s->hits[i];
        s->hits[i] = s->hits[j - 1];
        s->hits[j - 1] = t;
    }
}

static int ref_submit(gpu_session *s, const uint8_t *const *data, const size_t *len, size_t n,
                      gpu_batch_result *res, char *msg, size_t cap)
{
    if (s->fail_launch) {
        snprintf(msg, cap, "kernel launch failed (forced)");
        return 1;
    }
    s->nhits = 0;
    for (size_t i = 0; i < n; i++) {
        size_t from = s->nhits;
        if (gpu_find_keywords_cpu((const char *const *)s->keywords, s->nkeywords, data[i], len[i],
                                  (uint32_t)i, &s->hits, &s->nhits, &s->cap) == (size_t)-1) {
            snprintf(msg, cap, "out of memory");
            return 1;
        }
        ref_filter(s, from, data[i], len[i]);
        if (ref_marks(s, data[i], len[i], (uint32_t)i)) {
            snprintf(msg, cap, "out of memory");
            return 1;
        }
    }
    uint64_t *starts = packed_starts(len, n);
    if (!starts) {
        snprintf(msg, cap, "out of memory");
        return 1;
    }
    ref_unmap(s, starts);
    free(starts);
    res->hits = s->hits;
    res->nhits = s->nhits;
    res->overflow = 0;
    res->device_ms = 0;
    return 0;
}

static int ref_submit_packed(gpu_session *s, const uint8_t *packed, const uint64_t *starts,
                             size_t n, gpu_batch_result *res, char *msg, size_t cap)
{
    if (s->fail_launch) {
        snprintf(msg, cap, "kernel launch failed (forced)");
        return 1;
    }
    s->nhits = 0;
    for (size_t i = 0; i < n; i++) {
        /* The packing contract: a NUL after each chunk, zeros after all. */
        if (packed[starts[i + 1] - 1] != 0 || packed[starts[n]] != 0) {
            snprintf(msg, cap, "badly packed batch");
            return 1;
        }
        size_t from = s->nhits, clen = (size_t)(starts[i + 1] - starts[i] - 1);
        if (gpu_find_keywords_cpu((const char *const *)s->keywords, s->nkeywords,
                                  packed + starts[i], clen, (uint32_t)i, &s->hits, &s->nhits,
                                  &s->cap) == (size_t)-1) {
            snprintf(msg, cap, "out of memory");
            return 1;
        }
        ref_filter(s, from, packed + starts[i], clen);
        if (ref_marks(s, packed + starts[i], clen, (uint32_t)i)) {
            snprintf(msg, cap, "out of memory");
            return 1;
        }
    }
    ref_unmap(s, starts);
    res->hits = s->hits;
    res->nhits = s->nhits;
    res->overflow = 0;
    res->device_ms = 0;
    return 0;
}

static const char *ref_mode(const gpu_session *s)
{
    return s->persistent ? "persistent" : "launch";
}

static const gpu_api reference_api = {
    .api_version = ref_version,
    .device_count = ref_device_count,
    .device_name = ref_device_name,
    .session_open = ref_open,
    .session_submit_batch = ref_submit,
    .session_submit_packed = ref_submit_packed,
    .session_mode = ref_mode,
    .session_close = ref_close,
};

const gpu_api *gpu_reference_api(void)
{
    return &reference_api;
}
