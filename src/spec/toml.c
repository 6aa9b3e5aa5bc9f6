/*
 * toml.c - a TOML v1.0 reader producing a tree of toml_value.
 *
 * Shape: one forward pass over the bytes with a hand-written recursive
 * descent for values.  Recursion happens only through arrays and inline
 * tables, and every container (table, array) carries its depth, so neither
 * nested values nor long [a.b.c...] headers or dotted keys can nest deeper
 * than TOML_MAX_DEPTH; toml_free's recursion is bounded by the same limit.
 *
 * TOML's "define once" rules need to know how each table came to exist, and
 * toml_value is a public struct without room for that, so every value is
 * allocated inside a toml_node whose first member is the toml_value: the
 * parser keeps its flags (explicit, implicit, dotted, inline, array of
 * tables) there, plus a hash index for tables with many keys so a hostile
 * file with 100k keys does not make insertion quadratic.
 *
 * Columns are 1-based and count characters (UTF-8 sequences), not bytes,
 * because that is what an editor shows.  The column is computed lazily from
 * the start of the line with a cache, so the cost stays linear.
 *
 * Multi-line strings have their newlines normalised to "\n".  Floats are
 * converted with strtod, which assumes the "C" numeric locale (the library
 * never calls setlocale).
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spec/toml.h"

#define TOML_MAX_DEPTH 64
#define TOML_INDEX_MIN 8 /* tables with fewer keys are searched linearly */

enum {
    NODE_IMPLICIT = 1, /* created as a parent by a [a.b] header */
    NODE_EXPLICIT = 2, /* named by its own [header] */
    NODE_DOTTED = 4,   /* created by a dotted key (a.b = 1) */
    NODE_INLINE = 8,   /* an inline table { }, closed once parsed */
    NODE_AOT = 16      /* an array made by [[header]] */
};

typedef struct toml_node {
    toml_value v; /* first, so a toml_value * is a toml_node * */
    unsigned flags;
    int depth;
    size_t cap;
    uint32_t *index; /* table: slot + 1 per bucket, 0 = empty; NULL when small */
    size_t index_cap;
} toml_node;

typedef struct toml_pos {
    int line, col;
} toml_pos;

typedef struct toml_buf {
    char *ptr;
    size_t len, cap;
} toml_buf;

typedef struct toml_key {
    char *text;
    toml_pos pos;
} toml_key;

typedef struct toml_keypath {
    toml_key parts[TOML_MAX_DEPTH];
    int n;
} toml_keypath;

typedef struct toml_parser {
    const char *p, *end;
    const char *name;
    int line;
    const char *line_start;
    int col_line;       /* line the column cache is for */
    const char *col_at; /* the cache: col_val is the column of col_at */
    int col_val;
    char *err;
    size_t errlen;
    int failed;
    toml_node *root, *current;
    toml_buf buf;
} toml_parser;

/* ------------------------------------------------------------------ */
/* Positions and errors                                                 */
/* ------------------------------------------------------------------ */

static toml_pos toml_pos_at(toml_parser *ps, const char *at)
{
    if (ps->col_line != ps->line || at < ps->col_at) {
        ps->col_line = ps->line;
        ps->col_at = ps->line_start;
        ps->col_val = 1;
    }
    while (ps->col_at < at) {
        if (((unsigned char)*ps->col_at & 0xC0) != 0x80)
            ps->col_val++;
        ps->col_at++;
    }
    /* A position inside a multi-byte character belongs to that character. */
    int col = ps->col_val;
    if (at < ps->end && ((unsigned char)*at & 0xC0) == 0x80 && col > 1)
        col--;
    return (toml_pos){ps->line, col};
}

__attribute__((format(printf, 3, 4))) static int toml_fail_pos(toml_parser *ps, toml_pos pos,
                                                               const char *fmt, ...)
{
    if (ps->failed)
        return -1;
    ps->failed = 1;
    if (ps->err && ps->errlen) {
        int n = snprintf(ps->err, ps->errlen, "%s:%d:%d: ", ps->name, pos.line, pos.col);
        if (n >= 0 && (size_t)n < ps->errlen) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(ps->err + n, ps->errlen - (size_t)n, fmt, ap);
            va_end(ap);
        }
    }
    return -1;
}

#define toml_fail(ps, at, ...) toml_fail_pos((ps), toml_pos_at((ps), (at)), __VA_ARGS__)

static int toml_oom(toml_parser *ps)
{
    return toml_fail(ps, ps->p, "out of memory");
}

/* Consumes a newline (LF or CRLF) at ps->p if there is one. */
static int toml_eat_newline(toml_parser *ps)
{
    const char *p = ps->p;
    if (p < ps->end && *p == '\n')
        p++;
    else if (p + 1 < ps->end && p[0] == '\r' && p[1] == '\n')
        p += 2;
    else
        return 0;
    ps->p = p;
    ps->line++;
    ps->line_start = p;
    return 1;
}

static int toml_at_newline(const toml_parser *ps)
{
    return ps->p < ps->end &&
           (*ps->p == '\n' || (*ps->p == '\r' && ps->p + 1 < ps->end && ps->p[1] == '\n'));
}

static void toml_skip_ws(toml_parser *ps)
{
    while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t'))
        ps->p++;
}

/* ------------------------------------------------------------------ */
/* UTF-8 and small buffers                                              */
/* ------------------------------------------------------------------ */

/* Length of the valid UTF-8 sequence at s, or 0 (overlong, surrogate,
 * beyond U+10FFFF, truncated). */
