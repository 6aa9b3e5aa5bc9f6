/*
 * report.h - writers for findings: text (people), JSON, JSONL, SARIF 2.1.0,
 * HTML.  A writer receives findings that are already decided, sorted and
 * deduplicated; it only formats them.  Secrets are redacted unless
 * show_secrets is set, in every format.
 */
#ifndef KH_REPORT_H
#define KH_REPORT_H

#include <stdint.h>
#include <stdio.h>

#include "keyhog.h"

typedef enum report_format {
    REPORT_TEXT,
    REPORT_JSON,
    REPORT_JSONL,
    REPORT_SARIF,
    REPORT_HTML
} report_format;

/* "text" -> REPORT_TEXT ...; -1 if unknown. */
int report_format_parse(const char *name);

/* One place a secret was seen. */
typedef struct report_location {
    char *path;   /* origin: file, or "archive.zip!inner/file" */
    uint64_t offset, length;
    uint32_t line, column, end_line, end_column;
    /* git history only (NULL otherwise) */
    char *commit, *author, *email, *date;
    char *context; /* surrounding lines, secret already redacted; may be NULL */
    uint64_t seq;  /* order the source emitted the item in (not printed): breaks
                    * ties so a git secret's first location is the commit that
                    * introduced it, whatever the thread timing */
} report_location;

typedef struct report_companion {
    char *name;
    char *value; /* raw; writers redact unless show_secrets */
    uint32_t line;
} report_companion;

typedef struct report_finding {
    const kh_detector_info *detector;
    const char *description; /* help text for SARIF; may be NULL */
    kh_severity severity;    /* after any override */
    double confidence;
    char *secret; /* raw bytes, NUL-terminated */
    size_t secret_len;
    char redacted[64];
    char fingerprint[65];
    report_location *locations; /* [0] is the primary location */
    size_t location_count;
    report_companion *companions;
    size_t companion_count;
    char **decoded_from; /* e.g. {"base64","url"} */
    size_t decoded_count;
    const char *verify_status; /* NULL (not verified), "live", "revoked", "unknown" */
    char *verify_reason;
} report_finding;

typedef struct report_stats {
    uint64_t files_scanned;
    uint64_t bytes_scanned;
    uint64_t files_skipped;
    uint64_t findings;
    uint64_t suppressed;
    double elapsed_seconds;
    unsigned detectors;
} report_stats;

typedef struct report_opts {
    report_format format;
    int show_secrets;
    int color; /* text only: ANSI colour */
    const char *tool_version;
} report_opts;

/* Writes all findings (and, for JSON/SARIF/HTML, the stats) to out.
 * Returns 0, or -1 if writing failed (errno set). */
int report_write(FILE *out, const report_opts *opts, const report_finding *findings,
                 size_t count, const report_stats *stats);

/* The one-line summary for stderr ("3 findings (1 critical, 2 high) in 12
 * files, 1.2 MB, 0.05 s, 24 MB/s; 0 skipped"). */
void report_summary(FILE *err, const report_stats *stats, const report_finding *findings,
                    size_t count, int color);

/* Frees the heap members of one finding (not the struct itself). */
void report_finding_clear(report_finding *f);

/* JSON string escaping shared by the JSON-ish writers. */
void report_json_string(FILE *out, const char *s, size_t len);

/* ------------------------------------------------------------------ */
/* Shared by the writers in src/report; other modules need none of it.  */
/* ------------------------------------------------------------------ */

/* "critical".."info"; "unknown" for a value out of range.  Local to this
 * module so the writers do not depend on where kh_severity_name lives. */
const char *report_severity_name(kh_severity s);

/* Length (1..4) of the well-formed UTF-8 sequence at s, with its code point
 * in *cp; 0 if s[0] does not start one (stray, overlong, surrogate, > U+10FFFF,
 * or cut off by len). */
size_t report_utf8_decode(const unsigned char *s, size_t len, uint32_t *cp);

