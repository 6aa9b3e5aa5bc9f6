/*
 * main.c - entry point: dispatches subcommands, prints help and version.
 * Every subcommand owns its options and its --help.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

static const char usage[] =
    "keyhog " KH_VERSION " - find leaked credentials in code, history and artifacts\n"
    "\n"
    "usage: keyhog <command> [options]\n"
    "\n"
    "commands:\n"
    "  scan [PATH ...]     scan files and directories (default .), or - for stdin\n"
    "  detectors           list detectors (--json), or `detectors test` to run\n"
    "                      every detector's own examples\n"
    "  baseline create     record current findings (-o FILE) so that\n"
    "                      `scan --baseline FILE` reports only new ones\n"
    "  calibrate           measure CPU vs GPU throughput here and store when the\n"
    "                      GPU wins, for `scan --backend auto`\n"
    "\n"
    "options:\n"
    "  -h, --help          this help; `keyhog scan --help` for scan options\n"
    "  -V, --version       print the version\n"
    "\n"
    "exit status: 0 no findings, 1 findings, 2 usage, configuration or fatal error\n";

void cli_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("keyhog: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

long long cli_parse_size(const char *s)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || v < 0)
        return -1;
    long long mul = 1;
    switch (*end) {
    case 0: break;
    case 'k': case 'K': mul = 1LL << 10; end++; break;
    case 'm': case 'M': mul = 1LL << 20; end++; break;
    case 'g': case 'G': mul = 1LL << 30; end++; break;
    default: return -1;
    }
    if (*end == 'i' || *end == 'B' || *end == 'b')
        end++;
    if (*end == 'B')
        end++;
    if (*end)
        return -1;
    if (v > (1LL << 62) / mul)
        return -1;
    return v * mul;
}

kh_detectors *cli_load_detectors(char **dirs, int ndirs, int quiet)
{
    kh_detectors *set = kh_detectors_embedded();
    if (!set) {
        cli_error("the embedded detector set failed to load");
        return NULL;
    }
    for (int i = 0; i < ndirs; i++) {
        kh_detectors *more = NULL;
        kh_error err = {0};
        if (kh_detectors_load(dirs[i], &more, &err) != KH_OK) {
            cli_error("%s", err.message);
            kh_detectors_free(set);
            return NULL;
        }
        const char *w = kh_detectors_warnings(more);
        if (!quiet && w && *w)
            fprintf(stderr, "%s%s", w, w[strlen(w) - 1] == '\n' ? "" : "\n");
        if (kh_detectors_merge(set, more, &err) != KH_OK) {
            cli_error("%s", err.message);
            kh_detectors_free(more);
            kh_detectors_free(set);
            return NULL;
        }
        kh_detectors_free(more);
    }
    return set;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fputs(usage, stderr);
        return EXIT_ERROR;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help") || !strcmp(cmd, "help")) {
        fputs(usage, stdout);
        return EXIT_CLEAN;
    }
    if (!strcmp(cmd, "-V") || !strcmp(cmd, "--version")) {
        printf("keyhog %s\n", KH_VERSION);
        return EXIT_CLEAN;
    }
    if (!strcmp(cmd, "scan"))
        return cli_scan(argc - 1, argv + 1);
    if (!strcmp(cmd, "detectors"))
        return cli_detectors(argc - 1, argv + 1);
    if (!strcmp(cmd, "baseline"))
        return cli_baseline(argc - 1, argv + 1);
    if (!strcmp(cmd, "calibrate"))
        return cli_calibrate(argc - 1, argv + 1);
    cli_error("unknown command '%s' (try keyhog --help)", cmd);
    return EXIT_ERROR;
}
