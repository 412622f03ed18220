/*
 * top.h - what the files of worker-top(1) share: a snapshot of the worker
 * trees and its workers (snap.c), the socket they come from (snap.c), one
 * row of text per worker (row.c), and the screen (screen.c).  main.c
 * reads the options and prints a snapshot for -1.
 */
#ifndef TOP_H
#define TOP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

/* The exit statuses, as worker-top(1) lists them. */
#define EXIT_GONE	1	/* cannot connect, or the server went away */
#define EXIT_USAGE	2
#define EXIT_BADSNAP	3	/* a snapshot the protocol does not allow */

/* One worker of a snapshot.  Strings point into the snapshot's JSON. */
struct wk {
	const char *name;
	const char *state;
	const char *doing;
	json_int_t id;
	uint64_t handled;
	uint64_t queued;
	uint64_t queued_max;
	uint64_t restarts;
	uint64_t listener_ns;
	uint64_t listener_max_ns;
	double since_bp;
	/* Against the previous snapshot; negative: not known (yet). */
	double rate;		/* events/s */
	double lsn_pct;		/* % of the interval spent in listeners */
	bool grew;		/* queued more than in the previous snapshot */
	bool collapsed;		/* its subtree is hidden on the screen */
	int depth;
	size_t order;		/* its place among its siblings, as sent */
	size_t ndesc;		/* all its descendants */
	size_t nkids;
	struct wk **kids;
};

/* One answer of the server: {"version":1,"pid":...,"now":...,"trees":[]}. */
struct snap {
	json_t *doc;
	json_int_t pid;
	double now;		/* the server's CLOCK_MONOTONIC, s */
	double rate;		/* events/s of all the workers, or negative */
	size_t n;
	struct wk *w;		/* the workers, each before its children */
	struct wk **links;	/* the roots, then each worker's children */
	size_t nroots;
	struct wk **byid;	/* w sorted by id, to match the next one */
	struct wk **rows;	/* the order to show them in */
	size_t nrows;
};

/* The socket and the bytes read from it that no line has taken yet. */
struct conn {
	const char *path;
	int fd;
	char *buf;
	size_t len;
	size_t cap;
};

enum sort_key { SORT_TREE, SORT_NAME, SORT_RATE, SORT_QUEUE, SORT_LSN };

/* main.c: leave the screen if it is on, say why, and exit. */
void die(int status, const char *fmt, ...)
    __attribute__((noreturn, format(printf, 2, 3)));
void *xcalloc(size_t n, size_t size);
double mono(void);

/* snap.c: the socket.  conn_fill() when poll() says it is readable;
 * conn_line() gives a complete line, which conn_drop() takes away;
 * conn_close() ends the session. */
void conn_open(struct conn *c, const char *path);
void conn_ask(struct conn *c);
void conn_fill(struct conn *c);
char *conn_line(struct conn *c, size_t *len);
void conn_drop(struct conn *c, size_t len);
void conn_close(struct conn *c);

/* snap.c: the snapshots.  snap_parse() dies (EXIT_BADSNAP) on a bad one;
 * snap_derive() works out the rates against prev (NULL: none);
 * snap_rows() sorts the siblings and lists the rows, all of them or those
 * outside collapsed subtrees. */
struct snap *snap_parse(const char *path, const char *line, size_t len);
void snap_derive(struct snap *s, const struct snap *prev);
void snap_sort_by(enum sort_key key, bool reverse);
void snap_rows(struct snap *s, bool all);
void snap_free(struct snap *s);

/* row.c: the text of the rows, in the same columns for -1 and the
 * screen.  names: the widest name cell. */
void fmt_real(char *dst, size_t size, double v);
int format_titles(char *dst, size_t size, int namew);
int format_row(char *dst, size_t size, const struct wk *w, int namew,
    double stuck);
int name_width(const struct snap *s);

/* screen.c: worker-top's screen until the user quits; its exit status. */
int run_screen(struct conn *c, double interval, double stuck);
/* True while curses owns the terminal. */
extern bool curses_on;

#endif
