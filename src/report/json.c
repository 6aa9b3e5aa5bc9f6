/*
 * json.c - JSON and JSONL output, and the small streaming JSON writer that
 * SARIF shares.
 *
 * Findings carry bytes from files a stranger wrote: paths, secrets and
 * companion values may hold quotes, control characters or invalid UTF-8.
 * Every string goes through report_json_string, which always produces valid
 * JSON in valid UTF-8 (invalid bytes become U+FFFD), so a consumer's parser
 * never fails on our output, whatever the input was.
 *
 * The writer streams: nothing is built in memory, so a million findings cost
 * no more RAM than one.  JSONL is the format for merging shards (one object
 * per line, nothing else); JSON wraps the same objects with the run's stats.
 */
#include <math.h>
#include <string.h>

#include "report/report.h"

void report_json_string(FILE *out, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)(s ? s : "");
    if (!s)
        len = 0;
    fputc('"', out);
    size_t run = 0; /* bytes at p[i - run .. i) that need no escaping */
    size_t i = 0;
    while (i < len) {
        unsigned char c = p[i];
        size_t n = 1;
        const char *esc = NULL;
        char ubuf[8];
        uint32_t cp;
        if (c == '"') {
            esc = "\\\"";
        } else if (c == '\\') {
            esc = "\\\\";
        } else if (c < 0x20 || c == 0x7f) {
            ubuf[0] = '\\', ubuf[1] = 'u', ubuf[2] = '0', ubuf[3] = '0';
            ubuf[4] = hex[c >> 4], ubuf[5] = hex[c & 15], ubuf[6] = '\0';
            esc = ubuf;
        } else if (c >= 0x80) {
            n = report_utf8_decode(p + i, len - i, &cp);
            if (n == 0) {
                n = 1;
                esc = "\\ufffd";
            } else if (cp == 0x2028 || cp == 0x2029) {
                /* Valid JSON, but not valid inside JavaScript strings. */
                esc = cp == 0x2028 ? "\\u2028" : "\\u2029";
            }
        }
        if (esc) {
            if (run)
                fwrite(p + i - run, 1, run, out);
            run = 0;
            fputs(esc, out);
        } else {
            run += n;
        }
        i += n;
    }
    if (run)
        fwrite(p + i - run, 1, run, out);
    fputc('"', out);
}

void report_json_init(report_json *j, FILE *out, int pretty)
{
    memset(j, 0, sizeof *j);
    j->out = out;
    j->pretty = pretty;
    j->empty[0] = 1;
}

static void report_json_newline(report_json *j, int depth)
{
    if (!j->pretty)
        return;
    fputc('\n', j->out);
    for (int i = 0; i < depth; i++)
        fputs("  ", j->out);
}

/* Before any value or key: the comma and indentation it needs. */
static void report_json_prefix(report_json *j)
{
    if (j->after_key) {
        j->after_key = 0;
        return;
    }
    if (j->depth > 0) {
        if (!j->empty[j->depth])
            fputc(',', j->out);
        report_json_newline(j, j->depth);
    }
    j->empty[j->depth] = 0;
}

static void report_json_open(report_json *j, char c)
{
    report_json_prefix(j);
    fputc(c, j->out);
    /* The formats never nest this deep; past the stack the output would
     * be wrong, so stop indenting there rather than write out of bounds. */
    if (j->depth + 1 < REPORT_JSON_MAX_DEPTH)
        j->depth++;
    j->empty[j->depth] = 1;
}

static void report_json_close(report_json *j, char c)
{
    if (!j->empty[j->depth])
        report_json_newline(j, j->depth - 1);
    if (j->depth > 0)
        j->depth--;
    fputc(c, j->out);
}

void report_json_begin_object(report_json *j) { report_json_open(j, '{'); }
void report_json_end_object(report_json *j) { report_json_close(j, '}'); }
void report_json_begin_array(report_json *j) { report_json_open(j, '['); }
void report_json_end_array(report_json *j) { report_json_close(j, ']'); }

void report_json_key(report_json *j, const char *key)
{
    report_json_prefix(j);
    report_json_string(j->out, key, strlen(key));
    fputs(j->pretty ? ": " : ":", j->out);
    j->after_key = 1;
}

void report_json_str(report_json *j, const char *s, size_t len)
{
    report_json_prefix(j);
    report_json_string(j->out, s, len);
}

void report_json_cstr(report_json *j, const char *s)
{
    report_json_str(j, s ? s : "", s ? strlen(s) : 0);
}

void report_json_u64(report_json *j, uint64_t v)
{
    report_json_prefix(j);
    fprintf(j->out, "%llu", (unsigned long long)v);
}

void report_json_double(report_json *j, double v, int min_dec, int max_dec)
{
    char buf[64];
    report_json_prefix(j);
    if (!isfinite(v) || fabs(v) >= 1e15)
        v = isfinite(v) ? (v > 0 ? 1e15 : -1e15) : 0.0;
    if (v == 0.0)
        v = 0.0; /* no "-0" */
    int n = snprintf(buf, sizeof buf, "%.*f", max_dec, v);
    if (n <= 0 || (size_t)n >= sizeof buf) {
        fputc('0', j->out);
        return;
    }
    /* Trim trailing zeros down to min_dec decimals. */
    char *dot = strchr(buf, '.');
    if (dot) {
        char *end = buf + n;
        while (end > dot + 1 + min_dec && end[-1] == '0')
            end--;
        if (end == dot + 1)
            end = dot;
        *end = '\0';
    }
    fputs(buf, j->out);
}

