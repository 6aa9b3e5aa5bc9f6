/*
 * gpu_bench.c - `make bench-gpu`: end-to-end throughput of the GPU backend
 * against keyhog's own CPU path, from host memory, on one machine.
 *
 * The corpus (a directory tree, read once into RAM and optionally repeated
 * so the GPU has enough to chew on) is cut into chunks, one per file, and
 * gathered into batches the way the CLI's workers gather them (16 MiB or
 * 4096 files).  Then, with T worker threads each holding its own scratch:
 *
 *   cpu  every chunk through kh_scan, 8 at a time from a shared counter
 *        (keyhog -j T, whose workers take files one by one)
 *   gpu  every batch through kh_scan_batch on the GPU    (--backend gpu),
 *        twice: packed from RAM by its worker, then read in place (each
 *        batch laid out in a kh_gpu_buffer_take buffer, as the CLI reads
 *        files into them; the figure the ratio uses)
 *
 * and prints GB/s of each, the ratio, and a digest of every finding (chunk,
 * detector, offset, length, secret) that must be equal: the library-level
 * parity check (the CLI's byte-identical JSONL is tests/cli/test_gpu.py).
 * For the GPU it also prints where the time went (gpu_stats: packing,
 * device lock, device, CPU confirmation) and how many regions the CPU had
 * to confirm.  Device-only numbers (kernel alone, copy, persistent against
 * per-batch) come from build/keyhog_gpu_bench.
 *
 * --reference runs the GPU path with the CPU implementation of the device
 * ABI (gpu_reference_api): slow keyword search, but the CPU side of the
 * GPU path (packing, confirmation) is the real one, so its cost can be
 * profiled on a machine without a GPU.  --replay does the same, but the
 * reference backend's hits are recorded in the untimed warm-up, which then
 * covers every batch, and handed back as they were in the timed runs: a
 * device whose hits cost nothing, so the timed runs are the CPU side alone.
 *
 * Usage: gpu_bench [-t THREADS] [-r REPEAT] [-b BATCH_MIB] [-m cpu|gpu|both]
 *                  [--no-persistent] [--reference | --replay] DIR...
 */
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "engine/gpu.h"
#include "keyhog.h"

#define BATCH_FILES 4096
#define CPU_GRAB 8

typedef struct corpus {
    kh_chunk *chunks;
    size_t n, cap;
    size_t bytes;
} corpus;

typedef struct batch {
    size_t first, count;
} batch;

typedef struct run_ctx {
    const kh_engine *engine;
    kh_gpu *gpu;
    const corpus *c;
    const batch *batches;
    size_t nbatches;
    atomic_size_t next;
    const kh_chunk *laid; /* the chunks laid out in lent buffers, or NULL */
    uint64_t *chunk_digest; /* per chunk: sum of its findings' hashes */
    atomic_size_t findings;
    atomic_int failed;
} run_ctx;

/* --replay: the reference backend with every batch's hits kept, keyed by
 * its layout and a sample of its bytes (repeated batches of the same
 * content give the same hits anyway). */
typedef struct replay_entry {
    uint64_t key;
    gpu_hit *hits;
    size_t nhits;
    struct replay_entry *next;
} replay_entry;

static const gpu_api *replay_ref;
static replay_entry *replay_list;
static pthread_mutex_t replay_lock = PTHREAD_MUTEX_INITIALIZER;

static uint64_t replay_key(const uint8_t *packed, const uint64_t *starts, size_t n)
{
    uint64_t h = 14695981039346656037ull ^ n;
    for (size_t i = 0; i <= n; i++)
        h = (h ^ starts[i]) * 1099511628211ull;
    for (uint64_t at = 0; at + 8 <= starts[n]; at += 4093) {
        uint64_t w;
        memcpy(&w, packed + at, 8);
        h = (h ^ w) * 1099511628211ull;
    }
    return h;
}

