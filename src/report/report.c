/*
 * report.c - what every writer shares: picking a format, severity names,
 * UTF-8 checking, the shown form of a secret, grouping by path, the summary
 * line for stderr, and freeing a finding.
 *
 * Writers stream straight to the FILE and never build the whole document in
 * memory, so output size is bounded by nothing but the findings themselves.
 * A write error is not checked after every call: stdio keeps the error flag
 * sticky, so report_write checks ferror() and fflush() once at the end,
 * where errno still names the failure.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "report/report.h"

int report_format_parse(const char *name)
{
    static const struct {
        const char *name;
        report_format format;
    } names[] = {
        {"text", REPORT_TEXT},   {"json", REPORT_JSON}, {"jsonl", REPORT_JSONL},
        {"sarif", REPORT_SARIF}, {"html", REPORT_HTML},
    };
    if (!name)
        return -1;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcasecmp(name, names[i].name) == 0)
            return (int)names[i].format;
    return -1;
}

const char *report_severity_name(kh_severity s)
{
    static const char *const names[] = {"info", "low", "medium", "high", "critical"};
    if ((int)s < 0 || (int)s >= (int)(sizeof names / sizeof names[0]))
        return "unknown";
    return names[s];
}

size_t report_utf8_decode(const unsigned char *s, size_t len, uint32_t *cp)
{
    if (len == 0)
        return 0;
    unsigned char c = s[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    size_t n;
    uint32_t v, min;
    if (c >= 0xc2 && c <= 0xdf) {
        n = 2, v = c & 0x1f, min = 0x80;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3, v = c & 0x0f, min = 0x800;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4, v = c & 0x07, min = 0x10000;
    } else {
        return 0; /* continuation byte, C0/C1 overlong lead, or F5..FF */
    }
    if (len < n)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        v = (v << 6) | (s[i] & 0x3f);
    }
    if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
        return 0;
    *cp = v;
    return n;
}

const char *report_finding_redacted(const report_finding *f, char buf[64])
{
    if (memchr(f->redacted, '\0', sizeof f->redacted) && f->redacted[0])
        return f->redacted;
    kh_redact((const uint8_t *)f->secret, f->secret ? f->secret_len : 0, buf, 64);
    return buf;
}

const char *report_finding_fingerprint(const report_finding *f, char buf[65])
{
    if (memchr(f->fingerprint, '\0', sizeof f->fingerprint) && f->fingerprint[0])
        return f->fingerprint;
    kh_fingerprint(f->detector && f->detector->id ? f->detector->id : "",
                   (const uint8_t *)f->secret, f->secret ? f->secret_len : 0, buf);
    return buf;
}

const char *report_shown_value(const char *value, size_t len, int show_secrets, char buf[64],
                               size_t *shown_len)
{
    if (!value)
        value = "", len = 0;
    if (show_secrets) {
        *shown_len = len;
        return value;
    }
    kh_redact((const uint8_t *)value, len, buf, 64);
    *shown_len = strlen(buf);
    return buf;
}

