/*
 * scan.c - `keyhog scan`: options, sources into the pipeline, then the
 * findings sorted (path, offset, detector), deduplicated by (detector,
 * secret) with every location kept, and written in one thread, so two runs
 * over the same input print the same bytes.
 */
#include <errno.h>
#include <getopt.h>
#include <git2.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/config.h"
#include "cli/pipeline.h"
#include "verify/verify.h"

static const char scan_usage[] =
    "usage: keyhog scan [options] [PATH ...]\n"
    "\n"
    "Scans files and directories (default: the current directory) for\n"
    "credentials.  PATH - reads standard input.\n"
    "\n"
    "git:\n"
    "      --git               scan the history of the git repositories PATH (default .):\n"
    "                          every blob reachable from every ref, once\n"
    "      --branch REF        with --git: only history reachable from REF\n"
    "      --since DATE        with --git: only commits since DATE (YYYY-MM-DD)\n"
    "      --range A..B        with --git: only commits in B and not in A\n"
    "      --staged            scan what `git commit` would record (pre-commit)\n"
    "\n"
    "output:\n"
    "  -f, --format FMT        text (default), json, jsonl, sarif or html\n"
    "  -o, --output FILE       write findings to FILE instead of stdout\n"
    "      --show-secrets      print secrets in full (redacted by default)\n"
    "      --color WHEN        auto (default), always or never\n"
    "      --no-dedupe         list each location of a secret as its own finding\n"
    "  -q, --quiet             no summary or skip messages on stderr\n"
    "\n"
    "filtering:\n"
    "      --min-severity LVL  info (default), low, medium, high or critical\n"
    "      --min-confidence X  drop findings below confidence X in [0,1] (default 0.35)\n"
    "      --detectors DIR     add or override detectors from DIR/*.toml (repeatable)\n"
    "      --config FILE       read FILE instead of the nearest .keyhog.toml\n"
    "      --no-config         read no config file\n"
    "      --baseline FILE     report only findings not in FILE (keyhog baseline create)\n"
    "\n"
    "input:\n"
    "      --no-ignore         do not honour .gitignore / .keyhogignore files\n"
    "      --follow            follow symbolic links\n"
    "      --max-file-size N   skip files larger than N bytes (K/M/G suffixes; default 32M)\n"
    "      --stdin-name NAME   path reported for standard input (default <stdin>)\n"
    "      --no-archives       do not open archives (zip, jar, tar, gz, 7z...) and images\n"
    "      --max-archive-size N  read archives up to N bytes (default 256M)\n"
    "      --no-decode         do not decode base64/hex/url/escaped text\n"
    "      --decode-depth N    nested decoding depth (default 3)\n"
    "      --fail-on-skip      exit 2 if any input was skipped (unreadable, too large...)\n"
    "\n"
    "verification (opt-in: sends each secret found to its own service):\n"
    "      --verify            check each finding live with its service (read-only calls)\n"
    "      --verify-concurrency N  requests in flight at once (default 8)\n"
    "      --verify-rate X     requests per second per host (default 5)\n"
    "      --verify-timeout S  seconds per request (default 10)\n"
    "      --verify-cache FILE reuse and save outcomes in FILE (JSON, by fingerprint)\n"
    "      --verify-cache-ttl D  ask again about cached outcomes older than D (default 24h)\n"
    "\n"
    "performance:\n"
    "  -j, --threads N         worker threads (default: all cores)\n"
    "      --block-size N      engine block size (for testing; default 8M)\n"
    "      --no-cache          do not read or write the compiled-detector cache\n"
    "      --backend B         auto (default: the GPU where keyhog calibrate found it\n"
    "                          faster, once 4 GiB ($KEYHOG_GPU_AUTO_AFTER bytes) went\n"
    "                          through, else the CPU), cpu or gpu; $KEYHOG_GPU_LANES\n"
    "                          sessions a GPU (3), $KEYHOG_GPU_STATS=1 says where\n"
    "                          the GPU path's time went\n"
    "      --shard K/N         scan only part K of N (1 <= K <= N): files by a hash of\n"
    "                          their path under PATH, git blobs by id, stdin in part 1;\n"
    "                          with --no-dedupe, N runs' JSONL concatenate into the\n"
    "                          whole scan (docs/scale.md merges deduplicated ones)\n"
    "\n"
    "exit status: 0 no findings, 1 findings, 2 usage, configuration or fatal error\n"
    "(or a skipped input with --fail-on-skip), 130 interrupted by Ctrl-C, 143 by SIGTERM\n";

