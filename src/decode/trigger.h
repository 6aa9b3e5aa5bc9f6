/*
 * trigger.h - where decode-through could find something: a necessary
 * condition, byte by byte, for decode_find to decode anything near a
 * position.  The GPU backend evaluates it on the device for every byte and
 * marks the positions where it holds; the CPU then runs decode_find only
 * over the lines around a mark (decode_find_marked), which gives the same
 * spans as decode_find over the whole buffer.
 *
 * Compiled both as C (the library, the reference backend, tests) and as
 * CUDA device code (keyhog_gpu.cu), so it uses no tables and no library
 * calls.
 *
 * dt_trigger(d, p, limit) is true when byte p starts
 *   - a percent escape "%XX" (hex digits);
 *   - a backslash escape other than the whitespace ones (\n \t \r \b \f \v
 *     \a): a run of escapes is decoded only if one of them is not
 *     whitespace;
 *   - a quoted-printable "=XX" (upper-case hex): a run needs one;
 *   - an HTML entity: "&#", or one of the named ones decode.c knows;
 *   - a run of base64 characters (either alphabet, at least 20, starting
 *     at p) that decode.c's base64 pass could decode: the run, or a piece
 *     of it between '+', '-', '/' and '_', passes b64_try's shape gates
 *     and is not surely binary by its probe; or it holds a hex word of 32
 *     digits or more; or it has 40 characters or more and ends its line
 *     (the first line of a wrapped block, whose lines are tried together).
 * Runs longer than DT_MAX_RUN, or reaching `limit` (the end of what may be
 * read), are triggers without looking further.
 */
#ifndef KH_DECODE_TRIGGER_H
#define KH_DECODE_TRIGGER_H

#include <stddef.h>
#include <stdint.h>

#ifdef __CUDACC__
#define DT_FN __host__ __device__ static __forceinline__
#else
#define DT_FN static inline
#endif

/* Byte i of d (on the device, d is a block's tile in shared memory). */
#define DT_AT(d, i) ((unsigned)(d)[i])

/* decode.c's thresholds (its B64_MIN_CHARS, B64_WRAP_MIN, HEX_MIN_DIGITS
 * are these). */
#define DT_MIN_B64 20  /* shortest base64 run decoded */
#define DT_WRAP_MIN 40 /* a base64 line this long may continue on the next */
#define DT_MIN_HEX 32  /* shortest hex word decoded */
#define DT_MAX_RUN 256

DT_FN int dt_upper(unsigned c) { return c - 'A' < 26u; }
DT_FN int dt_lower(unsigned c) { return c - 'a' < 26u; }
DT_FN int dt_digit(unsigned c) { return c - '0' < 10u; }
DT_FN int dt_alnum(unsigned c) { return dt_upper(c) || dt_lower(c) || dt_digit(c); }
DT_FN int dt_hex(unsigned c) { return dt_digit(c) || (c | 32u) - 'a' < 6u; }
DT_FN int dt_upper_hex(unsigned c) { return dt_digit(c) || c - 'A' < 6u; }
DT_FN int dt_b64(unsigned c)
{
    return dt_alnum(c) || c == '+' || c == '/' || c == '-' || c == '_';
}

/* Sextet of a base64 character of either alphabet. */
DT_FN unsigned dt_b64_value(unsigned c)
{
    return dt_upper(c)   ? c - 'A'
           : dt_lower(c) ? c - 'a' + 26
           : dt_digit(c) ? c - '0' + 52
           : c == '+' || c == '-' ? 62u
                                  : 63u;
}

/* Bytes decode.c's is_text counts bad wherever they stand (decode.c builds
 * its always_bad table from this). */
#define DT_ALWAYS_BAD(c)                                                                     \
    (((c) >= 1 && (c) < 0x20 && (c) != '\t' && (c) != '\n' && (c) != '\r') || (c) == 0x7F ||    \
     (c) == 0xC0 || (c) == 0xC1 || (c) >= 0xF5)

/* The most bad bytes is_text lets through in n; never smaller for a
 * larger n, so a bound on the length gives a bound on the bad bytes. */
DT_FN size_t dt_text_max_bad(size_t n)
{
    /* good/n >= 0.85, i.e. bad * 20 <= 3n, without division by n. */
    return n < 32 ? n / 16 : 3 * n / 20;
}

/* Whether b64_try could decode the run or piece d[s..e) (base64
 * characters, then at most two '='): its shape gates, then the probe of
 * b64_surely_binary on the first 16 characters. */
