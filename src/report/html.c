/*
 * html.c - one self-contained HTML page: a table of findings a person can
 * filter, sort and expand, for attaching to a ticket or a CI artifact.
 *
 * Self-contained means no fetch of any kind: CSS and JS are inline, and a
 * Content-Security-Policy of default-src 'none' makes the browser refuse any
 * network load even if something slipped through.  Every byte that came from
 * scanned input is written through html_text, which escapes markup
 * characters and replaces invalid UTF-8 and control characters, so a path
 * like "<img onerror=...>.env" shows as text.  The rows are rendered here
 * rather than from embedded JSON, so the page works without running any
 * script, and the script only hides, shows and reorders rows.
 */
#include <stdlib.h>
#include <string.h>

#include "report/report.h"

/* Escapes for element content and quoted attributes alike.  With
 * keep_lines, newlines and tabs survive (for <pre>); \r is dropped. */
static void html_text(FILE *out, const char *s, size_t len, int keep_lines)
{
    const unsigned char *p = (const unsigned char *)(s ? s : "");
    if (!s)
        len = 0;
    size_t i = 0;
    while (i < len) {
        unsigned char c = p[i];
        uint32_t cp;
        size_t n = report_utf8_decode(p + i, len - i, &cp);
        if (n == 0) {
            fputs("\xef\xbf\xbd", out); /* U+FFFD */
            i++;
            continue;
        }
        switch (c) {
        case '&':
            fputs("&amp;", out);
            break;
        case '<':
            fputs("&lt;", out);
            break;
        case '>':
            fputs("&gt;", out);
            break;
        case '"':
            fputs("&quot;", out);
            break;
        case '\'':
            fputs("&#39;", out);
            break;
        case '\n':
        case '\t':
            fputc(keep_lines ? c : ' ', out);
            break;
        case '\r':
            break;
        default:
            if (cp < 0x20 || (cp >= 0x7f && cp < 0xa0))
                fputs("\xef\xbf\xbd", out);
            else
                fwrite(p + i, 1, n, out);
        }
        i += n;
    }
}

static void html_cstr(FILE *out, const char *s)
{
    html_text(out, s, s ? strlen(s) : 0, 0);
}

static const char html_head[] =
    "<!DOCTYPE html>\n"
    "<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
    "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
    "style-src 'unsafe-inline'; script-src 'unsafe-inline'\">\n"
    "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
    "<meta name=\"referrer\" content=\"no-referrer\">\n"
    "<title>keyhog report</title>\n<style>\n"
    ":root{color-scheme:light dark;--line:#8884;--muted:#888}\n"
    "body{font:14px/1.45 system-ui,sans-serif;margin:1.5em auto;max-width:1200px;padding:0 1em}\n"
    "h1{font-size:1.4em;margin:0 0 .3em}\n"
    ".summary{color:var(--muted);margin:0 0 1em}\n"
    "#filter{width:100%;box-sizing:border-box;padding:.5em;font:inherit;margin-bottom:.8em}\n"
    "table{border-collapse:collapse;width:100%}\n"
    "th,td{text-align:left;padding:.35em .6em;border-bottom:1px solid var(--line);"
    "vertical-align:top}\n"
    "th{cursor:pointer;user-select:none;white-space:nowrap}\n"
    "th[aria-sort=ascending]::after{content:' \\25B4'}\n"
    "th[aria-sort=descending]::after{content:' \\25BE'}\n"
    "tr.f{cursor:pointer}\ntr.f:hover,tr.f:focus{background:#8881;outline:none}\n"
    "td.loc,code{font-family:ui-monospace,monospace;word-break:break-all}\n"
    ".id{color:var(--muted);font-size:.85em}\n"
    ".sev{font-weight:600;padding:.05em .45em;border-radius:.3em;color:#fff}\n"
    ".sev-critical{background:#b00020}.sev-high{background:#d9480f}"
    ".sev-medium{background:#b8860b}.sev-low{background:#1c7ed6}"
    ".sev-info,.sev-unknown{background:#666}\n"
    "tr.d td{background:#8880}\n"
    "dl{display:grid;grid-template-columns:max-content 1fr;gap:.2em 1em;margin:.3em 0}\n"
    "dt{color:var(--muted)}dd{margin:0;word-break:break-all}\n"
    "pre{background:#8882;padding:.6em;overflow:auto;margin:.4em 0}\n"
    "</style>\n</head>\n<body>\n<h1>keyhog report</h1>\n";

static const char html_table_head[] =
    "<input id=\"filter\" type=\"search\" placeholder=\"Filter by any text\" "
    "aria-label=\"Filter findings\">\n"
    "<table id=\"findings\">\n<thead><tr>"
    "<th data-key=\"sev\" aria-sort=\"none\" tabindex=\"0\">Severity</th>"
    "<th data-key=\"conf\" aria-sort=\"none\" tabindex=\"0\">Confidence</th>"
    "<th data-key=\"text\" aria-sort=\"none\" tabindex=\"0\">Detector</th>"
    "<th data-key=\"text\" aria-sort=\"none\" tabindex=\"0\">Path:line</th>"
    "<th data-key=\"text\" aria-sort=\"none\" tabindex=\"0\">Secret</th>"
    "</tr></thead>\n<tbody>\n";