/* Chosen by measurement (docs/accuracy.md): on linux-source-6.1 with 500
 * planted secrets every planted finding scores >= 0.43 while the only other
 * finding, a selftest signing key under tools/testing/, scores 0.31; the
 * model's own held-out data puts the best F1 at 0.40.  0.35 keeps a margin
 * below real secrets. */
#define CLI_DEFAULT_MIN_CONFIDENCE 0.35

enum {
    OPT_SHOW_SECRETS = 256,
    OPT_MIN_SEVERITY,
    OPT_MIN_CONFIDENCE,
    OPT_DETECTORS,
    OPT_NO_IGNORE,
    OPT_FOLLOW,
    OPT_MAX_FILE_SIZE,
    OPT_STDIN_NAME,
    OPT_NO_DECODE,
    OPT_DECODE_DEPTH,
    OPT_BLOCK_SIZE,
    OPT_COLOR,
    OPT_NO_DEDUPE,
    OPT_CONFIG,
    OPT_NO_CONFIG,
    OPT_BASELINE,
    OPT_NO_CACHE,
    OPT_VERIFY,
    OPT_VERIFY_CONCURRENCY,
    OPT_VERIFY_RATE,
    OPT_VERIFY_TIMEOUT,
    OPT_VERIFY_CACHE,
    OPT_VERIFY_CACHE_TTL,
    OPT_VERIFY_CA_BUNDLE, /* tests only; docs/verify.md */
    OPT_BACKEND,
    OPT_FAIL_ON_SKIP,
    OPT_GIT,
    OPT_BRANCH,
    OPT_SINCE,
    OPT_RANGE,
    OPT_STAGED,
    OPT_NO_ARCHIVES,
    OPT_MAX_ARCHIVE_SIZE,
    OPT_SHARD,
};

static const struct option scan_options[] = {
    {"format", required_argument, 0, 'f'},
    {"output", required_argument, 0, 'o'},
    {"threads", required_argument, 0, 'j'},
    {"quiet", no_argument, 0, 'q'},
    {"help", no_argument, 0, 'h'},
    {"show-secrets", no_argument, 0, OPT_SHOW_SECRETS},
    {"min-severity", required_argument, 0, OPT_MIN_SEVERITY},
    {"min-confidence", required_argument, 0, OPT_MIN_CONFIDENCE},
    {"detectors", required_argument, 0, OPT_DETECTORS},
    {"no-ignore", no_argument, 0, OPT_NO_IGNORE},
    {"follow", no_argument, 0, OPT_FOLLOW},
    {"max-file-size", required_argument, 0, OPT_MAX_FILE_SIZE},
    {"stdin-name", required_argument, 0, OPT_STDIN_NAME},
    {"no-decode", no_argument, 0, OPT_NO_DECODE},
    {"decode-depth", required_argument, 0, OPT_DECODE_DEPTH},
    {"block-size", required_argument, 0, OPT_BLOCK_SIZE},
    {"color", required_argument, 0, OPT_COLOR},
    {"no-dedupe", no_argument, 0, OPT_NO_DEDUPE},
    {"config", required_argument, 0, OPT_CONFIG},
    {"no-config", no_argument, 0, OPT_NO_CONFIG},
    {"baseline", required_argument, 0, OPT_BASELINE},
    {"no-cache", no_argument, 0, OPT_NO_CACHE},
    {"git", no_argument, 0, OPT_GIT},
    {"branch", required_argument, 0, OPT_BRANCH},
    {"since", required_argument, 0, OPT_SINCE},
    {"range", required_argument, 0, OPT_RANGE},
    {"staged", no_argument, 0, OPT_STAGED},
    {"no-archives", no_argument, 0, OPT_NO_ARCHIVES},
    {"max-archive-size", required_argument, 0, OPT_MAX_ARCHIVE_SIZE},
    {"verify", no_argument, 0, OPT_VERIFY},
    {"verify-concurrency", required_argument, 0, OPT_VERIFY_CONCURRENCY},
    {"verify-rate", required_argument, 0, OPT_VERIFY_RATE},
    {"verify-timeout", required_argument, 0, OPT_VERIFY_TIMEOUT},
    {"verify-cache", required_argument, 0, OPT_VERIFY_CACHE},
    {"verify-cache-ttl", required_argument, 0, OPT_VERIFY_CACHE_TTL},
    {"verify-ca-bundle", required_argument, 0, OPT_VERIFY_CA_BUNDLE},
    {"backend", required_argument, 0, OPT_BACKEND},
    {"fail-on-skip", no_argument, 0, OPT_FAIL_ON_SKIP},
    {"shard", required_argument, 0, OPT_SHARD},
    {0, 0, 0, 0},
};