static size_t toml_utf8_len(const unsigned char *s, const unsigned char *end)
{
    size_t avail = (size_t)(end - s);
    unsigned c = s[0];
    if (c < 0x80)
        return 1;
    size_t n;
    uint32_t cp, min;
    if (c >= 0xC2 && c <= 0xDF) {
        n = 2, cp = c & 0x1F, min = 0x80;
    } else if ((c & 0xF0) == 0xE0) {
        n = 3, cp = c & 0x0F, min = 0x800;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4, cp = c & 0x07, min = 0x10000;
    } else {
        return 0;
    }
    if (avail < n)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return n;
}

static int toml_buf_put(toml_parser *ps, const char *s, size_t n)
{
    toml_buf *b = &ps->buf;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->ptr, cap);
        if (!p)
            return toml_oom(ps);
        b->ptr = p;
        b->cap = cap;
    }
    memcpy(b->ptr + b->len, s, n);
    b->len += n;
    b->ptr[b->len] = 0;
    return 0;
}

static int toml_buf_put_cp(toml_parser *ps, uint32_t cp)
{
    char o[4];
    size_t n;
    if (cp < 0x80) {
        o[0] = (char)cp, n = 1;
    } else if (cp < 0x800) {
        o[0] = (char)(0xC0 | (cp >> 6)), o[1] = (char)(0x80 | (cp & 0x3F)), n = 2;
    } else if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12)), o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F)), n = 3;
    } else {
        o[0] = (char)(0xF0 | (cp >> 18)), o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        o[2] = (char)(0x80 | ((cp >> 6) & 0x3F)), o[3] = (char)(0x80 | (cp & 0x3F)), n = 4;
    }
    return toml_buf_put(ps, o, n);
}

static char *toml_buf_take(toml_parser *ps, size_t *len)
{
    char *s = malloc(ps->buf.len + 1);
    if (!s) {
        toml_oom(ps);
        return NULL;
    }
    if (ps->buf.len)
        memcpy(s, ps->buf.ptr, ps->buf.len);
    s[ps->buf.len] = 0;
    if (len)
        *len = ps->buf.len;
    ps->buf.len = 0;
    return s;
}

/* ------------------------------------------------------------------ */
/* Nodes                                                                */
/* ------------------------------------------------------------------ */

static toml_node *toml_node_new(toml_parser *ps, toml_type type, toml_pos pos, int depth)
{
    if (depth > TOML_MAX_DEPTH &&
        (type == TOML_TABLE || type == TOML_ARRAY)) {
        toml_fail_pos(ps, pos, "nesting deeper than %d levels", TOML_MAX_DEPTH);
        return NULL;
    }
    toml_node *n = calloc(1, sizeof *n);
    if (!n) {
        toml_oom(ps);
        return NULL;
    }
    n->v.type = type;
    n->v.line = pos.line;
    n->v.col = pos.col;
    n->depth = depth;
    return n;
}

void toml_free(toml_value *value)
{
    if (!value)
        return;
    toml_node *n = (toml_node *)value;
    switch (value->type) {
    case TOML_STRING:
    case TOML_DATETIME:
        free(value->u.str.ptr);
        break;
    case TOML_ARRAY:
        for (size_t i = 0; i < value->u.array.n; i++)
            toml_free(value->u.array.items[i]);
        free(value->u.array.items);
        break;
    case TOML_TABLE:
        for (size_t i = 0; i < value->u.table.n; i++) {
            free(value->u.table.keys[i]);
            toml_free(value->u.table.values[i]);
        }
        free(value->u.table.keys);
        free(value->u.table.values);
        free(n->index);
        break;
    default:
        break;
    }
    free(n);
}

static uint64_t toml_hash(const toml_node *t, const char *s)
{
    /* FNV-1a seeded with the table's address: crafted collisions in one run
     * do not carry over to the next. */
    uint64_t h = 0xcbf29ce484222325ULL ^ (uint64_t)(uintptr_t)t;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 0x100000001b3ULL;
    return h ^ (h >> 29);
}

static void toml_index_insert(toml_node *t, size_t slot)
{
    size_t mask = t->index_cap - 1;
    size_t b = (size_t)toml_hash(t, t->v.u.table.keys[slot]) & mask;
    while (t->index[b])
        b = (b + 1) & mask;
    t->index[b] = (uint32_t)(slot + 1);
}

static toml_value *toml_table_find(const toml_node *t, const char *key)
{
    const toml_value *v = &t->v;
    if (t->index) {
        size_t mask = t->index_cap - 1;
        for (size_t b = (size_t)toml_hash(t, key) & mask; t->index[b]; b = (b + 1) & mask) {
            size_t slot = t->index[b] - 1;
            if (!strcmp(v->u.table.keys[slot], key))
                return v->u.table.values[slot];
        }
        return NULL;
    }
    for (size_t i = 0; i < v->u.table.n; i++)
        if (!strcmp(v->u.table.keys[i], key))
            return v->u.table.values[i];
    return NULL;
}

