/*
 * calibrate.c - `keyhog calibrate`: measures how fast this machine scans a
 * batch on the CPU and on the GPU, and stores the batch size from which the
 * GPU wins (or "never") in calibration.json in the cache directory, which
 * `scan --backend auto` reads (cli_calibration_load).
 *
 * Why it is shaped so: the GPU only finds keyword windows and the CPU still
 * confirms them, so whether it pays off depends on this host's cores, its
 * bus and its device, and on the batch size (a small batch pays the copy and
 * the handshake, a large one amortises them).  The measurement therefore
 * mimics the scan pipeline: every worker thread scans its own batch through
 * kh_scan_batch at once, first with no GPU, then through one shared kh_gpu,
 * for each batch size up to the pipeline's largest batch.  The data is
 * synthetic source-like text generated in memory from a fixed seed, so the
 * result depends on the machine, not on a corpus or the page cache.
 * Without a usable GPU nothing is measured: "never" is stored and the exit
 * status is 0, so calibrating is harmless everywhere.
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"

/* The scan pipeline flushes a worker's batch at 16 MiB (pipeline.c), so no
 * larger batch is ever routed; the smallest sizes show the fixed costs. */
static const size_t sizes[] = {1u << 20, 4u << 20, 8u << 20, 16u << 20};
#define NSIZES (sizeof sizes / sizeof sizes[0])
#define LARGEST_BATCH (16u << 20)
/* Files of a batch: source files are mostly a few KiB to a few hundred. */
#define CHUNK_BYTES (32u << 10)
/* Each measurement scans at least this much in all, so the clock's
 * resolution and one slow round do not decide it. */
#define MIN_WORK (1ull << 30)
#define CALIBRATION_FORMAT 1

static const char help[] =
    "usage: keyhog calibrate [options]\n"
    "\n"
    "Measures CPU and GPU scan throughput per batch size on this machine and\n"
    "stores the batch size above which the GPU wins (or \"never\") in\n"
    "calibration.json in the cache directory ($KEYHOG_CACHE_DIR, else\n"
    "$XDG_CACHE_HOME/keyhog, else ~/.cache/keyhog).  `scan --backend auto`\n"
    "uses the GPU only for batches the calibration says it wins.\n"
    "\n"
    "options:\n"
    "  -j, --threads N         worker threads measured at once (default: all cores)\n"
    "      --detectors DIR     add or override detectors from DIR/*.toml (repeatable)\n"
    "      --no-cache          do not read or write the compiled-detector cache\n"
    "      --dry-run           measure and print, but store nothing\n"
    "      --json              print the stored JSON instead of a table\n"
    "  -q, --quiet             print nothing but errors\n"
    "  -h, --help              this help\n"
    "\n"
    "exit status: 0 measured (or no GPU: \"never\" stored), 2 error\n";

enum { OPT_DETECTORS = 256, OPT_NO_CACHE, OPT_DRY_RUN, OPT_JSON };

static const struct option longopts[] = {
    {"threads", required_argument, 0, 'j'},
    {"detectors", required_argument, 0, OPT_DETECTORS},
    {"no-cache", no_argument, 0, OPT_NO_CACHE},
    {"dry-run", no_argument, 0, OPT_DRY_RUN},
    {"json", no_argument, 0, OPT_JSON},
    {"quiet", no_argument, 0, 'q'},
    {"help", no_argument, 0, 'h'},
    {0, 0, 0, 0},
};

static int calibration_dir(char *out, size_t n)
{
    const char *d = getenv("KEYHOG_CACHE_DIR");
    if (d && *d)
        return snprintf(out, n, "%s", d) < (int)n ? 0 : -1;
    const char *x = getenv("XDG_CACHE_HOME");
    if (x && *x)
        return snprintf(out, n, "%s/keyhog", x) < (int)n ? 0 : -1;
    const char *h = getenv("HOME");
    if (h && *h)
        return snprintf(out, n, "%s/.cache/keyhog", h) < (int)n ? 0 : -1;
    return -1;
}

static int calibration_path(char *out, size_t n)
{
    char dir[4096];
    if (calibration_dir(dir, sizeof dir))
        return -1;
    return snprintf(out, n, "%s/calibration.json", dir) < (int)n ? 0 : -1;
}

