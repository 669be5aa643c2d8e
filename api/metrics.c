/* Prometheus exposition: text format 0.0.4 and OpenMetrics 1.0.0. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "api-impl.h"

struct api_metrics {
	enum api_metrics_format fmt;
	struct buf b;
	char name[128];		/* current family's metric name */
	enum api_metric_type type;
	int have_family, finished, err;
};

int api_metrics_new(enum api_metrics_format fmt, struct api_metrics **out)
{
	struct api_metrics *m = calloc(1, sizeof(*m));

	*out = NULL;
	if (!m)
		return -ENOMEM;
	m->fmt = fmt;
	*out = m;
	return 0;
}

void api_metrics_free(struct api_metrics *m)
{
	if (!m)
		return;
	free(m->b.p);
	free(m);
}

static int name_ok(const char *s, int label)
{
	if (!s || !*s)
		return 0;
	for (const char *p = s; *p; p++) {
		char c = *p;
		int alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
			    (!label && c == ':');
		if (!alpha && !(p != s && c >= '0' && c <= '9'))
			return 0;
	}
	return 1;
}

static void escaped(struct buf *b, const char *s, int quote)
{
	for (; *s; s++) {
		if (*s == '\\')
			buf_puts(b, "\\\\");
		else if (*s == '\n')
			buf_puts(b, "\\n");
		else if (*s == '"' && quote)
			buf_puts(b, "\\\"");
		else
			buf_put(b, s, 1);
	}
}

const char *api_metrics_content_type(enum api_metrics_format fmt)
{
	return fmt == API_METRICS_OPENMETRICS ?
		"application/openmetrics-text; version=1.0.0; charset=utf-8" :
		"text/plain; version=0.0.4; charset=utf-8";
}

int api_metrics_family(struct api_metrics *m, const char *name, enum api_metric_type type,
		       const char *help)
{
	size_t l = name ? strlen(name) : 0;

	if (m->finished || !name_ok(name, 0) || l >= sizeof(m->name) ||
	    (type == API_COUNTER && (l < 7 || strcmp(name + l - 6, "_total"))))
		return m->err = -EINVAL;
	memcpy(m->name, name, l + 1);
	m->type = type;
	m->have_family = 1;
	/* OpenMetrics names the counter family without its _total suffix */
	size_t fl = (type == API_COUNTER && m->fmt == API_METRICS_OPENMETRICS) ? l - 6 : l;
	const char *tn = type == API_COUNTER ? "counter" : type == API_GAUGE ? "gauge" : "histogram";
	if (help) {
		buf_puts(&m->b, "# HELP ");
		buf_put(&m->b, name, fl);
		buf_put(&m->b, " ", 1);
		escaped(&m->b, help, m->fmt == API_METRICS_OPENMETRICS);
		buf_put(&m->b, "\n", 1);
	}
	buf_puts(&m->b, "# TYPE ");
	buf_put(&m->b, name, fl);
	buf_printf(&m->b, " %s\n", tn);
	return m->b.oom ? -ENOMEM : 0;
}

static void number(struct buf *b, double v)
{
	if (isnan(v))
		buf_puts(b, "NaN");
	else if (isinf(v))
		buf_puts(b, v > 0 ? "+Inf" : "-Inf");
	else if (v == floor(v) && fabs(v) < 1e15)
		buf_printf(b, "%.0f", v);
	else
		buf_printf(b, "%.17g", v);
}

static int labels_ok(const char *const *labels)
{
	for (int i = 0; labels && labels[i]; i += 2) {
		if (!name_ok(labels[i], 1) || !labels[i + 1] || !strcmp(labels[i], "le"))
			return 0;
	}
	return 1;
}

static void sample(struct api_metrics *m, const char *suffix, const char *const *labels,
		   const char *le, double v)
{
	struct buf *b = &m->b;
	int n = 0;

	buf_puts(b, m->name);
	buf_puts(b, suffix);
	for (int i = 0; labels && labels[i]; i += 2, n++) {
		buf_put(b, n ? "," : "{", 1);
		buf_puts(b, labels[i]);
		buf_puts(b, "=\"");
		escaped(b, labels[i + 1], 1);
		buf_put(b, "\"", 1);
	}
	if (le) {
		buf_puts(b, n ? ",le=\"" : "{le=\"");
		buf_puts(b, le);
		buf_put(b, "\"", 1);
		n++;
	}
	if (n)
		buf_put(b, "}", 1);
	buf_put(b, " ", 1);
	number(b, v);
	buf_put(b, "\n", 1);
}