void report_json_kstr(report_json *j, const char *key, const char *s)
{
    report_json_key(j, key);
    report_json_cstr(j, s);
}

void report_json_ku64(report_json *j, const char *key, uint64_t v)
{
    report_json_key(j, key);
    report_json_u64(j, v);
}

static void report_json_git(report_json *j, const report_location *l)
{
    if (l->commit)
        report_json_kstr(j, "commit", l->commit);
    if (l->author)
        report_json_kstr(j, "author", l->author);
    if (l->email)
        report_json_kstr(j, "email", l->email);
    if (l->date)
        report_json_kstr(j, "date", l->date);
}

static void report_json_position(report_json *j, const report_location *l)
{
    report_json_kstr(j, "path", l->path);
    report_json_ku64(j, "line", l->line);
    report_json_ku64(j, "column", l->column);
    report_json_ku64(j, "end_line", l->end_line);
    report_json_ku64(j, "end_column", l->end_column);
    report_json_ku64(j, "offset", l->offset);
    report_json_ku64(j, "length", l->length);
}


/* The companions (with values redacted unless `show`) and the decode chain of
 * a finding, written as "companions" and "decoded_from" members: the same in
 * JSON, JSONL and SARIF's result properties. */
void report_json_extras(report_json *j, const report_finding *f, int show)
{
    char vbuf[64];
    if (f->companion_count && f->companions) {
        report_json_key(j, "companions");
        report_json_begin_array(j);
        for (size_t i = 0; i < f->companion_count; i++) {
            const report_companion *c = &f->companions[i];
            size_t vlen;
            const char *v = report_shown_value(c->value, c->value ? strlen(c->value) : 0, show,
                                               vbuf, &vlen);
            report_json_begin_object(j);
            report_json_kstr(j, "name", c->name);
            report_json_key(j, "value");
            report_json_str(j, v, vlen);
            report_json_ku64(j, "line", c->line);
            report_json_end_object(j);
        }
        report_json_end_array(j);
    }
    if (f->decoded_count && f->decoded_from) {
        report_json_key(j, "decoded_from");
        report_json_begin_array(j);
        for (size_t i = 0; i < f->decoded_count; i++)
            report_json_cstr(j, f->decoded_from[i]);
        report_json_end_array(j);
    }
}

static void report_json_finding(report_json *j, const report_finding *f, int show)
{
    static const report_location nowhere;
    const kh_detector_info *d = f->detector;
    const report_location *primary =
        f->location_count && f->locations ? &f->locations[0] : &nowhere;
    char rbuf[64], fbuf[65];

    report_json_begin_object(j);
    report_json_kstr(j, "detector_id", d ? d->id : NULL);
    report_json_kstr(j, "detector_name", d ? d->name : NULL);
    report_json_kstr(j, "service", d ? d->service : NULL);
    report_json_kstr(j, "severity", report_severity_name(f->severity));
    report_json_key(j, "confidence");
    report_json_double(j, f->confidence, 2, 4);
    report_json_position(j, primary);
    report_json_kstr(j, "redacted", report_finding_redacted(f, rbuf));
    report_json_kstr(j, "fingerprint", report_finding_fingerprint(f, fbuf));
    if (show) {
        report_json_key(j, "secret");
        report_json_str(j, f->secret, f->secret ? f->secret_len : 0);
    }
    report_json_git(j, primary);
    report_json_extras(j, f, show);
    if (f->verify_status) {
        report_json_key(j, "verify");
        report_json_begin_object(j);
        report_json_kstr(j, "status", f->verify_status);
        report_json_kstr(j, "reason", f->verify_reason);
        report_json_end_object(j);
    }
    if (f->location_count > 1 && f->locations) {
        report_json_key(j, "locations");
        report_json_begin_array(j);
        for (size_t i = 0; i < f->location_count; i++) {
            report_json_begin_object(j);
            report_json_position(j, &f->locations[i]);
            report_json_git(j, &f->locations[i]);
            report_json_end_object(j);
        }
        report_json_end_array(j);
    }
    report_json_end_object(j);
}

int report_write_json(FILE *out, const report_opts *opts, const report_finding *findings,
                      size_t count, const report_stats *stats, int lines)
{
    static const report_stats zero;
    report_json j;
    if (lines) {
        for (size_t i = 0; i < count && !ferror(out); i++) {
            report_json_init(&j, out, 0);
            report_json_finding(&j, &findings[i], opts->show_secrets);
            fputc('\n', out);
        }
        return 0;
    }
    if (!stats)
        stats = &zero;
    report_json_init(&j, out, 1);
    report_json_begin_object(&j);
    report_json_key(&j, "findings");
    report_json_begin_array(&j);
    for (size_t i = 0; i < count && !ferror(out); i++)
        report_json_finding(&j, &findings[i], opts->show_secrets);
    report_json_end_array(&j);
    report_json_key(&j, "stats");
    report_json_begin_object(&j);
    report_json_ku64(&j, "files_scanned", stats->files_scanned);
    report_json_ku64(&j, "bytes_scanned", stats->bytes_scanned);
    report_json_ku64(&j, "files_skipped", stats->files_skipped);
    report_json_ku64(&j, "findings", stats->findings);
    report_json_ku64(&j, "suppressed", stats->suppressed);
    report_json_key(&j, "elapsed_seconds");
    report_json_double(&j, stats->elapsed_seconds, 1, 6);
    report_json_ku64(&j, "detectors", stats->detectors);
    report_json_end_object(&j);
    report_json_end_object(&j);
    fputc('\n', out);
    return 0;
}