static int replay_submit_packed(gpu_session *s, const uint8_t *packed, const uint64_t *starts,
                                size_t n, gpu_batch_result *res, char *msg, size_t cap)
{
    uint64_t key = replay_key(packed, starts, n);
    pthread_mutex_lock(&replay_lock);
    replay_entry *e = replay_list;
    while (e && e->key != key)
        e = e->next;
    pthread_mutex_unlock(&replay_lock);
    if (e) {
        *res = (gpu_batch_result){.hits = e->hits, .nhits = e->nhits};
        return 0;
    }
    int rc = replay_ref->session_submit_packed(s, packed, starts, n, res, msg, cap);
    if (rc)
        return rc;
    e = malloc(sizeof *e);
    gpu_hit *copy = malloc((res->nhits + 1) * sizeof *copy);
    if (!e || !copy) {
        free(e);
        free(copy);
        return 0;
    }
    memcpy(copy, res->hits, res->nhits * sizeof *copy);
    *e = (replay_entry){key, copy, res->nhits, NULL};
    pthread_mutex_lock(&replay_lock);
    e->next = replay_list;
    replay_list = e;
    pthread_mutex_unlock(&replay_lock);
    return 0;
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int add_file(corpus *c, const char *path, size_t size)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return 0;
    uint8_t *buf = malloc(size ? size : 1);
    size_t got = 0;
    while (buf && got < size) {
        ssize_t r = read(fd, buf + got, size - got);
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close(fd);
    if (!buf || got != size) {
        free(buf);
        return 0;
    }
    if (c->n == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 4096;
        c->chunks = realloc(c->chunks, c->cap * sizeof *c->chunks);
        if (!c->chunks)
            return -1;
    }
    c->chunks[c->n++] = (kh_chunk){.data = buf, .len = size, .path = strdup(path)};
    c->bytes += size;
    return 0;
}

static int walk(corpus *c, const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    struct dirent *de;
    int rc = 0;
    while (rc == 0 && (de = readdir(d)) != NULL) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..") || !strcmp(de->d_name, ".git"))
            continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        struct stat st;
        if (lstat(path, &st) != 0)
            continue;
        if (S_ISDIR(st.st_mode))
            rc = walk(c, path);
        else if (S_ISREG(st.st_mode) && st.st_size > 0 && st.st_size <= (64 << 20))
            rc = add_file(c, path, (size_t)st.st_size);
    }
    closedir(d);
    return rc;
}

/* FNV-1a, then mixed: findings are summed per chunk, so order is free. */
static uint64_t hash_bytes(uint64_t h, const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 1099511628211ull;
    return h;
}

static uint64_t finding_hash(const kh_finding *f)
{
    uint64_t h = 14695981039346656037ull;
    h = hash_bytes(h, f->detector->id, strlen(f->detector->id));
    h = hash_bytes(h, &f->offset, sizeof f->offset);
    h = hash_bytes(h, &f->length, sizeof f->length);
    h = hash_bytes(h, &f->line, sizeof f->line);
    h = hash_bytes(h, f->secret, f->secret_len);
    h = hash_bytes(h, &f->confidence, sizeof f->confidence);
    for (size_t i = 0; i < f->companion_count; i++)
        h = hash_bytes(h, f->companions[i].value, f->companions[i].value_len);
    h ^= h >> 31;
    return h * 0x9E3779B97F4A7C15ull;
}

typedef struct cb_ctx {
    run_ctx *r;
    size_t first; /* chunk index of the batch's chunk 0 */
} cb_ctx;

static int on_batch_finding(const kh_finding *f, size_t chunk, void *ctx)
{
    cb_ctx *c = ctx;
    c->r->chunk_digest[c->first + chunk] += finding_hash(f);
    atomic_fetch_add(&c->r->findings, 1);
    return 0;
}

static int on_finding(const kh_finding *f, void *ctx)
{
    return on_batch_finding(f, 0, ctx);
}

