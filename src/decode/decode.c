/*
 * decode.c - decode-through: find the spans of a buffer that look encoded,
 * decode them, and keep those whose decoding is text a secret could hide in.
 *
 * Shape.  One linear pass per family, each cutting the input into maximal
 * "runs" of the characters its encoding can produce, so a byte is looked at
 * a small constant number of times whatever the input: no backtracking, no
 * rescanning from every offset.  This runs on every chunk the engine sees,
 * so the passes are built to skip: the base64 pass looks for 20 base64
 * bytes in a row (no shorter run matters), 64 bytes at a time with SSE2 or
 * probing one byte in 20 without, and finds hex inside the long base64 runs
 * it already has (hex digits are base64 characters); the percent, backslash,
 * quoted-printable and HTML passes memchr to their escape character and
 * look at a run only around a valid escape.  A run is decoded straight into
 * result->buf; if the decoding is not text it is rolled back (len is simply
 * not advanced), so a rejected span costs no budget and no memory beyond
 * its own size.  Spans of different encodings may overlap (an URL holding
 * HTML entities is both) and the engine scans both decodings.  At the end
 * the spans of this call are sorted by offset.
 *
 * Why these gates.  Almost every long identifier, path or hash is made of
 * base64 or hex characters, so the alphabet alone says little.  What decides
 * is the decoding: secrets are text, so a span is kept only when at least
 * 85% of its decoded bytes are printable ASCII or valid UTF-8 and it holds no
 * NUL except a trailing run.  Cheap shape tests in front (length, a mix of
 * character classes, canonical trailing bits for unpadded base64, same-case
 * hex) reject most words before any decoding.
 *
 * Bounds.  Work is linear in the input.  Decoded bytes kept are at most
 * max_out per call, the spans at most DECODE_MAX_SPANS; hitting either sets
 * result->truncated.  Memory is the kept output plus one span's decoding.
 */
#include "decode/decode.h"

#include <stdlib.h>
#include <string.h>

#include "decode/trigger.h"
#ifdef __SSE2__
#include <emmintrin.h>
#endif

enum {
    /* trigger.h's copies are the ones the GPU's decode marks use. */
    B64_MIN_CHARS = DT_MIN_B64, /* shorter base64 cannot hold a useful secret */
    B64_WRAP_MIN = DT_WRAP_MIN, /* a line this long may continue on the next */
    HEX_MIN_DIGITS = DT_MIN_HEX,
    MIN_ESCAPES = 2,
};

/* Internal decoders return this when out_cap is too small; the public
 * wrappers fold it into -1. */
#define CODEC_INVALID (-1L)
#define CODEC_TOO_SMALL (-2L)

typedef long (*codec_fn)(const uint8_t *in, size_t len, uint8_t *out, size_t cap);

/* ------------------------------------------------------------------ */
/* Character classes                                                    */
/* ------------------------------------------------------------------ */