int api_metrics_value(struct api_metrics *m, const char *const *labels, double v)
{
	if (m->finished || !m->have_family || m->type == API_HISTOGRAM || !labels_ok(labels))
		return m->err = -EINVAL;
	sample(m, "", labels, NULL, v);
	return m->b.oom ? -ENOMEM : 0;
}

int api_metrics_histogram(struct api_metrics *m, const char *const *labels, const double *bounds,
			  const uint64_t *counts, int n, double sum)
{
	uint64_t cum = 0;
	char le[40];

	if (m->finished || !m->have_family || m->type != API_HISTOGRAM || n < 0 ||
	    !labels_ok(labels))
		return m->err = -EINVAL;
	for (int i = 1; i < n; i++)
		if (!(bounds[i] > bounds[i - 1]))
			return m->err = -EINVAL;
	for (int i = 0; i < n; i++) {
		cum += counts[i];
		struct buf t = {0};
		number(&t, bounds[i]);
		/* OpenMetrics wants canonical floats for le: "1.0", not "1" */
		snprintf(le, sizeof(le), "%s%s", t.p ? t.p : "0",
			 t.p && !strpbrk(t.p, ".eEIN") ? ".0" : "");
		free(t.p);
		sample(m, "_bucket", labels, le, (double)cum);
	}
	cum += counts[n];
	sample(m, "_bucket", labels, "+Inf", (double)cum);
	sample(m, "_sum", labels, NULL, sum);
	sample(m, "_count", labels, NULL, (double)cum);
	return m->b.oom ? -ENOMEM : 0;
}

const char *api_metrics_text(struct api_metrics *m, size_t *len)
{
	if (!m->finished) {
		if (m->fmt == API_METRICS_OPENMETRICS)
			buf_puts(&m->b, "# EOF\n");
		m->finished = 1;
	}
	if (len)
		*len = m->b.len;
	return m->b.p ? m->b.p : "";
}

/* the server's own families, after the daemon's */
static void own_families(struct api_server *s, struct api_metrics *m)
{
	static const char *const cls[] = {"1xx", "2xx", "3xx", "4xx", "5xx", "other"};

	api_metrics_family(m, "splitd_api_responses_total", API_COUNTER,
			   "HTTP responses sent, by status class.");
	for (int i = 0; i < 6; i++) {
		const char *l[] = {"class", cls[i], NULL};
		api_metrics_value(m, l, (double)atomic_load(&s->responses[i]));
	}
	api_metrics_family(m, "splitd_api_rejected_total", API_COUNTER,
			   "Requests refused before reaching a handler, by reason.");
	const char *busy[] = {"reason", "queue_full", NULL};
	const char *size[] = {"reason", "too_large", NULL};
	const char *auth[] = {"reason", "unauthorized", NULL};
	const char *slow[] = {"reason", "too_slow", NULL};	/* closed past a deadline */
	api_metrics_value(m, busy, (double)atomic_load(&s->rejected_busy));
	api_metrics_value(m, size, (double)atomic_load(&s->rejected_size));
	api_metrics_value(m, auth, (double)atomic_load(&s->rejected_auth));
	api_metrics_value(m, slow, (double)atomic_load(&s->closed_slow));
	api_metrics_family(m, "splitd_api_inflight_requests", API_GAUGE,
			   "Inference requests accepted and not yet answered.");
	api_metrics_value(m, NULL, atomic_load(&s->inflight));
	api_metrics_family(m, "splitd_api_inflight_limit", API_GAUGE,
			   "Inference requests in flight beyond which the API answers 503.");
	api_metrics_value(m, NULL, s->opts.max_inflight);
}

void api_route_metrics(struct api_call *c)
{
	struct api_server *s = c->srv;
	enum api_metrics_format fmt = c->accept_openmetrics ? API_METRICS_OPENMETRICS :
							      API_METRICS_TEXT;
	struct api_metrics *m;
	int rc;

	if (api_metrics_new(fmt, &m)) {
		api_call_error(c, 500, "out of memory");
		return;
	}
	rc = s->h.metrics ? s->h.metrics(s->h.ctx, m) : 0;
	if (!rc)
		rc = m->err;
	if (rc) {
		api_metrics_free(m);
		api_call_error(c, 500, "rendering the metrics failed (%s)", strerror(-rc));
		return;
	}
	own_families(s, m);
	size_t len;
	api_metrics_text(m, &len);
	if (m->b.oom || m->err) {
		api_metrics_free(m);
		api_call_error(c, 500, "rendering the metrics failed");
		return;
	}
	char *body = m->b.p;
	m->b.p = NULL;
	api_metrics_free(m);
	api_call_respond(c, 200, api_metrics_content_type(fmt), body, len);
}