static void *worker(void *arg)
{
    run_ctx *r = arg;
    kh_scratch *s = NULL;
    if (kh_scratch_alloc(r->engine, &s) != KH_OK) {
        atomic_store(&r->failed, 1);
        return NULL;
    }
    for (;;) {
        if (!r->gpu) {
            /* The CPU path takes files one by one from the CLI's queue:
             * a few chunks at a time, so no thread idles while another
             * finishes a whole batch. */
            size_t i = atomic_fetch_add(&r->next, CPU_GRAB), end = i + CPU_GRAB;
            if (i >= r->c->n)
                break;
            for (; i < end && i < r->c->n; i++) {
                cb_ctx cc = {r, i};
                kh_scan(r->engine, s, &r->c->chunks[i], on_finding, &cc);
            }
            continue;
        }
        size_t b = atomic_fetch_add(&r->next, 1);
        if (b >= r->nbatches)
            break;
        const batch *bt = &r->batches[b];
        cb_ctx cc = {r, bt->first};
        kh_scan_batch(r->engine, r->gpu, s, (r->laid ? r->laid : r->c->chunks) + bt->first,
                      bt->count, on_batch_finding, &cc, NULL);
    }
    kh_scratch_free(s);
    return NULL;
}

/* Runs every batch on `threads` workers; returns seconds, fills digest. */
static double run(run_ctx *r, int threads, uint64_t *digest)
{
    memset(r->chunk_digest, 0, r->c->n * sizeof *r->chunk_digest);
    atomic_store(&r->next, 0);
    atomic_store(&r->findings, 0);
    pthread_t *t = calloc((size_t)threads, sizeof *t);
    double t0 = now_s();
    for (int i = 0; i < threads; i++)
        pthread_create(&t[i], NULL, worker, r);
    for (int i = 0; i < threads; i++)
        pthread_join(t[i], NULL);
    double dt = now_s() - t0;
    free(t);
    uint64_t d = 0;
    for (size_t i = 0; i < r->c->n; i++)
        d += r->chunk_digest[i] * (2 * i + 1);
    *digest = d;
    return dt;
}

/* One timed GPU run over every batch, its line and where the time went. */
static double gpu_run(run_ctx *r, int threads, const char *label, double gb, uint64_t *digest,
                      size_t *findings)
{
    gpu_stats before, after;
    gpu_stats_get(r->gpu, &before);
    double t = run(r, threads, digest);
    *findings = atomic_load(&r->findings);
    gpu_stats_get(r->gpu, &after);
    printf("%s: %.3f s  %.2f GB/s  findings %zu  digest %016llx  (%s)\n", label, t, gb / t,
           *findings, (unsigned long long)*digest, kh_gpu_status(r->gpu));
    double n = (double)threads;
    printf("  time per thread (s): pack %.3f  lock wait %.3f  device %.3f  confirm %.3f; "
           "%llu of %llu batches read in place\n",
           (after.pack_ns - before.pack_ns) / 1e9 / n, (after.wait_ns - before.wait_ns) / 1e9 / n,
           (after.device_ns - before.device_ns) / 1e9 / n,
           (after.confirm_ns - before.confirm_ns) / 1e9 / n,
           (unsigned long long)(after.prepacked - before.prepacked),
           (unsigned long long)(after.batches - before.batches));
    uint64_t bytes = after.bytes - before.bytes;
    printf("  device: %.2f GB/s of lock-held time (per lane); hits %.2f/KiB, regions %.2f/KiB "
           "covering %.1f%% of the bytes; %.1f%% of the bytes decoded\n",
           bytes / ((after.device_ns - before.device_ns) / 1e9) / 1e9,
           (after.hits - before.hits) * 1024.0 / (bytes ? bytes : 1),
           (after.regions - before.regions) * 1024.0 / (bytes ? bytes : 1),
           100.0 * (after.region_bytes - before.region_bytes) / (bytes ? bytes : 1),
           100.0 * (after.decoded_bytes - before.decoded_bytes) / (bytes ? bytes : 1));
    return t;
}