static int make_dirs(char *path)
{
    for (char *p = path + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = 0;
        int rc = mkdir(path, 0700);
        *p = '/';
        if (rc && errno != EEXIST)
            return -1;
    }
    return mkdir(path, 0700) && errno != EEXIST ? -1 : 0;
}

int cli_calibration_load(size_t *crossover)
{
    char path[4200];
    if (calibration_path(path, sizeof path))
        return -1;
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    char text[16384]; /* the file is a few hundred bytes; more is not ours */
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = 0;
    const char *fmt = strstr(text, "\"format\":");
    if (!fmt || strtol(fmt + 9, NULL, 10) != CALIBRATION_FORMAT)
        return -1;
    const char *c = strstr(text, "\"crossover\":");
    if (!c)
        return -1;
    c += 12;
    while (*c == ' ')
        c++;
    if (!strncmp(c, "\"never\"", 7)) {
        *crossover = SIZE_MAX;
        return 0;
    }
    char *end;
    errno = 0;
    unsigned long long v = strtoull(c, &end, 10);
    if (errno || end == c || (*end != ',' && *end != '\n' && *end != ' ' && *end != '}'))
        return -1;
    *crossover = (size_t)v;
    return 0;
}

/* Source-like text, shaped after a Linux source tree (drivers/net, fs,
 * include) rather than after the worst case: ordinary identifiers and
 * punctuation; a word a keyword-context detector looks for (`key`,
 * `token`, `pass`, ...) in about one line in 60, mostly not assigned a
 * literal, as in real code; a credential-shaped assignment in one line in
 * 5000, a vendor-shaped token in one in 3300 and a long random run
 * (base64-like, for decode-through) in one in 180.  One thread's kh_scan
 * reads it at 1.5-1.6 GB/s where it reads 40 MB of fs/ at 1.4 GB/s, so the
 * crossover holds for real trees.  The text this replaced, thick with
 * `api`, `key` and `=`, scanned at 0.1-0.15 GB/s: every batch was a worst
 * case, and the GPU never won. */