typedef struct scan_args {
    int format;
    const char *output;
    int show_secrets;
    int color; /* -1 auto */
    int dedupe;
    int quiet;
    int threads;
    int min_severity;
    double min_confidence;
    char *detector_dirs[32];
    int ndetector_dirs;
    walk_opts walk;
    const char *stdin_name;
    int decode_depth;
    long long block_size;
    const char *config;
    int no_config;
    const char *baseline;
    int set_min_severity, set_min_confidence, set_max_file_size;
    int baseline_create; /* `keyhog baseline create` */
    int no_cache;
    int git;
    git_scan_opts git_opts;
    int no_archives;
    uint64_t max_archive_size;
    int verify;
    verify_opts verify_opts;
    const char *backend; /* "auto", "cpu" or "gpu" */
    int fail_on_skip;
    sources_shard shard; /* --shard K/N; count 0 = the whole input */
} scan_args;

/* "K/N" with 1 <= K <= N -> shard (index K - 1); -1 if malformed. */
static int parse_shard(const char *s, sources_shard *out)
{
    char *end;
    errno = 0;
    unsigned long k = strtoul(s, &end, 10);
    if (end == s || *end != '/' || s[0] == '-' || s[0] == '+' || errno)
        return -1;
    const char *n_text = end + 1;
    unsigned long n = strtoul(n_text, &end, 10);
    if (end == n_text || *end || n_text[0] == '-' || n_text[0] == '+' || errno)
        return -1;
    if (k < 1 || n < 1 || k > n || n > 1000000)
        return -1;
    out->index = (uint32_t)(k - 1);
    out->count = (uint32_t)n;
    return 0;
}

