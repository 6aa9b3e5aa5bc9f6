/*
 * config.c - the `.keyhog.toml` config file and baseline files.
 *
 * The config file is found by walking up from the first scanned path (or
 * given with --config).  Its keys mirror the command-line options, which
 * win when both are given.  Unknown keys are an error with file:line:col,
 * since a misspelt allowlist silently allowing nothing is worse than a
 * refusal.  Paths in it are relative to the file's directory.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/config.h"
#include "cli/cli.h"
#include "report/report.h"
#include "spec/toml.h"

#define CONFIG_MAX_BYTES (1u << 20)

static char *read_small_file(const char *path, size_t max, size_t *len, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return NULL;
    }
    char *buf = malloc(max + 1);
    size_t n = buf ? fread(buf, 1, max + 1, f) : 0;
    int bad = ferror(f);
    fclose(f);
    if (!buf || bad || n > max) {
        snprintf(err, errlen, "%s: %s", path,
                 !buf ? "out of memory" : bad ? "read error" : "file too large");
        free(buf);
        return NULL;
    }
    buf[n] = 0;
    *len = n;
    return buf;
}

static int cfg_error(char *err, size_t errlen, const char *file, const toml_value *v,
                     const char *msg, const char *key)
{
    snprintf(err, errlen, "%s:%d:%d: %s%s%s", file, v ? v->line : 1, v ? v->col : 1, msg,
             key ? " " : "", key ? key : "");
    return -1;
}

/* An array of strings -> NULL-terminated vector (appended to *vec). */
static int string_array(const toml_value *v, char ***vec, size_t *n, const char *file,
                        const char *key, char *err, size_t errlen)
{
    if (v->type != TOML_ARRAY)
        return cfg_error(err, errlen, file, v, "expected an array of strings for", key);
    for (size_t i = 0; i < v->u.array.n; i++) {
        const toml_value *s = v->u.array.items[i];
        if (s->type != TOML_STRING)
            return cfg_error(err, errlen, file, s, "expected a string in", key);
        char **nv = realloc(*vec, (*n + 2) * sizeof *nv);
        if (!nv)
            return cfg_error(err, errlen, file, s, "out of memory", NULL);
        *vec = nv;
        nv[(*n)++] = strdup(s->u.str.ptr);
        nv[*n] = NULL;
    }
    return 0;
}

static char *dir_of(const char *path)
{
    char *d = strdup(path);
    if (!d)
        return NULL;
    char *slash = strrchr(d, '/');
    if (slash)
        slash[slash == d ? 1 : 0] = 0;
    else
        strcpy(d, ".");
    return d;
}

static char *join(const char *dir, const char *rel)
{
    if (rel[0] == '/')
        return strdup(rel);
    size_t n = strlen(dir) + strlen(rel) + 2;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s/%s", dir, rel);
    return p;
}