static uint8_t *make_text(size_t len)
{
    static const char *const words[] = {
        "static", "int", "return", "void", "const", "char", "struct", "if", "else", "for",
        "while", "value", "config", "user", "name", "buffer", "length", "data", "error", "=",
        "(", ")", "{", "}", ";", "->", "*", "&", "count", "index", "node", "list", "size",
        "result", "state", "flags", "offset", "table", "entry", "next", "prev", "lock", "init",
        "free", "alloc", "read", "write", "open", "close", "case", "break", "switch",
        "unsigned", "long", "u32", "u64", "ptr", "info", "ret", "err", "goto", "out", "0",
        "1", "NULL", "sizeof", "/*", "*/", "the", "of", "to", "is", "in"};
    static const char *const sensitive[] = {"key", "token", "secret", "password", "api",
                                            "client", "auth", "private", "line", "stream"};
    static const char *const planted[] = {"ghp_", "AKIA", "xoxb-", "sk_live_", "AIza",
                                         "glpat-", "-----BEGIN ", "password=", "api_key: "};
    static const char alnum[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    uint8_t *t = malloc(len);
    if (!t)
        return NULL;
    uint64_t x = 0x9e3779b97f4a7c15ull;
    size_t at = 0;
#define NEXT() (x ^= x << 13, x ^= x >> 7, x ^= x << 17)
    while (at < len) {
        NEXT();
        unsigned r = (unsigned)(x % 10000);
        char line[200];
        size_t n = 0;
        if (r < 2) { /* a credential-shaped assignment */
            const char *p = planted[(x >> 20) % (sizeof planted / sizeof *planted)];
            n = (size_t)snprintf(line, sizeof line, "%s", p);
            for (int i = 0; i < 36; i++, NEXT())
                line[n++] = alnum[x % 62];
        } else if (r < 5) { /* a vendor-shaped token in a string */
            n = (size_t)snprintf(line, sizeof line, "\tid = \"%s",
                                 planted[(x >> 20) % 6]);
            for (int i = 0; i < 36; i++, NEXT())
                line[n++] = alnum[x % 62];
            line[n++] = '"';
        } else if (r < 60) { /* a long random run */
            size_t k = 20 + (x >> 16) % 60;
            line[n++] = '\t';
            for (size_t i = 0; i < k; i++, NEXT())
                line[n++] = alnum[x % 62];
        } else {
            size_t k = 2 + (x >> 24) % 12;
            line[n++] = '\t';
            for (size_t i = 0; i < k && n < 140; i++) {
                NEXT();
                const char *w = (x >> 8) % 480 == 0
                                    ? sensitive[(x >> 20) % (sizeof sensitive / sizeof *sensitive)]
                                    : words[x % (sizeof words / sizeof *words)];
                size_t wl = strlen(w);
                memcpy(line + n, w, wl);
                n += wl;
                line[n++] = ' ';
            }
        }
        line[n++] = '\n';
        size_t take = n < len - at ? n : len - at;
        memcpy(t + at, line, take);
        at += take;
    }
#undef NEXT
    return t;
}

typedef struct measure {
    const kh_engine *engine;
    kh_gpu *gpu;
    kh_scratch *scratch;
    const kh_chunk *chunks;
    size_t nchunks;
    int rounds;
    int rc;
} measure;

static int count_finding(const kh_finding *f, size_t chunk, void *ctx)
{
    (void)f, (void)chunk;
    (*(size_t *)ctx)++;
    return 0;
}

static void *measure_main(void *arg)
{
    measure *m = arg;
    size_t found = 0;
    for (int r = 0; r < m->rounds && m->rc == KH_OK; r++)
        m->rc = kh_scan_batch(m->engine, m->gpu, m->scratch, m->chunks, m->nchunks,
                              count_finding, &found, NULL);
    return NULL;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Aggregate MB/s of `threads` workers each scanning a batch of `bytes`
 * (the same text: the scan only reads it) `rounds` times; < 0 on error.
 * Scratches are allocated before the clock starts; starting threads costs
 * microseconds against the tenths of a second measured. */
static double measure_mb_s(const kh_engine *e, kh_gpu *gpu, const kh_chunk *chunks,
                           size_t nchunks, size_t bytes, int threads, int rounds)
{
    pthread_t *tid = calloc((size_t)threads, sizeof *tid);
    measure *m = calloc((size_t)threads, sizeof *m);
    int rc = tid && m ? KH_OK : KH_ENOMEM;
    int made = 0, started = 0;
    for (; rc == KH_OK && made < threads; made++) {
        m[made] = (measure){.engine = e, .gpu = gpu, .chunks = chunks, .nchunks = nchunks,
                            .rounds = rounds};
        rc = kh_scratch_alloc(e, &m[made].scratch);
    }
    double t0 = now_s();
    while (rc == KH_OK && started < threads) {
        if (pthread_create(&tid[started], NULL, measure_main, &m[started]))
            rc = KH_ENOMEM;
        else
            started++;
    }
    for (int i = 0; i < started; i++) {
        pthread_join(tid[i], NULL);
        if (m[i].rc != KH_OK)
            rc = m[i].rc;
    }
    double secs = now_s() - t0;
    for (int i = 0; m && i < made; i++)
        kh_scratch_free(m[i].scratch);
    free(tid);
    free(m);
    if (rc != KH_OK || secs <= 0)
        return -1;
    return (double)bytes * threads * rounds / secs / 1e6;
}

typedef struct result {
    size_t bytes;
    double cpu, gpu;
} result;

/* Smallest measured size from which the GPU wins at every larger size too
 * (a single lucky size in the middle must not route batches); SIZE_MAX =
 * never. */
static size_t crossover_of(const result *r, size_t n)
{
    size_t cross = SIZE_MAX;
    for (size_t i = n; i-- > 0;) {
        if (!(r[i].gpu > r[i].cpu))
            break;
        cross = r[i].bytes;
    }
    return cross;
}

static void json_escape(FILE *f, const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
}

static void write_json(FILE *f, const char *backend, int threads, const result *r, size_t n,
                       size_t cross)
{
    fprintf(f, "{\n  \"format\": %d,\n  \"keyhog\": \"%s\",\n  \"backend\": \"", CALIBRATION_FORMAT,
            KH_VERSION);
    json_escape(f, backend);
    fprintf(f, "\",\n  \"threads\": %d,\n  \"measurements\": [", threads);
    for (size_t i = 0; i < n; i++)
        fprintf(f, "%s\n    {\"batch_bytes\": %zu, \"cpu_mb_s\": %.1f, \"gpu_mb_s\": %.1f}",
                i ? "," : "", r[i].bytes, r[i].cpu, r[i].gpu);
    fprintf(f, "%s],\n", n ? "\n  " : "");
    if (cross == SIZE_MAX)
        fprintf(f, "  \"crossover\": \"never\"\n}\n");
    else
        fprintf(f, "  \"crossover\": %zu\n}\n", cross);
}

/* Written to a temporary name and renamed, so a scan never reads half. */
static int store(const char *backend, int threads, const result *r, size_t n, size_t cross,
                 char *path, size_t cap)
{
    char dir[4096], tmp[4300];
    if (calibration_dir(dir, sizeof dir) || make_dirs(dir) ||
        snprintf(path, cap, "%s/calibration.json", dir) >= (int)cap ||
        snprintf(tmp, sizeof tmp, "%s.%ld.tmp", path, (long)getpid()) >= (int)sizeof tmp)
        return -1;
    FILE *f = fopen(tmp, "w");
    if (!f)
        return -1;
    write_json(f, backend, threads, r, n, cross);
    if (fclose(f) || rename(tmp, path)) {
        unlink(tmp);
        return -1;
    }
    return 0;
}

static void print_table(const char *backend, int threads, const result *r, size_t n,
                        size_t cross)
{
    printf("backend: %s\nthreads: %d\n", backend, threads);
    if (n) {
        printf("%12s %12s %12s\n", "batch", "cpu MB/s", "gpu MB/s");
        for (size_t i = 0; i < n; i++)
            printf("%9zu MiB %12.0f %12.0f\n", r[i].bytes >> 20, r[i].cpu, r[i].gpu);
    }
    if (cross == SIZE_MAX)
        printf("crossover: never (the CPU serves every batch)\n");
    else
        printf("crossover: %zu bytes (%zu MiB; the GPU serves batches from this size)\n",
               cross, cross >> 20);
}

int cli_calibrate(int argc, char **argv)
{
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    int threads = ncpu > 0 ? (int)ncpu : 1;
    int no_cache = 0, dry_run = 0, json = 0, quiet = 0, ndirs = 0;
    char *dirs[32];
    optind = 1;
    opterr = 0;
    for (;;) {
        int o = getopt_long(argc, argv, ":j:qh", longopts, NULL);
        if (o == -1)
            break;
        char *end;
        switch (o) {
        case 'j':
            threads = (int)strtol(optarg, &end, 10);
            if (*end || threads < 1 || threads > 1024) {
                cli_error("--threads: expected a number from 1 to 1024, got '%s'", optarg);
                return EXIT_ERROR;
            }
            break;
        case OPT_DETECTORS:
            if (ndirs == 32) {
                cli_error("--detectors: at most 32 directories");
                return EXIT_ERROR;
            }
            dirs[ndirs++] = optarg;
            break;
        case OPT_NO_CACHE: no_cache = 1; break;
        case OPT_DRY_RUN: dry_run = 1; break;
        case OPT_JSON: json = 1; break;
        case 'q': quiet = 1; break;
        case 'h': fputs(help, stdout); return EXIT_CLEAN;
        case ':':
            cli_error("option '%s' needs a value", argv[optind - 1]);
            return EXIT_ERROR;
        default:
            cli_error("unknown option '%s' (try keyhog calibrate --help)", argv[optind - 1]);
            return EXIT_ERROR;
        }
    }
    if (optind < argc) {
        cli_error("calibrate takes no arguments, got '%s'", argv[optind]);
        return EXIT_ERROR;
    }
    kh_detectors *set = cli_load_detectors(dirs, ndirs, quiet);
    if (!set)
        return EXIT_ERROR;
    kh_engine_opts eo = {0};
    kh_engine *engine = NULL;
    kh_error err = {0};
    int status = EXIT_ERROR;
    if (cli_engine_compile(set, &eo, !no_cache, &engine, &err) != KH_OK) {
        cli_error("%s", err.message);
        kh_detectors_free(set);
        return EXIT_ERROR;
    }
    kh_gpu *gpu = NULL;
    kh_gpu_opts go = {.all_devices = 1, .quiet = 1};
    kh_error gerr = {0};
    result r[NSIZES];
    size_t nr = 0;
    char backend[600];
    uint8_t *text = NULL;
    kh_chunk *chunks = NULL;
    if (kh_gpu_open(engine, &go, &gpu, &gerr) != KH_OK) {
        snprintf(backend, sizeof backend, "cpu: no usable GPU (%s)", gerr.message);
        if (!quiet)
            fprintf(stderr, "keyhog: no usable GPU (%s): the CPU serves every batch\n",
                    gerr.message);
    } else {
        text = make_text(LARGEST_BATCH);
        size_t nchunks = (LARGEST_BATCH + CHUNK_BYTES - 1) / CHUNK_BYTES;
        chunks = calloc(nchunks, sizeof *chunks);
        if (!text || !chunks) {
            cli_error("out of memory for the calibration data");
            goto out;
        }
        for (size_t i = 0; i < nchunks; i++) {
            size_t off = i * CHUNK_BYTES;
            size_t len = LARGEST_BATCH - off < CHUNK_BYTES ? LARGEST_BATCH - off : CHUNK_BYTES;
            chunks[i] = (kh_chunk){.data = text + off, .len = len, .path = "calibration"};
        }
        /* One untimed batch each: the first GPU batch allocates and warms
         * the device, the first CPU one the scratch and the caches. */
        if (measure_mb_s(engine, NULL, chunks, 4, 4 * CHUNK_BYTES, 1, 1) < 0 ||
            measure_mb_s(engine, gpu, chunks, 4, 4 * CHUNK_BYTES, 1, 1) < 0) {
            cli_error("a calibration scan failed");
            goto out;
        }
        for (size_t i = 0; i < NSIZES; i++) {
            size_t n = sizes[i] / CHUNK_BYTES;
            unsigned long long per_round = (unsigned long long)sizes[i] * (unsigned)threads;
            int rounds = (int)((MIN_WORK + per_round - 1) / per_round);
            r[nr].bytes = n * CHUNK_BYTES;
            r[nr].cpu = measure_mb_s(engine, NULL, chunks, n, r[nr].bytes, threads, rounds);
            /* An untimed round first: each worker's first batch of a size
             * allocates its page-locked buffer (a quarter GiB in all at 16 MiB, far
             * slower than scanning it), which a scan pays once, not per
             * batch. */
            r[nr].gpu = measure_mb_s(engine, gpu, chunks, n, r[nr].bytes, threads, 1);
            if (r[nr].gpu >= 0)
                r[nr].gpu = measure_mb_s(engine, gpu, chunks, n, r[nr].bytes, threads, rounds);
            if (r[nr].cpu < 0 || r[nr].gpu < 0) {
                cli_error("a calibration scan failed");
                goto out;
            }
            if (!quiet && !json)
                fprintf(stderr, "keyhog: %zu MiB batches: cpu %.0f MB/s, gpu %.0f MB/s\n",
                        r[nr].bytes >> 20, r[nr].cpu, r[nr].gpu);
            nr++;
        }
        /* A device that failed during the runs served them on the CPU. */
        snprintf(backend, sizeof backend, "%s", kh_gpu_status(gpu));
    }
    size_t cross = strncmp(backend, "gpu", 3) ? SIZE_MAX : crossover_of(r, nr);
    char path[4200] = "";
    if (!dry_run && store(backend, threads, r, nr, cross, path, sizeof path)) {
        cli_error("cannot store the calibration (set KEYHOG_CACHE_DIR to a writable "
                  "directory)");
        goto out;
    }
    if (json)
        write_json(stdout, backend, threads, r, nr, cross);
    else if (!quiet) {
        print_table(backend, threads, r, nr, cross);
        if (*path)
            printf("stored: %s\n", path);
    }
    status = EXIT_CLEAN;
out:
    free(chunks);
    free(text);
    kh_gpu_close(gpu);
    kh_engine_free(engine);
    kh_detectors_free(set);
    return status;
}
