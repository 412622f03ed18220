/*
 * store.c - the store: a child of the master.  It owns the SQLite
 * connection and its statements, and writes every frame fired at it as a
 * row, a transaction per batch of events.  It tells the master the first
 * free connection number ("ready") before anything else starts, and
 * commits the last batch as it unwinds from the master's stop.
 */
#include <errno.h>
#include <inttypes.h>
#include <sqlite3.h>
#include <string.h>
#include <strings.h>

#include "relayd.h"

struct store {
	struct relay *r;
	worker_t *self;
	sqlite3 *db;
	sqlite3_stmt *insert;
	sqlite3_stmt *begin;
	sqlite3_stmt *commit;
	bool in_txn;
	uint64_t pending;	/* rows inserted since BEGIN */
	uint64_t rows;		/* rows committed */
	int err;		/* nonzero once the database failed */
};

static const char store_schema[] =
    "CREATE TABLE IF NOT EXISTS frames ("
    "id INTEGER PRIMARY KEY, "
    "connection INTEGER NOT NULL, "
    "sequence INTEGER NOT NULL, "
    "received_at INTEGER NOT NULL, "	/* microseconds since the epoch */
    "payload BLOB NOT NULL)";

static void
store_error(struct store *s, const char *what)
{
	say("store: %s: %s: %s", s->r->db, what, sqlite3_errmsg(s->db));
	s->err = EIO;
}

/*
 * Runs a statement of the setup.  If it returns a row and num is not NULL,
 * *num gets its first column.
 */
static bool
store_exec(struct store *s, const char *sql, sqlite3_int64 *num)
{
	sqlite3_stmt *st;
	int rc;

	if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK) {
		store_error(s, sql);
		return false;
	}
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW && num != NULL)
		*num = sqlite3_column_int64(st, 0);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		store_error(s, sql);
	sqlite3_finalize(st);
	return rc == SQLITE_ROW || rc == SQLITE_DONE;
}

/*
 * WAL: readers do not block the store, nor the store them.  A database on
 * a file system without shared memory keeps its old mode: say so.
 */
static bool
store_wal(struct store *s)
{
	const unsigned char *mode;
	sqlite3_stmt *st;
	bool ok;

	if (sqlite3_prepare_v2(s->db, "PRAGMA journal_mode=WAL", -1, &st,
	    NULL) != SQLITE_OK) {
		store_error(s, "PRAGMA journal_mode=WAL");
		return false;
	}
	ok = sqlite3_step(st) == SQLITE_ROW &&
	    (mode = sqlite3_column_text(st, 0)) != NULL &&
	    strcasecmp((const char *)mode, "wal") == 0;
	sqlite3_finalize(st);
	if (!ok)
		say("store: %s: cannot use WAL mode", s->r->db);
	return ok;
}

static bool
store_prepare(struct store *s, const char *sql, sqlite3_stmt **st)
{
	if (sqlite3_prepare_v2(s->db, sql, -1, st, NULL) != SQLITE_OK) {
		store_error(s, sql);
		return false;
	}
	return true;
}

/* Opens the database; false after a log line. */
static bool
store_open(struct store *s)
{
	sqlite3_int64 last = 0;

	if (sqlite3_open_v2(s->r->db, &s->db, SQLITE_OPEN_READWRITE |
	    SQLITE_OPEN_CREATE, NULL) != SQLITE_OK) {
		store_error(s, "open");
		return false;
	}
	/* A reader, such as sqlite3(1), may hold the lock for a moment. */
	sqlite3_busy_timeout(s->db, 5000);
	/* synchronous=NORMAL: in WAL mode a commit survives a crash of
	 * relayd, and costs no fsync. */
	if (!store_wal(s) ||
	    !store_exec(s, "PRAGMA synchronous=NORMAL", NULL) ||
	    !store_exec(s, store_schema, NULL) ||
	    !store_exec(s, "SELECT COALESCE(MAX(connection), 0) FROM frames",
	    &last))
		return false;
	/* Numbers go on from an earlier run, so rows never mix. */
	s->r->first_conn = (uint64_t)last + 1;
	return store_prepare(s, "INSERT INTO frames (connection, sequence, "
	    "received_at, payload) VALUES (?, ?, ?, ?)", &s->insert) &&
	    store_prepare(s, "BEGIN", &s->begin) &&
	    store_prepare(s, "COMMIT", &s->commit);
}