static int parse_args(int argc, char **argv, scan_args *a)
{
    memset(a, 0, sizeof *a);
    a->format = REPORT_TEXT;
    a->color = -1;
    a->dedupe = 1;
    a->walk.max_file_size = 32u << 20;
    a->max_archive_size = 256u << 20;
    a->stdin_name = "<stdin>";
    a->decode_depth = -1;
    a->min_confidence = CLI_DEFAULT_MIN_CONFIDENCE;
    verify_opts_default(&a->verify_opts);
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    a->threads = n > 0 ? (int)n : 1;
    optind = 1;
    int c;
    char *end;
    while ((c = getopt_long(argc, argv, "f:o:j:qh", scan_options, NULL)) != -1) {
        switch (c) {
        case 'f':
            if ((a->format = report_format_parse(optarg)) < 0) {
                cli_error("--format: unknown format '%s' (text, json, jsonl, sarif, html)",
                          optarg);
                return -1;
            }
            break;
        case 'o': a->output = optarg; break;
        case 'q': a->quiet = 1; break;
        case 'h': fputs(scan_usage, stdout); return 1;
        case 'j':
            a->threads = (int)strtol(optarg, &end, 10);
            if (*end || a->threads < 1 || a->threads > 1024) {
                cli_error("--threads: expected a number from 1 to 1024, got '%s'", optarg);
                return -1;
            }
            break;
        case OPT_SHOW_SECRETS: a->show_secrets = 1; break;
        case OPT_MIN_SEVERITY:
            if ((a->min_severity = kh_severity_parse(optarg)) < 0) {
                cli_error("--min-severity: unknown level '%s'", optarg);
                return -1;
            }
            a->set_min_severity = 1;
            break;
        case OPT_MIN_CONFIDENCE:
            a->min_confidence = strtod(optarg, &end);
            if (*end || a->min_confidence < 0 || a->min_confidence > 1) {
                cli_error("--min-confidence: expected a number in [0, 1], got '%s'", optarg);
                return -1;
            }
            a->set_min_confidence = 1;
            break;
        case OPT_DETECTORS:
            if (a->ndetector_dirs == 32) {
                cli_error("--detectors: at most 32 directories");
                return -1;
            }
            a->detector_dirs[a->ndetector_dirs++] = optarg;
            break;
        case OPT_NO_IGNORE: a->walk.no_ignore = 1; break;
        case OPT_FOLLOW: a->walk.follow_symlinks = 1; break;
        case OPT_MAX_FILE_SIZE: {
            long long v = cli_parse_size(optarg);
            if (v < 0) {
                cli_error("--max-file-size: bad size '%s'", optarg);
                return -1;
            }
            a->walk.max_file_size = (uint64_t)v;
            a->set_max_file_size = 1;
            break;
        }
        case OPT_STDIN_NAME: a->stdin_name = optarg; break;
        case OPT_NO_DECODE: a->decode_depth = 0; break;
        case OPT_DECODE_DEPTH:
            a->decode_depth = (int)strtol(optarg, &end, 10);
            if (*end || a->decode_depth < 0 || a->decode_depth > 6) {
                cli_error("--decode-depth: expected 0 to 6, got '%s'", optarg);
                return -1;
            }
            break;
        case OPT_BLOCK_SIZE:
            a->block_size = cli_parse_size(optarg);
            if (a->block_size < 1 || a->block_size > (1LL << 30)) {
                cli_error("--block-size: expected 1 byte to 1G, got '%s'", optarg);
                return -1;
            }
            break;
        case OPT_COLOR:
            if (!strcmp(optarg, "auto"))
                a->color = -1;
            else if (!strcmp(optarg, "always"))
                a->color = 1;
            else if (!strcmp(optarg, "never"))
                a->color = 0;
            else {
                cli_error("--color: expected auto, always or never, got '%s'", optarg);
                return -1;
            }
            break;
        case OPT_NO_DEDUPE: a->dedupe = 0; break;
        case OPT_CONFIG: a->config = optarg; break;
        case OPT_NO_CONFIG: a->no_config = 1; break;
        case OPT_BASELINE: a->baseline = optarg; break;
        case OPT_NO_CACHE: a->no_cache = 1; break;
        case OPT_GIT: a->git = 1; break;
        case OPT_BRANCH: a->git_opts.branch = optarg; a->git = 1; break;
        case OPT_RANGE: a->git_opts.range = optarg; a->git = 1; break;
        case OPT_STAGED: a->git_opts.staged = 1; a->git = 1; break;
        case OPT_SINCE: {
            struct tm tm = {0};
            char *rest = strptime(optarg, "%Y-%m-%d", &tm);
            if (rest && (*rest == 'T' || *rest == ' '))
                rest = strptime(rest + 1, "%H:%M:%S", &tm);
            if (!rest || (*rest && strcmp(rest, "Z") != 0)) {
                cli_error("--since: expected YYYY-MM-DD or YYYY-MM-DDTHH:MM:SS (UTC), got '%s'",
                          optarg);
                return -1;
            }
            a->git_opts.since = timegm(&tm);
            a->git = 1;
            break;
        }
        case OPT_NO_ARCHIVES: a->no_archives = 1; break;
        case OPT_MAX_ARCHIVE_SIZE: {
            long long v = cli_parse_size(optarg);
            if (v < 1) {
                cli_error("--max-archive-size: bad size '%s'", optarg);
                return -1;
            }
            a->max_archive_size = (uint64_t)v;
            break;
        }
        case OPT_VERIFY: a->verify = 1; break;
        case OPT_VERIFY_CONCURRENCY:
        case OPT_VERIFY_RATE:
        case OPT_VERIFY_TIMEOUT:
        case OPT_VERIFY_CACHE:
        case OPT_VERIFY_CACHE_TTL:
        case OPT_VERIFY_CA_BUNDLE: {
            const struct option *o = scan_options;
            while (o->val != c)
                o++;
            char why[200];
            if (verify_opts_set(&a->verify_opts, o->name, optarg, why, sizeof why)) {
                cli_error("--%s: %s", o->name, why);
                return -1;
            }
            break;
        }
        case OPT_BACKEND:
            if (strcmp(optarg, "auto") && strcmp(optarg, "cpu") && strcmp(optarg, "gpu")) {
                cli_error("--backend: expected auto, cpu or gpu, got '%s'", optarg);
                return -1;
            }
            a->backend = optarg;
            break;
        case OPT_FAIL_ON_SKIP: a->fail_on_skip = 1; break;
        case OPT_SHARD:
            if (parse_shard(optarg, &a->shard)) {
                cli_error("--shard: expected K/N with 1 <= K <= N <= 1000000, got '%s'",
                          optarg);
                return -1;
            }
            break;
        default:
            fputs("try: keyhog scan --help\n", stderr);
            return -1;
        }
    }
    return 0;
}

/* Git findings come in history order (the walk is oldest first), so a
 * secret's first location is the commit that introduced it; everything
 * else in (path, offset) order. */
static uint64_t finding_history_key(const report_finding *f)
{
    return f->locations[0].commit ? f->locations[0].seq : UINT64_MAX;
}