/* FNV-1a: only to spread paths over buckets; collisions are compared. */
static uint64_t report_hash(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static const char *report_primary_path(const report_finding *f)
{
    return f->location_count && f->locations && f->locations[0].path ? f->locations[0].path
                                                                      : "";
}

int report_group_by_path(const report_finding *findings, size_t count, size_t *order)
{
    if (count == 0)
        return 0;
    /* Open addressing over finding indexes; table at most half full. */
    size_t cap = 16;
    while (cap < count * 2) {
        if (cap > SIZE_MAX / 4) {
            errno = ENOMEM;
            return -1;
        }
        cap *= 2;
    }
    size_t *slot = malloc(cap * sizeof *slot);           /* finding index + 1, 0 empty */
    size_t *group = malloc(count * sizeof *group);        /* group of each finding */
    size_t *group_size = calloc(count, sizeof *group_size); /* then: start offsets */
    size_t *slot_group = malloc(cap * sizeof *slot_group);
    if (!slot || !group || !group_size || !slot_group) {
        free(slot), free(group), free(group_size), free(slot_group);
        errno = ENOMEM;
        return -1;
    }
    memset(slot, 0, cap * sizeof *slot);
    size_t groups = 0;
    for (size_t i = 0; i < count; i++) {
        const char *p = report_primary_path(&findings[i]);
        size_t h = (size_t)report_hash(p) & (cap - 1);
        while (slot[h] && strcmp(report_primary_path(&findings[slot[h] - 1]), p) != 0)
            h = (h + 1) & (cap - 1);
        if (!slot[h]) {
            slot[h] = i + 1;
            slot_group[h] = groups++;
        }
        group[i] = slot_group[h];
        group_size[group[i]]++;
    }
    /* Counting sort by group keeps the given order inside each group. */
    size_t start = 0;
    for (size_t g = 0; g < groups; g++) {
        size_t n = group_size[g];
        group_size[g] = start;
        start += n;
    }
    for (size_t i = 0; i < count; i++)
        order[group_size[group[i]]++] = i;
    free(slot), free(group), free(group_size), free(slot_group);
    return 0;
}

void report_human_bytes(uint64_t bytes, char *buf, size_t size)
{
    static const char *const units[] = {"B", "kB", "MB", "GB", "TB", "PB", "EB"};
    if (bytes < 1000) {
        snprintf(buf, size, "%llu B", (unsigned long long)bytes);
        return;
    }
    double v = (double)bytes;
    size_t u = 0;
    while (v >= 1000.0 && u + 1 < sizeof units / sizeof units[0]) {
        v /= 1000.0;
        u++;
    }
    snprintf(buf, size, "%.1f %s", v, units[u]);
}

int report_write(FILE *out, const report_opts *opts, const report_finding *findings,
                 size_t count, const report_stats *stats)
{
    static const report_opts defaults = {.format = REPORT_TEXT};
    if (!out || (count && !findings)) {
        errno = EINVAL;
        return -1;
    }
    if (!opts)
        opts = &defaults;
    int rc;
    switch (opts->format) {
    case REPORT_TEXT:
        rc = report_write_text(out, opts, findings, count);
        break;
    case REPORT_JSON:
        rc = report_write_json(out, opts, findings, count, stats, 0);
        break;
    case REPORT_JSONL:
        rc = report_write_json(out, opts, findings, count, stats, 1);
        break;
    case REPORT_SARIF:
        rc = report_write_sarif(out, opts, findings, count, stats);
        break;
    case REPORT_HTML:
        rc = report_write_html(out, opts, findings, count, stats);
        break;
    default:
        errno = EINVAL;
        return -1;
    }
    if (rc != 0)
        return -1;
    if (ferror(out)) {
        if (errno == 0)
            errno = EIO;
        return -1;
    }
    return fflush(out) == 0 ? 0 : -1;
}

void report_summary(FILE *err, const report_stats *stats, const report_finding *findings,
                    size_t count, int color)
{
    static const report_stats zero;
    if (!err)
        return;
    if (!stats)
        stats = &zero;
    if (!findings)
        count = 0;
    uint64_t by_sev[5] = {0};
    for (size_t i = 0; i < count; i++) {
        int s = (int)findings[i].severity;
        if (s >= 0 && s < 5)
            by_sev[s]++;
    }
    const char *bold = color ? "\033[1m" : "", *reset = color ? "\033[0m" : "";
    fprintf(err, "%s%zu finding%s%s", bold, count, count == 1 ? "" : "s", reset);
    const char *sep = " (";
    for (int s = KH_SEVERITY_CRITICAL; s >= KH_SEVERITY_INFO; s--) {
        if (!by_sev[s])
            continue;
        fprintf(err, "%s%llu %s", sep, (unsigned long long)by_sev[s],
                report_severity_name((kh_severity)s));
        sep = ", ";
    }
    if (sep[0] == ',')
        fputc(')', err);
    char size[32];
    report_human_bytes(stats->bytes_scanned, size, sizeof size);
    fprintf(err, " in %llu file%s (%s), %llu skipped", (unsigned long long)stats->files_scanned,
            stats->files_scanned == 1 ? "" : "s", size, (unsigned long long)stats->files_skipped);
    if (stats->suppressed)
        fprintf(err, ", %llu suppressed", (unsigned long long)stats->suppressed);
    double t = stats->elapsed_seconds;
    if (t == t && t >= 0 && t < 1e12) {
        fprintf(err, ", %.2f s", t);
        if (t > 0) {
            double rate = (double)stats->bytes_scanned / t / 1e6;
            fprintf(err, ", %.1f MB/s", rate);
        }
    }
    fputc('\n', err);
}

static void report_free_wiped(char *s)
{
    /* Secrets should not linger in freed heap memory for a later dump. */
    if (s)
        explicit_bzero(s, strlen(s));
    free(s);
}

void report_finding_clear(report_finding *f)
{
    if (!f)
        return;
    if (f->secret) {
        explicit_bzero(f->secret, f->secret_len);
        free(f->secret);
    }
    for (size_t i = 0; f->locations && i < f->location_count; i++) {
        report_location *l = &f->locations[i];
        free(l->path), free(l->commit), free(l->author), free(l->email), free(l->date);
        report_free_wiped(l->context);
    }
    free(f->locations);
    for (size_t i = 0; f->companions && i < f->companion_count; i++) {
        free(f->companions[i].name);
        report_free_wiped(f->companions[i].value);
    }
    free(f->companions);
    for (size_t i = 0; f->decoded_from && i < f->decoded_count; i++)
        free(f->decoded_from[i]);
    free(f->decoded_from);
    free(f->verify_reason);
    memset(f, 0, sizeof *f);
}