/* Adds a copy of key -> child; takes ownership of child on success only. */
static int toml_table_add(toml_parser *ps, toml_node *t, const char *key_text, toml_node *child)
{
    toml_value *v = &t->v;
    size_t n = v->u.table.n;
    if (n == UINT32_MAX - 1)
        return toml_fail(ps, ps->p, "too many keys in one table");
    char *key = strdup(key_text);
    if (!key)
        return toml_oom(ps);
    if (n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 4;
        char **k = realloc(v->u.table.keys, cap * sizeof *k);
        if (!k) {
            free(key);
            return toml_oom(ps);
        }
        v->u.table.keys = k;
        toml_value **vals = realloc(v->u.table.values, cap * sizeof *vals);
        if (!vals) {
            free(key);
            return toml_oom(ps);
        }
        v->u.table.values = vals;
        t->cap = cap;
    }
    v->u.table.keys[n] = key;
    v->u.table.values[n] = &child->v;
    v->u.table.n = n + 1;
    if (n + 1 >= TOML_INDEX_MIN && (n + 1) * 2 > t->index_cap) {
        size_t cap = t->index_cap ? t->index_cap * 2 : 32;
        while (cap < (n + 1) * 2)
            cap *= 2;
        uint32_t *idx = calloc(cap, sizeof *idx);
        if (!idx) {
            v->u.table.n = n; /* not added: the caller still owns child */
            free(key);
            return toml_oom(ps);
        }
        free(t->index);
        t->index = idx;
        t->index_cap = cap;
        for (size_t i = 0; i <= n; i++)
            toml_index_insert(t, i);
    } else if (t->index) {
        toml_index_insert(t, n);
    }
    return 0;
}

static int toml_array_add(toml_parser *ps, toml_node *a, toml_node *item)
{
    toml_value *v = &a->v;
    if (v->u.array.n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 4;
        toml_value **items = realloc(v->u.array.items, cap * sizeof *items);
        if (!items)
            return toml_oom(ps);
        v->u.array.items = items;
        a->cap = cap;
    }
    v->u.array.items[v->u.array.n++] = &item->v;
    return 0;
}

/* ------------------------------------------------------------------ */
/* Strings                                                              */
/* ------------------------------------------------------------------ */

static int toml_hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Checks and copies one character of string content that is not a quote,
 * backslash or newline: tabs and printable text pass, other control
 * characters and broken UTF-8 do not. */
static int toml_string_char(toml_parser *ps)
{
    unsigned char c = (unsigned char)*ps->p;
    if ((c < 0x20 && c != '\t') || c == 0x7F)
        return toml_fail(ps, ps->p, "control character U+%04X must be escaped in a string", c);
    size_t n = toml_utf8_len((const unsigned char *)ps->p, (const unsigned char *)ps->end);
    if (!n)
        return toml_fail(ps, ps->p, "invalid UTF-8 in string");
    if (toml_buf_put(ps, ps->p, n))
        return -1;
    ps->p += n;
    return 0;
}

/* At a backslash inside a basic string. */
static int toml_escape(toml_parser *ps, int multiline, toml_pos open)
{
    const char *at = ps->p;
    if (at + 1 >= ps->end)
        return toml_fail_pos(ps, open, "unterminated string");
    char c = at[1];
    const char *simple = strchr("btnfr\"\\", c);
    if (c && simple) {
        static const char out[] = "\b\t\n\f\r\"\\";
        ps->p += 2;
        return toml_buf_put(ps, &out[simple - "btnfr\"\\"], 1);
    }
    if (c == 'u' || c == 'U') {
        int digits = c == 'u' ? 4 : 8;
        if (ps->end - at < 2 + digits)
            return toml_fail(ps, at, "\\%c escape needs %d hex digits", c, digits);
        uint32_t cp = 0;
        for (int i = 0; i < digits; i++) {
            int d = toml_hex_digit(at[2 + i]);
            if (d < 0)
                return toml_fail(ps, at, "\\%c escape needs %d hex digits", c, digits);
            cp = cp << 4 | (uint32_t)d;
        }
        if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return toml_fail(ps, at, "\\%c escape is not a Unicode scalar value", c);
        ps->p += 2 + digits;
        return toml_buf_put_cp(ps, cp);
    }
    if (multiline) {
        /* A backslash that ends a line swallows the newline and all the
         * whitespace after it. */
        const char *q = at + 1;
        while (q < ps->end && (*q == ' ' || *q == '\t'))
            q++;
        ps->p = q;
        if (toml_at_newline(ps)) {
            for (;;) {
                toml_skip_ws(ps);
                if (!toml_eat_newline(ps))
                    break;
            }
            return 0;
        }
        ps->p = at;
    }
    if ((unsigned char)c < 0x20 || c == 0x7F)
        return toml_fail(ps, at, "invalid escape sequence");
    return toml_fail(ps, at, "invalid escape sequence '\\%c'", c);
}

/* Parses a string starting at ps->p (a quote) into ps->buf. */
static int toml_string(toml_parser *ps)
{
    const char *start = ps->p;
    toml_pos open = toml_pos_at(ps, start);
    char q = *start;
    int literal = q == '\'';
    int multiline = ps->end - start >= 3 && start[1] == q && start[2] == q;
    ps->buf.len = 0;
    if (!multiline) {
        ps->p++;
        for (;;) {
            if (ps->p >= ps->end || *ps->p == '\n' ||
                (*ps->p == '\r' && ps->p + 1 < ps->end && ps->p[1] == '\n'))
                return toml_fail_pos(ps, open, "unterminated string");
            char c = *ps->p;
            if (c == q) {
                ps->p++;
                return 0;
            }
            if (c == '\\' && !literal) {
                if (toml_escape(ps, 0, open))
                    return -1;
            } else if (toml_string_char(ps)) {
                return -1;
            }
        }
    }
    ps->p += 3;
    toml_eat_newline(ps); /* a newline right after the opening is trimmed */
    for (;;) {
        if (ps->p >= ps->end)
            return toml_fail_pos(ps, open, "unterminated string");
        char c = *ps->p;
        if (c == q) {
            size_t run = 0;
            while (ps->p + run < ps->end && ps->p[run] == q && run < 5)
                run++;
            if (run >= 3) {
                /* Up to two quotes may sit right before the closing three. */
                if (toml_buf_put(ps, ps->p, run - 3))
                    return -1;
                ps->p += run;
                return 0;
            }
            if (toml_buf_put(ps, ps->p, run))
                return -1;
            ps->p += run;
        } else if (c == '\\' && !literal) {
            if (toml_escape(ps, 1, open))
                return -1;
        } else if (toml_at_newline(ps)) {
            toml_eat_newline(ps);
            if (toml_buf_put(ps, "\n", 1))
                return -1;
        } else if (toml_string_char(ps)) {
            return -1;
        }
    }
}

