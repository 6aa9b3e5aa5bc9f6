/*
 * decode.h - decode-through: find spans of a buffer that look encoded
 * (base64, base64url, hex, percent-encoding, \uXXXX and \xXX escapes, JSON
 * and shell string escapes, quoted-printable, HTML entities), decode them,
 * and say where each decoded piece came from, so a finding inside decoded
 * bytes maps back to the encoded span of the original.  It knows nothing of
 * detectors; the engine scans what it returns as child chunks.
 */
#ifndef KH_DECODE_H
#define KH_DECODE_H

#include <stddef.h>
#include <stdint.h>

typedef struct decode_span {
    size_t offset, length;    /* encoded span within the input */
    const char *kind;         /* "base64", "base64url", "hex", "url",
                                 "unicode-escape", "escape", "quoted-printable",
                                 "html" (static strings) */
    size_t out_offset, out_len; /* decoded bytes within result->buf */
} decode_span;

typedef struct decode_result {
    uint8_t *buf;
    size_t len, cap;
    decode_span *spans;
    size_t count, span_cap;
    int truncated; /* max_out was reached; some spans were not decoded */
} decode_result;

/* Most spans one decode_find call appends; beyond it, truncated is set. */
#define DECODE_MAX_SPANS 65536

/* Finds and decodes every encoded span of data[0..len), appending to res,
 * decoding at most max_out bytes in all.  Spans whose decoding is not
 * mostly printable text are dropped (they cannot hold a text secret).
 * The spans appended by one call are sorted by offset; spans of different
 * encodings may overlap.  res->buf may move on the next call, so decoding
 * the output of one level needs a second decode_result for the next.
 * Returns 0, or -1 on out of memory. */
int decode_find(const uint8_t *data, size_t len, size_t max_out, decode_result *res);

/* decode_find over the pieces of data that hold a mark, with the same
 * result as decode_find over all of data.  marks (ascending offsets) say
 * where decode/trigger.h's dt_trigger may hold: every position where it
 * holds lies in [m, m + DT_SEG) of some mark m.  Pieces are cut at line
 * starts that no encoded run crosses (not after a quoted-printable soft
 * break or a base64 line long enough to continue), so the spans found
 * piece by piece are those of the whole.  When that cannot be shown (the
 * decoding budget or the span limit comes near), it decodes the whole
 * buffer instead.  *decoded_bytes (if set) gets how many bytes were given
 * to decode_find.  Returns 0, or -1 on out of memory. */
int decode_find_marked(const uint8_t *data, size_t len, const uint64_t *marks, size_t nmarks,
                       size_t max_out, decode_result *res, size_t *decoded_bytes);

/* Fills marks (room for (len + DT_SEG - 1) / DT_SEG) with the first
 * position of each DT_SEG-byte segment of data where dt_trigger holds, as
 * the GPU backend does; returns how many. */
size_t decode_marks(const uint8_t *data, size_t len, uint64_t *marks);

void decode_result_reset(decode_result *res); /* keeps the memory */
void decode_result_free(decode_result *res);

/* Single decoders, exposed for tests and fuzzing.  Each writes at most
 * out_cap bytes and returns the decoded length, or -1 if the input is not
 * valid in that encoding or its decoding does not fit in out_cap (an
 * out_cap of len always fits).  decode_base64 takes both alphabets and
 * skips ASCII whitespace; decode_percent copies a '%' that starts no
 * escape and leaves '+' alone. */
long decode_base64(const uint8_t *in, size_t len, uint8_t *out, size_t out_cap);
long decode_hex(const uint8_t *in, size_t len, uint8_t *out, size_t out_cap);
long decode_percent(const uint8_t *in, size_t len, uint8_t *out, size_t out_cap);

#endif
