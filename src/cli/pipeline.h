/*
 * pipeline.h - the scan pipeline: sources feed a bounded queue, a pool of
 * workers (each with its own scratch and read buffer) reads and scans, and
 * findings are gathered per worker and merged once at the end, so the
 * output order never depends on thread timing.
 */
#ifndef KH_CLI_PIPELINE_H
#define KH_CLI_PIPELINE_H

#include <pthread.h>
#include <stdint.h>

#include "keyhog.h"
#include "report/report.h"
#include "sources/sources.h"

typedef struct scan_config {
    const kh_engine *engine;
    int threads;
    uint64_t max_file_size;
    uint64_t max_archive_size; /* archives may be read up to this size */
    int no_archives;
    int quiet;
    /* --backend gpu/auto: workers gather items into batches for
     * kh_scan_batch; batches under gpu_min_batch bytes stay on the CPU. */
    kh_gpu *gpu;
    size_t gpu_min_batch;
    /* --backend auto with a calibration: no GPU at the start, items take
     * the plain CPU path; once gpu_open_after bytes have gone through,
     * gpu_open runs on a thread of its own (CUDA's start-up, about half a
     * second, pays off only on big scans) while the CPU goes on.  If it
     * returns a GPU, workers batch from then on and batches of at least
     * gpu_min_batch bytes use it; NULL keeps the CPU path.  The pipeline
     * closes it in pipeline_finish. */
    kh_gpu *(*gpu_open)(void *ctx);
    void *gpu_open_ctx;
    uint64_t gpu_open_after;
    /* Progress only: findings at or above these count toward the running
     * total the progress line shows (the final filter is in scan.c). */
    double min_confidence;
    int min_severity;
    /* A progress line may be on stderr: skip messages first clear it. */
    int progress;
    /* --format html: keep this many lines around each finding as its
     * context (every secret found in them redacted unless show_secrets). */
    int context_lines;
    int show_secrets;
} scan_config;

typedef struct work_item work_item;

typedef struct findings_vec {
    report_finding *items;
    size_t count, cap;
} findings_vec;

typedef struct pipeline pipeline;

/* Starts the workers.  NULL on failure (message printed). */
pipeline *pipeline_start(const scan_config *cfg);

/* Queues one item (copies what it needs); blocks while the queue is full.
 * A source_emit_fn: pass the pipeline as ctx. */
int pipeline_emit(const source_item *item, void *pipeline);

/* A source_skip_fn: reports and counts a skipped input. */
void pipeline_skip(const char *path, const char *reason, void *pipeline);

/* Ends input and waits until every worker has scanned what it was given;
 * pipeline_totals stays valid until pipeline_finish.  Idempotent. */
void pipeline_drain(pipeline *p);

/* Waits for the queue to drain and the workers to end; moves every finding
 * into *out and adds the counters to *stats.  Frees the pipeline. */
void pipeline_finish(pipeline *p, findings_vec *out, report_stats *stats);

void findings_vec_free(findings_vec *v);

/* Totals so far for the progress line: files and bytes scanned, findings
 * counted as scan_config says.  Safe from any thread while the workers run:
 * each worker's counters have one writer and are read with relaxed atomic
 * loads, so the hot path takes no lock and no locked instruction. */
void pipeline_totals(pipeline *p, uint64_t *files, uint64_t *bytes, uint64_t *findings);

/* The progress line (progress.c): after delay_ms of scanning, when stderr
 * is a terminal, "\r"-repainted about four times a second.  NULL when it is
 * not to be shown.  progress_stop clears the line and joins the thread. */
typedef struct progress progress;
progress *progress_start(pipeline *p, long delay_ms);
void progress_stop(progress *pr);

#endif
