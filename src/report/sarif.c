/*
 * sarif.c - SARIF 2.1.0 output for code-scanning dashboards (GitHub, GitLab,
 * Azure DevOps, VS Code's SARIF viewer).
 *
 * One run; one rule per detector that produced a finding (in order of first
 * use, found through a hash table so a huge report stays linear), and one
 * result per finding.  Choices a reader may wonder about:
 *  - region.endColumn is exclusive in SARIF while our end_column is the
 *    last byte, hence + 1.  Columns count bytes, which no SARIF columnKind
 *    names exactly, so columnKind is left out.
 *  - A deduplicated finding seen in several places has its first place in
 *    result.locations and the others in relatedLocations: SARIF reads
 *    several entries in locations as one problem spanning all of them.
 *  - Paths become URI references: backslashes turn into '/', and every byte
 *    outside the unreserved and sub-delimiter sets is percent-encoded
 *    (spaces, '%', '#', '?', ':' and non-ASCII alike), so the uri always
 *    parses and a relative path never reads as a scheme.  An absolute path
 *    becomes a file:/// URI.
 *  - The rule's security-severity is the string GitHub expects for its
 *    severity badges; tags never repeat (the schema requires unique tags).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "report/report.h"

#define SARIF_SCHEMA_URI \
    "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
#define SARIF_INFO_URI "https://github.com/keyhog/keyhog"

static const char *sarif_level(kh_severity s)
{
    switch (s) {
    case KH_SEVERITY_CRITICAL:
    case KH_SEVERITY_HIGH:
        return "error";
    case KH_SEVERITY_MEDIUM:
        return "warning";
    default:
        return "note";
    }
}

static const char *sarif_security_severity(kh_severity s)
{
    switch (s) {
    case KH_SEVERITY_CRITICAL:
        return "9.5";
    case KH_SEVERITY_HIGH:
        return "8.0";
    case KH_SEVERITY_MEDIUM:
        return "5.5";
    case KH_SEVERITY_LOW:
        return "3.0";
    default:
        return "1.0";
    }
}

static const char *sarif_detector_id(const report_finding *f)
{
    return f->detector && f->detector->id ? f->detector->id : "unknown";
}

/* Writes a path as a URI reference, through a memory stream so the value
 * goes out through the JSON writer like any other. */
static void sarif_uri(report_json *j, const char *path)
{
    static const char hex[] = "0123456789ABCDEF";
    static const char keep[] = "-._~/!$&'()*+,;=@";
    const unsigned char *p = (const unsigned char *)(path ? path : "");
    char *uri = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&uri, &len);
    if (!m) {
        report_json_cstr(j, "");
        return;
    }
    if (p[0] == '/' || p[0] == '\\')
        fputs("file://", m);
    for (; *p; p++) {
        unsigned char c = *p == '\\' ? '/' : *p;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            strchr(keep, c)) {
            fputc(c, m);
        } else {
            fputc('%', m);
            fputc(hex[c >> 4], m);
            fputc(hex[c & 15], m);
        }
    }
    if (fclose(m) == 0 && uri)
        report_json_str(j, uri, len);
    else
        report_json_cstr(j, "");
    free(uri);
}

/* Maps each finding to its rule: rule_of[i] is the rule index of finding
 * i, first[r] the first finding of rule r, and desc[r] the first non-empty
 * description any finding of rule r carries (or NULL). */
static int sarif_rules(const report_finding *findings, size_t count, size_t *rule_of,
                       size_t *first, const char **desc, size_t *rules)
{
    size_t cap = 16;
    while (cap < count * 2) {
        if (cap > SIZE_MAX / 4)
            return -1;
        cap *= 2;
    }
    size_t *slot = calloc(cap, sizeof *slot); /* rule index + 1, 0 empty */
    if (!slot)
        return -1;
    size_t n = 0;
    for (size_t i = 0; i < count; i++) {
        const char *id = sarif_detector_id(&findings[i]);
        uint64_t h = 1469598103934665603ull;
        for (const char *s = id; *s; s++)
            h = (h ^ (unsigned char)*s) * 1099511628211ull;
        size_t k = (size_t)h & (cap - 1);
        while (slot[k] && strcmp(sarif_detector_id(&findings[first[slot[k] - 1]]), id) != 0)
            k = (k + 1) & (cap - 1);
        if (!slot[k]) {
            first[n] = i;
            desc[n] = NULL;
            slot[k] = ++n;
        }
        size_t r = slot[k] - 1;
        rule_of[i] = r;
        if (!desc[r] && findings[i].description && findings[i].description[0])
            desc[r] = findings[i].description;
    }
    free(slot);
    *rules = n;
    return 0;
}

static void sarif_text(report_json *j, const char *key, const char *text)
{
    report_json_key(j, key);
    report_json_begin_object(j);
    report_json_kstr(j, "text", text);
    report_json_end_object(j);
}

