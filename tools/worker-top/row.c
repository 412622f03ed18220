/*
 * row.c - one worker as one line of text, in fixed columns, for -1 and
 * for the screen alike: NAME (indented by depth), STATE, EV/S, QUEUE,
 * HIGH, LSN%, LMAXms, RST, OUTSIDE, F and DOING, as worker-top(1)
 * explains them.
 *
 * DESIGN: every string of a snapshot is someone else's bytes, so each
 * goes through sanitize() before it reaches a terminal; the columns are
 * counted in bytes, which sanitize() makes equal to characters.  Numbers
 * keep to their column's width, with a unit when they would not.
 */
#include <stdio.h>
#include <string.h>

#include "top.h"

/*
 * Copies s into dst (size > 0), each character outside printable ASCII as
 * one '?', a UTF-8 sequence included: names are anyone's bytes, and a
 * control character would move the terminal's cursor.
 */
static size_t
sanitize(char *dst, size_t size, const char *s)
{
	size_t n = 0;
	unsigned char c;

	for (; (c = (unsigned char)*s) != '\0' && n + 1 < size; s++) {
		if ((c & 0xc0) == 0x80)
			continue;	/* inside a UTF-8 sequence */
		dst[n++] = c >= 0x20 && c < 0x7f ? (char)c : '?';
	}
	dst[n] = '\0';
	return n;
}

/* The name cell: indented by depth, with the hidden count if collapsed. */
static size_t
name_cell(char *dst, size_t size, const struct wk *w)
{
	size_t n = (size_t)w->depth * 2;

	if (n > size / 2)
		n = size / 2;	/* deeper trees lose some indentation */
	memset(dst, ' ', n);
	n += sanitize(dst + n, size - n, w->name);
	if (w->collapsed && w->nkids > 0)
		n += (size_t)snprintf(dst + n, size - n, " (+%zu)", w->ndesc);
	return n < size ? n : size - 1;
}

/* A count in at most 7 columns, with k, M or G when it needs them. */
static void
fmt_count(char *dst, size_t size, uint64_t v)
{
	static const char units[] = "kMGTPE";
	double d = (double)v;
	int u = -1;

	if (v < 10000000) {
		snprintf(dst, size, "%llu", (unsigned long long)v);
		return;
	}
	while (d >= 10000 && u < 5) {
		d /= 1000;
		u++;
	}
	snprintf(dst, size, "%.0f%c", d, units[u]);
}

void
fmt_real(char *dst, size_t size, double v)
{
	if (v < 0)
		snprintf(dst, size, "-");
	else if (v < 100)
		snprintf(dst, size, "%.1f", v);
	else if (v < 1e8)
		snprintf(dst, size, "%.0f", v);
	else
		snprintf(dst, size, "%.2g", v);
}

#define ROW_FMT	"%-*s %-8s %9s %7s %7s %6s %7s %4s %7s %-2s %s"

/* The column titles, in the widths of ROW_FMT. */
int
format_titles(char *dst, size_t size, int namew)
{
	return snprintf(dst, size, ROW_FMT, namew, "NAME", "STATE", "EV/S",
	    "QUEUE", "HIGH", "LSN%", "LMAXms", "RST", "OUTSIDE", "F",
	    "DOING");
}

/* One row; its flags say S (stuck) and G (queue growing). */
int
format_row(char *dst, size_t size, const struct wk *w, int namew,
    double stuck)
{
	char name[256], state[16], doing[128], rate[16], queued[16], high[16];
	char lsn[16], lmax[16], rst[16], out[16], flags[3] = "";
	size_t nl = name_cell(name, sizeof(name), w);

	/* A cut name ends in '>', so that it cannot pass for another. */
	if (nl > (size_t)namew && namew > 0)
		name[namew - 1] = '>';
	name[nl > (size_t)namew ? (size_t)namew : nl] = '\0';
	sanitize(state, sizeof(state), w->state);
	sanitize(doing, sizeof(doing), w->doing);
	fmt_real(rate, sizeof(rate), w->rate);
	fmt_count(queued, sizeof(queued), w->queued);
	fmt_count(high, sizeof(high), w->queued_max);
	fmt_real(lsn, sizeof(lsn), w->lsn_pct);
	fmt_real(lmax, sizeof(lmax), w->listener_max_ns / 1e6);
	fmt_count(rst, sizeof(rst), w->restarts);
	fmt_real(out, sizeof(out), w->since_bp);
	if (w->since_bp >= stuck)
		strcat(flags, "S");
	if (w->grew)
		strcat(flags, "G");
	return snprintf(dst, size, ROW_FMT, namew, name, state, rate, queued,
	    high, lsn, lmax, rst, out, flags, doing);
}

/* The widest name cell of the rows, at least the title's. */
int
name_width(const struct snap *s)
{
	char cell[256];
	size_t i, n, max = 4;

	for (i = 0; i < s->nrows; i++)
		if ((n = name_cell(cell, sizeof(cell), s->rows[i])) > max)
			max = n;
	return (int)max;
}
