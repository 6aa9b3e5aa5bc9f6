/*
 * verify.h - opt-in live verification of findings over HTTPS.
 *
 * For a finding whose detector has a [detector.verify] section, verify sends
 * one request (libcurl, TLS verification always on) to the service named
 * there and sorts the answer into "live", "revoked" (the service said the
 * credential is invalid) or "unknown" (anything else), with a short reason.
 * Nothing here runs unless the caller asks: the CLI calls it only under
 * --verify.
 *
 * Safety rules live here, not in the callers: a request goes only to a host
 * that is, or is a subdomain of, one of the detector's allowed_domains,
 * checked on the URL as curl parses it after template expansion; redirects
 * are followed only to allowed hosts; each distinct (detector, secret) is
 * asked once per session; requests are bounded in number at a time, spaced
 * per host, timed out, and retried at most a few times on 429 / 5xx.
 *
 * One session is used from one thread; it runs every request of a call on
 * that thread with libcurl's multi interface.
 */
#ifndef KH_VERIFY_H
#define KH_VERIFY_H

#include <stddef.h>
#include <stdio.h>
#include <time.h>

#include "keyhog.h"
#include "report/report.h"
#include "spec/spec.h"

typedef struct verify_opts {
    int concurrency;        /* requests in flight at once (default 8) */
    double rate;            /* request starts per second per host (default 5) */
    double timeout;         /* seconds per request, connect included (default 10) */
    int max_retries;        /* extra attempts after a 429 or 5xx (default 2) */
    double backoff;         /* first retry delay in seconds, doubled each time
                               (default 1); Retry-After replaces it when sent */
    double retry_after_cap; /* a longer Retry-After gives up instead (default 30) */
    const char *ca_bundle;  /* CA file for CURLOPT_CAINFO, or NULL: system store */
    const char *cache_path; /* --verify-cache file, or NULL */
    double cache_ttl;       /* seconds a cached outcome stays good (default 86400) */
} verify_opts;

/* Fills the defaults above. */
void verify_opts_default(verify_opts *opts);

typedef struct verify_stats {
    size_t requests; /* HTTP requests sent, retries and redirects included */
    size_t retries;
    size_t cached;   /* findings answered from the cache file or an earlier call */
    size_t live, revoked, unknown; /* outcomes given to findings */
} verify_stats;

typedef struct verify_session verify_session;

/* Creates a session; reads opts->cache_path when set (a missing file is an
 * empty cache; a malformed one is KH_EPARSE with the reason in err). */
int verify_session_new(const verify_opts *opts, verify_session **out, kh_error *err);

/* Verifies every finding whose detector has a verify section, setting its
 * verify_status ("live" / "revoked" / "unknown", static strings) and
 * verify_reason (heap, freed by report_finding_clear).  Findings without a
 * verify section are left untouched.  Failures of single requests are
 * "unknown" outcomes, not errors; returns KH_OK, or KH_ENOMEM. */
int verify_findings(verify_session *s, report_finding *findings, size_t count);

/* Writes the cache file (if opts->cache_path was set): every live or revoked
 * outcome still within its TTL, keyed by fingerprint, replaced atomically. */
int verify_session_save(verify_session *s, kh_error *err);

void verify_session_stats(const verify_session *s, verify_stats *out);
void verify_session_free(verify_session *s);

/* The whole of `scan --verify` in one call: a session with opts, every
 * finding verified, the cache file written, and one summary line on log
 * ("verify: 3 requests, 1 live, 1 revoked, 1 unknown, 2 cached") unless log
 * is NULL.  Returns KH_OK or the error of the step that failed, with its
 * message in err. */
int verify_run(const verify_opts *opts, report_finding *findings, size_t count, FILE *log,
               kh_error *err);

/* Sets one option from its command-line spelling: name is "verify-concurrency",
 * "verify-rate", "verify-timeout", "verify-cache", "verify-cache-ttl" or
 * "verify-ca-bundle"; value is kept by pointer for the paths.  Returns 0, or
 * -1 with why ("expected 1 to 256, got 'x'"). */
int verify_opts_set(verify_opts *opts, const char *name, const char *value, char *why,
                    size_t why_len);

