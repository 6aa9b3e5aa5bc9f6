/*
 * config.h - `.keyhog.toml` and baseline files for the command-line tool.
 */
#ifndef KH_CLI_CONFIG_H
#define KH_CLI_CONFIG_H

#include <stdint.h>
#include <stdio.h>

#include "report/report.h"
#include "triage/triage.h"

typedef struct cli_severity_override {
    char *id;
    int severity;
} cli_severity_override;

typedef struct cli_config {
    char *path; /* the file read, or NULL */
    double min_confidence;
    int has_min_confidence;
    int min_severity;
    int has_min_severity;
    uint64_t max_file_size;
    int has_max_file_size;
    char **detector_dirs; /* absolute or relative to the cwd */
    size_t detector_dir_count;
    char **disabled;
    size_t disabled_count;
    char **allow_paths, **allow_secrets, **allow_regexes;
    size_t allow_path_count, allow_secret_count, allow_regex_count;
    cli_severity_override *overrides;
    size_t override_count;
} cli_config;

/* Reads a config file.  Errors ("file:line:col: message") go to err. */
int config_load(const char *path, cli_config *c, char *err, size_t errlen);
/* The nearest .keyhog.toml at or above `start`; NULL if none.  Caller frees. */
char *config_find(const char *start);
void config_free(cli_config *c);
/* The allowlist the config describes (never NULL unless on error). */
triage_allowlist *config_allowlist(const cli_config *c, char *err, size_t errlen);

/* Baseline files: {"keyhog_baseline": 1, "findings": [{"fingerprint": ...}]},
 * sorted by fingerprint, one finding per line, so they diff well. */
int baseline_load(const char *path, triage_baseline *b, char *err, size_t errlen);
int baseline_write(FILE *out, const report_finding *findings, size_t count);

#endif