/* ------------------------------------------------------------------ */
/* Keys                                                                 */
/* ------------------------------------------------------------------ */

static int toml_bare_key_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '_' || c == '-';
}

static void toml_keypath_free(toml_keypath *kp)
{
    for (int i = 0; i < kp->n; i++)
        free(kp->parts[i].text);
    kp->n = 0;
}

/* "a.b.c" for messages. */
static const char *toml_keypath_text(const toml_keypath *kp, int upto, char *out, size_t len)
{
    size_t used = 0;
    out[0] = 0;
    for (int i = 0; i < upto && used + 1 < len; i++) {
        int n = snprintf(out + used, len - used, "%s%s", i ? "." : "", kp->parts[i].text);
        if (n < 0)
            break;
        used += (size_t)n;
    }
    return out;
}

static int toml_parse_key(toml_parser *ps, toml_keypath *kp)
{
    kp->n = 0;
    for (;;) {
        toml_skip_ws(ps);
        toml_pos pos = toml_pos_at(ps, ps->p);
        char *text;
        if (ps->p < ps->end && (*ps->p == '"' || *ps->p == '\'')) {
            if (ps->end - ps->p >= 3 && ps->p[1] == *ps->p && ps->p[2] == *ps->p)
                return toml_fail_pos(ps, pos, "multi-line strings cannot be keys");
            size_t len;
            if (toml_string(ps) || !(text = toml_buf_take(ps, &len)))
                return -1;
            if (strlen(text) != len) {
                free(text);
                return toml_fail_pos(ps, pos, "keys cannot contain NUL characters");
            }
        } else {
            const char *s = ps->p;
            while (ps->p < ps->end && toml_bare_key_char(*ps->p))
                ps->p++;
            if (ps->p == s)
                return toml_fail(ps, ps->p, "expected a key");
            text = strndup(s, (size_t)(ps->p - s));
            if (!text)
                return toml_oom(ps);
        }
        if (kp->n == TOML_MAX_DEPTH) {
            free(text);
            return toml_fail_pos(ps, pos, "nesting deeper than %d levels", TOML_MAX_DEPTH);
        }
        kp->parts[kp->n].text = text;
        kp->parts[kp->n].pos = pos;
        kp->n++;
        toml_skip_ws(ps);
        if (ps->p < ps->end && *ps->p == '.')
            ps->p++;
        else
            return 0;
    }
}

/* ------------------------------------------------------------------ */
/* Numbers and date-times                                               */
/* ------------------------------------------------------------------ */

static int toml_is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static int toml_digits(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!toml_is_digit(s[i]))
            return 0;
    return 1;
}

static int toml_num2(const char *s)
{
    return (s[0] - '0') * 10 + (s[1] - '0');
}

static int toml_valid_date(const char *s, size_t n)
{
    if (n < 10 || !toml_digits(s, 4) || s[4] != '-' || !toml_digits(s + 5, 2) || s[7] != '-' ||
        !toml_digits(s + 8, 2))
        return 0;
    int year = toml_num2(s) * 100 + toml_num2(s + 2);
    int month = toml_num2(s + 5), day = toml_num2(s + 8);
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (month < 1 || month > 12 || day < 1)
        return 0;
    int leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    return day <= days[month - 1] + (month == 2 && leap);
}

/* Length of a valid partial-time at s, or 0. */
static size_t toml_valid_time(const char *s, size_t n)
{
    if (n < 8 || !toml_digits(s, 2) || s[2] != ':' || !toml_digits(s + 3, 2) || s[5] != ':' ||
        !toml_digits(s + 6, 2))
        return 0;
    if (toml_num2(s) > 23 || toml_num2(s + 3) > 59 || toml_num2(s + 6) > 60)
        return 0;
    size_t i = 8;
    if (i < n && s[i] == '.') {
        size_t d = ++i;
        while (i < n && toml_is_digit(s[i]))
            i++;
        if (i == d)
            return 0;
    }
    return i;
}

static int toml_valid_datetime(const char *s, size_t n)
{
    if (n >= 3 && toml_digits(s, 2) && s[2] == ':')
        return toml_valid_time(s, n) == n; /* local time */
    if (!toml_valid_date(s, n))
        return 0;
    if (n == 10)
        return 1; /* local date */
    if (s[10] != 'T' && s[10] != 't' && s[10] != ' ')
        return 0;
    size_t t = toml_valid_time(s + 11, n - 11);
    if (!t)
        return 0;
    const char *o = s + 11 + t;
    size_t rest = n - 11 - t;
    if (rest == 0)
        return 1; /* local date-time */
    if (rest == 1 && (*o == 'Z' || *o == 'z'))
        return 1;
    return rest == 6 && (*o == '+' || *o == '-') && toml_digits(o + 1, 2) && o[3] == ':' &&
           toml_digits(o + 4, 2) && toml_num2(o + 1) <= 23 && toml_num2(o + 4) <= 59;
}

/* Digits of `base` with single underscores between them; copies the digits
 * (without underscores) to out. Returns the count, or -1 if malformed. */
