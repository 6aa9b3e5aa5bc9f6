/*
 * text.c - the report a person reads in a terminal.
 *
 *   config/prod.env
 *     L12:5  critical  GitHub Personal Access Token  ghp_…7890  (confidence 0.97)
 *           companion secret_key: wJal…EKEY (L13)
 *           decoded from: base64 > url
 *
 * Findings are grouped under one header line per file, files in the order
 * they first appear (the caller sorts).  Everything printed that came from
 * scanned input (paths, names, values, git authors) is passed through
 * text_safe: an ESC or other control byte in a file name must not be able to
 * drive the reader's terminal.  Colour is opt-in (opts->color); the caller
 * decides from isatty and NO_COLOR.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "report/report.h"

#define TEXT_RESET "\033[0m"
#define TEXT_BOLD "\033[1m"
#define TEXT_DIM "\033[2m"

static const char *text_severity_colour(kh_severity s)
{
    switch (s) {
    case KH_SEVERITY_CRITICAL:
        return "\033[1;31m";
    case KH_SEVERITY_HIGH:
        return "\033[31m";
    case KH_SEVERITY_MEDIUM:
        return "\033[33m";
    case KH_SEVERITY_LOW:
        return "\033[36m";
    default:
        return TEXT_DIM;
    }
}

/* Prints bytes for a terminal: valid UTF-8 passes, except control
 * characters (C0, DEL, C1), which become '?' like invalid bytes do. */
static void text_safe(FILE *out, const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)(s ? s : "");
    if (!s)
        len = 0;
    size_t i = 0;
    while (i < len) {
        uint32_t cp;
        size_t n = report_utf8_decode(p + i, len - i, &cp);
        if (n == 0 || cp < 0x20 || (cp >= 0x7f && cp < 0xa0)) {
            fputc('?', out);
            i += n ? n : 1;
        } else {
            fwrite(p + i, 1, n, out);
            i += n;
        }
    }
}

static void text_cstr(FILE *out, const char *s)
{
    text_safe(out, s, s ? strlen(s) : 0);
}

static void text_finding(FILE *out, const report_finding *f, const report_opts *opts)
{
    static const report_location nowhere;
    const report_location *l = f->location_count && f->locations ? &f->locations[0] : &nowhere;
    const kh_detector_info *d = f->detector;
    const char *name = d && d->name && d->name[0] ? d->name : d && d->id ? d->id : "unknown";
    int color = opts->color;
    char rbuf[64], vbuf[64];
    double conf = f->confidence == f->confidence ? f->confidence : 0.0;

    fprintf(out, "  L%u:%u  ", l->line, l->column);
    if (color)
        fputs(text_severity_colour(f->severity), out);
    fprintf(out, "%-8s", report_severity_name(f->severity));
    if (color)
        fputs(TEXT_RESET, out);
    fputs("  ", out);
    text_cstr(out, name);
    fputs("  ", out);
    if (opts->show_secrets)
        text_safe(out, f->secret, f->secret ? f->secret_len : 0);
    else
        text_cstr(out, report_finding_redacted(f, rbuf));
    fprintf(out, "  (confidence %.2f)\n", conf);

    if (l->commit) {
        fputs("        commit ", out);
        text_cstr(out, l->commit);
        if (l->author || l->email) {
            fputs(" by ", out);
            text_cstr(out, l->author);
            if (l->email) {
                fputs(" <", out);
                text_cstr(out, l->email);
                fputc('>', out);
            }
        }
        if (l->date) {
            fputs(" on ", out);
            text_cstr(out, l->date);
        }
        fputc('\n', out);
    }
    for (size_t i = 0; f->companions && i < f->companion_count; i++) {
        const report_companion *c = &f->companions[i];
        size_t vlen;
        const char *v = report_shown_value(c->value, c->value ? strlen(c->value) : 0,
                                           opts->show_secrets, vbuf, &vlen);
        fputs("        companion ", out);
        text_cstr(out, c->name);
        fputs(": ", out);
        text_safe(out, v, vlen);
        fprintf(out, " (L%u)\n", c->line);
    }
    if (f->decoded_count && f->decoded_from) {
        fputs("        decoded from: ", out);
        for (size_t i = 0; i < f->decoded_count; i++) {
            if (i)
                fputs(" > ", out);
            text_cstr(out, f->decoded_from[i] ? f->decoded_from[i] : "?");
        }
        fputc('\n', out);
    }
    if (f->verify_status) {
        fputs("        verify: ", out);
        text_cstr(out, f->verify_status);
        if (f->verify_reason && f->verify_reason[0]) {
            fputs(" (", out);
            text_cstr(out, f->verify_reason);
            fputc(')', out);
        }
        fputc('\n', out);
    }
    for (size_t i = 1; f->locations && i < f->location_count; i++) {
        const report_location *o = &f->locations[i];
        fputs("        also at ", out);
        text_cstr(out, o->path);
        fprintf(out, ":%u:%u", o->line, o->column);
        if (o->commit) {
            fputs(" (commit ", out);
            text_cstr(out, o->commit);
            fputc(')', out);
        }
        fputc('\n', out);
    }
}

int report_write_text(FILE *out, const report_opts *opts, const report_finding *findings,
                      size_t count)
{
    if (count == 0)
        return 0;
    if (count > SIZE_MAX / sizeof(size_t)) {
        errno = ENOMEM;
        return -1;
    }
    size_t *order = malloc(count * sizeof *order);
    if (!order || report_group_by_path(findings, count, order) != 0) {
        free(order);
        errno = ENOMEM;
        return -1;
    }
    const char *prev = NULL;
    for (size_t k = 0; k < count && !ferror(out); k++) {
        const report_finding *f = &findings[order[k]];
        const char *path =
            f->location_count && f->locations && f->locations[0].path ? f->locations[0].path : "";
        if (!prev || strcmp(prev, path) != 0) {
            if (prev)
                fputc('\n', out);
            if (opts->color)
                fputs(TEXT_BOLD, out);
            text_cstr(out, path[0] ? path : "(unknown)");
            if (opts->color)
                fputs(TEXT_RESET, out);
            fputc('\n', out);
            prev = path;
        }
        text_finding(out, f, opts);
    }
    free(order);
    return 0;
}