static int is_upper(uint8_t c) { return c >= 'A' && c <= 'Z'; }
static int is_lower(uint8_t c) { return c >= 'a' && c <= 'z'; }
static int is_digit(uint8_t c) { return c >= '0' && c <= '9'; }
static int is_space(uint8_t c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

static int hex_value(uint8_t c)
{
    if (is_digit(c))
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Quoted-printable mandates upper-case hex; accepting lower case would turn
 * every "name=ab" into an escape. */
static int upper_hex_value(uint8_t c)
{
    return is_lower(c) ? -1 : hex_value(c);
}

/* Byte classes, as tables because every pass asks for every input byte:
 * CC_B64 either base64 alphabet, CC_HEX a hex digit, CC_URL a character
 * RFC 3986 allows in a URI or '%' (quotes, spaces, angle brackets and
 * backslashes end a run: they delimit URLs in text), CC_ALNUM [A-Za-z0-9]. */
enum { CC_B64 = 1, CC_HEX = 2, CC_URL = 4, CC_ALNUM = 8 };

static const uint8_t char_class[256] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 4, 0, 4, 4, 4, 4, 4, 4, 4, 4, 5, 4, 5, 4, 5,              /*  !"#$%&'()*+,-./ */
    15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 4, 4, 0, 4, 0, 4,    /* 0-9 :;<=>? */
    4, 15, 15, 15, 15, 15, 15, 13, 13, 13, 13, 13, 13, 13, 13, 13, /* @ A-O */
    13, 13, 13, 13, 13, 13, 13, 13, 13, 13, 13, 4, 0, 4, 0, 5,   /* P-Z [\]^_ */
    0, 15, 15, 15, 15, 15, 15, 13, 13, 13, 13, 13, 13, 13, 13, 13, /* ` a-o */
    13, 13, 13, 13, 13, 13, 13, 13, 13, 13, 13, 0, 0, 0, 4, 0,   /* p-z {|}~ DEL */
};

/* Sextet of a base64 character in either alphabet ('+' and '-' are 62,
 * '/' and '_' 63), -1 otherwise: a run is classified after it is read. */
static const int8_t b64_values[256] = {
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 62, -1, 62, -1, 63,
    52, 53, 54, 55, 56, 57, 58, 59, 60, 61, -1, -1, -1, -1, -1, -1,
    -1, 0,  1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14,
    15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, -1, -1, -1, -1, 63,
    -1, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40,
    41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
};

static int b64_value(uint8_t c) { return b64_values[c]; }
static int is_b64(uint8_t c) { return char_class[c] & CC_B64; }
static int is_hex(uint8_t c) { return char_class[c] & CC_HEX; }
static int is_urlish(uint8_t c) { return char_class[c] & CC_URL; }
static int is_alnum(uint8_t c) { return char_class[c] & CC_ALNUM; }

/* What b64_try asks of each byte of a run, one load per byte: B64F_DATA a
 * base64 character, then its kind (B64F_STD '+' or '/', B64F_URL '-' or
 * '_': the characters b64_try_pieces cuts at); B64F_PAD '='; B64F_OTHER
 * anything else (line breaks and indentation of joined lines). */
enum {
    B64F_DATA = 1, B64F_UPPER = 2, B64F_LOWER = 4, B64F_DIGIT = 8, B64F_NONHEX = 16,
    B64F_STD = 32, B64F_URL = 64, B64F_PAD = 128, B64F_OTHER = 256,
};
#define B64F_ALPHA(c) ((c) >= 'A' && (c) <= 'Z' ? B64F_UPPER : (c) >= 'a' && (c) <= 'z' ? B64F_LOWER : 0)
#define B64F_HEXLESS(c) (((c) >= 'G' && (c) <= 'Z') || ((c) >= 'g' && (c) <= 'z') ? B64F_NONHEX : 0)
#define B64F(c)                                                                              \
    ((c) == '=' ? B64F_PAD                                                                  \
     : (c) == '+' || (c) == '/' ? B64F_DATA | B64F_STD | B64F_NONHEX                       \
     : (c) == '-' || (c) == '_' ? B64F_DATA | B64F_URL | B64F_NONHEX                       \
     : (c) >= '0' && (c) <= '9' ? B64F_DATA | B64F_DIGIT                                   \
     : B64F_ALPHA(c) ? B64F_DATA | B64F_ALPHA(c) | B64F_HEXLESS(c)                         \
                     : B64F_OTHER)
#define B64F4(n) B64F(n), B64F(n + 1), B64F(n + 2), B64F(n + 3)
#define B64F16(n) B64F4(n), B64F4(n + 4), B64F4(n + 8), B64F4(n + 12)
#define B64F64(n) B64F16(n), B64F16(n + 16), B64F16(n + 32), B64F16(n + 48)
static const uint16_t b64_flags[256] = {B64F64(0), B64F64(64), B64F64(128), B64F64(192)};

/* Length of the valid UTF-8 sequence at p (2..4 bytes), or 0. */
static size_t utf8_seq(const uint8_t *p, size_t n)
{
    uint8_t c = p[0];
    size_t k;
    uint8_t lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
    if (c >= 0xC2 && c <= 0xDF)
        k = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        k = 3;
        if (c == 0xE0)
            lo = 0xA0; /* overlong */
        if (c == 0xED)
            hi = 0x9F; /* surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        k = 4;
        if (c == 0xF0)
            lo = 0x90;
        if (c == 0xF4)
            hi = 0x8F;
    } else
        return 0;
    if (n < k || p[1] < lo || p[1] > hi)
        return 0;
    for (size_t i = 2; i < k; i++)
        if ((p[i] & 0xC0) != 0x80)
            return 0;
    return k;
}

static size_t utf8_put(uint32_t cp, uint8_t *out)
{
    if (cp < 0x80) {
        out[0] = (uint8_t)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (uint8_t)(0xC0 | (cp >> 6));
        out[1] = (uint8_t)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (uint8_t)(0xE0 | (cp >> 12));
        out[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (uint8_t)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (uint8_t)(0xF0 | (cp >> 18));
    out[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (uint8_t)(0x80 | (cp & 0x3F));
    return 4;
}

/* The keep-or-drop gate: at least 85% printable ASCII or valid UTF-8, and
 * no NUL (the caller has trimmed a trailing run of them).  Short decodings
 * get less slack: a uniformly random byte is "good" about 4 times in 10, so
 * 2 bad bytes in 15 would let through about one random 20-character base64
 * word in ten thousand; one bad byte per 16 lets through one in millions. */
static int is_text(const uint8_t *p, size_t n)
{
    size_t good = 0, max_bad = dt_text_max_bad(n); /* trigger.h */
    for (size_t i = 0; i < n;) {
        uint8_t c = p[i];
        if (c == 0)
            return 0;
        if ((c >= 0x20 && c < 0x7F) || c == '\t' || c == '\n' || c == '\r') {
            good++;
            i++;
            continue;
        }
        size_t k = utf8_seq(p + i, n - i);
        good += k;
        i += k ? k : 1;
        if (i - good > max_bad) /* bad so far: the verdict is in */
            return 0;
    }
    return n - good <= max_bad;
}

/* Bytes is_text counts bad wherever they stand: neither text, nor a UTF-8
 * lead, nor a continuation byte (so no sequence before them takes them
 * in).  NUL is left out: a trailing run of it is trimmed before the test. */
#define ALWAYS_BAD4(n)                                                                       \
    DT_ALWAYS_BAD(n), DT_ALWAYS_BAD(n + 1), DT_ALWAYS_BAD(n + 2), DT_ALWAYS_BAD(n + 3)
#define ALWAYS_BAD16(n) ALWAYS_BAD4(n), ALWAYS_BAD4(n + 4), ALWAYS_BAD4(n + 8), ALWAYS_BAD4(n + 12)
#define ALWAYS_BAD64(n) ALWAYS_BAD16(n), ALWAYS_BAD16(n + 16), ALWAYS_BAD16(n + 32), ALWAYS_BAD16(n + 48)
static const uint8_t always_bad[256] = {ALWAYS_BAD64(0), ALWAYS_BAD64(64), ALWAYS_BAD64(128),
                                        ALWAYS_BAD64(192)};

/* ------------------------------------------------------------------ */
/* Single decoders                                                      */
/* ------------------------------------------------------------------ */

/* Standard and URL alphabets, '=' padding only at the end, ASCII
 * whitespace ignored (wrapped PEM or YAML lines). */
static long codec_base64(const uint8_t *in, size_t len, uint8_t *out, size_t cap)
{
    uint32_t acc = 0;
    int bits = 0;
    size_t n = 0, data = 0, pads = 0;
    for (size_t i = 0; i < len; i++) {
        uint8_t c = in[i];
        if (is_space(c))
            continue;
        if (c == '=') {
            if (++pads > 2)
                return CODEC_INVALID;
            continue;
        }
        int v = b64_value(c);
        if (v < 0 || pads)
            return CODEC_INVALID;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        data++;
        if (bits >= 8) {
            bits -= 8;
            if (n >= cap)
                return CODEC_TOO_SMALL;
            out[n++] = (uint8_t)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    if (data % 4 == 1 || (pads && (data + pads) % 4 != 0))
        return CODEC_INVALID;
    return (long)n;
}

static long codec_hex(const uint8_t *in, size_t len, uint8_t *out, size_t cap)
{
    if (len % 2)
        return CODEC_INVALID;
    size_t n = 0;
    for (size_t i = 0; i < len; i += 2) {
        int hi = hex_value(in[i]), lo = hex_value(in[i + 1]);
        if (hi < 0 || lo < 0)
            return CODEC_INVALID;
        if (n >= cap)
            return CODEC_TOO_SMALL;
        out[n++] = (uint8_t)(hi << 4 | lo);
    }
    return (long)n;
}

/* Length of a valid "%XX" at p, 3, or 0. */
static size_t percent_escape(const uint8_t *p, size_t n)
{
    return n >= 3 && p[0] == '%' && hex_value(p[1]) >= 0 && hex_value(p[2]) >= 0 ? 3 : 0;
}

/* '+' is left alone: it means a space only in form bodies, and a '+' in a
 * secret is far more common than a form-encoded secret. A '%' that does not
 * start an escape is copied, as browsers do. */
static long codec_percent(const uint8_t *in, size_t len, uint8_t *out, size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; i < len;) {
        if (n >= cap)
            return CODEC_TOO_SMALL;
        if (percent_escape(in + i, len - i)) {
            out[n++] = (uint8_t)(hex_value(in[i + 1]) << 4 | hex_value(in[i + 2]));
            i += 3;
        } else
            out[n++] = in[i++];
    }
    return (long)n;
}

/* One backslash escape. */
typedef enum esc_class {
    ESC_SPACE,   /* \n \t \r \b \f \v \a: cannot hide a secret */
    ESC_CHAR,    /* \" \' \\ \/ \$ \`: a literal character */
    ESC_BYTE,    /* \xXX: one raw byte */
    ESC_UNICODE, /* \uXXXX, surrogate pairs, \UXXXXXXXX: a code point */
} esc_class;

typedef struct esc_token {
    esc_class cls;
    uint32_t value; /* byte or code point */
} esc_token;

static int hex_digits(const uint8_t *p, size_t count, uint32_t *value)
{
    uint32_t v = 0;
    for (size_t i = 0; i < count; i++) {
        int h = hex_value(p[i]);
        if (h < 0)
            return 0;
        v = v << 4 | (uint32_t)h;
    }
    *value = v;
    return 1;
}

/* Length of the escape at p (which is a backslash), or 0 if the backslash
 * starts nothing we know; then it is copied as is. */
static size_t esc_parse(const uint8_t *p, size_t n, esc_token *t)
{
    if (n < 2 || p[0] != '\\')
        return 0;
    static const char space_from[] = "ntrbfva", space_to[] = "\n\t\r\b\f\v\a";
    const char *hit = p[1] ? strchr(space_from, p[1]) : NULL;
    if (hit) {
        t->cls = ESC_SPACE;
        t->value = (uint8_t)space_to[hit - space_from];
        return 2;
    }
    if (p[1] && strchr("\"'\\/$`", p[1])) {
        t->cls = ESC_CHAR;
        t->value = p[1];
        return 2;
    }
    uint32_t v;
    if (p[1] == 'x' && n >= 4 && hex_digits(p + 2, 2, &v)) {
        t->cls = ESC_BYTE;
        t->value = v;
        return 4;
    }
    if (p[1] == 'U' && n >= 10 && hex_digits(p + 2, 8, &v)) {
        if (v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF))
            return 0;
        t->cls = ESC_UNICODE;
        t->value = v;
        return 10;
    }
    if (p[1] == 'u' && n >= 6 && hex_digits(p + 2, 4, &v)) {
        t->cls = ESC_UNICODE;
        t->value = v;
        if (v >= 0xD800 && v <= 0xDBFF) {
            uint32_t lo;
            if (n >= 12 && p[6] == '\\' && p[7] == 'u' && hex_digits(p + 8, 4, &lo) &&
                lo >= 0xDC00 && lo <= 0xDFFF) {
                t->value = 0x10000 + ((v - 0xD800) << 10) + (lo - 0xDC00);
                return 12;
            }
            t->value = 0xFFFD; /* a lone high surrogate */
        } else if (v >= 0xDC00 && v <= 0xDFFF)
            t->value = 0xFFFD; /* a lone low surrogate */
        return 6;
    }
    return 0;
}

/* Every escape is at least as long as what it decodes to (a 6-char \u
 * gives at most 3 bytes, 12-char pairs 4), so len is always enough room. */
static long codec_escape(const uint8_t *in, size_t len, uint8_t *out, size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; i < len;) {
        esc_token t;
        size_t k = in[i] == '\\' ? esc_parse(in + i, len - i, &t) : 0;
        if (!k) {
            if (n >= cap)
                return CODEC_TOO_SMALL;
            out[n++] = in[i++];
            continue;
        }
        if (t.cls == ESC_UNICODE) {
            uint8_t tmp[4];
            size_t w = utf8_put(t.value, tmp);
            if (cap - n < w)
                return CODEC_TOO_SMALL;
            memcpy(out + n, tmp, w);
            n += w;
        } else {
            if (n >= cap)
                return CODEC_TOO_SMALL;
            out[n++] = (uint8_t)t.value;
        }
        i += k;
    }
    return (long)n;
}

/* "=XX" (upper-case hex) or a soft line break "=\n" / "=\r\n"; returns its
 * length and sets *byte (-1 for a soft break), or 0. */
static size_t qp_escape(const uint8_t *p, size_t n, int *byte)
{
    if (n < 2 || p[0] != '=')
        return 0;
    if (p[1] == '\n') {
        *byte = -1;
        return 2;
    }
    if (n >= 3 && p[1] == '\r' && p[2] == '\n') {
        *byte = -1;
        return 3;
    }
    if (n >= 3 && upper_hex_value(p[1]) >= 0 && upper_hex_value(p[2]) >= 0) {
        *byte = hex_value(p[1]) << 4 | hex_value(p[2]);
        return 3;
    }
    return 0;
}

static long codec_qp(const uint8_t *in, size_t len, uint8_t *out, size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; i < len;) {
        int byte;
        size_t k = qp_escape(in + i, len - i, &byte);
        if (k && byte < 0) {
            i += k;
            continue;
        }
        if (n >= cap)
            return CODEC_TOO_SMALL;
        if (k) {
            out[n++] = (uint8_t)byte;
            i += k;
        } else
            out[n++] = in[i++];
    }
    return (long)n;
}