static bool
store_step(struct store *s, sqlite3_stmt *st, const char *what)
{
	int rc = sqlite3_step(st);

	sqlite3_reset(st);
	if (rc != SQLITE_DONE) {
		store_error(s, what);
		return false;
	}
	return true;
}

static void
store_commit(struct store *s)
{
	if (!s->in_txn)
		return;
	s->in_txn = false;
	if (store_step(s, s->commit, "COMMIT"))
		s->rows += s->pending;
	s->pending = 0;
}

/* Timer: the batch of events is handled, commit what it brought. */
static void
store_commit_cb(void *arg)
{
	store_commit(arg);
}

/*
 * Writes one frame.  The first frame of a batch opens a transaction and
 * schedules the commit for the end of the batch: a timer of delay 0 runs
 * once the events queued now are handled.  So a transaction holds what
 * came while the last one was written, at most the queue's size: few
 * commits under load, no delay when idle.
 */
static void
store_insert(struct store *s, const struct frame *f)
{
	int rc;

	if (s->err != 0)
		return;
	if (!s->in_txn) {
		if (!store_step(s, s->begin, "BEGIN"))
			return;
		s->in_txn = true;
		if ((rc = worker_later(s->self, store_commit_cb, s, 0,
		    NULL)) != 0) {
			say("store: %s", strerror(rc));
			s->err = rc;
			return;
		}
	}
	/* SQLITE_STATIC: the payload outlives the step, and the next frame
	 * binds its own before the statement runs again. */
	if (sqlite3_bind_int64(s->insert, 1, (sqlite3_int64)f->conn) !=
	    SQLITE_OK ||
	    sqlite3_bind_int64(s->insert, 2, (sqlite3_int64)f->seq) !=
	    SQLITE_OK ||
	    sqlite3_bind_int64(s->insert, 3, f->received_us) != SQLITE_OK ||
	    sqlite3_bind_blob(s->insert, 4, f->data, (int)f->len,
	    SQLITE_STATIC) != SQLITE_OK) {
		store_error(s, "bind");
		return;
	}
	if (store_step(s, s->insert, "INSERT"))
		s->pending++;
}

/* Listener of "frame": written or not, the frame pays its credit. */
static int
on_store_frame(const worker_event_t *ev, void *ctx)
{
	struct store *s = ctx;
	struct frame *f = ev->data;

	store_insert(s, f);
	frame_pay(f);
	return 0;
}

static int
store_failed(const worker_event_t *ev, void *ctx)
{
	const struct store *s = ctx;

	(void)ev;
	return s->err != 0;
}

/*
 * Cleanup handler: commits what is left and closes.  The master stops the
 * store only after the last frame, and STOP_THREAD comes after it in the
 * queue, so this commit is the last one.
 */
static void
store_close(void *arg)
{
	struct store *s = arg;

	bool opened = s->commit != NULL;

	store_commit(s);
	sqlite3_finalize(s->insert);
	sqlite3_finalize(s->begin);
	sqlite3_finalize(s->commit);
	if (s->db != NULL && sqlite3_close(s->db) != SQLITE_OK)
		store_error(s, "close");
	s->r->rows = s->rows;
	if (opened)
		say("store: %" PRIu64 " rows committed to %s", s->rows,
		    s->r->db);
}

/* The task of the store; arg is the struct relay. */
void *
store_task(void *arg)
{
	struct store s = { .r = arg };
	int rc;

	s.self = worker_current();
	worker_cleanup_push(store_close, &s);
	if (!store_open(&s))
		worker_fail(EIO);
	listen_self("frame", on_store_frame, &s);
	/* The master starts the others once the connection numbers are
	 * known. */
	if ((rc = worker_parent_fire(s.self, "ready", NULL)) != 0)
		worker_fail(rc);
	(void)worker_wait_until(store_failed, &s, -1, NULL);
	worker_fail(s.err);
	return NULL;
}
