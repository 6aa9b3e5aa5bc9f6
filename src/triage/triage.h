/*
 * triage.h - deciding how much to believe a candidate: validators
 * (checksums, shape, entropy), placeholder and test-data signs, path hints,
 * and the confidence model.  No I/O.
 */
#ifndef KH_TRIAGE_H
#define KH_TRIAGE_H

#include <stddef.h>
#include <stdint.h>

#include "spec/spec.h"

/* Checksum validators by name.  Returns 1 valid, 0 invalid, and -1 if the
 * name is unknown (spec validation rejects unknown names at load).
 * Names (src/triage/checksum.c):
 *   github-crc32         <prefix>_<30 base62><6 base62 = CRC32 of the 30>,
 *                        or the bare 36 chars (ghp_ gho_ ghu_ ghs_ ghr_)
 *   npm-crc32            the same scheme for npm_ tokens
 *   github-fine-grained  github_pat_ + 22 base62 + '_' + 59 base62 (layout)
 *   jwt                  header.payload.sig, base64url JSON with "alg"
 *   pypi-macaroon        pypi- + base64url macaroon v2 located at
 *                        pypi.org or test.pypi.org
 *   luhn                 12..19 digits (spaces/dashes allowed), Luhn sum
 *   slack-webhook        [https://hooks.slack.com/services/]T.../B.../secret
 *   aws-key-id           AKIA/ASIA/... + 16 base32, 20 chars in all
 *   uuid                 8-4-4-4-12 hex, version 1..8, RFC variant
 *   pem                  -----BEGIN X----- base64 -----END X-----
 *   openai               sk-... holding the T3BlbkFJ marker mid-token */
int triage_checksum(const char *name, const uint8_t *secret, size_t len);
int triage_checksum_known(const char *name);
/* 1 or -1 when the secret has a self-checking shape (a 40-character GitHub
 * or npm token, an eyJ...eyJ... JWT) whose check passes or fails, else 0;
 * any detector, no name needed.  Feeds the checksum_invalid feature. */
int triage_checksum_implied(const uint8_t *secret, size_t len);

/* Shannon entropy in bits per byte. */
double triage_entropy(const uint8_t *s, size_t len);

/* Length, charset and prefix gates of [detector.credential_shape].
 * Returns 1 if the secret passes.  The charset applies to the bytes after
 * the prefix; an unknown charset name fails. */
int triage_shape_ok(const spec_shape *shape, const uint8_t *secret, size_t len);

/* 1 if `name` is a charset triage_shape_ok knows: hex, base62, alnum,
 * base64, base64url, base32, digits, printable. */
int triage_charset_known(const char *name);

/* Obvious placeholders: EXAMPLE, xxxx, <your-key>, ${VAR}, a run of one
 * repeated character, a sequential run (abcdef, 123456), all one class of a
 * handful of characters... */
int triage_is_placeholder(const uint8_t *secret, size_t len);

/* Everything the model looks at for one candidate. */
typedef struct triage_input {
    const spec_detector *detector;
    const uint8_t *data; /* the chunk the secret was found in */
    size_t data_len;
    size_t secret_offset, secret_len; /* within data */
    size_t match_offset, match_len;   /* whole regex match, within data */
    const char *path;                 /* may be NULL */
    int checksum;                     /* 1 valid, 0 no checksum, -1 invalid */
    int decoded;                      /* found inside decoded bytes */
} triage_input;

/* Confidence in [0, 1]: a logistic model over the features below, with
 * weights from src/triage/model_weights.h (made by tools/train/train.py). */
double triage_confidence(const triage_input *in);

/* The model's features, defined in tools/train/features.py (which lists
 * them with their meaning) and computed identically by triage_features. */
#define TRIAGE_FEATURE_COUNT 20
void triage_features(const triage_input *in, double out[TRIAGE_FEATURE_COUNT]);
const char *triage_feature_name(size_t i); /* NULL past the end */

/* The --min-confidence default recommended by training (README in
 * tools/train says how it was chosen). */
double triage_min_confidence_default(void);

/* --- suppression (suppress.c) --- */

/* True when "keyhog:ignore" (or "keyhog:ignore=<id>" naming this
 * detector) is on the line holding offset `at`, or on the line above. */
int triage_inline_ignored(const uint8_t *data, size_t len, size_t at, const char *id);

/* Allowlist from the config file: gitignore-style path globs, exact
 * secrets, and regexes over the secret. */
typedef struct triage_allowlist triage_allowlist;
triage_allowlist *triage_allowlist_new(void);
int triage_allowlist_paths(triage_allowlist *a, const char *globs, size_t len); /* one per line */
int triage_allowlist_secret(triage_allowlist *a, const char *secret);
int triage_allowlist_regex(triage_allowlist *a, const char *regex, char *err, size_t errlen);
int triage_allowlist_match(const triage_allowlist *a, const char *path, const uint8_t *secret,
                           size_t len);
void triage_allowlist_free(triage_allowlist *a);

/* Baseline: the fingerprints of findings already known. */
typedef struct triage_baseline {
    char **fingerprints;
    size_t count;
    int sorted;
} triage_baseline;
int triage_baseline_add(triage_baseline *b, const char *fingerprint);
int triage_baseline_contains(triage_baseline *b, const char *fingerprint); /* sorts once */
void triage_baseline_clear(triage_baseline *b);

#endif