/* Length of the HTML entity at p (which is '&'), or 0; *cp gets the code
 * point.  Only the entities that occur in escaped attribute values and the
 * numeric forms: a full entity table would only add false spans. */
static size_t html_entity(const uint8_t *p, size_t n, uint32_t *cp)
{
    static const struct {
        const char *name;
        uint32_t cp;
    } named[] = {
        {"&amp;", '&'}, {"&lt;", '<'}, {"&gt;", '>'}, {"&quot;", '"'}, {"&apos;", '\''},
        {"&nbsp;", 0xA0},
    };
    if (n < 4 || p[0] != '&')
        return 0;
    if (p[1] == '#') {
        size_t i = 2, max;
        int base = 10;
        if (p[i] == 'x' || p[i] == 'X') {
            base = 16;
            i++;
        }
        max = base == 16 ? 6 : 7; /* enough digits for U+10FFFF */
        uint32_t v = 0;
        size_t start = i;
        while (i < n && i - start < max) {
            int d = base == 16 ? hex_value(p[i]) : is_digit(p[i]) ? p[i] - '0' : -1;
            if (d < 0)
                break;
            v = v * (uint32_t)base + (uint32_t)d;
            i++;
        }
        if (i == start || i >= n || p[i] != ';')
            return 0;
        if (v == 0 || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF))
            return 0;
        *cp = v;
        return i + 1;
    }
    /* Every '&' of C source ("&dev->lock") lands here: most are no name. */
    if (!memchr("algqn", p[1], 5))
        return 0;
    for (size_t k = 0; k < sizeof named / sizeof named[0]; k++) {
        size_t l = strlen(named[k].name);
        if (n >= l && memcmp(p, named[k].name, l) == 0) {
            *cp = named[k].cp;
            return l;
        }
    }
    return 0;
}

/* The shortest entity ("&lt;", "&#9;") is 4 bytes and decodes to at most
 * 4 UTF-8 bytes, so len is always enough room. */
static long codec_html(const uint8_t *in, size_t len, uint8_t *out, size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        size_t k = in[i] == '&' ? html_entity(in + i, len - i, &cp) : 0;
        if (!k) {
            if (n >= cap)
                return CODEC_TOO_SMALL;
            out[n++] = in[i++];
            continue;
        }
        uint8_t tmp[4];
        size_t w = utf8_put(cp, tmp);
        if (cap - n < w)
            return CODEC_TOO_SMALL;
        memcpy(out + n, tmp, w);
        n += w;
        i += k;
    }
    return (long)n;
}

long decode_base64(const uint8_t *in, size_t len, uint8_t *out, size_t out_cap)
{
    long n = codec_base64(in, len, out, out_cap);
    return n < 0 ? -1 : n;
}

long decode_hex(const uint8_t *in, size_t len, uint8_t *out, size_t out_cap)
{
    long n = codec_hex(in, len, out, out_cap);
    return n < 0 ? -1 : n;
}

long decode_percent(const uint8_t *in, size_t len, uint8_t *out, size_t out_cap)
{
    long n = codec_percent(in, len, out, out_cap);
    return n < 0 ? -1 : n;
}

/* ------------------------------------------------------------------ */
/* Result                                                               */
/* ------------------------------------------------------------------ */

/* Room for need elements in an array of cap; NULL (and *p untouched) on
 * out of memory.  Returns the array, possibly moved. */
