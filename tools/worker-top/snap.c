/*
 * snap.c - worker-top's socket and snapshots: reading the lines, parsing
 * them with Jansson, the rates against the previous snapshot, and the
 * order of the rows.
 *
 * DESIGN: a snapshot is parsed in two passes, one that counts the workers
 * and checks the shape of the arrays, and one that fills a flat array of
 * struct wk, each worker before its children, whose kids point into one
 * array of links; its strings point into the JSON document, which lives
 * as long as the snapshot.  Every field worker-top shows must be there
 * with its type, and a snapshot that breaks that is an error, not a
 * guess: a tool that looks inside a daemon must not show what is not
 * there.  Fields it does not show are not checked, so the server may add
 * some.  A snapshot is matched with the one before by worker id (byid,
 * sorted), which also carries over what the user folded.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "top.h"

#define SNAP_MAX	(64u << 20)	/* the longest line we accept */

/*
 * The order of siblings.  Statics, because qsort() passes no context to
 * its comparison; worker-top sorts one tree at a time.
 */
static enum sort_key sort_key = SORT_TREE;
static bool sort_reverse;

/* ---- The socket ----------------------------------------------------- */

void
conn_open(struct conn *c, const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };

	c->path = path;
	if (strlen(path) >= sizeof(sa.sun_path))
		die(EXIT_GONE, "%s: path too long for a Unix socket", path);
	strcpy(sa.sun_path, path);
	if ((c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
	    connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
		die(EXIT_GONE, "%s: %s", path, strerror(errno));
}

/* Asks for one more snapshot. */
void
conn_ask(struct conn *c)
{
	ssize_t n;

	while ((n = write(c->fd, "\n", 1)) < 0 && errno == EINTR)
		;
	if (n != 1)
		die(EXIT_GONE, "%s: the server is gone (%s)", c->path,
		    strerror(errno));
}

/* Reads what the socket holds; call it when poll() says it is readable. */
void
conn_fill(struct conn *c)
{
	ssize_t n;

	if (c->cap - c->len < 65536) {
		if (c->cap >= SNAP_MAX)
			die(EXIT_BADSNAP, "%s: a snapshot longer than %u bytes",
			    c->path, SNAP_MAX);
		c->cap = c->cap == 0 ? 131072 : 2 * c->cap;
		if ((c->buf = realloc(c->buf, c->cap)) == NULL)
			die(EXIT_GONE, "out of memory");
	}
	n = read(c->fd, c->buf + c->len, c->cap - c->len - 1);
	if (n < 0 && errno == EINTR)
		return;
	if (n == 0)
		die(EXIT_GONE, "%s: the server closed the connection",
		    c->path);
	if (n < 0)
		die(EXIT_GONE, "%s: %s", c->path, strerror(errno));
	c->len += (size_t)n;
}

/*
 * The first complete line, NUL-terminated in place, and its length in
 * *len; NULL if none is complete yet.  conn_drop() takes it away.
 */
char *
conn_line(struct conn *c, size_t *len)
{
	char *nl = c->len == 0 ? NULL : memchr(c->buf, '\n', c->len);

	if (nl == NULL)
		return NULL;
	*nl = '\0';
	*len = (size_t)(nl - c->buf);
	return c->buf;
}

void
conn_drop(struct conn *c, size_t len)
{
	c->len -= len + 1;
	memmove(c->buf, c->buf + len + 1, c->len);
}

/* Closing is how a client says it is done. */
void
conn_close(struct conn *c)
{
	close(c->fd);
	c->fd = -1;
	free(c->buf);
	c->buf = NULL;
	c->len = c->cap = 0;
}

/* ---- Parsing a snapshot --------------------------------------------- */

struct parse {
	struct snap *s;
	size_t next;		/* the next free struct wk */
	size_t next_link;	/* the next free slot of s->links */
	char why[200];		/* what is wrong, if anything */
};

static bool __attribute__((format(printf, 2, 3)))
bad(struct parse *p, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(p->why, sizeof(p->why), fmt, ap);
	va_end(ap);
	return false;
}

/* Counts the workers of a "trees" or "children" array, checking shapes. */
static bool
count(struct parse *p, json_t *arr, size_t *n)
{
	json_t *w, *kids;
	size_t i;

	if (!json_is_array(arr))
		return bad(p, "\"trees\" or \"children\" is not an array");
	json_array_foreach(arr, i, w) {
		if (!json_is_object(w))
			return bad(p, "a worker that is not an object");
		kids = json_object_get(w, "children");
		(*n)++;
		if (kids != NULL && !count(p, kids, n))
			return false;
	}
	return true;
}

static bool
get_str(struct parse *p, json_t *o, const char *name, const char *key,
    const char **out)
{
	json_t *v = json_object_get(o, key);

	if (!json_is_string(v))
		return bad(p, "worker %s: \"%s\" is missing or not a string",
		    name, key);
	*out = json_string_value(v);
	return true;
}

static bool
get_u64(struct parse *p, json_t *o, const char *name, const char *key,
    uint64_t *out)
{
	json_t *v = json_object_get(o, key);

	if (!json_is_integer(v) || json_integer_value(v) < 0)
		return bad(p, "worker %s: \"%s\" is missing or not a count",
		    name, key);
	*out = (uint64_t)json_integer_value(v);
	return true;
}

/* Fills one struct wk from o, its children after it. */
static bool
fill(struct parse *p, json_t *o, struct wk *w, int depth)
{
	json_t *kids = json_object_get(o, "children"), *v;
	const char *name;
	size_t i;

	if (!get_str(p, o, "?", "name", &w->name))
		return false;
	name = w->name;
	v = json_object_get(o, "id");
	if (!json_is_integer(v))
		return bad(p, "worker %s: \"id\" is missing or not an integer",
		    name);
	w->id = json_integer_value(v);
	v = json_object_get(o, "since_breakpoint");
	if (!json_is_number(v))
		return bad(p, "worker %s: \"since_breakpoint\" is missing or "
		    "not a number", name);
	w->since_bp = json_number_value(v);
	if (!get_str(p, o, name, "state", &w->state) ||
	    !get_str(p, o, name, "doing", &w->doing) ||
	    !get_u64(p, o, name, "handled", &w->handled) ||
	    !get_u64(p, o, name, "queued", &w->queued) ||
	    !get_u64(p, o, name, "queued_max", &w->queued_max) ||
	    !get_u64(p, o, name, "restarts", &w->restarts) ||
	    !get_u64(p, o, name, "listener_ns", &w->listener_ns) ||
	    !get_u64(p, o, name, "listener_max_ns", &w->listener_max_ns))
		return false;
	w->depth = depth;
	w->nkids = kids == NULL ? 0 : json_array_size(kids);
	/* The children's slots first, so that theirs come after. */
	w->kids = p->s->links + p->next_link;
	p->next_link += w->nkids;
	for (i = 0; i < w->nkids; i++) {
		w->kids[i] = &p->s->w[p->next++];
		w->kids[i]->order = i;
		if (!fill(p, json_array_get(kids, i), w->kids[i], depth + 1))
			return false;
		w->ndesc += 1 + w->kids[i]->ndesc;
	}
	return true;
}

static int
cmp_id(const void *a, const void *b)
{
	const struct wk *x = *(struct wk *const *)a;
	const struct wk *y = *(struct wk *const *)b;

	return x->id < y->id ? -1 : x->id > y->id;
}

/* The top level: {"version":1,"pid":...,"now":...,"trees":[...]}. */
static bool
parse_doc(struct parse *p, json_t *doc)
{
	struct snap *s = p->s;
	json_t *trees = json_object_get(doc, "trees"), *v;
	size_t i;

	if (!json_is_object(doc))
		return bad(p, "not a JSON object");
	v = json_object_get(doc, "version");
	if (!json_is_integer(v) || json_integer_value(v) != 1)
		return bad(p, "not version 1 of the protocol");
	v = json_object_get(doc, "pid");
	if (!json_is_integer(v))
		return bad(p, "\"pid\" is missing or not an integer");
	s->pid = json_integer_value(v);
	v = json_object_get(doc, "now");
	if (!json_is_number(v))
		return bad(p, "\"now\" is missing or not a number");
	s->now = json_number_value(v);
	if (!count(p, trees, &s->n))
		return false;
	s->w = xcalloc(s->n, sizeof(*s->w));
	s->links = xcalloc(s->n, sizeof(*s->links));
	s->nroots = json_array_size(trees);
	p->next = p->next_link = s->nroots;
	for (i = 0; i < s->nroots; i++) {
		s->links[i] = &s->w[i];
		s->w[i].order = i;
		if (!fill(p, json_array_get(trees, i), &s->w[i], 0))
			return false;
	}
	return true;
}

void
snap_free(struct snap *s)
{
	if (s == NULL)
		return;
	json_decref(s->doc);
	free(s->w);
	free(s->links);
	free(s->byid);
	free(s->rows);
	free(s);
}

/* The snapshot in line, or death with status 3 and the reason. */
struct snap *
snap_parse(const char *path, const char *line, size_t len)
{
	struct parse p = { .s = xcalloc(1, sizeof(struct snap)) };
	json_error_t err;
	size_t i;

	if ((p.s->doc = json_loadb(line, len, 0, &err)) == NULL)
		die(EXIT_BADSNAP, "%s: malformed snapshot: %s (column %d)",
		    path, err.text, err.column);
	if (!parse_doc(&p, p.s->doc)) {
		/* The reason may quote a name: no control characters. */
		for (i = 0; p.why[i] != '\0'; i++)
			if ((unsigned char)p.why[i] < 0x20 || p.why[i] == 0x7f)
				p.why[i] = '?';
		die(EXIT_BADSNAP, "%s: malformed snapshot: %s", path, p.why);
	}
	p.s->byid = xcalloc(p.s->n, sizeof(*p.s->byid));
	p.s->rows = xcalloc(p.s->n, sizeof(*p.s->rows));
	for (i = 0; i < p.s->n; i++)
		p.s->byid[i] = &p.s->w[i];
	qsort(p.s->byid, p.s->n, sizeof(*p.s->byid), cmp_id);
	return p.s;
}

static struct wk *
snap_find(const struct snap *s, json_int_t id)
{
	struct wk key = { .id = id }, *k = &key, **found;

	if (s == NULL || s->n == 0)
		return NULL;
	found = bsearch(&k, s->byid, s->n, sizeof(*s->byid), cmp_id);
	return found == NULL ? NULL : *found;
}

/* The rates and the growth of s, against prev (NULL: the first). */
void
snap_derive(struct snap *s, const struct snap *prev)
{
	double dt = prev == NULL ? 0 : s->now - prev->now;
	struct wk *w, *o;
	size_t i;

	s->rate = dt > 0 ? 0 : -1;
	for (i = 0; i < s->n; i++) {
		w = &s->w[i];
		w->rate = w->lsn_pct = -1;
		if ((o = snap_find(prev, w->id)) == NULL)
			continue;
		w->collapsed = o->collapsed;
		w->grew = w->queued > o->queued;
		/* Counters only grow; a smaller one is another worker that
		 * took the id, with no past to compare. */
		if (dt <= 0 || w->handled < o->handled ||
		    w->listener_ns < o->listener_ns)
			continue;
		w->rate = (double)(w->handled - o->handled) / dt;
		w->lsn_pct = (double)(w->listener_ns - o->listener_ns) /
		    (dt * 1e9) * 100;
		s->rate += w->rate;
	}
}

/* ---- Sorting and the rows ------------------------------------------- */

void
snap_sort_by(enum sort_key key, bool reverse)
{
	sort_key = key;
	sort_reverse = reverse;
}

static double
sort_value(const struct wk *w)
{
	switch (sort_key) {
	case SORT_RATE:
		return w->rate;
	case SORT_QUEUE:
		return (double)w->queued;
	case SORT_LSN:
		return w->lsn_pct;
	default:
		return 0;
	}
}

/* Biggest first, names in order; ties keep the order the server sent. */
static int
cmp_sibling(const void *a, const void *b)
{
	const struct wk *x = *(struct wk *const *)a;
	const struct wk *y = *(struct wk *const *)b;
	double kx = sort_value(x), ky = sort_value(y);
	int c = kx > ky ? -1 : kx < ky;

	if (sort_key == SORT_NAME)
		c = strcmp(x->name, y->name);
	if (c == 0)
		c = x->order < y->order ? -1 : x->order > y->order;
	return sort_reverse ? -c : c;
}

/* Sorts among siblings only, so that the tree stays a tree. */
static void
sort_tree(struct wk **v, size_t n)
{
	size_t i;

	qsort(v, n, sizeof(*v), cmp_sibling);
	for (i = 0; i < n; i++)
		sort_tree(v[i]->kids, v[i]->nkids);
}

static void
add_rows(struct snap *s, struct wk **v, size_t n, bool all)
{
	size_t i;

	for (i = 0; i < n; i++) {
		s->rows[s->nrows++] = v[i];
		if (all || !v[i]->collapsed)
			add_rows(s, v[i]->kids, v[i]->nkids, all);
	}
}

/* Sorts s and lists its rows; all: the collapsed subtrees too. */
void
snap_rows(struct snap *s, bool all)
{
	sort_tree(s->links, s->nroots);
	s->nrows = 0;
	add_rows(s, s->links, s->nroots, all);
}