/* "90", "90s", "30m", "24h", "7d" -> seconds.  Returns 0, or -1 if s is
 * not a non-negative number with one of those suffixes. */
int verify_parse_duration(const char *s, double *seconds);

/* ------------------------------------------------------------------ */
/* Pieces of the above, declared for their unit tests.                  */
/* ------------------------------------------------------------------ */

/* Expands {{match}} and {{companion.NAME}} in tmpl with f's values.  With
 * url_encode, each substituted value is percent-encoded (all but RFC 3986
 * unreserved bytes), so a secret can never change a URL's structure.
 * Returns 0, or -1 with a reason in why (unknown placeholder, missing
 * companion, result over 16 KiB, out of memory). */
int verify_expand(const char *tmpl, const report_finding *f, int url_encode, char **out,
                  char *why, size_t why_len);

/* 1 if host is one of domains, or a subdomain of one ("api.x.com" under
 * "x.com"), comparing without case and ignoring one trailing dot; else 0. */
int verify_host_allowed(const char *host, char *const *domains, size_t count);

/* Parses url with curl's URL API and checks it: https only, no user
 * info, host allowed.  On success returns 0 with the URL as curl will use
 * it in *norm and its host in *host (both heap); else -1 with why. */
int verify_check_url(const char *url, char *const *domains, size_t count, char **norm,
                     char **host, char *why, size_t why_len);

/* The outcome of one response: "live", "revoked" or "unknown" (static),
 * with a short reason ("HTTP 200", "HTTP 200, ok is false"...) in reason.
 * status 0 means no response. */
const char *verify_classify(const spec_verify *v, long status, const char *body, size_t len,
                            char *reason, size_t reason_len);

/* AWS Signature Version 4 of one request. */
typedef struct verify_sigv4_request {
    const char *method;
    const char *host;  /* the Host header as sent: name, ":port" if not default */
    const char *path;  /* "/..." as in the URL (percent-encoded or raw) */
    const char *query; /* without '?'; NULL or "" if none */
    const spec_header *headers; /* more headers to sign besides host, x-amz-date */
    size_t header_count;
    const void *body;
    size_t body_len;
    const char *access_key, *secret_key, *region, *service;
    const char *amz_date; /* "YYYYMMDDTHHMMSSZ" */
} verify_sigv4_request;

/* Fills *authorization with the Authorization header value ("AWS4-HMAC-SHA256
 * Credential=..., SignedHeaders=..., Signature=...") and, if canonical is
 * not NULL, *canonical with the canonical request (both heap).  Returns
 * KH_OK, KH_EINVAL (a header value with a line break, a bad date) or
 * KH_ENOMEM. */
int verify_sigv4_sign(const verify_sigv4_request *r, char **authorization, char **canonical);

/* The cache file: outcomes keyed by fingerprint. */
typedef struct verify_cache_entry {
    char fingerprint[65];
    const char *status; /* "live" or "revoked" (static) */
    char *reason;
    time_t time; /* when it was verified */
} verify_cache_entry;

typedef struct verify_cache {
    verify_cache_entry *items; /* sorted by fingerprint after load / sort */
    size_t count, cap;
} verify_cache;

/* Reads path into c, dropping entries older than ttl seconds at `now` and
 * any that are not live or revoked.  A missing file is an empty cache.
 * Returns KH_OK, KH_EIO, KH_EPARSE, KH_ELIMIT (over 64 MiB) or KH_ENOMEM. */
int verify_cache_load(verify_cache *c, const char *path, time_t now, double ttl,
                      kh_error *err);
/* Adds an entry; c stays unsorted until verify_cache_sort, which keeps only
 * the newest entry of each fingerprint. */
int verify_cache_put(verify_cache *c, const char *fingerprint, const char *status,
                     const char *reason, time_t when);
void verify_cache_sort(verify_cache *c);
/* The entry for fingerprint, or NULL; c must be sorted. */
const verify_cache_entry *verify_cache_find(const verify_cache *c, const char *fingerprint);
/* Writes c (sorted) as JSON to path through a temporary file and rename. */
int verify_cache_save(const verify_cache *c, const char *path, kh_error *err);
void verify_cache_clear(verify_cache *c);

#endif
