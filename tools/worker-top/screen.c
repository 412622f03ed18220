/*
 * screen.c - worker-top's screen: the header, the rows with the cursor,
 * the keys, and the loop that asks the server for a snapshot each
 * interval.
 *
 * DESIGN: one poll() over the terminal and the socket.  A request goes
 * out once the interval since the last has passed and its answer is in;
 * while an answer is late poll() wakes each second, so that the header
 * can say so.  Every wakeup redraws the whole screen into curses, which
 * sends the terminal only what changed.  The cursor follows its worker
 * by id through new snapshots, folds and sorts, and the rows scroll to
 * keep it on the screen.  Colours, where the terminal has them, only add
 * to the attributes; the F column says the same in letters.
 */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curses.h>

#include "top.h"

#define STALE_AFTER	3.0	/* s without an answer: the header says so */
#define HEAD_ROWS	3	/* the header, the keys, the column titles */
#define FIXED_COLS	68	/* the columns between NAME and DOING */
#define NAME_MIN	12	/* the name column never gets narrower */
#define DOING_MIN	12	/* nor does DOING, while names are cut */

static const char *const sort_names[] = {
	"tree", "name", "events/s", "queue", "listeners"
};

static volatile sig_atomic_t quit_signal;

struct ui {
	struct conn *c;
	double interval;
	double stuck;
	struct snap *s;		/* the latest snapshot, or NULL */
	size_t cursor;		/* its row */
	json_int_t cursor_id;	/* and its worker, to follow it */
	size_t top;		/* the first row on the screen */
	double asked;		/* when we sent the last request */
	bool waiting;		/* for its answer */
	enum sort_key sort;
	bool reverse;
	attr_t stuck_attr;
	attr_t grow_attr;
};

/* Lists the rows again and puts the cursor back on its worker. */
static void
ui_rows(struct ui *ui)
{
	struct snap *s = ui->s;
	size_t i;

	if (s == NULL)
		return;
	snap_rows(s, false);
	for (i = 0; i < s->nrows; i++)
		if (s->rows[i]->id == ui->cursor_id) {
			ui->cursor = i;
			break;
		}
	if (i == s->nrows && ui->cursor >= s->nrows)
		ui->cursor = s->nrows == 0 ? 0 : s->nrows - 1;
	if (s->nrows > 0)
		ui->cursor_id = s->rows[ui->cursor]->id;
}

static void
draw_header(struct ui *ui)
{
	double late = ui->waiting ? mono() - ui->asked : 0;
	char head[256], rate[16];
	int n;

	if (ui->s == NULL)
		n = snprintf(head, sizeof(head), "worker-top: %s: waiting for "
		    "the first snapshot", ui->c->path);
	else {
		fmt_real(rate, sizeof(rate), ui->s->rate);
		n = snprintf(head, sizeof(head), "pid %lld  workers %zu  "
		    "events/s %s  every %.1f s  sort %s%s",
		    (long long)ui->s->pid, ui->s->n, rate, ui->interval,
		    sort_names[ui->sort], ui->reverse ? " (reversed)" : "");
	}
	mvaddnstr(0, 0, head, COLS);
	/* A server that does not answer is news: its loop is stuck. */
	if (late >= STALE_AFTER && n < COLS) {
		snprintf(head, sizeof(head), "  no answer for %.0f s", late);
		attron(A_BOLD);
		addnstr(head, COLS - n);
		attroff(A_BOLD);
	}
	mvaddnstr(1, 0, "q quit  j/k move  Enter/space fold  +/- open/close  "
	    "sort: e events/s  Q queue  l listeners  n tree  N name  "
	    "r reverse", COLS);
}

/* Scrolls so that the cursor is on the screen. */
static void
ui_scroll(struct ui *ui, size_t height)
{
	if (ui->cursor < ui->top)
		ui->top = ui->cursor;
	if (height > 0 && ui->cursor >= ui->top + height)
		ui->top = ui->cursor - height + 1;
	if (ui->s != NULL && ui->s->nrows <= height)
		ui->top = 0;
}