/* Rows come in pairs: the finding, then its hidden details. */
static const char html_tail[] =
    "</tbody>\n</table>\n<p id=\"none\" hidden>No finding matches the filter.</p>\n"
    "<script>\n"
    "(function(){\n"
    "var body=document.querySelector('#findings tbody');\n"
    "function pairs(){var r=[],rows=body.rows;"
    "for(var i=0;i+1<rows.length;i+=2)r.push([rows[i],rows[i+1]]);return r;}\n"
    "function toggle(tr){var d=tr.nextElementSibling;d.hidden=!d.hidden;"
    "tr.setAttribute('aria-expanded',d.hidden?'false':'true');}\n"
    "body.addEventListener('click',function(e){var tr=e.target.closest('tr.f');"
    "if(tr)toggle(tr);});\n"
    "body.addEventListener('keydown',function(e){var tr=e.target;"
    "if(tr.classList&&tr.classList.contains('f')&&(e.key==='Enter'||e.key===' '))"
    "{e.preventDefault();toggle(tr);}});\n"
    "var heads=document.querySelectorAll('#findings th');\n"
    "function sortBy(th,col,asc){\n"
    " heads.forEach(function(h){h.setAttribute('aria-sort','none');});\n"
    " th.setAttribute('aria-sort',asc?'ascending':'descending');\n"
    " var k=th.getAttribute('data-key');\n"
    " var key=function(p){return k==='text'?p[0].cells[col].textContent.toLowerCase()"
    ":parseFloat(p[0].getAttribute('data-'+k));};\n"
    " var list=pairs().map(function(p,i){return {p:p,k:key(p),i:i};});\n"
    " list.sort(function(a,b){var c=a.k<b.k?-1:a.k>b.k?1:0;return (asc?c:-c)||a.i-b.i;});\n"
    " list.forEach(function(x){body.appendChild(x.p[0]);body.appendChild(x.p[1]);});\n"
    "}\n"
    "heads.forEach(function(th,col){\n"
    " function sort(){sortBy(th,col,th.getAttribute('aria-sort')!=='ascending');}\n"
    " th.addEventListener('click',sort);\n"
    " th.addEventListener('keydown',function(e){if(e.key==='Enter'||e.key===' ')"
    "{e.preventDefault();sort();}});\n"
    "});\n"
    "var filter=document.getElementById('filter'),count=document.getElementById('count');\n"
    "function apply(){\n"
    " var q=filter.value.toLowerCase(),shown=0,all=pairs();\n"
    " all.forEach(function(p){\n"
    "  var hit=!q||(p[0].textContent+' '+p[1].textContent).toLowerCase().indexOf(q)>=0;\n"
    "  p[0].hidden=!hit;if(!hit){p[1].hidden=true;p[0].setAttribute('aria-expanded','false');}\n"
    "  if(hit)shown++;\n"
    " });\n"
    " document.getElementById('none').hidden=shown>0||!all.length;\n"
    " count.textContent=(q?shown+' of ':'')+all.length+' finding'+(all.length===1?'':'s')"
    "+(q?' match \u201c'+filter.value+'\u201d':'');\n"
    "}\n"
    "filter.addEventListener('input',apply);\n"
    /* report.html#filter=aws opens already filtered, so a link can point at
     * part of a report. */
    "var m=/^#filter=(.*)$/.exec(location.hash);\n"
    "if(m){try{filter.value=decodeURIComponent(m[1]);}catch(e){filter.value=m[1];}}\n"
    /* Most severe first; the file itself stays in path order. */
    "if(heads.length)sortBy(heads[0],0,false);\n"
    "apply();\n"
    "document.body.setAttribute('data-ready','1');\n"
    "})();\n"
    "</script>\n</body>\n</html>\n";

static void html_summary(FILE *out, const report_opts *opts, const report_finding *findings,
                         size_t count, const report_stats *stats)
{
    char *line = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&line, &len);
    fputs("<p class=\"summary\">", out);
    if (m) {
        report_summary(m, stats, findings, count, 0);
        if (fclose(m) == 0 && line) {
            while (len && line[len - 1] == '\n')
                len--;
            html_text(out, line, len, 0);
        }
    }
    free(line);
    fputs(" &middot; keyhog ", out);
    html_cstr(out, opts->tool_version && opts->tool_version[0] ? opts->tool_version
                                                               : KH_VERSION);
    fputs("</p>\n", out);
}

static void html_dt(FILE *out, const char *term)
{
    fprintf(out, "<dt>%s</dt><dd>", term);
}

