/*
 * interrupt.c - Ctrl-C and SIGTERM during a scan.
 *
 * The handler only records the signal; the walker (through pipeline_emit's
 * return value), the workers (before each item) and the report writer poll
 * it, so a scan stops within one file's scan time, prints the summary of
 * what it did, and never renames a half-written report over -o FILE.  The
 * handler is installed once (SA_RESETHAND): a second Ctrl-C gets the default
 * action and kills a run that does not stop fast enough.
 *
 * The flag is the one piece of process-wide mutable state in keyhog: signal
 * dispositions are process-wide, so nothing narrower could hold it.  It is
 * a lock-free atomic, which both a handler and other threads may touch.
 */
#include <signal.h>
#include <stdatomic.h>
#include <string.h>

#include "cli/cli.h"

static atomic_int cli_signal_seen;

static void cli_on_signal(int sig)
{
    atomic_store(&cli_signal_seen, sig);
}

void cli_interrupt_install(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = cli_on_signal;
    sigemptyset(&sa.sa_mask);
    /* No SA_RESTART: a read() of standard input returns EINTR and sees it. */
    sa.sa_flags = SA_RESETHAND;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

int cli_interrupted(void)
{
    return atomic_load(&cli_signal_seen);
}