static void
draw(struct ui *ui)
{
	size_t height = LINES > HEAD_ROWS ? (size_t)(LINES - HEAD_ROWS) : 0;
	size_t i, size = (size_t)COLS + 256;
	char *line = xcalloc(size, 1);
	struct wk *w;
	int namew, n, y;
	attr_t a;

	erase();
	draw_header(ui);
	if (ui->s != NULL) {
		/* Names take what "doing" can spare, and never all. */
		namew = name_width(ui->s);
		if (namew > COLS - FIXED_COLS - DOING_MIN)
			namew = COLS - FIXED_COLS - DOING_MIN;
		if (namew < NAME_MIN)
			namew = NAME_MIN;
		format_titles(line, size, namew);
		attron(A_BOLD | A_UNDERLINE);
		mvaddnstr(2, 0, line, COLS);
		attroff(A_BOLD | A_UNDERLINE);
		ui_scroll(ui, height);
		for (i = ui->top, y = HEAD_ROWS;
		    i < ui->s->nrows && y < LINES; i++, y++) {
			w = ui->s->rows[i];
			n = format_row(line, size, w, namew, ui->stuck);
			/* The cursor's bar runs the whole width. */
			if (i == ui->cursor && n < COLS)
				snprintf(line + n, size - (size_t)n, "%*s",
				    COLS - n, "");
			a = w->since_bp >= ui->stuck ? ui->stuck_attr :
			    w->grew ? ui->grow_attr : A_NORMAL;
			if (i == ui->cursor)
				a |= A_REVERSE;
			attron(a);
			mvaddnstr(y, 0, line, COLS);
			attroff(a);
		}
		if (ui->s->nrows == 0)
			mvaddstr(HEAD_ROWS, 0, "no workers");
	}
	free(line);
	refresh();
}

static void
ui_move(struct ui *ui, long by)
{
	size_t n = ui->s == NULL ? 0 : ui->s->nrows;
	long to = (long)ui->cursor + by;

	if (n == 0)
		return;
	if (to < 0)
		to = 0;
	if (to >= (long)n)
		to = (long)n - 1;
	ui->cursor = (size_t)to;
	ui->cursor_id = ui->s->rows[to]->id;
}

/* Folds (0), unfolds (1) or toggles (-1) the subtree at the cursor. */
static void
ui_fold(struct ui *ui, int open)
{
	struct wk *w;

	if (ui->s == NULL || ui->s->nrows == 0)
		return;
	w = ui->s->rows[ui->cursor];
	w->collapsed = open < 0 ? !w->collapsed : !open;
	ui_rows(ui);
}

static void
ui_sort(struct ui *ui, enum sort_key key, bool reverse)
{
	ui->sort = key;
	ui->reverse = reverse;
	snap_sort_by(key, reverse);
	ui_rows(ui);
}

/* One key; false to quit. */
static bool
ui_key(struct ui *ui, int ch)
{
	long page = LINES > HEAD_ROWS + 1 ? LINES - HEAD_ROWS - 1 : 1;

	switch (ch) {
	case 'q':
		return false;
	case KEY_UP: case 'k':
		ui_move(ui, -1);
		break;
	case KEY_DOWN: case 'j':
		ui_move(ui, 1);
		break;
	case KEY_PPAGE:
		ui_move(ui, -page);
		break;
	case KEY_NPAGE:
		ui_move(ui, page);
		break;
	case KEY_HOME: case 'g':
		ui_move(ui, -LONG_MAX / 2);
		break;
	case KEY_END: case 'G':
		ui_move(ui, LONG_MAX / 2);
		break;
	case '\n': case '\r': case KEY_ENTER: case ' ':
		ui_fold(ui, -1);
		break;
	case '+':
		ui_fold(ui, 1);
		break;
	case '-':
		ui_fold(ui, 0);
		break;
	case 'e':
		ui_sort(ui, SORT_RATE, ui->reverse);
		break;
	case 'Q':
		ui_sort(ui, SORT_QUEUE, ui->reverse);
		break;
	case 'l':
		ui_sort(ui, SORT_LSN, ui->reverse);
		break;
	case 'n':
		ui_sort(ui, SORT_TREE, ui->reverse);
		break;
	case 'N':
		ui_sort(ui, SORT_NAME, ui->reverse);
		break;
	case 'r':
		ui_sort(ui, ui->sort, !ui->reverse);
		break;
	default:		/* KEY_RESIZE among them: draw() redraws */
		break;
	}
	return true;
}