static long toml_digit_run(const char *s, size_t n, int base, char *out)
{
    long count = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '_') {
            if (i == 0 || i + 1 == n || s[i - 1] == '_')
                return -1;
            continue;
        }
        int d = toml_hex_digit(s[i]);
        if (d < 0 || d >= base)
            return -1;
        out[count++] = s[i];
    }
    return count ? count : -1;
}

static int toml_number(toml_parser *ps, const char *s, size_t n, toml_pos pos, toml_node *out)
{
    char *digits = malloc(n + 1);
    if (!digits)
        return toml_oom(ps);
    int rc = -1;
    const char *what = "invalid number";
    size_t i = 0;
    int neg = 0;
    if (s[0] == '+' || s[0] == '-') {
        neg = s[0] == '-';
        i = 1;
    }
    if (n - i == 3 && (!memcmp(s + i, "inf", 3) || !memcmp(s + i, "nan", 3))) {
        out->v.type = TOML_FLOAT;
        out->v.u.real = s[i] == 'i' ? (neg ? -INFINITY : INFINITY) : (neg ? -NAN : NAN);
        rc = 0;
        goto done;
    }
    if (n - i > 2 && s[i] == '0' && (s[i + 1] == 'x' || s[i + 1] == 'o' || s[i + 1] == 'b')) {
        int base = s[i + 1] == 'x' ? 16 : s[i + 1] == 'o' ? 8 : 2;
        if (i)
            goto done; /* no sign on hex, octal or binary */
        long count = toml_digit_run(s + 2, n - 2, base, digits);
        if (count < 0)
            goto done;
        uint64_t v = 0;
        for (long k = 0; k < count; k++) {
            uint64_t d = (uint64_t)toml_hex_digit(digits[k]);
            if (v > (UINT64_C(0x7FFFFFFFFFFFFFFF) - d) / (uint64_t)base) {
                what = "integer out of range";
                goto done;
            }
            v = v * (uint64_t)base + d;
        }
        out->v.type = TOML_INTEGER;
        out->v.u.integer = (int64_t)v;
        rc = 0;
        goto done;
    }
    /* Decimal: int-part [ "." digits ] [ e [+-] digits ] */
    size_t j = i;
    while (j < n && (toml_is_digit(s[j]) || s[j] == '_'))
        j++;
    long int_count = toml_digit_run(s + i, j - i, 10, digits);
    if (int_count < 0 || (s[i] == '0' && j - i > 1))
        goto done; /* empty, bad underscores, or leading zeros */
    int is_float = 0;
    size_t k = j;
    if (k < n && s[k] == '.') {
        size_t f = ++k;
        while (k < n && (toml_is_digit(s[k]) || s[k] == '_'))
            k++;
        if (toml_digit_run(s + f, k - f, 10, digits) < 0)
            goto done;
        is_float = 1;
    }
    if (k < n && (s[k] == 'e' || s[k] == 'E')) {
        k++;
        if (k < n && (s[k] == '+' || s[k] == '-'))
            k++;
        size_t e = k;
        while (k < n && (toml_is_digit(s[k]) || s[k] == '_'))
            k++;
        if (toml_digit_run(s + e, k - e, 10, digits) < 0)
            goto done;
        is_float = 1;
    }
    if (k != n)
        goto done;
    if (is_float) {
        size_t m = 0;
        for (size_t x = 0; x < n; x++)
            if (s[x] != '_')
                digits[m++] = s[x];
        digits[m] = 0;
        errno = 0;
        double d = strtod(digits, NULL);
        if (errno == ERANGE && isinf(d)) {
            what = "float out of range";
            goto done;
        }
        out->v.type = TOML_FLOAT;
        out->v.u.real = d;
        rc = 0;
        goto done;
    }
    uint64_t v = 0, limit = neg ? UINT64_C(0x8000000000000000) : UINT64_C(0x7FFFFFFFFFFFFFFF);
    for (long x = 0; x < int_count; x++) {
        uint64_t d = (uint64_t)(digits[x] - '0');
        if (v > (limit - d) / 10) {
            what = "integer out of range";
            goto done;
        }
        v = v * 10 + d;
    }
    out->v.type = TOML_INTEGER;
    out->v.u.integer = neg ? (v == UINT64_C(0x8000000000000000) ? INT64_MIN : -(int64_t)v)
                           : (int64_t)v;
    rc = 0;
done:
    free(digits);
    if (rc)
        toml_fail_pos(ps, pos, "%s", what);
    return rc;
}

static int toml_token_char(char c)
{
    return toml_bare_key_char(c) || c == '+' || c == '.' || c == ':';
}

/* A number, boolean, inf/nan or date-time: scan the whole bare token, then
 * decide, so "12abc" is one bad number rather than 12 then garbage. */