/* f->redacted / f->fingerprint, computed from f->secret when the caller left
 * them empty.  `buf` must outlive the returned pointer. */
const char *report_finding_redacted(const report_finding *f, char buf[64]);
const char *report_finding_fingerprint(const report_finding *f, char buf[65]);

/* The shown value of a secret or companion: itself when show_secrets,
 * otherwise its redacted form (written into buf). */
const char *report_shown_value(const char *value, size_t len, int show_secrets, char buf[64],
                               size_t *shown_len);

/* A streaming JSON writer: pretty (2-space indent) or compact.  Nesting is
 * fixed by the formats, so a small fixed stack is enough. */
#define REPORT_JSON_MAX_DEPTH 16
typedef struct report_json {
    FILE *out;
    int pretty;
    int depth;
    int after_key; /* a key was written; its value goes on the same line */
    unsigned char empty[REPORT_JSON_MAX_DEPTH]; /* container has no member yet */
} report_json;

void report_json_init(report_json *j, FILE *out, int pretty);
void report_json_begin_object(report_json *j);
void report_json_end_object(report_json *j);
void report_json_begin_array(report_json *j);
void report_json_end_array(report_json *j);
void report_json_key(report_json *j, const char *key);
void report_json_str(report_json *j, const char *s, size_t len);
void report_json_cstr(report_json *j, const char *s); /* NULL -> "" */
void report_json_u64(report_json *j, uint64_t v);
/* A number with at least `min_dec` and at most `max_dec` decimals; NaN and
 * infinities (not JSON) become 0. */
void report_json_double(report_json *j, double v, int min_dec, int max_dec);
/* key + string / number in one call. */
void report_json_kstr(report_json *j, const char *key, const char *s);
void report_json_ku64(report_json *j, const char *key, uint64_t v);
/* "companions" and "decoded_from" of a finding, when it has them. */
void report_json_extras(report_json *j, const report_finding *f, int show);

/* One writer per format; report_write picks.  Each returns 0 or -1. */
int report_write_text(FILE *out, const report_opts *opts, const report_finding *findings,
                      size_t count);
int report_write_json(FILE *out, const report_opts *opts, const report_finding *findings,
                      size_t count, const report_stats *stats, int lines);
int report_write_sarif(FILE *out, const report_opts *opts, const report_finding *findings,
                       size_t count, const report_stats *stats);
int report_write_html(FILE *out, const report_opts *opts, const report_finding *findings,
                      size_t count, const report_stats *stats);

/* Groups findings by locations[0].path in order of first appearance: fills
 * order[count] with finding indexes so that each path's findings are
 * adjacent.  Returns 0, or -1 on out of memory. */
int report_group_by_path(const report_finding *findings, size_t count, size_t *order);

/* "1.2 MB" (powers of 1000). */
void report_human_bytes(uint64_t bytes, char *buf, size_t size);

/* Reading JSON back (baselines, verification caches): a small strict
 * parser into a tree, nesting bounded. */
typedef enum report_jtype {
    REPORT_JNULL,
    REPORT_JBOOL,
    REPORT_JNUMBER,
    REPORT_JSTRING,
    REPORT_JARRAY,
    REPORT_JOBJECT
} report_jtype;

typedef struct report_jvalue {
    report_jtype type;
    int boolean;
    double number;
    char *str; /* NUL-ended; len bytes (may hold NUL) */
    size_t len;
    struct report_jvalue **items; /* array elements or object values */
    char **keys;                  /* object keys */
    size_t n, cap;
} report_jvalue;

/* Returns 0, or -1 with "line:col: message" in err. */
int report_json_parse(const char *text, size_t len, report_jvalue **out, char *err,
                      size_t errlen);
void report_json_free(report_jvalue *v);
/* Member of an object; NULL if absent or obj is not an object. */
const report_jvalue *report_json_get(const report_jvalue *obj, const char *key);

#endif
