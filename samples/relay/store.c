/*
 * store.c - the store: a child of the master, which restarts it when its
 * database fails.  A run owns the SQLite connection and its statements,
 * and commits the frames of the store's inbox (relayd.h), a transaction
 * per batch, from the front; a failed write fails the run and leaves the
 * batch in the inbox for the next one.  Once a batch is committed, each
 * frame's connection learns it (inbox_done()), and its conn acks it.  The
 * first run tells the master the first free connection number ("ready")
 * before anything else starts; every run says "ready" once its database
 * is open.  Its stop commits the whole inbox.
 *
 * The database keeps each (client, sequence) once: a frame sent again,
 * after a connection ended before its ack, is ignored by the insert and
 * counted in dups.  Schema 2 (PRAGMA user_version), in relay(5):
 *
 *	frames (id INTEGER PRIMARY KEY, client BLOB NOT NULL,
 *	    sequence INTEGER NOT NULL, connection INTEGER NOT NULL,
 *	    received_at INTEGER NOT NULL, payload BLOB NOT NULL,
 *	    UNIQUE (client, sequence))
 *	relayd (last_connection INTEGER NOT NULL)	one row
 *
 * relayd.last_connection is the highest connection number with a frame
 * committed, kept with each batch: the next relayd numbers on from it
 * without a scan of the frames.  A database of schema 1 (relayd before
 * acknowledgements) is refused: its frames have no client.
 */
#include <errno.h>
#include <inttypes.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "relayd.h"

#define STORE_BATCH	1024	/* frames per transaction at most */

struct store {
	struct relay *r;
	struct inbox *in;
	worker_t *self;
	sqlite3 *db;
	sqlite3_stmt *insert;
	sqlite3_stmt *begin;
	sqlite3_stmt *commit;
	sqlite3_stmt *last_conn;	/* keeps relayd.last_connection */
	bool stopping;
	struct frame *batch[STORE_BATCH];	/* the inbox's references */
};

/*
 * The test hook RELAYD_FAIL_WRITES=N[,K] (relayd.h): inserts are counted
 * over the whole process, through every run of the store, which run one
 * after another.
 */
static uint64_t inserts;

static bool
fail_injected(void)
{
	const char *v = getenv("RELAYD_FAIL_WRITES");
	unsigned long long n, k = 1;

	inserts++;
	if (v == NULL || sscanf(v, "%llu,%llu", &n, &k) < 1)
		return false;
	return inserts >= n && inserts - n < k;
}

#define SCHEMA		2	/* PRAGMA user_version */

static const char store_schema[] =
    "BEGIN; "
    "CREATE TABLE frames ("
    "id INTEGER PRIMARY KEY, "
    "client BLOB NOT NULL, "
    "sequence INTEGER NOT NULL, "
    "connection INTEGER NOT NULL, "
    "received_at INTEGER NOT NULL, "	/* microseconds since the epoch */
    "payload BLOB NOT NULL, "
    "UNIQUE (client, sequence)); "
    "CREATE TABLE relayd (last_connection INTEGER NOT NULL); "
    "INSERT INTO relayd VALUES (0); "
    "PRAGMA user_version = 2; "
    "COMMIT";

