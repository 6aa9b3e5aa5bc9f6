/*
 * progress.c - the progress line a person sees on a terminal while a long
 * scan runs:
 *
 *     scanning: 12,345 files, 1.2 GB, 240.0 MB/s, 3 findings
 *
 * Shape: one thread that sleeps on a condition variable (monotonic clock)
 * and, once the scan has run longer than the delay, repaints the line with
 * "\r" and erase-to-end-of-line every PROGRESS_PERIOD_MS.  It reads the
 * workers' counters through pipeline_totals (relaxed atomic loads), so the
 * hot path pays nothing for it: no lock, no callback, no syscall per file.
 * Shown only when stderr is a terminal and not -q; the caller decides that.
 * progress_stop wakes the thread at once, which erases the line, so the
 * summary starts on a clean line.  The findings count is what the workers
 * saw at or above the thresholds, before dedupe, allowlists and baselines;
 * the summary has the final number.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "cli/pipeline.h"

#define PROGRESS_PERIOD_MS 250

struct progress {
    pipeline *p;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct timespec start;
    long delay_ms;
    int stop;
    int drawn; /* a line is on the terminal */
};

static void progress_add_ms(struct timespec *t, long ms)
{
    t->tv_sec += ms / 1000;
    t->tv_nsec += (ms % 1000) * 1000000L;
    if (t->tv_nsec >= 1000000000L) {
        t->tv_sec++;
        t->tv_nsec -= 1000000000L;
    }
}

/* 1234567 -> "1,234,567" */
static void progress_thousands(uint64_t n, char *buf, size_t size)
{
    char digits[32];
    int len = snprintf(digits, sizeof digits, "%llu", (unsigned long long)n);
    size_t o = 0;
    for (int i = 0; i < len && o + 2 < size; i++) {
        if (i && (len - i) % 3 == 0)
            buf[o++] = ',';
        buf[o++] = digits[i];
    }
    buf[o] = '\0';
}

static void progress_draw(progress *pr)
{
    uint64_t files, bytes, findings;
    pipeline_totals(pr->p, &files, &bytes, &findings);
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    double t = (double)(now.tv_sec - pr->start.tv_sec) + (now.tv_nsec - pr->start.tv_nsec) / 1e9;
    char nfiles[32], size[32], rate[32];
    progress_thousands(files, nfiles, sizeof nfiles);
    report_human_bytes(bytes, size, sizeof size);
    report_human_bytes(t > 0 ? (uint64_t)((double)bytes / t) : 0, rate, sizeof rate);
    char line[160];
    int n = snprintf(line, sizeof line, "scanning: %s file%s, %s, %s/s, %llu finding%s", nfiles,
                     files == 1 ? "" : "s", size, rate, (unsigned long long)findings,
                     findings == 1 ? "" : "s");
    /* A line that wrapped could not be erased with "\r": cut it to the
     * terminal's width (it is ASCII, one column a byte). */
    struct winsize ws;
    if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 1 && n >= ws.ws_col)
        n = ws.ws_col - 1;
    /* One fprintf: stderr's lock keeps a skip message from cutting in. */
    fprintf(stderr, "\r\033[K%.*s", n, line);
    fflush(stderr);
    pr->drawn = 1;
}

static void *progress_main(void *arg)
{
    progress *pr = arg;
    struct timespec next = pr->start;
    progress_add_ms(&next, pr->delay_ms);
    pthread_mutex_lock(&pr->mu);
    while (!pr->stop) {
        if (pthread_cond_timedwait(&pr->cv, &pr->mu, &next) == 0 || pr->stop)
            continue; /* woken: stop, or a spurious wake-up */
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (now.tv_sec < next.tv_sec || (now.tv_sec == next.tv_sec && now.tv_nsec < next.tv_nsec))
            continue;
        progress_draw(pr);
        next = now;
        progress_add_ms(&next, PROGRESS_PERIOD_MS);
    }
    if (pr->drawn) {
        fputs("\r\033[K", stderr);
        fflush(stderr);
    }
    pthread_mutex_unlock(&pr->mu);
    return NULL;
}

progress *progress_start(pipeline *p, long delay_ms)
{
    progress *pr = calloc(1, sizeof *pr);
    if (!pr)
        return NULL; /* no progress line is no reason to fail a scan */
    pr->p = p;
    pr->delay_ms = delay_ms > 0 ? delay_ms : 0;
    clock_gettime(CLOCK_MONOTONIC, &pr->start);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&pr->mu, NULL);
    pthread_cond_init(&pr->cv, &ca);
    pthread_condattr_destroy(&ca);
    if (pthread_create(&pr->thread, NULL, progress_main, pr) != 0) {
        pthread_cond_destroy(&pr->cv);
        pthread_mutex_destroy(&pr->mu);
        free(pr);
        return NULL;
    }
    return pr;
}

void progress_stop(progress *pr)
{
    if (!pr)
        return;
    pthread_mutex_lock(&pr->mu);
    pr->stop = 1;
    pthread_cond_signal(&pr->cv);
    pthread_mutex_unlock(&pr->mu);
    pthread_join(pr->thread, NULL);
    pthread_cond_destroy(&pr->cv);
    pthread_mutex_destroy(&pr->mu);
    free(pr);
}