static toml_node *toml_bare_value(toml_parser *ps, toml_pos pos, int depth)
{
    const char *s = ps->p;
    while (ps->p < ps->end && toml_token_char(*ps->p))
        ps->p++;
    /* "1979-05-27 07:32:00": a space may separate date and time. */
    if (ps->p - s == 10 && toml_valid_date(s, 10) && ps->end - ps->p >= 4 && ps->p[0] == ' ' &&
        toml_is_digit(ps->p[1]) && toml_is_digit(ps->p[2]) && ps->p[3] == ':') {
        ps->p++;
        while (ps->p < ps->end && toml_token_char(*ps->p))
            ps->p++;
    }
    size_t n = (size_t)(ps->p - s);
    toml_node *v = toml_node_new(ps, TOML_BOOL, pos, depth);
    if (!v)
        return NULL;
    if ((n == 4 && !memcmp(s, "true", 4)) || (n == 5 && !memcmp(s, "false", 5))) {
        v->v.u.boolean = n == 4;
        return v;
    }
    if (n >= 3 && toml_is_digit(s[0]) && toml_is_digit(s[1]) &&
        (s[2] == ':' || (n >= 5 && toml_is_digit(s[2]) && toml_is_digit(s[3]) && s[4] == '-'))) {
        if (!toml_valid_datetime(s, n)) {
            toml_fail_pos(ps, pos, "invalid date-time");
            free(v);
            return NULL;
        }
        v->v.type = TOML_DATETIME;
        v->v.u.str.ptr = strndup(s, n);
        v->v.u.str.len = n;
        if (!v->v.u.str.ptr) {
            free(v);
            toml_oom(ps);
            return NULL;
        }
        return v;
    }
    if (n == 0 || !(toml_is_digit(s[0]) || s[0] == '+' || s[0] == '-' || s[0] == 'i' ||
                    s[0] == 'n')) {
        free(v);
        toml_fail_pos(ps, pos, n ? "invalid value (strings need quotes; booleans are "
                                   "lower-case true and false)"
                                 : "expected a value");
        return NULL;
    }
    if (toml_number(ps, s, n, pos, v)) {
        free(v);
        return NULL;
    }
    return v;
}

/* ------------------------------------------------------------------ */
/* Values                                                               */
/* ------------------------------------------------------------------ */

static toml_node *toml_value_parse(toml_parser *ps, int depth);
static int toml_insert(toml_parser *ps, toml_node *table, toml_keypath *kp, toml_node *value);

/* Whitespace, newlines and comments, as allowed between array elements. */
static int toml_skip_comment(toml_parser *ps)
{
    if (ps->p >= ps->end || *ps->p != '#')
        return 0;
    ps->p++;
    while (ps->p < ps->end && !toml_at_newline(ps)) {
        unsigned char c = (unsigned char)*ps->p;
        if ((c < 0x20 && c != '\t') || c == 0x7F)
            return toml_fail(ps, ps->p, "control character U+%04X in comment", c);
        size_t n = toml_utf8_len((const unsigned char *)ps->p, (const unsigned char *)ps->end);
        if (!n)
            return toml_fail(ps, ps->p, "invalid UTF-8 in comment");
        ps->p += n;
    }
    return 0;
}

static int toml_skip_blank(toml_parser *ps)
{
    for (;;) {
        toml_skip_ws(ps);
        if (toml_skip_comment(ps))
            return -1;
        if (!toml_eat_newline(ps))
            return 0;
    }
}

static toml_node *toml_array(toml_parser *ps, toml_pos pos, int depth)
{
    toml_node *a = toml_node_new(ps, TOML_ARRAY, pos, depth);
    if (!a)
        return NULL;
    ps->p++;
    for (;;) {
        if (toml_skip_blank(ps))
            goto fail;
        if (ps->p >= ps->end) {
            toml_fail_pos(ps, pos, "unterminated array");
            goto fail;
        }
        if (*ps->p == ']')
            break;
        toml_node *item = toml_value_parse(ps, depth + 1);
        if (!item)
            goto fail;
        if (toml_array_add(ps, a, item)) {
            toml_free(&item->v);
            goto fail;
        }
        if (toml_skip_blank(ps))
            goto fail;
        if (ps->p < ps->end && *ps->p == ',') {
            ps->p++;
            continue;
        }
        if (ps->p < ps->end && *ps->p == ']')
            break;
        if (ps->p >= ps->end)
            toml_fail_pos(ps, pos, "unterminated array");
        else
            toml_fail(ps, ps->p, "expected ',' or ']' in array");
        goto fail;
    }
    ps->p++;
    return a;
fail:
    toml_free(&a->v);
    return NULL;
}

static toml_node *toml_inline_table(toml_parser *ps, toml_pos pos, int depth)
{
    toml_node *t = toml_node_new(ps, TOML_TABLE, pos, depth);
    if (!t)
        return NULL;
    ps->p++;
    toml_skip_ws(ps);
    if (ps->p < ps->end && *ps->p == '}') {
        ps->p++;
        t->flags = NODE_INLINE;
        return t;
    }
    for (;;) {
        toml_keypath kp;
        toml_skip_ws(ps);
        if (ps->p < ps->end && *ps->p == '}') {
            toml_fail(ps, ps->p, "trailing comma not allowed in an inline table");
            goto fail;
        }
        if (toml_at_newline(ps)) {
            toml_fail(ps, ps->p, "newline not allowed in an inline table");
            goto fail;
        }
        if (toml_parse_key(ps, &kp)) {
            toml_keypath_free(&kp);
            goto fail;
        }
        if (ps->p >= ps->end || *ps->p != '=') {
            toml_keypath_free(&kp);
            toml_fail(ps, ps->p, "expected '=' after key");
            goto fail;
        }
        ps->p++;
        toml_skip_ws(ps);
        toml_node *v = toml_value_parse(ps, depth + kp.n);
        if (!v || toml_insert(ps, t, &kp, v)) {
            toml_keypath_free(&kp);
            if (v)
                toml_free(&v->v);
            goto fail;
        }
        toml_keypath_free(&kp);
        toml_skip_ws(ps);
        if (ps->p < ps->end && *ps->p == ',') {
            ps->p++;
            continue;
        }
        if (ps->p < ps->end && *ps->p == '}')
            break;
        if (ps->p >= ps->end)
            toml_fail_pos(ps, pos, "unterminated inline table");
        else if (toml_at_newline(ps))
            toml_fail(ps, ps->p, "newline not allowed in an inline table");
        else
            toml_fail(ps, ps->p, "expected ',' or '}' in inline table");
        goto fail;
    }
    ps->p++;
    t->flags = NODE_INLINE;
    return t;
fail:
    toml_free(&t->v);
    return NULL;
}