static void
store_error(struct store *s, const char *what)
{
	say("store: %s: %s: %s", s->r->db, what, sqlite3_errmsg(s->db));
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

/* The schema: made in a new database, checked in one made before. */
static bool
store_schema_ok(struct store *s)
{
	sqlite3_int64 version = 0, tables = 0;
	char *err = NULL;

	if (!store_exec(s, "PRAGMA user_version", &version) ||
	    !store_exec(s, "SELECT count(*) FROM sqlite_master WHERE "
	    "name = 'frames'", &tables))
		return false;
	if (version == SCHEMA)
		return true;
	if (version != 0 || tables != 0) {
		say("store: %s: a database of schema %lld, not %d: made by "
		    "another relayd; give a new file", s->r->db,
		    (long long)version, SCHEMA);
		return false;
	}
	if (sqlite3_exec(s->db, store_schema, NULL, NULL, &err) !=
	    SQLITE_OK) {
		say("store: %s: making the tables: %s", s->r->db,
		    err != NULL ? err : sqlite3_errmsg(s->db));
		sqlite3_free(err);
		return false;
	}
	return true;
}

/* Opens the database; false after a log line. */
static bool
store_open(struct store *s)
{
	sqlite3_int64 last = 0;

	/* NOMUTEX: the run's thread alone uses the connection. */
	if (sqlite3_open_v2(s->r->db, &s->db, SQLITE_OPEN_READWRITE |
	    SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
		store_error(s, "open");
		return false;
	}
	/* Another process may hold the lock for a moment; longer, and the
	 * store fails and comes back later (relayd.h). */
	sqlite3_busy_timeout(s->db, STORE_BUSY_MS);
	/* synchronous=NORMAL: in WAL mode a commit survives a crash of
	 * relayd, and costs no fsync.  So an ack survives it too. */
	if (!store_wal(s) ||
	    !store_exec(s, "PRAGMA synchronous=NORMAL", NULL) ||
	    !store_exec(s, "PRAGMA cache_size=-16384", NULL) ||
	    !store_schema_ok(s) ||
	    !store_exec(s, "SELECT last_connection FROM relayd", &last))
		return false;
	/* Numbers go on from an earlier run, so rows never mix.  A restart
	 * keeps the numbers the listener has given out since. */
	if (s->r->first_conn == 0)
		s->r->first_conn = (uint64_t)last + 1;
	return store_prepare(s, "INSERT OR IGNORE INTO frames (client, "
	    "sequence, connection, received_at, payload) VALUES (?, ?, ?, "
	    "?, ?)", &s->insert) &&
	    store_prepare(s, "UPDATE relayd SET last_connection = ?1 WHERE "
	    "last_connection < ?1", &s->last_conn) &&
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

/*
 * Writes one frame into the open transaction; *dups counts it if its
 * (client, sequence) was there already.
 */
static bool
store_insert(struct store *s, const struct frame *f, uint64_t *dups)
{
	if (fail_injected()) {
		say("store: %s: INSERT: failed by RELAYD_FAIL_WRITES",
		    s->r->db);
		return false;
	}
	/* SQLITE_STATIC: the blobs outlive the step, and the next frame
	 * binds its own before the statement runs again. */
	if (sqlite3_bind_blob(s->insert, 1, f->client, CLIENT_ID_LEN,
	    SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_bind_int64(s->insert, 2, (sqlite3_int64)f->seq) !=
	    SQLITE_OK ||
	    sqlite3_bind_int64(s->insert, 3, (sqlite3_int64)f->conn) !=
	    SQLITE_OK ||
	    sqlite3_bind_int64(s->insert, 4, f->received_us) != SQLITE_OK ||
	    sqlite3_bind_blob(s->insert, 5, f->data, (int)f->len,
	    SQLITE_STATIC) != SQLITE_OK) {
		store_error(s, "bind");
		return false;
	}
	if (!store_step(s, s->insert, "INSERT"))
		return false;
	if (sqlite3_changes(s->db) == 0)
		(*dups)++;
	return true;
}

/* Writes the batch's highest connection number into the transaction. */
static bool
store_last_conn(struct store *s, size_t n)
{
	uint64_t last = 0;

	for (size_t i = 0; i < n; i++)
		if (s->batch[i]->conn > last)
			last = s->batch[i]->conn;
	if (sqlite3_bind_int64(s->last_conn, 1, (sqlite3_int64)last) !=
	    SQLITE_OK) {
		store_error(s, "bind");
		return false;
	}
	return store_step(s, s->last_conn, "UPDATE relayd");
}

/*
 * Commits the inbox, a batch per transaction, until it is empty: what came
 * while one batch was written makes the next, so few commits under load
 * and no delay when idle.  False after a failure: the batch stays at the
 * front of the inbox, and closing the database rolls it back.
 */
static bool
store_drain(struct store *s)
{
	uint64_t dups;
	size_t n;

	while ((n = inbox_peek(s->in, s->batch, STORE_BATCH)) > 0) {
		dups = 0;
		if (!store_step(s, s->begin, "BEGIN"))
			return false;
		for (size_t i = 0; i < n; i++)
			if (!store_insert(s, s->batch[i], &dups))
				return false;
		if (!store_last_conn(s, n) ||
		    !store_step(s, s->commit, "COMMIT"))
			return false;
		s->r->rows += n;
		s->r->dups += dups;
		inbox_done(s->in, s->batch, n);
	}
	return true;
}

/* Listener of "frames", from the master: the inbox has some. */
static int
on_store_frames(const worker_event_t *ev, void *ctx)
{
	struct store *s = ctx;

	(void)ev;
	if (!store_drain(s))
		worker_fail(EIO);
	return 0;
}

/*
 * Listener of STOP_THREAD.  The master stops the store last, once it has
 * handed it every frame: commit them all, then the stop ends the run.
 */
static int
on_store_stop(const worker_event_t *ev, void *ctx)
{
	struct store *s = ctx;

	(void)ev;
	if (!store_drain(s))
		worker_fail(EIO);
	s->stopping = true;
	return 0;
}

/* Cleanup handler: closes; a transaction left open is rolled back. */
static void
store_close(void *arg)
{
	struct store *s = arg;

	sqlite3_finalize(s->insert);
	sqlite3_finalize(s->last_conn);
	sqlite3_finalize(s->begin);
	sqlite3_finalize(s->commit);
	if (s->db != NULL && sqlite3_close(s->db) != SQLITE_OK)
		store_error(s, "close");
	if (s->stopping)
		say("store: %" PRIu64 " rows committed to %s", s->r->rows,
		    s->r->db);
	else
		say("store: %zu frames not committed yet",
		    inbox_len(s->in));
}

/*
 * The task of the store; arg is the struct relay.  Each run starts here
 * with a new frame and a new connection to the database.
 */
void *
store_task(void *arg)
{
	struct store s = { .r = arg };
	int rc;

	s.in = s.r->inbox;
	s.self = worker_current();
	worker_cleanup_push(store_close, &s);
	if (!store_open(&s))
		worker_fail(EIO);
	listen_self("frames", on_store_frames, &s);
	listen_self(WORKER_STOP_THREAD, on_store_stop, &s);
	/* The master starts the others once the connection numbers are
	 * known; after a restart, it logs the return. */
	if ((rc = worker_parent_fire(s.self, "ready", NULL)) != 0)
		worker_fail(rc);
	/* What waited while the store was down comes first. */
	if (!store_drain(&s))
		worker_fail(EIO);
	worker_wait_forever();
	return NULL;
}
