/*
 * json_read.c - reads back the JSON keyhog writes (baselines, verification
 * caches).  A small recursive-descent parser into a tree; strict RFC 8259
 * (no comments, no trailing commas), nesting bounded so hostile files
 * cannot exhaust the stack, and errors as "line:col: message".
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "report/report.h"

#define JSON_MAX_DEPTH 64

typedef struct parser {
    const char *s, *end, *start;
    char *err;
    size_t errlen;
    int failed;
} parser;

static void fail(parser *p, const char *fmt, ...)
{
    if (p->failed)
        return;
    p->failed = 1;
    int line = 1, col = 1;
    for (const char *c = p->start; c < p->s && c < p->end; c++) {
        if (*c == '\n') {
            line++;
            col = 1;
        } else {
            col++;
        }
    }
    int n = snprintf(p->err, p->errlen, "%d:%d: ", line, col);
    va_list ap;
    va_start(ap, fmt);
    if (n >= 0 && (size_t)n < p->errlen)
        vsnprintf(p->err + n, p->errlen - (size_t)n, fmt, ap);
    va_end(ap);
}

static void skip_ws(parser *p)
{
    while (p->s < p->end && (*p->s == ' ' || *p->s == '\t' || *p->s == '\n' || *p->s == '\r'))
        p->s++;
}

static report_jvalue *new_value(parser *p, report_jtype t)
{
    report_jvalue *v = calloc(1, sizeof *v);
    if (!v)
        fail(p, "out of memory");
    else
        v->type = t;
    return v;
}

static int hex4(const char *s, unsigned *out)
{
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = s[i];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (unsigned)(c - 'A' + 10);
        else
            return -1;
    }
    *out = v;
    return 0;
}

static size_t put_utf8(char *o, unsigned cp)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xc0 | (cp >> 6));
        o[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xe0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        o[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    o[0] = (char)(0xf0 | (cp >> 18));
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    o[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

/* Parses a string at p->s (which is '"'); returns a NUL-ended copy. */
static char *parse_string(parser *p, size_t *len_out)
{
    p->s++;
    const char *q = p->s;
    while (q < p->end && *q != '"') {
        if (*q == '\\')
            q++;
        q++;
    }
    if (q >= p->end) {
        fail(p, "unterminated string");
        return NULL;
    }
    char *out = malloc((size_t)(q - p->s) + 1);
    if (!out) {
        fail(p, "out of memory");
        return NULL;
    }
    size_t n = 0;
    while (p->s < q) {
        unsigned char c = (unsigned char)*p->s;
        if (c < 0x20) {
            fail(p, "control character in string");
            free(out);
            return NULL;
        }
        if (c != '\\') {
            out[n++] = (char)c;
            p->s++;
            continue;
        }
        p->s++;
        char e = *p->s++;
        switch (e) {
        case '"': out[n++] = '"'; break;
        case '\\': out[n++] = '\\'; break;
        case '/': out[n++] = '/'; break;
        case 'b': out[n++] = '\b'; break;
        case 'f': out[n++] = '\f'; break;
        case 'n': out[n++] = '\n'; break;
        case 'r': out[n++] = '\r'; break;
        case 't': out[n++] = '\t'; break;
        case 'u': {
            unsigned cp;
            if (q - p->s < 4 || hex4(p->s, &cp)) {
                fail(p, "bad \\u escape");
                free(out);
                return NULL;
            }
            p->s += 4;
            if (cp >= 0xd800 && cp < 0xdc00 && q - p->s >= 6 && p->s[0] == '\\' &&
                p->s[1] == 'u') {
                unsigned lo;
                if (!hex4(p->s + 2, &lo) && lo >= 0xdc00 && lo < 0xe000) {
                    cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                    p->s += 6;
                }
            }
            if (cp >= 0xd800 && cp < 0xe000)
                cp = 0xfffd;
            /* A \u escape (6 bytes) never decodes to more than 4. */
            n += put_utf8(out + n, cp);
            break;
        }
        default:
            fail(p, "bad escape \\%c", e);
            free(out);
            return NULL;
        }
    }
    out[n] = 0;
    p->s = q + 1;
    *len_out = n;
    return out;
}

static report_jvalue *parse_value(parser *p, int depth);

static int push(parser *p, report_jvalue *v, char *key, report_jvalue *item)
{
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 4;
        report_jvalue **items = realloc(v->items, cap * sizeof *items);
        if (!items) {
            fail(p, "out of memory");
            return -1;
        }
        v->items = items;
        if (v->type == REPORT_JOBJECT) {
            char **keys = realloc(v->keys, cap * sizeof *keys);
            if (!keys) {
                fail(p, "out of memory");
                return -1;
            }
            v->keys = keys;
        }
        v->cap = cap;
    }
    if (v->type == REPORT_JOBJECT)
        v->keys[v->n] = key;
    v->items[v->n++] = item;
    return 0;
}

