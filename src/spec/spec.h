/*
 * spec.h - the detector model: what one detector TOML file says, checked.
 *
 * spec owns reading detector files (through toml.h), validating them
 * (required keys, types, kebab-case ids, every regex compiled with PCRE2 so
 * a bad pattern names its detector), and the set of detectors embedded in
 * the binary at build time.  It knows nothing about scanning: the engine
 * reads these structs and compiles them.
 */
#ifndef KH_SPEC_H
#define KH_SPEC_H

#include <stddef.h>

#include "keyhog.h"

typedef struct spec_pattern {
    char *regex;
    int group; /* capture group that is the secret; 0 = whole match */
} spec_pattern;

typedef struct spec_companion {
    char *name;
    char *regex;
    int group;        /* capture group of the companion value; default 1 if the
                         regex has a group, else 0 */
    int within_lines; /* search this many lines before and after; default 5 */
    int required;     /* if true, no finding without the companion */
} spec_companion;

typedef struct spec_shape {
    int exact_length; /* 0 = unset */
    int min_length;
    int max_length;
    char *charset; /* NULL, or a set name: "hex", "base62", "base64",
                      "base64url", "alnum", "printable" */
    char *prefix;  /* required literal prefix of the secret, or NULL */
} spec_shape;

typedef struct spec_validate {
    char *checksum;     /* NULL or a validator name known to triage
                           ("github-crc32", "npm-crc32", ...) */
    double min_entropy; /* bits per byte floor over the secret; 0 = unset */
    int reject_placeholders; /* default 1 */
} spec_validate;

typedef struct spec_header {
    char *name;
    char *value;
} spec_header;

typedef struct spec_verify {
    char *method; /* GET, POST, ... */
    char *url;    /* may hold {{match}} / {{companion.NAME}} */
    char *body;   /* optional template */
    char **allowed_domains;
    size_t allowed_domain_count;
    /* auth */
    char *auth_type; /* "header", "bearer", "basic", "query", "aws-sigv4", "none" */
    char *auth_name; /* header or query parameter name */
    char *auth_template;
    char *auth_username; /* basic: templates */
    char *auth_password;
    char *aws_region;
    char *aws_service;
    spec_header *headers; /* extra request headers (templates) */
    size_t header_count;
    /* success / failure rules */
    int *success_status;
    size_t success_status_count;
    char *success_body_contains;
    char *success_json_field; /* dotted path */
    char *success_json_value; /* NULL: field must merely exist */
    int *revoked_status;      /* default {401, 403} */
    size_t revoked_status_count;
} spec_verify;

typedef struct spec_test {
    char *text;
    int positive;   /* 1: must produce a finding; 0: must not */
    char *expect;   /* positive only: optional exact expected secret */
} spec_test;

typedef struct spec_detector {
    kh_detector_info info; /* public view; pointers into the fields below */
    char *id;
    char *name;
    char *service;
    char *description; /* optional help text for SARIF */
    kh_severity severity;
    char **keywords;
    size_t keyword_count;
    spec_pattern *patterns;
    size_t pattern_count;
    spec_companion *companions;
    size_t companion_count;
    spec_shape shape;
    spec_validate validate;
    spec_verify *verify; /* NULL if none */
    spec_test *tests;
    size_t test_count;
    char *origin;
} spec_detector;

struct kh_detectors {
    spec_detector **items;
    size_t count, capacity;
    char *warnings; /* newline-separated, never NULL after creation */
    size_t warnings_len;
};

/* Set-up and teardown of a set (used by kh_detectors_*). */
kh_detectors *spec_set_new(void);
int spec_set_add(kh_detectors *set, spec_detector *d, kh_error *err); /* replaces same id */
void spec_set_warn(kh_detectors *set, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Parses one detector from TOML text.  Unknown keys add warnings to `set`
 * (may be NULL).  On error fills err with "origin:line:col: message". */
int spec_detector_parse(const char *text, size_t len, const char *origin,
                        kh_detectors *warn_to, spec_detector **out, kh_error *err);
void spec_detector_free(spec_detector *d);

/* The detector with this public info (info is the first member). */
static inline const spec_detector *spec_from_info(const kh_detector_info *info)
{
    return (const spec_detector *)info;
}

/* Embedded detectors: generated at build time from the detectors/ folder. */
typedef struct spec_embedded_file {
    const char *name; /* "github-classic-pat.toml" */
    const char *text;
    size_t len;
} spec_embedded_file;
extern const spec_embedded_file spec_embedded_files[];
extern const size_t spec_embedded_count;

/* kh_error helper used across the library. */
int kh_error_set(kh_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
