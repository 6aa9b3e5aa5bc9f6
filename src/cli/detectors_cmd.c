/*
 * detectors_cmd.c - `keyhog detectors`: list the detector set, or run every
 * detector's own [[detector.tests]] through the real engine (all detectors
 * compiled together, as in a scan) and name each that fails.
 */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "report/report.h"

static const char detectors_usage[] =
    "usage: keyhog detectors [--json] [--detectors DIR]\n"
    "       keyhog detectors test [--detectors DIR] [-v] [ID ...]\n"
    "\n"
    "Lists the detectors (id, severity, service, name), or with `test` runs each\n"
    "detector's own examples: every test_positive must produce a finding of that\n"
    "detector (with the expected secret when `expect` is given) and every\n"
    "test_negative must not.  Exits 1 naming each detector that fails.\n"
    "\n"
    "  --json            list as a JSON array\n"
    "  --detectors DIR   add or override detectors from DIR/*.toml (repeatable)\n"
    "  -v, --verbose     print every test, not only failures\n";

typedef struct test_ctx {
    const char *id;
    const char *expect;
    int hits;
    int expected_hit;
} test_ctx;

static int on_test_finding(const kh_finding *f, void *ctx)
{
    test_ctx *t = ctx;
    if (strcmp(f->detector->id, t->id) != 0)
        return 0;
    t->hits++;
    if (t->expect && strlen(t->expect) == f->secret_len &&
        !memcmp(t->expect, f->secret, f->secret_len))
        t->expected_hit = 1;
    return 0;
}

/* Tests are reached through the detector model: the CLI's one look inside
 * spec, since the public API has no use for test cases. */
#include "spec/spec.h"

static int run_tests(kh_detectors *set, char **ids, int nids, int verbose)
{
    kh_engine *engine = NULL;
    kh_error err = {0};
    kh_engine_opts eo = {.decode_depth = 0};
    if (cli_engine_compile(set, &eo, 1, &engine, &err) != KH_OK) {
        cli_error("%s", err.message);
        return EXIT_ERROR;
    }
    kh_scratch *scratch = NULL;
    if (kh_scratch_alloc(engine, &scratch) != KH_OK) {
        kh_engine_free(engine);
        cli_error("out of memory");
        return EXIT_ERROR;
    }
    size_t failed_detectors = 0, tests = 0, failed_tests = 0, without = 0;
    for (size_t i = 0; i < kh_detectors_count(set); i++) {
        const spec_detector *d = spec_from_info(kh_detectors_get(set, i));
        if (nids) {
            int wanted = 0;
            for (int k = 0; k < nids; k++)
                wanted |= !strcmp(ids[k], d->id);
            if (!wanted)
                continue;
        }
        if (d->test_count == 0) {
            without++;
            printf("%s: no tests\n", d->id);
            continue;
        }
        int bad = 0;
        for (size_t t = 0; t < d->test_count; t++) {
            const spec_test *st = &d->tests[t];
            test_ctx tc = {.id = d->id, .expect = st->positive ? st->expect : NULL};
            kh_chunk c = {.data = (const uint8_t *)st->text, .len = strlen(st->text),
                          .path = "detector-test"};
            kh_scan(engine, scratch, &c, on_test_finding, &tc);
            int ok = st->positive ? tc.hits > 0 && (!tc.expect || tc.expected_hit)
                                  : tc.hits == 0;
            tests++;
            if (!ok) {
                failed_tests++;
                bad = 1;
                printf("FAIL %s: test %zu (%s): %s\n    %s\n", d->id, t + 1,
                       st->positive ? "positive" : "negative",
                       st->positive ? (tc.hits ? "expected secret not found" : "no finding")
                                    : "unexpected finding",
                       st->text);
            } else if (verbose) {
                printf("ok   %s: test %zu (%s)\n", d->id, t + 1,
                       st->positive ? "positive" : "negative");
            }
        }
        failed_detectors += bad;
    }
    printf("%zu tests, %zu failed; %zu detectors failed; %zu detectors without tests\n", tests,
           failed_tests, failed_detectors, without);
    kh_scratch_free(scratch);
    kh_engine_free(engine);
    return failed_detectors || without ? EXIT_FINDINGS : EXIT_CLEAN;
}

static void list_json(const kh_detectors *set)
{
    printf("[");
    for (size_t i = 0; i < kh_detectors_count(set); i++) {
        const kh_detector_info *d = kh_detectors_get(set, i);
        printf("%s\n  {\"id\": ", i ? "," : "");
        report_json_string(stdout, d->id, strlen(d->id));
        printf(", \"name\": ");
        report_json_string(stdout, d->name, strlen(d->name));
        printf(", \"service\": ");
        report_json_string(stdout, d->service, strlen(d->service));
        printf(", \"severity\": \"%s\", \"keywords\": [", kh_severity_name(d->severity));
        for (size_t k = 0; k < d->keyword_count; k++) {
            if (k)
                printf(", ");
            report_json_string(stdout, d->keywords[k], strlen(d->keywords[k]));
        }
        printf("], \"patterns\": %zu, \"tests\": %zu, \"verify\": %s}", d->pattern_count,
               d->test_count, d->has_verify ? "true" : "false");
    }
    printf("\n]\n");
}

int cli_detectors(int argc, char **argv)
{
    static const struct option opts[] = {
        {"json", no_argument, 0, 'J'},
        {"detectors", required_argument, 0, 'd'},
        {"verbose", no_argument, 0, 'v'},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    int json = 0, verbose = 0, ndirs = 0;
    char *dirs[32];
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "vh", opts, NULL)) != -1) {
        switch (c) {
        case 'J': json = 1; break;
        case 'v': verbose = 1; break;
        case 'd':
            if (ndirs == 32) {
                cli_error("--detectors: at most 32 directories");
                return EXIT_ERROR;
            }
            dirs[ndirs++] = optarg;
            break;
        case 'h': fputs(detectors_usage, stdout); return EXIT_CLEAN;
        default: fputs("try: keyhog detectors --help\n", stderr); return EXIT_ERROR;
        }
    }
    int testing = optind < argc && !strcmp(argv[optind], "test");
    if (!testing && optind < argc) {
        cli_error("detectors: unknown argument '%s'", argv[optind]);
        return EXIT_ERROR;
    }
    kh_detectors *set = cli_load_detectors(dirs, ndirs, 0);
    if (!set)
        return EXIT_ERROR;
    int status = EXIT_CLEAN;
    if (testing) {
        status = run_tests(set, argv + optind + 1, argc - optind - 1, verbose);
    } else if (json) {
        list_json(set);
    } else {
        for (size_t i = 0; i < kh_detectors_count(set); i++) {
            const kh_detector_info *d = kh_detectors_get(set, i);
            printf("%-40s %-8s %-20s %s\n", d->id, kh_severity_name(d->severity), d->service,
                   d->name);
        }
    }
    kh_detectors_free(set);
    return status;
}