DT_FN int dt_b64_keepable(const uint8_t *d, size_t s, size_t e)
{
    unsigned seen = 0; /* 1 upper, 2 lower, 4 digit, 8 non-hex letter, 16 +/, 32 -_ */
    size_t data = 0;
    unsigned lastc = 0;
    for (size_t i = s; i < e; i++) {
        unsigned c = DT_AT(d, i);
        if (c == '=')
            continue;
        data++;
        lastc = c;
        seen |= dt_upper(c)   ? 1u
                : dt_lower(c) ? 2u
                : dt_digit(c) ? 4u
                : c == '+' || c == '/' ? 16u
                                       : 32u;
        seen |= dt_alnum(c) && !dt_hex(c) ? 8u : 0u;
    }
    unsigned classes = (seen & 1u) + ((seen >> 1) & 1u) + ((seen >> 2) & 1u);
    if ((seen & 48u) == 48u || !(seen & 8u) || classes < 2 || data < DT_MIN_B64)
        return 0;
    size_t rem = data % 4;
    unsigned last = dt_b64_value(lastc);
    if (rem == 1 || (rem == 2 && (last & 15)) || (rem == 3 && (last & 3)))
        return 0;
    size_t bound = data / 4 * 3 + (rem ? rem - 1 : 0), bad = 0;
    for (size_t i = s; i + 4 <= s + 16; i += 4) {
        unsigned v = dt_b64_value(DT_AT(d, i)) << 18 | dt_b64_value(DT_AT(d, i + 1)) << 12 |
                     dt_b64_value(DT_AT(d, i + 2)) << 6 | dt_b64_value(DT_AT(d, i + 3));
        unsigned x = v >> 16, y = (v >> 8) & 0xFFu, z = v & 0xFFu;
        bad += DT_ALWAYS_BAD(x) + DT_ALWAYS_BAD(y) + DT_ALWAYS_BAD(z);
    }
    return bad <= dt_text_max_bad(bound);
}

/* Whether the base64 run starting at d[p] (d[p-1] is not base64) could
 * give decode_find a span: as a whole, by a piece between '+', '-', '/'
 * and '_', by a hex word, or as the first line of a wrapped block. */
DT_FN int dt_b64_run(const uint8_t *d, size_t p, size_t limit)
{
    size_t q = p;
    while (q < limit && q - p < DT_MAX_RUN && dt_b64(DT_AT(d, q)))
        q++;
    if (q >= limit || q - p >= DT_MAX_RUN)
        return 1; /* its end is out of sight */
    if (q - p < DT_MIN_B64)
        return 0;
    if (q + 2 >= limit)
        return 1; /* so are its padding and line end */
    size_t e = q + (DT_AT(d, q) == '=') + (DT_AT(d, q) == '=' && DT_AT(d, q + 1) == '=');
    if (dt_b64_keepable(d, p, e))
        return 1;
    /* Pieces (not the whole run) and hex words. */
    size_t piece = p;
    for (size_t i = p; i <= e; i++) {
        if (i == e || (dt_b64(DT_AT(d, i)) && !dt_alnum(DT_AT(d, i)))) {
            if ((piece > p || i < e) && i - piece >= DT_MIN_B64 && dt_b64_keepable(d, piece, i))
                return 1;
            piece = i + 1;
        }
    }
    for (size_t i = p; i < q;) {
        if (!dt_alnum(DT_AT(d, i))) {
            i++;
            continue;
        }
        if (q - i > 2 && DT_AT(d, i) == '0' && (DT_AT(d, i + 1) == 'x' || DT_AT(d, i + 1) == 'X'))
            i += 2;
        size_t w = i;
        int lower = 0, upper = 0, other = 0;
        for (; i < q && dt_alnum(DT_AT(d, i)); i++) {
            lower |= dt_lower(DT_AT(d, i));
            upper |= dt_upper(DT_AT(d, i));
            other |= !dt_hex(DT_AT(d, i));
        }
        if (!other && !(lower && upper) && i - w >= DT_MIN_HEX && (i - w) % 2 == 0)
            return 1;
    }
    /* A line long enough to continue on the next (b64_extent joins only
     * without padding before the line end). */
    if (e == q && q - p >= DT_WRAP_MIN) {
        size_t j = q + (DT_AT(d, q) == '\r');
        return DT_AT(d, j) == '\n';
    }
    return 0;
}

/* d[0..limit) may be read; p < limit. */
DT_FN int dt_trigger(const uint8_t *d, size_t p, size_t limit)
{
    unsigned c = DT_AT(d, p);
    if (c == '%' || c == '=' || c == '\\' || c == '&') {
        if (p + 2 >= limit)
            return 1;
        unsigned a = DT_AT(d, p + 1), b = DT_AT(d, p + 2);
        if (c == '%')
            return dt_hex(a) && dt_hex(b);
        if (c == '=')
            return dt_upper_hex(a) && dt_upper_hex(b);
        if (c == '\\')
            return a == '"' || a == '\'' || a == '\\' || a == '/' || a == '$' || a == '`' ||
                   a == 'x' || a == 'u' || a == 'U';
        if (a == '#')
            return 1;
        /* &amp; &lt; &gt; &quot; &apos; &nbsp; */
        if (p + 5 >= limit)
            return 1;
        unsigned x = DT_AT(d, p + 3), y = DT_AT(d, p + 4), z = DT_AT(d, p + 5);
        return (a == 'a' && b == 'm' && x == 'p' && y == ';') ||
               ((a == 'l' || a == 'g') && b == 't' && x == ';') ||
               (a == 'q' && b == 'u' && x == 'o' && y == 't' && z == ';') ||
               (a == 'a' && b == 'p' && x == 'o' && y == 's' && z == ';') ||
               (a == 'n' && b == 'b' && x == 's' && y == 'p' && z == ';');
    }
    if (!dt_b64(c) || (p > 0 && dt_b64(DT_AT(d, p - 1))))
        return 0;
    return dt_b64_run(d, p, limit);
}

/* Segments of DT_SEG bytes: the device marks the first trigger of each. */
#define DT_SEG 16

#endif