int main(int argc, char **argv)
{
    int threads = (int)sysconf(_SC_NPROCESSORS_ONLN), repeat = 1, no_persistent = 0;
    int reference = 0, replay = 0;
    size_t batch_mib = 16;
    const char *mode = "both";
    corpus c = {0};
    int ndirs = 0;
    setvbuf(stdout, NULL, _IOLBF, 0);
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-t") && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "-r") && i + 1 < argc)
            repeat = atoi(argv[++i]);
        else if (!strcmp(argv[i], "-b") && i + 1 < argc)
            batch_mib = (size_t)atol(argv[++i]);
        else if (!strcmp(argv[i], "-m") && i + 1 < argc)
            mode = argv[++i];
        else if (!strcmp(argv[i], "--no-persistent"))
            no_persistent = 1;
        else if (!strcmp(argv[i], "--reference"))
            reference = 1;
        else if (!strcmp(argv[i], "--replay"))
            replay = 1;
        else if (walk(&c, argv[i]) == 0)
            ndirs++;
    }
    if (!ndirs || c.n == 0 || threads < 1 || repeat < 1) {
        fprintf(stderr, "usage: gpu_bench [-t THREADS] [-r REPEAT] [-b BATCH_MIB] "
                        "[-m cpu|gpu|both] [--no-persistent] [--reference | --replay] DIR...\n");
        return 2;
    }
    /* Repeats point at the same bytes: the copies are scanned, not stored. */
    size_t base = c.n;
    for (int k = 1; k < repeat; k++)
        for (size_t i = 0; i < base; i++) {
            if (c.n == c.cap) {
                c.cap *= 2;
                c.chunks = realloc(c.chunks, c.cap * sizeof *c.chunks);
            }
            c.chunks[c.n++] = c.chunks[i];
            c.bytes += c.chunks[i].len;
        }
    batch *batches = malloc((c.n + 1) * sizeof *batches);
    size_t nb = 0;
    for (size_t i = 0; i < c.n;) {
        size_t bytes = 0, first = i;
        while (i < c.n && i - first < BATCH_FILES && bytes < (batch_mib << 20))
            bytes += c.chunks[i++].len;
        batches[nb++] = (batch){first, i - first};
    }
    kh_error err;
    kh_engine *e = NULL;
    /* Compiled databases are cached between runs (seconds of compilation
     * are not what is measured here). */
    const char *cache = getenv("GPU_BENCH_CACHE") ? getenv("GPU_BENCH_CACHE")
                                                  : "/tmp/keyhog_gpu_bench.db";
    kh_engine_opts eo = {.decode_depth = -1};
    FILE *cf = fopen(cache, "rb");
    void *cached = NULL;
    if (cf) {
        fseek(cf, 0, SEEK_END);
        long sz = ftell(cf);
        fseek(cf, 0, SEEK_SET);
        cached = sz > 0 ? malloc((size_t)sz) : NULL;
        if (cached && fread(cached, 1, (size_t)sz, cf) == (size_t)sz) {
            eo.cache = cached;
            eo.cache_len = (size_t)sz;
        }
        fclose(cf);
    }
    if (kh_engine_compile(kh_detectors_embedded(), &eo, &e, &err) != KH_OK) {
        fprintf(stderr, "compile: %s\n", err.message);
        return 1;
    }
    free(cached);
    if (!kh_engine_from_cache(e)) {
        void *buf = NULL;
        size_t len = 0;
        if (kh_engine_serialize(e, &buf, &len) == KH_OK && (cf = fopen(cache, "wb")) != NULL) {
            fwrite(buf, 1, len, cf);
            fclose(cf);
        }
        free(buf);
    }
    run_ctx r = {.engine = e, .c = &c, .batches = batches, .nbatches = nb};
    r.chunk_digest = calloc(c.n, sizeof *r.chunk_digest);
    double gb = (double)c.bytes / 1e9;
    printf("corpus: %zu chunks, %.2f GB in RAM (%d x %zu files), %zu batches, %d threads\n", c.n,
           gb, repeat, base, nb, threads);
    double tcpu = 0, tgpu = 0;
    uint64_t dcpu = 0, dgpu = 0;
    size_t fcpu = 0, fgpu = 0;
    int want_cpu = strcmp(mode, "gpu") != 0, want_gpu = strcmp(mode, "cpu") != 0;
    int packed_differs = 0;
    if (want_cpu) {
        tcpu = run(&r, threads, &dcpu);
        fcpu = atomic_load(&r.findings);
        printf("cpu: %.3f s  %.2f GB/s  findings %zu  digest %016llx\n", tcpu, gb / tcpu, fcpu,
               (unsigned long long)dcpu);
    }
    if (want_gpu) {
        kh_gpu_opts go = {.all_devices = 1, .no_persistent = no_persistent};
        gpu_api replay_api = *gpu_reference_api();
        replay_ref = gpu_reference_api();
        replay_api.session_submit_packed = replay_submit_packed;
        int orc = replay      ? gpu_open_api(e, &replay_api, &go, &r.gpu, &err)
                  : reference ? gpu_open_api(e, gpu_reference_api(), &go, &r.gpu, &err)
                              : kh_gpu_open(e, &go, &r.gpu, &err);
        if (orc != KH_OK) {
            printf("gpu: not available: %s\n", err.message);
            return want_cpu ? 0 : 1;
        }
        /* One untimed batch warms the device, the pinned pool and caches. */
        uint64_t warm;
        r.nbatches = nb < (size_t)threads || replay ? nb : (size_t)threads;
        run(&r, threads, &warm);
        if (replay)
            fprintf(stderr, "replay: every batch's hits recorded\n");
        r.nbatches = nb;
        /* First from plain RAM, each batch packed into a pinned buffer by
         * its worker; then read in place: every batch laid out in a buffer
         * from kh_gpu_buffer_take, as the CLI reads files into them, so
         * the device copies it as it is. */
        uint64_t dpacked;
        size_t fpacked;
        double tpacked = gpu_run(&r, threads, "gpu, packed from RAM", gb, &dpacked, &fpacked);
        uint8_t **bufs = calloc(nb, sizeof *bufs);
        kh_chunk *laid = calloc(c.n, sizeof *laid);
        for (size_t k = 0; bufs && laid && k < nb; k++) {
            size_t need = KH_GPU_BUFFER_PAD, at = 0;
            for (size_t i = 0; i < batches[k].count; i++)
                need += c.chunks[batches[k].first + i].len + 1;
            if (!(bufs[k] = kh_gpu_buffer_take(r.gpu, need)))
                break;
            for (size_t i = batches[k].first; i < batches[k].first + batches[k].count; i++) {
                memcpy(bufs[k] + at, c.chunks[i].data, c.chunks[i].len);
                laid[i] = c.chunks[i];
                laid[i].data = bufs[k] + at;
                at += c.chunks[i].len;
                bufs[k][at++] = 0;
            }
            memset(bufs[k] + at, 0, KH_GPU_BUFFER_PAD);
        }
        if (bufs && laid && (nb == 0 || bufs[nb - 1])) {
            r.laid = laid;
            tgpu = gpu_run(&r, threads, "gpu", gb, &dgpu, &fgpu);
            r.laid = NULL;
        } else {
            printf("gpu: no memory to lay the batches out in place; packed figures stand\n");
            tgpu = tpacked;
            dgpu = dpacked;
            fgpu = fpacked;
        }
        packed_differs = dpacked != dgpu || fpacked != fgpu;
        if (packed_differs)
            printf("PARITY FAILED: packed and in-place gpu findings differ\n");
        for (size_t k = 0; bufs && k < nb; k++)
            kh_gpu_buffer_give(r.gpu, bufs[k]);
        free(bufs);
        free(laid);
        kh_gpu_close(r.gpu);
    }
    int rc = packed_differs;
    if (want_cpu && want_gpu) {
        printf("gpu/cpu: %.2fx\n", tcpu / tgpu);
        if (dcpu != dgpu || fcpu != fgpu) {
            printf("PARITY FAILED: cpu and gpu findings differ\n");
            rc = 1;
        } else {
            printf("parity: identical findings (%zu)\n", fcpu);
        }
    }
    kh_engine_free(e);
    return rc;
}