static void *grow(void *p, size_t *cap, size_t need, size_t elem, size_t first)
{
    if (need <= *cap)
        return p;
    size_t c = *cap ? *cap : first;
    while (c < need)
        c = c > SIZE_MAX / 4 ? need : c * 2;
    if (c > SIZE_MAX / elem)
        return NULL;
    void *q = realloc(p, c * elem);
    if (q)
        *cap = c;
    return q;
}

void decode_result_reset(decode_result *res)
{
    res->len = 0;
    res->count = 0;
    res->truncated = 0;
}

void decode_result_free(decode_result *res)
{
    free(res->buf);
    free(res->spans);
    memset(res, 0, sizeof *res);
}

/* ------------------------------------------------------------------ */
/* Finder                                                               */
/* ------------------------------------------------------------------ */

typedef struct finder {
    const uint8_t *data;
    size_t len;
    decode_result *res;
    size_t budget;     /* decoded bytes this call may still keep */
    size_t first_span; /* spans before this index belong to earlier calls */
    int oom;
    int full; /* DECODE_MAX_SPANS reached */
} finder;

static int finder_stopped(const finder *f) { return f->oom || f->full; }

/* Whether the base64 in[0..len) surely decodes to no text: most words
 * that pass the shape gates decode to control bytes at once.  Only the
 * first B64_PROBE_CHARS characters, up to the first that is not base64
 * data, are decoded; they are the first bytes codec_base64 writes (it skips
 * whitespace, refuses anything else), and the always-bad bytes among them
 * are bad in is_text however the decoding goes on.  bound is at least the
 * decoded length, and dt_text_max_bad grows with the length, so more of them
 * than dt_text_max_bad(bound) is a rejection is_text would make too. */
#define B64_PROBE_CHARS 16
static int b64_surely_binary(const uint8_t *in, size_t len, size_t bound)
{
    size_t max_bad = dt_text_max_bad(bound), bad = 0;
    size_t n = len < B64_PROBE_CHARS ? len : B64_PROBE_CHARS;
    for (size_t i = 0; i + 4 <= n; i += 4) {
        int a = b64_values[in[i]], b = b64_values[in[i + 1]], c = b64_values[in[i + 2]],
            d = b64_values[in[i + 3]];
        if ((a | b | c | d) < 0)
            break;
        uint32_t v = (uint32_t)a << 18 | (uint32_t)b << 12 | (uint32_t)c << 6 | (uint32_t)d;
        bad += always_bad[v >> 16] + always_bad[(v >> 8) & 0xFF] + always_bad[v & 0xFF];
        if (bad > max_bad)
            return 1;
    }
    return 0;
}

/* Decodes data[start..end) with fn into the free end of res->buf and keeps
 * it as a span if it is text.  bound is an upper limit on the decoded size.
 * Returns 1 if kept. */
static int finder_emit(finder *f, size_t start, size_t end, const char *kind, codec_fn fn,
                       size_t bound)
{
    decode_result *r = f->res;
    if (finder_stopped(f) || bound == 0)
        return 0;
    if (r->count - f->first_span >= DECODE_MAX_SPANS) {
        f->full = 1;
        r->truncated = 1;
        return 0;
    }
    size_t cap = bound < f->budget ? bound : f->budget;
    if (cap == 0) {
        r->truncated = 1;
        return 0;
    }
    uint8_t *buf = grow(r->buf, &r->cap, r->len + cap, 1, 4096);
    if (!buf) {
        f->oom = 1;
        return 0;
    }
    r->buf = buf;
    if (fn == codec_base64 && cap >= bound && b64_surely_binary(f->data + start, end - start, bound))
        return 0; /* what the decoding and is_text below would say, sooner */
    long got = fn(f->data + start, end - start, r->buf + r->len, cap);
    if (got == CODEC_TOO_SMALL) {
        r->truncated = 1;
        return 0;
    }
    if (got <= 0)
        return 0;
    size_t n = (size_t)got;
    while (n > 0 && r->buf[r->len + n - 1] == 0)
        n--;
    if (n == 0 || !is_text(r->buf + r->len, n))
        return 0;
    decode_span *spans = grow(r->spans, &r->span_cap, r->count + 1, sizeof *r->spans, 16);
    if (!spans) {
        f->oom = 1;
        return 0;
    }
    r->spans = spans;
    r->spans[r->count++] = (decode_span){
        .offset = start, .length = end - start, .kind = kind, .out_offset = r->len, .out_len = n};
    r->len += n;
    f->budget -= n;
    return 1;
}

/* --- base64 -------------------------------------------------------- */

#ifdef __SSE2__
/* Bit i set when p[i] is in either base64 alphabet, for 16 bytes. */
static unsigned b64_mask16(const uint8_t *p)
{
    __m128i c = _mm_loadu_si128((const __m128i *)(const void *)p);
    /* Letters: c | 0x20 in 'a'..'z'; bytes >= 0x80 land above it. */
    __m128i t = _mm_sub_epi8(_mm_or_si128(c, _mm_set1_epi8(0x20)), _mm_set1_epi8('a'));
    __m128i b = _mm_cmpeq_epi8(_mm_min_epu8(t, _mm_set1_epi8(25)), t);
    /* '+' (0x2b) to '9' (0x39) holds '+', '-', '/' and the digits, and
     * also ',' and '.', taken out. */
    t = _mm_sub_epi8(c, _mm_set1_epi8('+'));
    __m128i r = _mm_cmpeq_epi8(_mm_min_epu8(t, _mm_set1_epi8('9' - '+')), t);
    r = _mm_andnot_si128(_mm_or_si128(_mm_cmpeq_epi8(c, _mm_set1_epi8(',')),
                                      _mm_cmpeq_epi8(c, _mm_set1_epi8('.'))),
                         r);
    b = _mm_or_si128(_mm_or_si128(b, r), _mm_cmpeq_epi8(c, _mm_set1_epi8('_')));
    return (unsigned)_mm_movemask_epi8(b);
}
#endif

static size_t skip_b64(const uint8_t *d, size_t len, size_t i)
{
#ifdef __SSE2__
    while (len - i >= 16) {
        unsigned m = b64_mask16(d + i);
        if (m != 0xFFFF)
            return i + (size_t)__builtin_ctz(~m);
        i += 16;
    }
#endif
    while (i < len && is_b64(d[i]))
        i++;
    return i;
}

static size_t skip_pad(const uint8_t *d, size_t len, size_t i)
{
    size_t start = i;
    while (i < len && d[i] == '=' && i - start < 2)
        i++;
    return i;
}

/* The end of the base64 run starting at start.  With join, a line of at
 * least B64_WRAP_MIN characters that ends the line continues on the next if
 * that line (after an indentation equal on every continuation line) is
 * wholly base64 up to its end: PEM bodies, MIME parts and YAML block
 * scalars.  *lines says how many lines were joined. */
