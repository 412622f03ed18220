/*
 * json.c - worker_dump_json(): the trees as one JSON document, for tools.
 *
 * DESIGN
 *
 * The document is written into memory while tree_lock holds the trees
 * still (no worker is freed under it, tree.c), then copied to the
 * caller's stream with the lock released: a stream that blocks (a pipe,
 * a slow socket) must not hold up every worker that makes a child.
 * worker_inspect() sends the same bytes (worker__json_snapshot()).
 *
 * It is one line, so that a client can read snapshots line by line.
 * Names are user bytes: quotes, backslashes and control bytes are
 * escaped, and bytes that are not UTF-8 become U+FFFD, so the document
 * is valid JSON whatever a name holds.  Numbers are written without
 * printf's %f, whose decimal point follows the program's locale.
 * The field names are an interface (worker_stats(3)): add, never rename.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "internal.h"

#define JSON_VERSION 1
#define JSON_DEPTH_MAX 512	/* levels of children written */

/* The length of the UTF-8 sequence at s (at most n bytes), 0 if invalid. */
static size_t
utf8_length(const unsigned char *s, size_t n)
{
	size_t len;
	uint32_t cp;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		len = 2, cp = s[0] & 0x1f;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		len = 3, cp = s[0] & 0x0f;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		len = 4, cp = s[0] & 0x07;
	else
		return 0;
	if (len > n)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	/* Overlong forms, UTF-16 surrogates, beyond U+10FFFF. */
	if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
	    (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
		return 0;
	return len;
}

static void
put_string(FILE *f, const char *str)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t n = strlen(str);

	fputc('"', f);
	while (n > 0) {
		size_t len = utf8_length(s, n);

		if (len == 0) {
			fputs("\\ufffd", f);
			len = 1;
		} else if (*s == '"' || *s == '\\') {
			fputc('\\', f);
			fputc(*s, f);
		} else if (*s < 0x20) {
			fprintf(f, "\\u%04x", *s);
		} else {
			fwrite(s, 1, len, f);
		}
		s += len;
		n -= len;
	}
	fputc('"', f);
}

/* Nanoseconds as seconds with six decimals, whatever the locale. */
static void
put_seconds(FILE *f, uint64_t ns)
{
	uint64_t us = ns / 1000;

	fprintf(f, "%llu.%06llu", (unsigned long long)(us / 1000000),
	    (unsigned long long)(us % 1000000));
}

static void
put_count(FILE *f, const char *field, uint64_t n)
{
	fprintf(f, ",\"%s\":%llu", field, (unsigned long long)n);
}

/* One worker's fields, up to its children; a frame of its own, so that
 * the recursion of put_worker() costs little stack per level. */
static __attribute__((noinline)) void
put_fields(FILE *f, worker_t *w)
{
	worker_stats_t st;

	worker_stats(w, &st);
	fputs("{\"name\":", f);
	put_string(f, w->name);
	fprintf(f, ",\"id\":%llu,\"state\":\"%s\",\"daemon\":%s",
	    (unsigned long long)w->id, worker__state_name(w),
	    w->daemon ? "true" : "false");
	fputs(",\"doing\":", f);
	put_string(f, st.doing);
	put_count(f, "handled", st.handled);
	put_count(f, "queued", st.queued);
	put_count(f, "queued_max", st.queued_max);
	put_count(f, "rejected", st.rejected);
	put_count(f, "listener_errors", st.listener_errors);
	put_count(f, "restarts", st.restarts);
	put_count(f, "timers", st.timers);
	put_count(f, "watches", st.watches);
	put_count(f, "listener_ns", st.listener_ns);
	put_count(f, "listener_max_ns", st.listener_max_ns);
	fputs(",\"since_breakpoint\":", f);
	put_seconds(f, (uint64_t)(st.since_breakpoint * 1e9));
}

static void
put_worker(FILE *f, worker_t *w, unsigned depth)
{
	struct list_node *n;
	const char *sep = "";

	put_fields(f, w);
	/* Parsers refuse deeper documents (Jansson's limit is 2048). */
	if (depth >= JSON_DEPTH_MAX && !list_empty(&w->tree.children)) {
		fputs(",\"truncated\":true,\"children\":[]}", f);
		return;
	}
	fputs(",\"children\":[", f);
	list_for_each(n, &w->tree.children) {
		fputs(sep, f);
		put_worker(f, container_of(n, worker_t, tree.sibling),
		    depth + 1);
		sep = ",";
	}
	fputs("]}", f);
}

struct tops {
	FILE *f;
	const char *sep;
};

/* A tree worth showing: a running top-level worker, or a root. */
static bool
put_top(worker_t *w, void *ctx)
{
	struct tops *t = ctx;

	if (!w->is_root && !worker__running(w))
		return true;
	fputs(t->sep, t->f);
	put_worker(t->f, w, 0);
	t->sep = ",";
	return true;
}

/*
 * The document for root (NULL: every tree) in memory: *buf, malloc'd,
 * *len bytes and a newline.  0 or ENOMEM.
 */
int
worker__json_snapshot(const worker_t *root, char **buf, size_t *len)
{
	FILE *f = open_memstream(buf, len);
	struct tops tops = { f, "" };
	int rc;

	if (f == NULL)
		return ENOMEM;
	worker__timing_on();
	fprintf(f, "{\"version\":%d,\"pid\":%ld,\"now\":", JSON_VERSION,
	    (long)getpid());
	put_seconds(f, worker__now_ns());
	fputs(",\"trees\":[", f);
	pthread_mutex_lock(&worker__tree_lock);
	if (root != NULL)
		put_worker(f, (worker_t *)root, 0);
	else
		worker__each_top_locked(put_top, &tops);
	pthread_mutex_unlock(&worker__tree_lock);
	fputs("]}\n", f);
	rc = ferror(f) ? ENOMEM : 0;
	if (fclose(f) != 0)
		rc = ENOMEM;
	if (rc != 0) {
		free(*buf);
		*buf = NULL;
	}
	return rc;
}

int
worker_dump_json(FILE *out, const worker_t *root)
{
	char *buf;
	size_t len;
	int rc;

	if (out == NULL)
		return EINVAL;
	if (root != NULL && worker__gone(root))
		return ESRCH;
	if ((rc = worker__json_snapshot(root, &buf, &len)) != 0)
		return rc;
	if (fwrite(buf, 1, len, out) != len || fflush(out) != 0)
		rc = EIO;
	free(buf);
	return rc;
}