static void sarif_rule(report_json *j, const report_finding *f, const char *desc)
{
    const kh_detector_info *d = f->detector;
    const char *name = d && d->name && d->name[0] ? d->name : sarif_detector_id(f);
    const char *service = d && d->service ? d->service : "";
    kh_severity sev = d ? d->severity : f->severity;

    report_json_begin_object(j);
    report_json_kstr(j, "id", sarif_detector_id(f));
    report_json_kstr(j, "name", name);
    sarif_text(j, "shortDescription", name);
    sarif_text(j, "fullDescription", desc ? desc : name);

    report_json_key(j, "help");
    report_json_begin_object(j);
    report_json_key(j, "text");
    /* Fixed words mixed with names from the spec: composed in a memory
     * stream so the whole text goes through one escaping call. */
    {
        char *help = NULL;
        size_t help_len = 0;
        FILE *m = open_memstream(&help, &help_len);
        if (m) {
            fprintf(m, "%s detected (detector %s). Treat the credential as compromised: "
                       "revoke or rotate it with %s, then remove it from the code and its "
                       "history and load it from a secret store at run time.",
                    name, sarif_detector_id(f), service[0] ? service : "its provider");
            if (fclose(m) == 0 && help)
                report_json_str(j, help, help_len);
            else
                report_json_cstr(j, name);
        } else {
            report_json_cstr(j, name);
        }
        free(help);
    }
    report_json_end_object(j);

    report_json_key(j, "defaultConfiguration");
    report_json_begin_object(j);
    report_json_kstr(j, "level", sarif_level(sev));
    report_json_end_object(j);

    report_json_key(j, "properties");
    report_json_begin_object(j);
    report_json_key(j, "tags");
    report_json_begin_array(j);
    report_json_cstr(j, "security");
    report_json_cstr(j, "secret");
    if (service[0] && strcmp(service, "security") != 0 && strcmp(service, "secret") != 0)
        report_json_cstr(j, service);
    report_json_end_array(j);
    report_json_kstr(j, "security-severity", sarif_security_severity(sev));
    report_json_kstr(j, "severity", report_severity_name(sev));
    report_json_end_object(j);
    report_json_end_object(j);
}

static void sarif_physical(report_json *j, const report_location *l)
{
    report_json_key(j, "physicalLocation");
    report_json_begin_object(j);
    report_json_key(j, "artifactLocation");
    report_json_begin_object(j);
    report_json_key(j, "uri");
    sarif_uri(j, l->path);
    report_json_end_object(j);
    report_json_key(j, "region");
    report_json_begin_object(j);
    if (l->line > 0) {
        uint32_t end_line = l->end_line >= l->line ? l->end_line : l->line;
        report_json_ku64(j, "startLine", l->line);
        if (l->column > 0) {
            report_json_ku64(j, "startColumn", l->column);
            report_json_ku64(j, "endLine", end_line);
            if (l->end_column > 0 && (end_line > l->line || l->end_column >= l->column))
                report_json_ku64(j, "endColumn", (uint64_t)l->end_column + 1);
        } else {
            report_json_ku64(j, "endLine", end_line);
        }
    }
    report_json_ku64(j, "byteOffset", l->offset);
    report_json_ku64(j, "byteLength", l->length);
    report_json_end_object(j);
    report_json_end_object(j);
}

static void sarif_message(report_json *j, const report_finding *f, int show)
{
    const kh_detector_info *d = f->detector;
    const char *name = d && d->name && d->name[0] ? d->name : sarif_detector_id(f);
    char rbuf[64];
    const char *value;
    size_t value_len;
    if (show) {
        value = f->secret ? f->secret : "";
        value_len = f->secret ? f->secret_len : 0;
    } else {
        value = report_finding_redacted(f, rbuf);
        value_len = strlen(value);
    }
    char *text = NULL;
    size_t text_len = 0;
    FILE *m = open_memstream(&text, &text_len);
    report_json_key(j, "message");
    report_json_begin_object(j);
    report_json_key(j, "text");
    if (m) {
        fprintf(m, "%s found: ", name);
        fwrite(value, 1, value_len, m);
        if (f->decoded_count && f->decoded_from) {
            fputs(" (decoded from ", m);
            for (size_t i = 0; i < f->decoded_count; i++)
                fprintf(m, "%s%s", i ? " > " : "", f->decoded_from[i] ? f->decoded_from[i] : "?");
            fputc(')', m);
        }
        if (f->verify_status)
            fprintf(m, " [verified: %s]", f->verify_status);
    }
    if (m && fclose(m) == 0 && text)
        report_json_str(j, text, text_len);
    else
        report_json_cstr(j, name);
    free(text);
    report_json_end_object(j);
}