static size_t b64_extent(const uint8_t *d, size_t len, size_t start, int join, int *lines)
{
    size_t line = start;
    size_t seg = skip_b64(d, len, start);
    size_t end = skip_pad(d, len, seg);
    size_t indent = SIZE_MAX;
    *lines = 1;
    while (join && end == seg && seg - line >= B64_WRAP_MIN) {
        size_t j = seg;
        if (j < len && d[j] == '\r')
            j++;
        if (j >= len || d[j] != '\n')
            break;
        size_t ind = ++j;
        while (j < len && (d[j] == ' ' || d[j] == '\t'))
            j++;
        if ((indent != SIZE_MAX && j - ind != indent) || j >= len || !is_b64(d[j]))
            break;
        size_t seg2 = skip_b64(d, len, j), end2 = skip_pad(d, len, seg2), k = end2;
        while (k < len && (d[k] == ' ' || d[k] == '\t'))
            k++;
        if (k < len && d[k] != '\n' && d[k] != '\r')
            break;
        indent = j - ind;
        line = j;
        seg = seg2;
        end = end2;
        ++*lines;
    }
    return end;
}

/* Applies the shape gates to the run data[s..e) and decodes it.  Returns 1
 * if it was kept. */
static int b64_try(finder *f, size_t s, size_t e, unsigned *seen_out)
{
    const uint8_t *d = f->data;
    size_t data = 0, pads = 0;
    unsigned seen = 0;
    uint8_t lastc = 0;
    /* Every byte of every long word passes here: one table load and an OR
     * (the counts below are needed only when a gate passes). */
    for (size_t i = s; i < e; i++)
        seen |= b64_flags[d[i]];
    if (seen_out)
        *seen_out = seen;
    int std = (seen & B64F_STD) != 0, url = (seen & B64F_URL) != 0;
    int upper = (seen & B64F_UPPER) != 0, lower = (seen & B64F_LOWER) != 0;
    int digit = (seen & B64F_DIGIT) != 0, nonhex = (seen & B64F_NONHEX) != 0;
    if ((std && url) || !nonhex || upper + lower + digit < 2)
        return 0;
    if (!(seen & (B64F_PAD | B64F_OTHER))) {
        data = e - s; /* nothing but base64 characters */
        lastc = data ? d[e - 1] : 0;
    } else {
        for (size_t i = s; i < e; i++) {
            unsigned k = b64_flags[d[i]];
            data += k & B64F_DATA;
            pads += (k & B64F_PAD) != 0;
            lastc = k & B64F_DATA ? d[i] : lastc;
        }
    }
    int last = data ? b64_value(lastc) : 0;
    if (data < B64_MIN_CHARS)
        return 0;
    size_t rem = data % 4;
    if (rem == 1)
        return 0;
    /* Canonical encoders leave the unused low bits of the last character
     * zero; a word that merely uses the alphabet does so 1 time in 4 or 16. */
    if ((rem == 2 && (last & 15)) || (rem == 3 && (last & 3)))
        return 0;
    size_t need = (4 - rem) % 4;
    e -= pads >= need ? pads - need : pads; /* keep exactly the right padding */
    size_t bound = data / 4 * 3 + (rem ? rem - 1 : 0);
    return finder_emit(f, s, e, url ? "base64url" : "base64", codec_base64, bound);
}

/* A run that failed as a whole may be base64 glued to a word by '_', '-',
 * '/' or '+' ("secret_<b64>", "/api/<b64>"): try each piece between them. */
static void b64_try_pieces(finder *f, size_t s, size_t e)
{
    size_t p = s;
    for (size_t i = s; i <= e; i++) {
        if (i == e || (char_class[f->data[i]] & (CC_B64 | CC_ALNUM)) == CC_B64) {
            if ((p > s || i < e) && i - p >= B64_MIN_CHARS) { /* a piece, not the run */
                if (finder_stopped(f))
                    return;
                b64_try(f, p, i, NULL);
            }
            p = i + 1;
        }
    }
}

/* --- hex ----------------------------------------------------------- */

/* Hex of 32 digits or more is base64-alphabet too, so it is looked for
 * only inside base64 runs that long: as a whole alnum word (neighbours
 * '+', '/', '-', '_', '=', blanks or the run's ends), optionally after
 * "0x", all digits one case.  Inside a longer word it is a piece of
 * something else. */
static void hex_in_run(finder *f, size_t s, size_t e)
{
    const uint8_t *d = f->data;
    if (e - s < HEX_MIN_DIGITS)
        return;
    for (size_t i = s; i < e && !finder_stopped(f);) {
        if (!is_alnum(d[i])) {
            i++;
            continue;
        }
        size_t w = i;
        int lower = 0, upper = 0, other = 0;
        if (e - i > 2 && d[i] == '0' && (d[i + 1] == 'x' || d[i + 1] == 'X'))
            w = i += 2;
        for (; i < e && is_alnum(d[i]); i++) {
            lower |= is_lower(d[i]);
            upper |= is_upper(d[i]);
            other |= !is_hex(d[i]);
        }
        if (!other && !(lower && upper) && i - w >= HEX_MIN_DIGITS && (i - w) % 2 == 0)
            finder_emit(f, w, i, "hex", codec_hex, (i - w) / 2);
    }
}

/* --- base64 pass ------------------------------------------------------ */

/* Most long runs are identifiers ("spin_unlock_irqrestore") whose pieces
 * (between '+', '/', '-', '_') and alphanumeric words are short, and the
 * piece and hex passes find nothing in them.  has_stretch says whether
 * [s, e) holds min bytes in a row none of which is a stop byte (one whose
 * char_class & mask is value), probing one byte in min as the base64 pass
 * does, so a short piece is mostly not read.  Pieces stop at base64
 * characters that are not alphanumeric, words at anything not
 * alphanumeric. */
#define PIECE_STOP (CC_B64 | CC_ALNUM), CC_B64
#define WORD_STOP CC_ALNUM, 0

static int has_stretch(const uint8_t *d, size_t s, size_t e, size_t min, unsigned mask,
                       unsigned value)
{
#define stop(c) ((char_class[c] & mask) == value)
    size_t p = s;
    while (e - p >= min) {
        size_t probe = p + min - 1;
        if (stop(d[probe])) {
            p = probe + 1;
            continue;
        }
        size_t a = probe, b = probe + 1;
        while (a > p && !stop(d[a - 1]))
            a--;
        while (b < e && !stop(d[b]))
            b++;
        if (b - a >= min)
            return 1;
        p = b < e ? b + 1 : e;
    }
    return 0;
#undef stop
}

#ifdef __SSE2__
/* Bit i set when p[i] is not a stop byte, for 16 bytes: for pieces
 * (piece set) a stop is '+', '-', '/' or '_'; for words anything that is
 * not a letter or digit.  The same classes as char_class's. */
static unsigned stretch_mask16(const uint8_t *p, int piece)
{
    __m128i c = _mm_loadu_si128((const __m128i *)(const void *)p);
    if (piece) {
        __m128i s = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(c, _mm_set1_epi8('+')),
                                              _mm_cmpeq_epi8(c, _mm_set1_epi8('-'))),
                                 _mm_or_si128(_mm_cmpeq_epi8(c, _mm_set1_epi8('/')),
                                              _mm_cmpeq_epi8(c, _mm_set1_epi8('_'))));
        return ~(unsigned)_mm_movemask_epi8(s) & 0xFFFF;
    }
    __m128i t = _mm_sub_epi8(_mm_or_si128(c, _mm_set1_epi8(0x20)), _mm_set1_epi8('a'));
    __m128i a = _mm_cmpeq_epi8(_mm_min_epu8(t, _mm_set1_epi8(25)), t);
    t = _mm_sub_epi8(c, _mm_set1_epi8('0'));
    a = _mm_or_si128(a, _mm_cmpeq_epi8(_mm_min_epu8(t, _mm_set1_epi8(9)), t));
    return (unsigned)_mm_movemask_epi8(a);
}