int config_load(const char *path, cli_config *c, char *err, size_t errlen)
{
    size_t len;
    char *text = read_small_file(path, CONFIG_MAX_BYTES, &len, err, errlen);
    if (!text)
        return -1;
    toml_value *root = NULL;
    char terr[512];
    int rc = toml_parse(text, len, path, &root, terr, sizeof terr);
    free(text);
    if (rc != 0) {
        snprintf(err, errlen, "%s", terr);
        return -1;
    }
    c->path = strdup(path);
    char *dir = dir_of(path);
    rc = -1;
    for (size_t i = 0; i < root->u.table.n; i++) {
        const char *k = root->u.table.keys[i];
        const toml_value *v = root->u.table.values[i];
        if (!strcmp(k, "min_confidence")) {
            double x = v->type == TOML_FLOAT ? v->u.real
                     : v->type == TOML_INTEGER ? (double)v->u.integer : -1;
            if (x < 0 || x > 1) {
                cfg_error(err, errlen, path, v, "min_confidence must be a number in [0, 1]", NULL);
                goto out;
            }
            c->min_confidence = x;
            c->has_min_confidence = 1;
        } else if (!strcmp(k, "min_severity")) {
            if (v->type != TOML_STRING || (c->min_severity = kh_severity_parse(v->u.str.ptr)) < 0) {
                cfg_error(err, errlen, path, v, "min_severity must be one of info, low, medium, high, critical", NULL);
                goto out;
            }
            c->has_min_severity = 1;
        } else if (!strcmp(k, "max_file_size")) {
            long long x = v->type == TOML_INTEGER ? v->u.integer
                        : v->type == TOML_STRING ? cli_parse_size(v->u.str.ptr) : -1;
            if (x < 0) {
                cfg_error(err, errlen, path, v, "max_file_size must be bytes or a size like \"32M\"", NULL);
                goto out;
            }
            c->max_file_size = (uint64_t)x;
            c->has_max_file_size = 1;
        } else if (!strcmp(k, "detectors")) {
            size_t before = c->detector_dir_count;
            if (string_array(v, &c->detector_dirs, &c->detector_dir_count, path, k, err, errlen))
                goto out;
            for (size_t j = before; j < c->detector_dir_count; j++) {
                char *abs = join(dir, c->detector_dirs[j]);
                free(c->detector_dirs[j]);
                c->detector_dirs[j] = abs;
            }
        } else if (!strcmp(k, "disable")) {
            if (string_array(v, &c->disabled, &c->disabled_count, path, k, err, errlen))
                goto out;
        } else if (!strcmp(k, "allowlist") && v->type == TOML_TABLE) {
            for (size_t j = 0; j < v->u.table.n; j++) {
                const char *ak = v->u.table.keys[j];
                const toml_value *av = v->u.table.values[j];
                char ***vec = !strcmp(ak, "paths") ? &c->allow_paths
                            : !strcmp(ak, "secrets") ? &c->allow_secrets
                            : !strcmp(ak, "regexes") ? &c->allow_regexes : NULL;
                size_t *cnt = !strcmp(ak, "paths") ? &c->allow_path_count
                            : !strcmp(ak, "secrets") ? &c->allow_secret_count
                            : &c->allow_regex_count;
                if (!vec) {
                    cfg_error(err, errlen, path, av, "unknown key allowlist.", ak);
                    goto out;
                }
                if (string_array(av, vec, cnt, path, ak, err, errlen))
                    goto out;
            }
        } else if (!strcmp(k, "severity") && v->type == TOML_TABLE) {
            for (size_t j = 0; j < v->u.table.n; j++) {
                const toml_value *sv = v->u.table.values[j];
                int level = sv->type == TOML_STRING ? kh_severity_parse(sv->u.str.ptr) : -1;
                if (level < 0) {
                    cfg_error(err, errlen, path, sv, "severity override must be a level name for", v->u.table.keys[j]);
                    goto out;
                }
                cli_severity_override *o = realloc(c->overrides, (c->override_count + 1) * sizeof *o);
                if (!o)
                    goto out;
                c->overrides = o;
                o[c->override_count].id = strdup(v->u.table.keys[j]);
                o[c->override_count++].severity = level;
            }
        } else {
            cfg_error(err, errlen, path, v, "unknown key", k);
            goto out;
        }
    }
    rc = 0;
out:
    free(dir);
    toml_free(root);
    return rc;
}

char *config_find(const char *start)
{
    char buf[PATH_MAX];
    if (!realpath(start, buf))
        return NULL;
    struct stat st;
    if (stat(buf, &st) == 0 && !S_ISDIR(st.st_mode)) {
        char *slash = strrchr(buf, '/');
        if (slash)
            slash[slash == buf ? 1 : 0] = 0;
    }
    for (;;) {
        char cand[PATH_MAX + 16];
        snprintf(cand, sizeof cand, "%s/.keyhog.toml", strcmp(buf, "/") ? buf : "");
        if (stat(cand, &st) == 0 && S_ISREG(st.st_mode))
            return strdup(cand);
        char *slash = strrchr(buf, '/');
        if (!slash || slash == buf)
            break;
        *slash = 0;
    }
    return NULL;
}