static void sarif_result(report_json *j, const report_finding *f, size_t rule, int show)
{
    char fbuf[65];
    report_json_begin_object(j);
    report_json_kstr(j, "ruleId", sarif_detector_id(f));
    report_json_ku64(j, "ruleIndex", rule);
    report_json_kstr(j, "level", sarif_level(f->severity));
    sarif_message(j, f, show);
    if (f->location_count && f->locations) {
        report_json_key(j, "locations");
        report_json_begin_array(j);
        report_json_begin_object(j);
        sarif_physical(j, &f->locations[0]);
        report_json_end_object(j);
        report_json_end_array(j);
    }
    if (f->location_count > 1 && f->locations) {
        report_json_key(j, "relatedLocations");
        report_json_begin_array(j);
        for (size_t i = 1; i < f->location_count; i++) {
            report_json_begin_object(j);
            report_json_ku64(j, "id", i);
            sarif_physical(j, &f->locations[i]);
            sarif_text(j, "message", "the same secret, also here");
            report_json_end_object(j);
        }
        report_json_end_array(j);
    }
    report_json_key(j, "partialFingerprints");
    report_json_begin_object(j);
    report_json_kstr(j, "keyhog/v1", report_finding_fingerprint(f, fbuf));
    report_json_end_object(j);

    report_json_key(j, "properties");
    report_json_begin_object(j);
    report_json_key(j, "confidence");
    report_json_double(j, f->confidence, 2, 4);
    report_json_kstr(j, "severity", report_severity_name(f->severity));
    if (f->location_count && f->locations) {
        const report_location *l = &f->locations[0];
        if (l->commit)
            report_json_kstr(j, "commit", l->commit);
        if (l->author)
            report_json_kstr(j, "author", l->author);
        if (l->email)
            report_json_kstr(j, "email", l->email);
        if (l->date)
            report_json_kstr(j, "date", l->date);
    }
    report_json_extras(j, f, show);
    if (f->verify_status) {
        report_json_kstr(j, "verify_status", f->verify_status);
        if (f->verify_reason)
            report_json_kstr(j, "verify_reason", f->verify_reason);
    }
    report_json_end_object(j);
    report_json_end_object(j);
}

int report_write_sarif(FILE *out, const report_opts *opts, const report_finding *findings,
                       size_t count, const report_stats *stats)
{
    if (count > SIZE_MAX / 4 / sizeof(size_t)) {
        errno = ENOMEM;
        return -1;
    }
    size_t *rule_of = malloc((count ? count : 1) * sizeof *rule_of);
    size_t *first = malloc((count ? count : 1) * sizeof *first);
    const char **desc = malloc((count ? count : 1) * sizeof *desc);
    size_t rules = 0;
    if (!rule_of || !first || !desc ||
        sarif_rules(findings, count, rule_of, first, desc, &rules) != 0) {
        free(rule_of), free(first), free(desc);
        errno = ENOMEM;
        return -1;
    }
    report_json j;
    report_json_init(&j, out, 1);
    report_json_begin_object(&j);
    report_json_kstr(&j, "$schema", SARIF_SCHEMA_URI);
    report_json_kstr(&j, "version", "2.1.0");
    report_json_key(&j, "runs");
    report_json_begin_array(&j);
    report_json_begin_object(&j);

    report_json_key(&j, "tool");
    report_json_begin_object(&j);
    report_json_key(&j, "driver");
    report_json_begin_object(&j);
    report_json_kstr(&j, "name", "keyhog");
    report_json_kstr(&j, "version",
                     opts->tool_version && opts->tool_version[0] ? opts->tool_version
                                                                 : KH_VERSION);
    report_json_kstr(&j, "informationUri", SARIF_INFO_URI);
    report_json_key(&j, "rules");
    report_json_begin_array(&j);
    for (size_t r = 0; r < rules && !ferror(out); r++)
        sarif_rule(&j, &findings[first[r]], desc[r]);
    report_json_end_array(&j);
    report_json_end_object(&j);
    report_json_end_object(&j);

    report_json_key(&j, "results");
    report_json_begin_array(&j);
    for (size_t i = 0; i < count && !ferror(out); i++)
        sarif_result(&j, &findings[i], rule_of[i], opts->show_secrets);
    report_json_end_array(&j);

    if (stats) {
        report_json_key(&j, "properties");
        report_json_begin_object(&j);
        report_json_ku64(&j, "files_scanned", stats->files_scanned);
        report_json_ku64(&j, "bytes_scanned", stats->bytes_scanned);
        report_json_ku64(&j, "files_skipped", stats->files_skipped);
        report_json_ku64(&j, "suppressed", stats->suppressed);
        report_json_key(&j, "elapsed_seconds");
        report_json_double(&j, stats->elapsed_seconds, 1, 6);
        report_json_ku64(&j, "detectors", stats->detectors);
        report_json_end_object(&j);
    }
    report_json_end_object(&j);
    report_json_end_array(&j);
    report_json_end_object(&j);
    fputc('\n', out);
    free(rule_of), free(first), free(desc);
    return 0;
}