/* has_stretch over 64-byte windows where 64 bytes of data are there (the
 * run usually is shorter, the data after it is read and masked off):
 * a stretch is min set bits in a row, and steps of 64 - min + 1 bytes miss
 * none (b64_next_window's argument).  The rest goes to has_stretch, which
 * counts nothing before the p it is given: a stretch starting earlier was
 * whole inside a window already looked at. */
static int has_stretch_simd(const uint8_t *d, size_t len, size_t s, size_t e, size_t min,
                            int piece)
{
    size_t p = s;
    while (e - p >= min && len - p >= 64) {
        uint64_t r = 0;
        for (size_t k = 0; k < 4 && 16 * k < e - p; k++) /* the run is often short */
            r |= (uint64_t)stretch_mask16(d + p + 16 * k, piece) << (16 * k);
        if (e - p < 64)
            r &= ((uint64_t)1 << (e - p)) - 1;
        for (size_t have = 1; have < min && r;) { /* bit i: bits i..i+have-1 set */
            size_t step = have < min - have ? have : min - have;
            r &= r >> step;
            have += step;
        }
        if (r)
            return 1;
        if (e - p < 64)
            return 0; /* the whole rest was in this window */
        p += 64 - min + 1;
    }
    if (e - p < min)
        return 0;
    return piece ? has_stretch(d, p, e, min, PIECE_STOP) : has_stretch(d, p, e, min, WORD_STOP);
}
#endif

#ifdef __SSE2__
/* Bit i set when p[i] is in either base64 alphabet, for 64 bytes. */
static uint64_t b64_mask64(const uint8_t *p)
{
    uint64_t m = 0;
    for (int k = 0; k < 4; k++)
        m |= (uint64_t)b64_mask16(p + 16 * k) << (16 * k);
    return m;
}
#endif

/* The first i >= pos at which B64_MIN_CHARS base64 characters begin,
 * counting none before pos, or len if there is none.  64 bytes at a time
 * where SSE2 is there: a window of B64_MIN_CHARS is a run of that many
 * set bits, and steps of 64 - B64_MIN_CHARS + 1 bytes miss none.  (A run
 * starting before the next step's first byte and not seen in this one is
 * shorter than B64_MIN_CHARS, so cutting it there changes nothing.)  The
 * tail probes one byte in B64_MIN_CHARS: most text is words shorter than
 * that, so most bytes are never read. */
static size_t b64_next_window(const uint8_t *d, size_t len, size_t pos)
{
#ifdef __SSE2__
    while (len - pos >= 64) {
        uint64_t r = b64_mask64(d + pos);
        _Static_assert(B64_MIN_CHARS == 20, "the shifts below count 20 set bits");
        r &= r >> 1;  /* bit i: bits i..i+1 all set */
        r &= r >> 2;  /* i..i+3 */
        r &= r >> 4;  /* i..i+7 */
        r &= r >> 8;  /* i..i+15 */
        r &= r >> 4;  /* i..i+19 */
        if (r)
            return pos + (size_t)__builtin_ctzll(r);
        pos += 64 - B64_MIN_CHARS + 1;
    }
#endif
    while (len - pos >= B64_MIN_CHARS) {
        size_t probe = pos + B64_MIN_CHARS - 1;
        if (!is_b64(d[probe])) {
            pos = probe + 1;
            continue;
        }
        size_t start = probe;
        while (start > pos && is_b64(d[start - 1]))
            start--;
        size_t end = skip_b64(d, len, probe);
        if (end - start >= B64_MIN_CHARS)
            return start;
        pos = end;
    }
    return len;
}

#if defined(__SSE2__) && defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define B64_HAVE_AVX2 1
/* b64_mask16's test 32 bytes at a time, for CPUs with AVX2 (chosen at run
 * time: the build targets plain x86-64).  Same classes, same bits. */
__attribute__((target("avx2"), always_inline)) static inline uint32_t b64_mask32_avx2(const uint8_t *p)
{
    __m256i c = _mm256_loadu_si256((const __m256i *)(const void *)p);
    __m256i t = _mm256_sub_epi8(_mm256_or_si256(c, _mm256_set1_epi8(0x20)), _mm256_set1_epi8('a'));
    __m256i b = _mm256_cmpeq_epi8(_mm256_min_epu8(t, _mm256_set1_epi8(25)), t);
    t = _mm256_sub_epi8(c, _mm256_set1_epi8('+'));
    __m256i r = _mm256_cmpeq_epi8(_mm256_min_epu8(t, _mm256_set1_epi8('9' - '+')), t);
    r = _mm256_andnot_si256(_mm256_or_si256(_mm256_cmpeq_epi8(c, _mm256_set1_epi8(',')),
                                            _mm256_cmpeq_epi8(c, _mm256_set1_epi8('.'))),
                            r);
    b = _mm256_or_si256(_mm256_or_si256(b, r), _mm256_cmpeq_epi8(c, _mm256_set1_epi8('_')));
    return (uint32_t)_mm256_movemask_epi8(b);
}

/* b64_next_window's 64-byte loop with AVX2 masks; the tail is left to
 * b64_next_window, which goes on from the same pos and so finds the same
 * window. */
__attribute__((target("avx2"))) static size_t b64_next_window_avx2(const uint8_t *d, size_t len,
                                                                     size_t pos)
{
    while (len - pos >= 64) {
        uint64_t r = (uint64_t)b64_mask32_avx2(d + pos) |
                     (uint64_t)b64_mask32_avx2(d + pos + 32) << 32;
        r &= r >> 1;
        r &= r >> 2;
        r &= r >> 4;
        r &= r >> 8;
        r &= r >> 4;
        if (r)
            return pos + (size_t)__builtin_ctzll(r);
        pos += 64 - B64_MIN_CHARS + 1;
    }
    return b64_next_window(d, len, pos);
}
#endif

#ifdef __SSE2__
#define STRETCH(d, len, s, e, min, piece, ...) has_stretch_simd(d, len, s, e, min, piece)
#else
#define STRETCH(d, len, s, e, min, piece, ...) has_stretch(d, s, e, min, __VA_ARGS__)
#endif

static void scan_base64(finder *f)
{
    const uint8_t *d = f->data;
#ifdef B64_HAVE_AVX2
    size_t (*next_window)(const uint8_t *, size_t, size_t) =
        __builtin_cpu_supports("avx2") ? b64_next_window_avx2 : b64_next_window;
#else
    size_t (*next_window)(const uint8_t *, size_t, size_t) = b64_next_window;
#endif
    size_t pos = 0, nojoin_until = 0;
    /* pos is always at the start of a run or just after a non-base64
     * byte, so a run found by looking back from a probe starts at pos at
     * the earliest. */
    while (f->len - pos >= B64_MIN_CHARS && !finder_stopped(f)) {
        size_t start = next_window(d, f->len, pos);
        if (start >= f->len)
            break;
        while (start > pos && is_b64(d[start - 1]))
            start--;
        int lines;
        size_t end = b64_extent(d, f->len, start, start >= nojoin_until, &lines);
        if (end - start < B64_MIN_CHARS) {
            pos = end;
            continue;
        }
        /* The piece and hex passes need a piece or word long enough:
         * none without separators (pieces) or when the whole run is one
         * word; otherwise one pass measures them. */
        unsigned seen;
        int kept = b64_try(f, start, end, &seen);
        if (!kept) {
            if (lines > 1) {
                /* Joined lines that fail together are retried one by one;
                 * nojoin_until keeps that to one extra pass over them. */
                nojoin_until = end;
                pos = start;
                continue;
            }
            /* Without a separator the only piece is the run itself. */
            if ((seen & (B64F_STD | B64F_URL)) &&
                STRETCH(d, f->len, start, end, B64_MIN_CHARS, 1, PIECE_STOP))
                b64_try_pieces(f, start, end);
        }
        if (end - start >= HEX_MIN_DIGITS &&
            (!(seen & (B64F_STD | B64F_URL | B64F_PAD | B64F_OTHER)) ||
             STRETCH(d, f->len, start, end, HEX_MIN_DIGITS, 0, WORD_STOP)))
            hex_in_run(f, start, end);
        pos = end;
    }
}