static int cmp_finding(const void *a, const void *b)
{
    const report_finding *x = a, *y = b;
    uint64_t hx = finding_history_key(x), hy = finding_history_key(y);
    if (hx != hy)
        return hx < hy ? -1 : 1;
    int c = strcmp(x->locations[0].path, y->locations[0].path);
    if (c)
        return c;
    if (x->locations[0].offset != y->locations[0].offset)
        return x->locations[0].offset < y->locations[0].offset ? -1 : 1;
    c = strcmp(x->detector->id, y->detector->id);
    if (c)
        return c;
    c = strcmp(x->fingerprint, y->fingerprint);
    if (c)
        return c;
    return (x->locations[0].seq > y->locations[0].seq) - (x->locations[0].seq < y->locations[0].seq);
}

typedef struct fp_index {
    const char *fingerprint;
    size_t index;
} fp_index;

static int cmp_fp_index(const void *a, const void *b)
{
    const fp_index *x = a, *y = b;
    int c = strcmp(x->fingerprint, y->fingerprint);
    if (c)
        return c;
    return (x->index > y->index) - (x->index < y->index);
}

/* Merges findings with the same (detector, secret) - the same fingerprint -
 * into the first in cmp_finding order, which keeps every location. */
static void dedupe(findings_vec *v)
{
    size_t n = v->count;
    if (n < 2)
        return;
    report_finding *items = v->items;
    fp_index *idx = malloc(n * sizeof *idx);
    char *dead = calloc(n, 1);
    if (!idx || !dead) {
        free(idx);
        free(dead);
        return;
    }
    for (size_t i = 0; i < n; i++)
        idx[i] = (fp_index){items[i].fingerprint, i};
    qsort(idx, n, sizeof *idx, cmp_fp_index);
    for (size_t i = 0; i < n;) {
        size_t j = i + 1;
        while (j < n && !strcmp(idx[i].fingerprint, idx[j].fingerprint))
            j++;
        report_finding *keep = &items[idx[i].index];
        size_t extra = j - i - 1;
        report_location *locs =
            extra ? realloc(keep->locations, (keep->location_count + extra) * sizeof *locs)
                  : NULL;
        if (locs) {
            keep->locations = locs;
            for (size_t k = i + 1; k < j; k++) {
                report_finding *dup = &items[idx[k].index];
                if (dup->confidence > keep->confidence)
                    keep->confidence = dup->confidence;
                keep->locations[keep->location_count++] = dup->locations[0];
                dup->location_count = 0; /* its location moved */
                report_finding_clear(dup);
                dead[idx[k].index] = 1;
            }
        }
        i = j;
    }
    size_t w = 0;
    for (size_t i = 0; i < n; i++)
        if (!dead[i])
            items[w++] = items[i];
    v->count = w;
    free(dead);
    free(idx);
}

static int is_directory(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static int scan_stdin(pipeline *p, const char *name, uint64_t max)
{
    size_t cap = 1 << 16, len = 0;
    uint8_t *buf = malloc(cap);
    if (!buf)
        return -1;
    for (;;) {
        if (len == cap) {
            if (max && cap >= max) {
                pipeline_skip(name, "larger than --max-file-size", p);
                free(buf);
                return 0;
            }
            uint8_t *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                return -1;
            }
            buf = nb;
            cap *= 2;
        }
        ssize_t r = read(0, buf + len, cap - len);
        if (r < 0 && errno == EINTR && cli_interrupted()) {
            free(buf);
            return 0;
        }
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            pipeline_skip(name, strerror(errno), p);
            free(buf);
            return 0;
        }
        if (r == 0)
            break;
        len += (size_t)r;
    }
    source_item it = {.path = name, .data = buf, .len = len};
    pipeline_emit(&it, p);
    free(buf);
    return 0;
}

/* Writes to a temporary file beside the target and renames it, so an
 * interrupted run never leaves a half-written report.  Returns 0, -1 on
 * error, 1 when a signal came while writing and the target was left as it
 * was. */
static int write_to(FILE *f, const scan_args *a, const report_opts *ro, findings_vec *v,
                    const report_stats *st)
{
    if (a->baseline_create)
        return baseline_write(f, v->items, v->count);
    return report_write(f, ro, v->items, v->count, st);
}