/* depth: the depth a container parsed here would have. */
static toml_node *toml_value_parse(toml_parser *ps, int depth)
{
    toml_pos pos = toml_pos_at(ps, ps->p);
    if (ps->p >= ps->end)
        return toml_fail_pos(ps, pos, "expected a value"), NULL;
    char c = *ps->p;
    if (c == '"' || c == '\'') {
        if (toml_string(ps))
            return NULL;
        toml_node *v = toml_node_new(ps, TOML_STRING, pos, depth);
        if (!v)
            return NULL;
        v->v.u.str.ptr = toml_buf_take(ps, &v->v.u.str.len);
        if (!v->v.u.str.ptr) {
            free(v);
            return NULL;
        }
        return v;
    }
    if (c == '[')
        return toml_array(ps, pos, depth);
    if (c == '{')
        return toml_inline_table(ps, pos, depth);
    return toml_bare_value(ps, pos, depth);
}

/* ------------------------------------------------------------------ */
/* Tables                                                               */
/* ------------------------------------------------------------------ */

/* Puts value at the dotted key path below table.  Takes ownership of value
 * on success only. */
static int toml_insert(toml_parser *ps, toml_node *table, toml_keypath *kp, toml_node *value)
{
    char path[256];
    toml_node *t = table;
    for (int i = 0; i + 1 < kp->n; i++) {
        toml_node *child = (toml_node *)toml_table_find(t, kp->parts[i].text);
        if (!child) {
            child = toml_node_new(ps, TOML_TABLE, kp->parts[i].pos, t->depth + 1);
            if (!child)
                return -1;
            child->flags = NODE_DOTTED;
            if (toml_table_add(ps, t, kp->parts[i].text, child)) {
                free(child);
                return -1;
            }
        } else if (child->v.type != TOML_TABLE || !(child->flags & NODE_DOTTED)) {
            return toml_fail_pos(ps, kp->parts[i].pos,
                                 child->v.type == TOML_TABLE
                                     ? "table '%s' is already defined"
                                     : "key '%s' is already defined as a non-table value",
                                 toml_keypath_text(kp, i + 1, path, sizeof path));
        }
        t = child;
    }
    toml_key *last = &kp->parts[kp->n - 1];
    if (toml_table_find(t, last->text))
        return toml_fail_pos(ps, last->pos, "duplicate key '%s'",
                             toml_keypath_text(kp, kp->n, path, sizeof path));
    value->v.line = last->pos.line;
    value->v.col = last->pos.col;
    return toml_table_add(ps, t, last->text, value);
}

/* [a.b] or [[a.b]]: makes or finds the table and makes it current. */
static int toml_header(toml_parser *ps)
{
    const char *open = ps->p;
    int aot = ps->end - open >= 2 && open[1] == '[';
    ps->p += aot ? 2 : 1;
    toml_keypath kp;
    char path[256];
    int rc = -1;
    if (toml_parse_key(ps, &kp))
        goto out;
    if (ps->p >= ps->end || *ps->p != ']' || (aot && (ps->end - ps->p < 2 || ps->p[1] != ']'))) {
        toml_fail(ps, ps->p, aot ? "expected ']]' to close the array of tables header"
                                 : "expected ']' to close the table header");
        goto out;
    }
    ps->p += aot ? 2 : 1;
    toml_node *t = ps->root;
    for (int i = 0; i + 1 < kp.n; i++) {
        toml_node *child = (toml_node *)toml_table_find(t, kp.parts[i].text);
        if (!child) {
            child = toml_node_new(ps, TOML_TABLE, kp.parts[i].pos, t->depth + 1);
            if (!child)
                goto out;
            child->flags = NODE_IMPLICIT;
            if (toml_table_add(ps, t, kp.parts[i].text, child)) {
                free(child);
                goto out;
            }
        } else if (child->v.type == TOML_ARRAY && (child->flags & NODE_AOT)) {
            child = (toml_node *)child->v.u.array.items[child->v.u.array.n - 1];
        } else if (child->v.type != TOML_TABLE || (child->flags & NODE_INLINE)) {
            toml_fail_pos(ps, kp.parts[i].pos, "key '%s' is already defined as %s",
                          toml_keypath_text(&kp, i + 1, path, sizeof path),
                          child->v.type == TOML_TABLE   ? "an inline table"
                          : child->v.type == TOML_ARRAY ? "an array"
                                                        : "a value");
            goto out;
        }
        t = child;
    }
    toml_key *last = &kp.parts[kp.n - 1];
    toml_node *child = (toml_node *)toml_table_find(t, last->text);
    toml_keypath_text(&kp, kp.n, path, sizeof path);
    if (!aot) {
        if (!child) {
            child = toml_node_new(ps, TOML_TABLE, last->pos, t->depth + 1);
            if (!child)
                goto out;
            if (toml_table_add(ps, t, last->text, child)) {
                free(child);
                goto out;
            }
        } else if (child->v.type != TOML_TABLE || child->flags != NODE_IMPLICIT) {
            toml_fail_pos(ps, last->pos,
                          child->v.type == TOML_ARRAY && (child->flags & NODE_AOT)
                              ? "'%s' is already defined as an array of tables"
                          : child->v.type == TOML_ARRAY ? "'%s' is already defined as an array"
                          : child->v.type != TOML_TABLE ? "'%s' is already defined as a value"
                                                        : "table '%s' is already defined",
                          path);
            goto out;
        }
        child->flags = NODE_EXPLICIT;
        child->v.line = last->pos.line;
        child->v.col = last->pos.col;
        ps->current = child;
    } else {
        if (!child) {
            child = toml_node_new(ps, TOML_ARRAY, last->pos, t->depth + 1);
            if (!child)
                goto out;
            child->flags = NODE_AOT;
            if (toml_table_add(ps, t, last->text, child)) {
                free(child);
                goto out;
            }
        } else if (child->v.type != TOML_ARRAY || !(child->flags & NODE_AOT)) {
            toml_fail_pos(ps, last->pos, "'%s' is already defined as %s", path,
                          child->v.type == TOML_TABLE   ? "a table"
                          : child->v.type == TOML_ARRAY ? "a static array"
                                                        : "a value");
            goto out;
        }
        toml_node *elem = toml_node_new(ps, TOML_TABLE, last->pos, child->depth + 1);
        if (!elem)
            goto out;
        elem->flags = NODE_EXPLICIT;
        if (toml_array_add(ps, child, elem)) {
            free(elem);
            goto out;
        }
        ps->current = elem;
    }
    rc = 0;
out:
    toml_keypath_free(&kp);
    return rc;
}