static void html_details(FILE *out, const report_finding *f, int show)
{
    static const report_location nowhere;
    const report_location *l = f->location_count && f->locations ? &f->locations[0] : &nowhere;
    char fbuf[65], vbuf[64];

    fputs("<tr class=\"d\" hidden><td colspan=\"5\"><dl>", out);
    html_dt(out, "Detector");
    html_cstr(out, f->detector ? f->detector->id : "");
    if (f->detector && f->detector->service && f->detector->service[0]) {
        fputs(" (", out);
        html_cstr(out, f->detector->service);
        fputc(')', out);
    }
    fputs("</dd>", out);
    html_dt(out, "Fingerprint");
    fputs("<code>", out);
    html_cstr(out, report_finding_fingerprint(f, fbuf));
    fputs("</code></dd>", out);
    html_dt(out, "Span");
    fprintf(out, "L%u:%u to L%u:%u, byte %llu, %llu bytes</dd>", l->line, l->column,
            l->end_line, l->end_column, (unsigned long long)l->offset,
            (unsigned long long)l->length);
    if (l->commit) {
        html_dt(out, "Commit");
        html_cstr(out, l->commit);
        if (l->author || l->email) {
            fputs(" by ", out);
            html_cstr(out, l->author);
            if (l->email) {
                fputs(" &lt;", out);
                html_cstr(out, l->email);
                fputs("&gt;", out);
            }
        }
        if (l->date) {
            fputs(" on ", out);
            html_cstr(out, l->date);
        }
        fputs("</dd>", out);
    }
    for (size_t i = 0; f->companions && i < f->companion_count; i++) {
        const report_companion *c = &f->companions[i];
        size_t vlen;
        const char *v =
            report_shown_value(c->value, c->value ? strlen(c->value) : 0, show, vbuf, &vlen);
        html_dt(out, "Companion");
        html_cstr(out, c->name);
        fputs(": <code>", out);
        html_text(out, v, vlen, 0);
        fprintf(out, "</code> (L%u)</dd>", c->line);
    }
    if (f->decoded_count && f->decoded_from) {
        html_dt(out, "Decoded from");
        for (size_t i = 0; i < f->decoded_count; i++) {
            if (i)
                fputs(" &gt; ", out);
            html_cstr(out, f->decoded_from[i] ? f->decoded_from[i] : "?");
        }
        fputs("</dd>", out);
    }
    if (f->verify_status) {
        html_dt(out, "Verified");
        html_cstr(out, f->verify_status);
        if (f->verify_reason && f->verify_reason[0]) {
            fputs(" (", out);
            html_cstr(out, f->verify_reason);
            fputc(')', out);
        }
        fputs("</dd>", out);
    }
    for (size_t i = 1; f->locations && i < f->location_count; i++) {
        const report_location *o = &f->locations[i];
        html_dt(out, "Also at");
        html_cstr(out, o->path);
        fprintf(out, ":%u:%u", o->line, o->column);
        if (o->commit) {
            fputs(" (commit ", out);
            html_cstr(out, o->commit);
            fputc(')', out);
        }
        fputs("</dd>", out);
    }
    fputs("</dl>", out);
    if (l->context && l->context[0]) {
        fputs("<pre>", out);
        html_text(out, l->context, strlen(l->context), 1);
        fputs("</pre>", out);
    }
    fputs("</td></tr>\n", out);
}

static void html_row(FILE *out, const report_finding *f, int show)
{
    static const report_location nowhere;
    const report_location *l = f->location_count && f->locations ? &f->locations[0] : &nowhere;
    const kh_detector_info *d = f->detector;
    const char *sev = report_severity_name(f->severity);
    double conf = f->confidence == f->confidence ? f->confidence : 0.0;
    char rbuf[64];

    fprintf(out, "<tr class=\"f\" tabindex=\"0\" aria-expanded=\"false\" data-sev=\"%d\" "
                 "data-conf=\"%.4f\">",
            (int)f->severity, conf);
    fprintf(out, "<td><span class=\"sev sev-%s\">%s</span></td>", sev, sev);
    fprintf(out, "<td>%.2f</td><td>", conf);
    html_cstr(out, d && d->name && d->name[0] ? d->name : d ? d->id : "unknown");
    fputs("<div class=\"id\">", out);
    html_cstr(out, d ? d->id : "");
    fputs("</div></td><td class=\"loc\">", out);
    html_cstr(out, l->path);
    fprintf(out, ":%u</td><td><code>", l->line);
    if (show)
        html_text(out, f->secret, f->secret ? f->secret_len : 0, 0);
    else
        html_cstr(out, report_finding_redacted(f, rbuf));
    fputs("</code></td></tr>\n", out);
    html_details(out, f, show);
}

int report_write_html(FILE *out, const report_opts *opts, const report_finding *findings,
                      size_t count, const report_stats *stats)
{
    fputs(html_head, out);
    html_summary(out, opts, findings, count, stats);
    /* The script rewrites this as the filter changes. */
    fprintf(out, "<p id=\"count\" aria-live=\"polite\">%zu finding%s</p>\n", count,
            count == 1 ? "" : "s");
    fputs(html_table_head, out);
    for (size_t i = 0; i < count && !ferror(out); i++)
        html_row(out, &findings[i], opts->show_secrets);
    fputs(html_tail, out);
    return 0;
}