static int write_report(const scan_args *a, const report_opts *ro, findings_vec *v,
                        const report_stats *st)
{
    if (!a->output)
        return write_to(stdout, a, ro, v, st) == 0 && fflush(stdout) == 0 ? 0 : -1;
    size_t n = strlen(a->output) + 32;
    char *tmp = malloc(n);
    if (!tmp)
        return -1;
    snprintf(tmp, n, "%s.tmp.%ld", a->output, (long)getpid());
    FILE *f = fopen(tmp, "w");
    if (!f) {
        cli_error("%s: %s", tmp, strerror(errno));
        free(tmp);
        return -1;
    }
    int ok = write_to(f, a, ro, v, st) == 0;
    ok &= fclose(f) == 0;
    if (ok && cli_interrupted()) { /* a signal while writing: keep the old file */
        unlink(tmp);
        free(tmp);
        return 1;
    }
    if (ok && rename(tmp, a->output) != 0)
        ok = 0;
    if (!ok) {
        cli_error("%s: %s", a->output, strerror(errno));
        unlink(tmp);
    }
    free(tmp);
    return ok ? 0 : -1;
}

/* Applies the config file under the command line: flags win. */
static int apply_config(scan_args *a, const char *first_path, cli_config *c)
{
    memset(c, 0, sizeof *c);
    if (a->no_config)
        return 0;
    char *path = a->config ? strdup(a->config) : config_find(first_path);
    if (!path)
        return 0;
    char err[600];
    int rc = config_load(path, c, err, sizeof err);
    free(path);
    if (rc) {
        cli_error("%s", err);
        return -1;
    }
    if (c->has_min_confidence && !a->set_min_confidence)
        a->min_confidence = c->min_confidence;
    if (c->has_min_severity && !a->set_min_severity)
        a->min_severity = c->min_severity;
    if (c->has_max_file_size && !a->set_max_file_size)
        a->walk.max_file_size = c->max_file_size;
    return 0;
}

/* Severity overrides, thresholds, allowlist and baseline, after dedupe so a
 * baseline entry silences every location of its secret. */
static void filter_findings(findings_vec *v, const scan_args *a, const cli_config *c,
                            const triage_allowlist *allow, triage_baseline *base,
                            report_stats *st)
{
    size_t w = 0;
    for (size_t i = 0; i < v->count; i++) {
        report_finding *f = &v->items[i];
        for (size_t k = 0; k < c->override_count; k++)
            if (!strcmp(c->overrides[k].id, f->detector->id))
                f->severity = (kh_severity)c->overrides[k].severity;
        int drop = (int)f->severity < a->min_severity || f->confidence < a->min_confidence;
        if (!drop && (triage_allowlist_match(allow, f->locations[0].path,
                                             (const uint8_t *)f->secret, f->secret_len) ||
                      triage_baseline_contains(base, f->fingerprint))) {
            drop = 1;
            st->suppressed++;
        }
        if (drop)
            report_finding_clear(f);
        else
            v->items[w++] = *f;
    }
    v->count = w;
}

/* --backend auto opens the GPU only after this many bytes went through
 * batches.  Its start-up (CUDA, device buffers, the resident kernel) takes
 * about 0.6 s on the H200 host, where the GPU path scans at about 15 GB/s
 * against 4-6 GB/s on the CPU: it pays for itself from about 4 GB on, so
 * a small tree, a pre-commit hook or a single repository never waits for
 * it, and a bulk scan moves to the GPU early. */
#define AUTO_GPU_AFTER (4ull << 30)

static kh_gpu *open_gpu_quietly(void *engine)
{
    kh_gpu_opts go = {.all_devices = 1, .quiet = 1};
    kh_gpu *g = NULL;
    kh_error err = {0};
    return kh_gpu_open(engine, &go, &g, &err) == KH_OK ? g : NULL;
}

