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
 * name is unknown (spec validation rejects unknown names at load). */
int triage_checksum(const char *name, const uint8_t *secret, size_t len);
int triage_checksum_known(const char *name);

/* Shannon entropy in bits per byte. */
double triage_entropy(const uint8_t *s, size_t len);

/* Length, charset and prefix gates of [detector.credential_shape]. */
int triage_shape_ok(const spec_shape *shape, const uint8_t *secret, size_t len);

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

/* Confidence in [0, 1]. */
double triage_confidence(const triage_input *in);

#endif
