/*
 * toml.h - a TOML v1.0 reader, enough of it for detector specs and config
 * files: tables, arrays of tables, dotted keys, inline tables, basic,
 * literal and multi-line strings with escapes, integers (dec/hex/oct/bin,
 * underscores), floats (inf/nan), booleans, offset/local date-times kept as
 * text, arrays, comments.
 *
 * The whole document becomes a tree of toml_value.  Every value records the
 * line and column of the key (or array element) that introduced it, so
 * callers can report "file:line:col: unknown key".  Errors are reported as
 * "<name>:<line>:<col>: <what is wrong>" in the caller's buffer.
 */
#ifndef KH_TOML_H
#define KH_TOML_H

#include <stddef.h>
#include <stdint.h>

typedef enum toml_type {
    TOML_STRING,
    TOML_INTEGER,
    TOML_FLOAT,
    TOML_BOOL,
    TOML_DATETIME, /* kept as its source text in u.str */
    TOML_ARRAY,
    TOML_TABLE
} toml_type;

typedef struct toml_value toml_value;

struct toml_value {
    toml_type type;
    int line, col; /* 1-based position of the key or element */
    union {
        struct {
            char *ptr; /* NUL-terminated; may contain NUL bytes (see len) */
            size_t len;
        } str;
        int64_t integer;
        double real;
        int boolean;
        struct {
            toml_value **items;
            size_t n;
        } array;
        struct {
            char **keys;
            toml_value **values;
            size_t n;
        } table;
    } u;
};

/* Parses `len` bytes of `text`.  On success returns 0 and a root table in
 * *out (free with toml_free).  On failure returns -1 and writes
 * "<name>:<line>:<col>: <message>" into errbuf. */
int toml_parse(const char *text, size_t len, const char *name, toml_value **out,
               char *errbuf, size_t errlen);

void toml_free(toml_value *value);

/* Looks up a direct key of a table; NULL if absent or not a table. */
const toml_value *toml_get(const toml_value *table, const char *key);

/* Name of a type for messages ("string", "integer", ...). */
const char *toml_type_name(toml_type type);

#endif