static int toml_keyval(toml_parser *ps)
{
    toml_keypath kp;
    if (toml_parse_key(ps, &kp)) {
        toml_keypath_free(&kp);
        return -1;
    }
    if (ps->p >= ps->end || *ps->p != '=') {
        toml_keypath_free(&kp);
        return toml_fail(ps, ps->p, "expected '=' after key");
    }
    ps->p++;
    toml_skip_ws(ps);
    toml_node *v = toml_value_parse(ps, ps->current->depth + kp.n);
    if (!v || toml_insert(ps, ps->current, &kp, v)) {
        if (v)
            toml_free(&v->v);
        toml_keypath_free(&kp);
        return -1;
    }
    toml_keypath_free(&kp);
    return 0;
}

int toml_parse(const char *text, size_t len, const char *name, toml_value **out, char *errbuf,
               size_t errlen)
{
    toml_parser ps = {
        .p = text,
        .end = text + len,
        .name = name ? name : "<toml>",
        .line = 1,
        .line_start = text,
        .col_at = text,
        .col_line = 1,
        .col_val = 1,
        .err = errbuf,
        .errlen = errlen,
    };
    if (errbuf && errlen)
        errbuf[0] = 0;
    *out = NULL;
    if (!text && len)
        return toml_fail_pos(&ps, (toml_pos){1, 1}, "no text");
    ps.root = toml_node_new(&ps, TOML_TABLE, (toml_pos){1, 1}, 0);
    if (!ps.root)
        return -1;
    ps.root->flags = NODE_EXPLICIT;
    ps.current = ps.root;
    /* A byte-order mark is allowed at the very start. */
    if (len >= 3 && !memcmp(text, "\xEF\xBB\xBF", 3))
        ps.p += 3, ps.line_start = ps.col_at = ps.p;
    while (ps.p < ps.end) {
        toml_skip_ws(&ps);
        if (ps.p >= ps.end)
            break;
        char c = *ps.p;
        if (c == '#' || toml_at_newline(&ps)) {
            /* blank line or comment-only line */
        } else if (c == '[') {
            if (toml_header(&ps))
                goto fail;
        } else if (toml_bare_key_char(c) || c == '"' || c == '\'') {
            if (toml_keyval(&ps))
                goto fail;
        } else if (c == '=') {
            toml_fail(&ps, ps.p, "expected a key before '='");
            goto fail;
        } else if (c == '\r') {
            toml_fail(&ps, ps.p, "carriage return not followed by a newline");
            goto fail;
        } else {
            unsigned char u = (unsigned char)c;
            if (u < 0x20 || u == 0x7F)
                toml_fail(&ps, ps.p, "unexpected control character U+%04X", u);
            else if (u >= 0x80 && !toml_utf8_len((const unsigned char *)ps.p,
                                                 (const unsigned char *)ps.end))
                toml_fail(&ps, ps.p, "invalid UTF-8");
            else
                toml_fail(&ps, ps.p, "expected a key or a [table] header");
            goto fail;
        }
        toml_skip_ws(&ps);
        if (toml_skip_comment(&ps))
            goto fail;
        if (ps.p < ps.end && !toml_eat_newline(&ps)) {
            unsigned char u = (unsigned char)*ps.p;
            if (u == '\r')
                toml_fail(&ps, ps.p, "carriage return not followed by a newline");
            else if (u < 0x20 || u == 0x7F)
                toml_fail(&ps, ps.p, "unexpected control character U+%04X", u);
            else
                toml_fail(&ps, ps.p, "expected a newline or comment after %s",
                          c == '[' ? "the table header" : "the value");
            goto fail;
        }
    }
    free(ps.buf.ptr);
    *out = &ps.root->v;
    return 0;
fail:
    free(ps.buf.ptr);
    toml_free(&ps.root->v);
    return -1;
}

const toml_value *toml_get(const toml_value *table, const char *key)
{
    if (!table || table->type != TOML_TABLE || !key)
        return NULL;
    return toml_table_find((const toml_node *)table, key);
}

const char *toml_type_name(toml_type type)
{
    switch (type) {
    case TOML_STRING: return "string";
    case TOML_INTEGER: return "integer";
    case TOML_FLOAT: return "float";
    case TOML_BOOL: return "boolean";
    case TOML_DATETIME: return "date-time";
    case TOML_ARRAY: return "array";
    case TOML_TABLE: return "table";
    }
    return "unknown";
}