/* --- escape-driven passes -------------------------------------------- */

/* Percent, backslash, quoted-printable and HTML runs are found from their
 * escape character outward rather than byte by byte: memchr jumps to the
 * next '%', '\', '=' or '&', and only a valid escape makes the pass look
 * back to the start of its run and forward to its end.  Nothing between
 * the end of the previous run (lo) and that first escape can be an escape,
 * so looking back sees plain characters only and gives the same run as a
 * forward scan would; every byte is looked at most twice. */
typedef struct run_pass {
    uint8_t trigger;
    const char *kind;
    codec_fn codec;
    /* length of the escape at p, 0 if none; counts it in *counts */
    size_t (*escape)(const uint8_t *p, size_t n, size_t counts[3]);
    int (*is_delim)(uint8_t c);
    /* whether the counts make the run worth decoding; sets *kind */
    int (*enough)(const size_t counts[3], const char **kind);
    /* FOLLOW_* bit the byte after the trigger has in every escape; 0 if
     * any byte may follow */
    uint8_t follow;
} run_pass;

/* Bytes that may follow the trigger of an escape: quoted-printable "=XX"
 * (upper-case hex) or a soft break; an HTML entity "&#..." or one of the
 * named ones (&amp; &lt; &gt; &quot; &apos; &nbsp;); a percent escape. */
enum { FOLLOW_QP = 1, FOLLOW_HTML = 2, FOLLOW_PCT = 4 };
#define FOLLOW(c)                                                                            \
    (((c) == '\n' || (c) == '\r' || ((c) >= '0' && (c) <= '9') || ((c) >= 'A' && (c) <= 'F')    \
          ? FOLLOW_QP                                                                       \
          : 0) |                                                                            \
     ((c) == '#' || (c) == 'a' || (c) == 'l' || (c) == 'g' || (c) == 'q' || (c) == 'n'           \
          ? FOLLOW_HTML                                                                     \
          : 0) |                                                                            \
     (((c) >= '0' && (c) <= '9') || ((c) >= 'A' && (c) <= 'F') || ((c) >= 'a' && (c) <= 'f')     \
          ? FOLLOW_PCT                                                                      \
          : 0))
#define FOLLOW4(n) FOLLOW(n), FOLLOW(n + 1), FOLLOW(n + 2), FOLLOW(n + 3)
#define FOLLOW16(n) FOLLOW4(n), FOLLOW4(n + 4), FOLLOW4(n + 8), FOLLOW4(n + 12)
#define FOLLOW64(n) FOLLOW16(n), FOLLOW16(n + 16), FOLLOW16(n + 32), FOLLOW16(n + 48)
static const uint8_t follow_class[256] = {FOLLOW64(0), FOLLOW64(64), FOLLOW64(128),
                                          FOLLOW64(192)};

static int escape_at(const uint8_t *d, size_t len, size_t p, const run_pass *rp)
{
    size_t counts[3] = {0, 0, 0};
    if (rp->follow && (p + 1 >= len || !(follow_class[d[p + 1]] & rp->follow)))
        return 0;
    return rp->escape(d + p, len - p, counts) != 0;
}

/* The first p >= pos where an escape of the pass starts, or len.  Most
 * '=' and '&' of source code are operators: one whose next byte starts no
 * escape is passed over without calling the pass's parser. */
static size_t next_escape(const uint8_t *d, size_t len, size_t pos, const run_pass *rp)
{
    while (pos < len) {
        const uint8_t *hit = memchr(d + pos, rp->trigger, len - pos);
        if (!hit)
            return len;
        size_t p = (size_t)(hit - d);
        if (escape_at(d, len, p, rp))
            return p;
        pos = p + 1;
    }
    return len;
}

static void scan_runs(finder *f, const run_pass *rp)
{
    const uint8_t *d = f->data;
    size_t pos = 0, lo = 0;
    while (pos < f->len && !finder_stopped(f)) {
        size_t p = next_escape(d, f->len, pos, rp), counts[3] = {0, 0, 0};
        if (p >= f->len)
            break;
        size_t s = p;
        while (s > lo && !rp->is_delim(d[s - 1]))
            s--;
        size_t e = p;
        memset(counts, 0, sizeof counts);
        while (e < f->len) {
            size_t k = rp->escape(d + e, f->len - e, counts);
            if (k) {
                e += k;
                continue;
            }
            if (rp->is_delim(d[e]))
                break;
            e++;
        }
        const char *kind = rp->kind;
        if (rp->enough(counts, &kind))
            finder_emit(f, s, e, kind, rp->codec, e - s);
        pos = lo = e;
    }
}

/* Percent-encoding: a run of URI characters with two valid escapes, or
 * with one that encodes '=' or ':' in a run long enough to hold a secret:
 * a form-encoded "API_KEY%3D<token>" has one escape only, and it is the
 * assignment that context-anchored detectors need to see.  A lone %20 in
 * a URL still decodes to nothing new, so it is still not enough. */
static size_t url_escape(const uint8_t *p, size_t n, size_t counts[3])
{
    size_t k = percent_escape(p, n);
    counts[0] += k != 0;
    counts[1] += k == 0;
    if (k && p[1] == '3' && (p[2] == 'D' || p[2] == 'd' || p[2] == 'A' || p[2] == 'a'))
        counts[2]++;
    return k;
}
static int url_delim(uint8_t c) { return !is_urlish(c); }
static int url_enough(const size_t counts[3], const char **kind)
{
    (void)kind;
    return counts[0] >= MIN_ESCAPES || (counts[2] >= 1 && counts[1] >= B64_MIN_CHARS);
}

/* Backslash escapes: a run is what lies between unescaped double quotes or
 * line ends, the content of one JSON, C or shell string when there is one.
 * It needs two escapes, one of which is more than whitespace: "a\n\tb"
 * decodes to nothing a scanner could not already see. */
static size_t bs_escape(const uint8_t *p, size_t n, size_t counts[3])
{
    esc_token t;
    size_t k = p[0] == '\\' ? esc_parse(p, n, &t) : 0;
    if (k) {
        counts[0]++;
        counts[1] += t.cls != ESC_SPACE;
        counts[2] += t.cls == ESC_UNICODE;
    }
    return k;
}
static int bs_delim(uint8_t c) { return c == '"' || c == '\n' || c == '\r' || c == 0; }
static int bs_enough(const size_t counts[3], const char **kind)
{
    if (counts[2])
        *kind = "unicode-escape";
    return counts[0] >= MIN_ESCAPES && counts[1] > 0;
}