/* A new snapshot on the socket: it replaces the last. */
static void
ui_take(struct ui *ui, char *line, size_t len)
{
	struct snap *s = snap_parse(ui->c->path, line, len);

	snap_derive(s, ui->s);
	snap_free(ui->s);
	ui->s = s;
	ui->waiting = false;
	ui_rows(ui);
}

static void
on_quit_signal(int sig)
{
	quit_signal = sig;
}

static void
screen_start(struct ui *ui)
{
	struct sigaction sa = { .sa_handler = on_quit_signal };

	/* Without SA_RESTART, so that poll() returns and we end cleanly. */
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	if (initscr() == NULL)
		die(EXIT_GONE, "cannot start the screen");
	curses_on = true;
	cbreak();
	noecho();
	nodelay(stdscr, TRUE);
	keypad(stdscr, TRUE);
	curs_set(0);
	ui->stuck_attr = A_BOLD | A_UNDERLINE;
	ui->grow_attr = A_BOLD;
	if (has_colors()) {
		start_color();
		use_default_colors();
		init_pair(1, COLOR_RED, -1);
		init_pair(2, COLOR_YELLOW, -1);
		ui->stuck_attr = A_BOLD | COLOR_PAIR(1);
		ui->grow_attr = A_BOLD | COLOR_PAIR(2);
	}
}

/* How long poll() may sleep: until the next request, or a second. */
static int
ui_timeout(const struct ui *ui)
{
	double left = ui->waiting ? 1 : ui->asked + ui->interval - mono();

	if (left <= 0)
		return 0;
	return left > 1 ? 1000 : (int)(left * 1000) + 1;
}

int
run_screen(struct conn *c, double interval, double stuck)
{
	struct ui ui = {
		.c = c, .interval = interval, .stuck = stuck,
		.asked = mono(), .waiting = true	/* sent on connect */
	};
	struct pollfd pfd[2] = {
		{ .fd = STDIN_FILENO, .events = POLLIN },
		{ .fd = c->fd, .events = POLLIN }
	};
	char *line;
	size_t len;
	int ch;

	screen_start(&ui);
	draw(&ui);
	while (quit_signal == 0) {
		if (!ui.waiting && mono() >= ui.asked + interval) {
			conn_ask(c);
			ui.asked = mono();
			ui.waiting = true;
		}
		pfd[0].revents = pfd[1].revents = 0;
		if (poll(pfd, 2, ui_timeout(&ui)) < 0 && errno != EINTR)
			die(EXIT_GONE, "poll: %s", strerror(errno));
		/* The terminal is gone (SIGHUP may come later, or never). */
		if (pfd[0].revents & (POLLHUP | POLLERR | POLLNVAL))
			break;
		/* After EINTR too: a resize comes as SIGWINCH, and curses
		 * turns it into KEY_RESIZE. */
		while ((ch = getch()) != ERR)
			if (!ui_key(&ui, ch))
				goto out;
		if (pfd[1].revents != 0)
			conn_fill(c);
		while ((line = conn_line(c, &len)) != NULL) {
			ui_take(&ui, line, len);
			conn_drop(c, len);
		}
		draw(&ui);
	}
out:
	endwin();
	curses_on = false;
	snap_free(ui.s);
	conn_close(c);
	return 0;
}