static report_jvalue *parse_container(parser *p, int depth, int object)
{
    report_jvalue *v = new_value(p, object ? REPORT_JOBJECT : REPORT_JARRAY);
    if (!v)
        return NULL;
    p->s++;
    skip_ws(p);
    if (p->s < p->end && *p->s == (object ? '}' : ']')) {
        p->s++;
        return v;
    }
    for (;;) {
        char *key = NULL;
        if (object) {
            skip_ws(p);
            size_t kl;
            if (p->s >= p->end || *p->s != '"') {
                fail(p, "expected a string key");
                break;
            }
            if (!(key = parse_string(p, &kl)))
                break;
            skip_ws(p);
            if (p->s >= p->end || *p->s != ':') {
                fail(p, "expected ':'");
                free(key);
                break;
            }
            p->s++;
        }
        report_jvalue *item = parse_value(p, depth + 1);
        if (!item || push(p, v, key, item)) {
            free(key);
            report_json_free(item);
            break;
        }
        skip_ws(p);
        if (p->s < p->end && *p->s == ',') {
            p->s++;
            continue;
        }
        if (p->s < p->end && *p->s == (object ? '}' : ']')) {
            p->s++;
            return v;
        }
        fail(p, "expected ',' or '%c'", object ? '}' : ']');
        break;
    }
    report_json_free(v);
    return NULL;
}

static report_jvalue *parse_value(parser *p, int depth)
{
    if (depth > JSON_MAX_DEPTH) {
        fail(p, "nested deeper than %d levels", JSON_MAX_DEPTH);
        return NULL;
    }
    skip_ws(p);
    if (p->s >= p->end) {
        fail(p, "unexpected end of input");
        return NULL;
    }
    char c = *p->s;
    if (c == '{' || c == '[')
        return parse_container(p, depth, c == '{');
    if (c == '"') {
        report_jvalue *v = new_value(p, REPORT_JSTRING);
        if (v && !(v->str = parse_string(p, &v->len))) {
            free(v);
            return NULL;
        }
        return v;
    }
    static const struct {
        const char *word;
        report_jtype type;
        int boolean;
    } words[] = {{"true", REPORT_JBOOL, 1}, {"false", REPORT_JBOOL, 0}, {"null", REPORT_JNULL, 0}};
    for (size_t i = 0; i < 3; i++) {
        size_t wl = strlen(words[i].word);
        if ((size_t)(p->end - p->s) >= wl && !memcmp(p->s, words[i].word, wl)) {
            p->s += wl;
            report_jvalue *v = new_value(p, words[i].type);
            if (v)
                v->boolean = words[i].boolean;
            return v;
        }
    }
    if (c == '-' || (c >= '0' && c <= '9')) {
        char buf[64];
        size_t n = 0;
        while (p->s + n < p->end && n < sizeof buf - 1 &&
               strchr("+-0123456789.eE", p->s[n]))
            n++;
        memcpy(buf, p->s, n);
        buf[n] = 0;
        char *endp;
        double d = strtod(buf, &endp);
        if (endp != buf + n) {
            fail(p, "bad number");
            return NULL;
        }
        p->s += n;
        report_jvalue *v = new_value(p, REPORT_JNUMBER);
        if (v)
            v->number = d;
        return v;
    }
    fail(p, "unexpected character '%c'", c);
    return NULL;
}

int report_json_parse(const char *text, size_t len, report_jvalue **out, char *err,
                      size_t errlen)
{
    char dummy[8];
    parser p = {text, text + len, text, err ? err : dummy, err ? errlen : sizeof dummy, 0};
    *out = NULL;
    report_jvalue *v = parse_value(&p, 0);
    if (v) {
        skip_ws(&p);
        if (p.s != p.end) {
            fail(&p, "trailing characters after the document");
            report_json_free(v);
            v = NULL;
        }
    }
    if (!v)
        return -1;
    *out = v;
    return 0;
}

void report_json_free(report_jvalue *v)
{
    if (!v)
        return;
    for (size_t i = 0; i < v->n; i++) {
        report_json_free(v->items[i]);
        if (v->keys)
            free(v->keys[i]);
    }
    free(v->items);
    free(v->keys);
    free(v->str);
    free(v);
}

const report_jvalue *report_json_get(const report_jvalue *obj, const char *key)
{
    if (!obj || obj->type != REPORT_JOBJECT)
        return NULL;
    for (size_t i = 0; i < obj->n; i++)
        if (!strcmp(obj->keys[i], key))
            return obj->items[i];
    return NULL;
}