/* Quoted-printable: a run is one logical line, physical lines joined by
 * soft breaks, with at least one "=XX". */
static size_t qp_token(const uint8_t *p, size_t n, size_t counts[3])
{
    int byte;
    size_t k = qp_escape(p, n, &byte);
    if (k)
        counts[byte < 0 ? 1 : 0]++;
    return k;
}
static int line_delim(uint8_t c) { return c == '\n' || c == '\r' || c == 0; }
static int qp_enough(const size_t counts[3], const char **kind)
{
    (void)kind;
    return counts[0] >= 1 && counts[0] + counts[1] >= MIN_ESCAPES;
}

/* HTML entities: a run is text between tags, quotes or line ends, an
 * attribute value or a text node. */
static size_t html_token(const uint8_t *p, size_t n, size_t counts[3])
{
    uint32_t cp;
    size_t k = p[0] == '&' ? html_entity(p, n, &cp) : 0;
    counts[0] += k != 0;
    return k;
}
static int html_delim(uint8_t c)
{
    return c == '<' || c == '>' || c == '"' || c == '\n' || c == '\r' || c == 0;
}

static void scan_percent(finder *f)
{
    static const run_pass rp = {'%',        "url",      codec_percent, url_escape,
                                url_delim,  url_enough, FOLLOW_PCT};
    scan_runs(f, &rp);
}

static void scan_escape(finder *f)
{
    static const run_pass rp = {'\\', "escape", codec_escape, bs_escape, bs_delim, bs_enough};
    scan_runs(f, &rp);
}

static void scan_qp(finder *f)
{
    static const run_pass rp = {'=',        "quoted-printable", codec_qp, qp_token,
                                line_delim, qp_enough,          FOLLOW_QP};
    scan_runs(f, &rp);
}

static void scan_html(finder *f)
{
    static const run_pass rp = {'&',        "html",     codec_html, html_token,
                                html_delim, url_enough, FOLLOW_HTML};
    scan_runs(f, &rp);
}

/* ------------------------------------------------------------------ */

static int span_order(const void *a, const void *b)
{
    const decode_span *x = a, *y = b;
    if (x->offset != y->offset)
        return x->offset < y->offset ? -1 : 1;
    if (x->length != y->length)
        return x->length < y->length ? -1 : 1;
    return x->out_offset < y->out_offset ? -1 : x->out_offset > y->out_offset;
}

int decode_find(const uint8_t *data, size_t len, size_t max_out, decode_result *res)
{
    finder f = {.data = data, .len = data ? len : 0, .res = res, .budget = max_out,
                .first_span = res->count};
    /* Most valuable first: when the budget runs out, base64 (the common
     * way secrets are stored encoded) has had its share. */
    void (*const passes[])(finder *) = {scan_base64, scan_percent, scan_escape, scan_qp,
                                        scan_html};
    for (size_t i = 0; i < sizeof passes / sizeof passes[0] && !finder_stopped(&f); i++)
        passes[i](&f);
    if (res->count - f.first_span > 1)
        qsort(res->spans + f.first_span, res->count - f.first_span, sizeof *res->spans,
              span_order);
    return f.oom ? -1 : 0;
}

/* Whether data may be cut before byte c (0 < c < len) without cutting a
 * run any pass finds: c starts a line, and the line before neither ends in
 * a quoted-printable soft break ("=\n", "=\r\n") nor in a base64 run long
 * enough to continue on the next line (b64_extent); every other run ends
 * at a line end, and no pass looks back across one. */
static int is_cut(const uint8_t *d, size_t c)
{
    if (d[c - 1] != '\n')
        return 0;
    size_t k = c - 1; /* the line's terminator */
    if (k > 0 && d[k - 1] == '\r')
        k--;
    if (k > 0 && d[k - 1] == '=')
        return 0;
    size_t run = 0;
    while (run < B64_WRAP_MIN && run < k && is_b64(d[k - 1 - run]))
        run++;
    return run < B64_WRAP_MIN;
}

/* The first cut after `from`, or len. */
static size_t cut_after(const uint8_t *d, size_t len, size_t from)
{
    for (size_t i = from; i < len;) {
        const uint8_t *nl = memchr(d + i, '\n', len - i);
        if (!nl || (size_t)(nl - d) + 1 >= len)
            break;
        i = (size_t)(nl - d) + 1;
        if (i > from && is_cut(d, i))
            return i;
    }
    return len;
}

/* The last cut at or before `at`, or lo (a cut, or 0): only a byte after a
 * newline can be one, so the newlines are found with memrchr. */
static size_t cut_before(const uint8_t *d, size_t lo, size_t at)
{
    for (size_t end = at; end > lo;) {
        const uint8_t *nl = memrchr(d + lo, '\n', end - lo);
        if (!nl)
            break;
        size_t c = (size_t)(nl - d) + 1;
        if (is_cut(d, c))
            return c;
        end = c - 1;
    }
    return lo;
}

int decode_find_marked(const uint8_t *data, size_t len, const uint64_t *marks, size_t nmarks,
                       size_t max_out, decode_result *res, size_t *decoded_bytes)
{
    size_t first = res->count, len0 = res->len, done = 0, fed = 0, widest = 0;
    int truncated0 = res->truncated, whole = 0;
    for (size_t i = 0; i < nmarks && !whole; i++) {
        /* What the mark covers, [m, m + DT_SEG), less what is decoded. */
        size_t m = marks[i] < len ? (size_t)marks[i] : len;
        size_t last = m + DT_SEG - 1 < len ? m + DT_SEG - 1 : len;
        size_t from = m > done ? m : done;
        if (from >= len || from > last)
            continue;
        size_t a = cut_before(data, done, from);
        size_t b = cut_after(data, len, last);
        size_t before = res->count, used = res->len - len0;
        if (decode_find(data + a, b - a, max_out - used, res) != 0)
            return -1;
        for (size_t k = before; k < res->count; k++)
            res->spans[k].offset += a;
        fed += b - a;
        widest = b - a > widest ? b - a : widest;
        done = b;
        whole = res->truncated || res->count - first >= DECODE_MAX_SPANS;
    }
    /* Each decoding had room for its whole bound (decoding the same, in
     * either order) if what is left after all of them still holds the
     * largest: one within a piece, or one outside them all, which only a
     * base64 run shorter than DT_MAX_RUN that no mark covers can be. */
    if (widest < DT_MAX_RUN)
        widest = DT_MAX_RUN;
    if (max_out - (res->len - len0) < widest)
        whole = 1;
    if (whole) {
        res->count = first;
        res->len = len0;
        res->truncated = truncated0;
        fed = len;
        if (decode_find(data, len, max_out, res) != 0)
            return -1;
    }
    if (decoded_bytes)
        *decoded_bytes = fed;
    return 0;
}

size_t decode_marks(const uint8_t *data, size_t len, uint64_t *marks)
{
    size_t n = 0;
    for (size_t seg = 0; seg < len; seg += DT_SEG) {
        size_t end = seg + DT_SEG < len ? seg + DT_SEG : len;
        for (size_t p = seg; p < end; p++)
            if (dt_trigger(data, p, len)) {
                marks[n++] = p;
                break;
            }
    }
    return n;
}