static int scan_main(int argc, char **argv, int baseline_create)
{
    scan_args a;
    int pr = parse_args(argc, argv, &a);
    if (pr != 0)
        return pr > 0 ? EXIT_CLEAN : EXIT_ERROR;
    a.baseline_create = baseline_create;
    if (baseline_create && !a.output) {
        cli_error("baseline create: -o FILE is required");
        return EXIT_ERROR;
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    char *default_paths[] = {".", NULL};
    char **paths = optind < argc ? argv + optind : default_paths;
    int npaths = optind < argc ? argc - optind : 1;

    cli_config conf;
    if (apply_config(&a, strcmp(paths[0], "-") ? paths[0] : ".", &conf)) {
        config_free(&conf); /* a half-read file still holds what it read */
        return EXIT_ERROR;
    }
    char *dirs[64];
    int ndirs = 0;
    for (size_t i = 0; i < conf.detector_dir_count && ndirs < 32; i++)
        dirs[ndirs++] = conf.detector_dirs[i];
    for (int i = 0; i < a.ndetector_dirs; i++)
        dirs[ndirs++] = a.detector_dirs[i];
    char err_text[600];
    triage_allowlist *allow = NULL;
    triage_baseline base = {0};
    kh_detectors *set = NULL;
    kh_engine *engine = NULL;
    int status = EXIT_ERROR;
    if (!(allow = config_allowlist(&conf, err_text, sizeof err_text))) {
        cli_error("%s", err_text);
        goto out;
    }
    if (a.baseline && baseline_load(a.baseline, &base, err_text, sizeof err_text)) {
        cli_error("%s", err_text);
        goto out;
    }
    if (!(set = cli_load_detectors(dirs, ndirs, a.quiet)))
        goto out;
    for (size_t i = 0; i < conf.disabled_count; i++)
        if (kh_detectors_remove(set, conf.disabled[i]) != KH_OK && !a.quiet)
            cli_error("%s: disable: no detector '%s'", conf.path, conf.disabled[i]);
    kh_engine_opts eo = {.block_size = (size_t)a.block_size, .decode_depth = a.decode_depth};
    kh_error err = {0};
    if (cli_engine_compile(set, &eo, !a.no_cache, &engine, &err) != KH_OK) {
        cli_error("%s", err.message);
        goto out;
    }
    scan_config cfg = {
        .engine = engine,
        .threads = a.threads,
        .max_file_size = a.walk.max_file_size,
        .max_archive_size = a.max_archive_size > a.walk.max_file_size ? a.max_archive_size
                                                                      : a.walk.max_file_size,
        .no_archives = a.no_archives,
        .quiet = a.quiet,
        .min_confidence = a.min_confidence,
        .min_severity = a.min_severity,
        .progress = !a.quiet && isatty(2),
        /* Only the HTML report shows the lines around a finding. */
        .context_lines = a.format == REPORT_HTML && !a.baseline_create ? 2 : 0,
        .show_secrets = a.show_secrets,
    };
    cli_interrupt_install();
    /* The GPU finds keyword windows, the CPU confirms them: output is the
     * same bytes either way (docs/gpu.md).  auto sends a batch to the GPU
     * only when `keyhog calibrate` measured the GPU faster for batches that
     * large, and opens it only once the scan is big (AUTO_GPU_AFTER);
     * without a calibration it is the CPU, and it falls back silently.  gpu
     * sends every batch and says why it fell back. */
    kh_gpu *gpu = NULL;
    int want_gpu = a.backend && !strcmp(a.backend, "gpu");
    size_t crossover = SIZE_MAX;
    if (!want_gpu && (!a.backend || !strcmp(a.backend, "auto")) &&
        cli_calibration_load(&crossover) == 0 && crossover != SIZE_MAX) {
        /* auto: opened only once the scan is big enough to pay for it. */
        cfg.gpu_open = open_gpu_quietly;
        cfg.gpu_open_ctx = (void *)engine;
        const char *after = getenv("KEYHOG_GPU_AUTO_AFTER"); /* bytes; tests set 0 */
        cfg.gpu_open_after = AUTO_GPU_AFTER;
        if (after && *after) {
            char *end;
            errno = 0;
            unsigned long long v = strtoull(after, &end, 10);
            if (errno || *end || after[0] == '-')
                cli_error("KEYHOG_GPU_AUTO_AFTER: not a byte count: %s; using 4 GiB", after);
            else
                cfg.gpu_open_after = v;
        }
        cfg.gpu_min_batch = crossover;
    }
    if (want_gpu) {
        kh_gpu_opts go = {.all_devices = 1, .quiet = a.quiet};
        kh_error gerr = {0};
        if (kh_gpu_open(engine, &go, &gpu, &gerr) != KH_OK && !a.quiet)
            cli_error("%s; scanning on the CPU", gerr.message);
        cfg.gpu = gpu;
        cfg.gpu_min_batch = 0;
    }
    pipeline *p = pipeline_start(&cfg);
    if (!p) {
        kh_gpu_close(gpu);
        goto out;
    }
    /* Scans that outlast a second show a progress line on a terminal. */
    progress *prog = cfg.progress ? progress_start(p, 1000) : NULL;
    int fatal = 0;
    for (int i = 0; i < npaths && !cli_interrupted(); i++) {
        if (!strcmp(paths[i], "-")) {
            if (a.shard.index != 0) /* standard input is part 1's; the others leave it */
                continue;
            if (scan_stdin(p, a.stdin_name, a.walk.max_file_size) != 0)
                fatal = 1;
            continue;
        }
        if (a.git) {
            /* libgit2's object cache only costs memory here: each blob is
             * read once (measured: 4x less memory, same speed). */
            git_libgit2_init();
            git_libgit2_opts(GIT_OPT_SET_CACHE_MAX_SIZE, (ssize_t)0);
            git_scan_opts go = a.git_opts;
            go.max_blob_size = a.walk.max_file_size;
            go.shard = a.shard;
            sources_git(paths[i], &go, pipeline_emit, pipeline_skip, p);
            continue;
        }
        if (!a.no_archives && sources_is_image(paths[i]) && is_directory(paths[i])) {
            /* An OCI layout directory; image tarballs are found by the
             * workers like any archive. */
            archive_opts ao = {.max_member_size = a.walk.max_file_size};
            image_opts io = {.max_file_size = a.walk.max_file_size, .archives = &ao};
            /* One unit, like an image tarball: the shard of its path. */
            if (sources_shard_owns(&a.shard, paths[i], strlen(paths[i])))
                sources_image(paths[i], &io, pipeline_emit, pipeline_skip, p);
            continue;
        }
        walk_opts wo = a.walk;
        wo.shard = a.shard;
        if (!a.no_archives && cfg.max_archive_size > wo.max_file_size)
            wo.max_file_size = cfg.max_archive_size; /* workers apply the file limit */
        wo.reader_checks = 1; /* workers' open and fstat check size and access */
        sources_walk(paths[i], &wo, pipeline_emit, pipeline_skip, p);
    }
    findings_vec found = {0};
    report_stats stats = {0};
    pipeline_drain(p);
    progress_stop(prog); /* it reads the workers' counters, which finish frees */
    pipeline_finish(p, &found, &stats);
    kh_gpu_close(gpu);
    qsort(found.items, found.count, sizeof *found.items, cmp_finding);
    if (a.dedupe || baseline_create)
        dedupe(&found);
    filter_findings(&found, &a, &conf, allow, &base, &stats);
    if (a.verify) {
        kh_error verr = {0};
        if (verify_run(&a.verify_opts, found.items, found.count, a.quiet ? NULL : stderr,
                       &verr) != KH_OK) {
            cli_error("%s", verr.message);
            fatal = 1;
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    stats.elapsed_seconds = (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
    stats.findings = found.count;
    stats.detectors = (unsigned)kh_detectors_count(set);

    int color = a.color;
    if (color < 0)
        color = !a.output && isatty(1) && !getenv("NO_COLOR");
    report_opts ro = {.format = a.format, .show_secrets = a.show_secrets, .color = color,
                      .tool_version = KH_VERSION};
    /* Interrupted: partial findings still go to stdout, but -o FILE keeps
     * its old content, since a partial report there would pass for whole. */
    int early = cli_interrupted();
    int written = !early || !a.output ? write_report(&a, &ro, &found, &stats) : 0;
    if (written < 0)
        fatal = 1;
    if (!a.quiet)
        report_summary(stderr, &stats, found.items, found.count,
                       a.color > 0 || (a.color < 0 && isatty(2) && !getenv("NO_COLOR")));
    int sig = cli_interrupted();
    if (early)
        cli_error("interrupted: the scan stopped early, results are partial%s",
                  a.output ? " and were not written" : "");
    else if (written == 1)
        cli_error("interrupted while writing: %s left unchanged", a.output);
    status = sig ? 128 + sig
           : fatal ? EXIT_ERROR
           : a.fail_on_skip && stats.files_skipped ? EXIT_ERROR
           : baseline_create ? EXIT_CLEAN
           : found.count ? EXIT_FINDINGS : EXIT_CLEAN;
    findings_vec_free(&found);
out:
    kh_engine_free(engine);
    kh_detectors_free(set);
    triage_allowlist_free(allow);
    triage_baseline_clear(&base);
    config_free(&conf);
    return status;
}

int cli_scan(int argc, char **argv)
{
    return scan_main(argc, argv, 0);
}

int cli_baseline(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "create") != 0) {
        if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
            fputs("usage: keyhog baseline create [scan options] -o FILE [PATH ...]\n"
                  "\n"
                  "Scans like `keyhog scan` and writes the fingerprints of every finding to\n"
                  "FILE (sorted JSON).  `keyhog scan --baseline FILE` then reports only\n"
                  "findings that are not in it; moving a secret does not make it new.\n",
                  stdout);
            return EXIT_CLEAN;
        }
        cli_error("usage: keyhog baseline create [scan options] -o FILE [PATH ...]");
        return EXIT_ERROR;
    }
    return scan_main(argc - 1, argv + 1, 1);
}
