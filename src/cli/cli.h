/*
 * cli.h - the keyhog command-line tool: shared pieces of its subcommands.
 * The tool reaches the engine only through include/keyhog.h; sources,
 * report, triage and verify are used through their module headers.
 */
#ifndef KH_CLI_H
#define KH_CLI_H

#include <stdio.h>

#include "keyhog.h"

/* Exit statuses (DESIGN.md "Output"). */
enum { EXIT_CLEAN = 0, EXIT_FINDINGS = 1, EXIT_ERROR = 2 };

int cli_scan(int argc, char **argv);
int cli_detectors(int argc, char **argv);
int cli_baseline(int argc, char **argv);
int cli_calibrate(int argc, char **argv);

/* The crossover `keyhog calibrate` stored (calibrate.c): batches of at least
 * *crossover bytes go to the GPU; SIZE_MAX = never.  -1 when there is no
 * readable calibration (then --backend auto means the CPU). */
int cli_calibration_load(size_t *crossover);

/* Loads the embedded detectors plus each --detectors directory (later ones
 * override earlier ones by id).  Prints warnings and errors to stderr;
 * returns NULL on a fatal error. */
kh_detectors *cli_load_detectors(char **dirs, int ndirs, int quiet);

/* kh_engine_compile through the on-disk cache of compiled databases
 * ($KEYHOG_CACHE_DIR, else $XDG_CACHE_HOME/keyhog, else ~/.cache/keyhog). */
int cli_engine_compile(const kh_detectors *set, kh_engine_opts *opts, int use_cache,
                       kh_engine **out, kh_error *err);

/* "32M", "1G", "4096" -> bytes; -1 if malformed. */
long long cli_parse_size(const char *s);

/* Prints "keyhog: " + message to stderr. */
void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* SIGINT/SIGTERM (interrupt.c): install once per scan; cli_interrupted()
 * then returns the signal number once one arrived, else 0. */
void cli_interrupt_install(void);
int cli_interrupted(void);

#endif