static void free_vec(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

void config_free(cli_config *c)
{
    free(c->path);
    free_vec(c->detector_dirs, c->detector_dir_count);
    free_vec(c->disabled, c->disabled_count);
    free_vec(c->allow_paths, c->allow_path_count);
    free_vec(c->allow_secrets, c->allow_secret_count);
    free_vec(c->allow_regexes, c->allow_regex_count);
    for (size_t i = 0; i < c->override_count; i++)
        free(c->overrides[i].id);
    free(c->overrides);
    memset(c, 0, sizeof *c);
}

triage_allowlist *config_allowlist(const cli_config *c, char *err, size_t errlen)
{
    triage_allowlist *a = triage_allowlist_new();
    if (!a) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    size_t total = 1;
    for (size_t i = 0; i < c->allow_path_count; i++)
        total += strlen(c->allow_paths[i]) + 1;
    char *globs = malloc(total);
    if (!globs) {
        triage_allowlist_free(a);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    size_t n = 0;
    for (size_t i = 0; i < c->allow_path_count; i++)
        n += (size_t)sprintf(globs + n, "%s\n", c->allow_paths[i]);
    int bad = triage_allowlist_paths(a, globs, n) != 0;
    free(globs);
    for (size_t i = 0; !bad && i < c->allow_secret_count; i++)
        bad = triage_allowlist_secret(a, c->allow_secrets[i]) != 0;
    for (size_t i = 0; !bad && i < c->allow_regex_count; i++) {
        char rerr[256];
        if (triage_allowlist_regex(a, c->allow_regexes[i], rerr, sizeof rerr)) {
            snprintf(err, errlen, "%s: allowlist.regexes: '%s': %s", c->path ? c->path : "config",
                     c->allow_regexes[i], rerr);
            triage_allowlist_free(a);
            return NULL;
        }
    }
    if (bad) {
        snprintf(err, errlen, "out of memory");
        triage_allowlist_free(a);
        return NULL;
    }
    return a;
}

/* --- baselines ---------------------------------------------------------- */

int baseline_load(const char *path, triage_baseline *b, char *err, size_t errlen)
{
    size_t len;
    char *text = read_small_file(path, 256u << 20, &len, err, errlen);
    if (!text)
        return -1;
    report_jvalue *doc = NULL;
    char jerr[256];
    int rc = report_json_parse(text, len, &doc, jerr, sizeof jerr);
    free(text);
    if (rc) {
        snprintf(err, errlen, "%s:%s", path, jerr);
        return -1;
    }
    const report_jvalue *list = report_json_get(doc, "findings");
    if (!list || list->type != REPORT_JARRAY) {
        snprintf(err, errlen, "%s: not a keyhog baseline (no \"findings\" array)", path);
        report_json_free(doc);
        return -1;
    }
    for (size_t i = 0; i < list->n; i++) {
        const report_jvalue *fp = report_json_get(list->items[i], "fingerprint");
        if (!fp || fp->type != REPORT_JSTRING || fp->len != 64) {
            snprintf(err, errlen, "%s: finding %zu has no valid \"fingerprint\"", path, i + 1);
            report_json_free(doc);
            return -1;
        }
        if (triage_baseline_add(b, fp->str)) {
            snprintf(err, errlen, "out of memory");
            report_json_free(doc);
            return -1;
        }
    }
    report_json_free(doc);
    return 0;
}

typedef struct baseline_row {
    const report_finding *f;
} baseline_row;

static int cmp_row(const void *a, const void *b)
{
    const report_finding *x = ((const baseline_row *)a)->f, *y = ((const baseline_row *)b)->f;
    int c = strcmp(x->fingerprint, y->fingerprint);
    return c ? c : strcmp(x->locations[0].path, y->locations[0].path);
}

int baseline_write(FILE *out, const report_finding *findings, size_t count)
{
    baseline_row *rows = malloc((count + 1) * sizeof *rows);
    if (!rows)
        return -1;
    for (size_t i = 0; i < count; i++)
        rows[i].f = &findings[i];
    qsort(rows, count, sizeof *rows, cmp_row);
    fprintf(out, "{\n  \"keyhog_baseline\": 1,\n  \"findings\": [");
    for (size_t i = 0; i < count; i++) {
        const report_finding *f = rows[i].f;
        fprintf(out, "%s\n    {\"fingerprint\": \"%s\", \"detector_id\": ", i ? "," : "",
                f->fingerprint);
        report_json_string(out, f->detector->id, strlen(f->detector->id));
        fprintf(out, ", \"path\": ");
        report_json_string(out, f->locations[0].path, strlen(f->locations[0].path));
        fprintf(out, ", \"redacted\": ");
        report_json_string(out, f->redacted, strlen(f->redacted));
        fprintf(out, "}");
    }
    fprintf(out, "%s]\n}\n", count ? "\n  " : "");
    free(rows);
    return ferror(out) ? -1 : 0;
}
