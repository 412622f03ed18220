/*
 * verify.c - the check of relayd's database (--verify): once relayd has
 * stopped, every row against the record of what was sent.  The check owns
 * the record it reads (ld->sent) and its per-client tallies.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "load.h"

/* Reads a record into ld (seed, sizes, clients, sent); false if bad. */
static bool
read_record(struct load *ld)
{
	unsigned long long seed, n, v;
	unsigned long min, max;
	FILE *f;
	bool ok;

	if ((f = fopen(ld->record, "r")) == NULL) {
		complain("%s: %s", ld->record, strerror(errno));
		return false;
	}
	ok = fscanf(f, "relay-load 1 seed %llu min-size %lu max-size %lu "
	    "clients %llu", &seed, &min, &max, &n) == 4 &&
	    min >= 8 && max >= min && max <= FRAME_MAX && n <= UINT32_MAX &&
	    (ld->sent = calloc(n != 0 ? n : 1, sizeof(*ld->sent))) != NULL;
	for (unsigned long long c = 0; ok && c < n; c++) {
		ok = fscanf(f, "%llu", &v) == 1;
		ld->sent[c] = v;
	}
	fclose(f);
	if (!ok) {
		complain("%s: not a record of relay-load", ld->record);
		return false;
	}
	ld->seed = seed;
	ld->min_size = (uint32_t)min;
	ld->max_size = (uint32_t)max;
	ld->n = (size_t)n;
	return true;
}

struct check {
	struct load *ld;
	uint64_t *got;		/* per client: rows checked */
	int64_t *conn;		/* per client: its connection number, or 0 */
	unsigned char *payload;
	uint64_t rows;
	uint64_t problems;
};

static void problem(struct check *ck, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* The database is not what was sent: one more problem. */
static void
problem(struct check *ck, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vproblem(&ck->problems, ck->ld->db, fmt, ap);
	va_end(ap);
}

/*
 * Checks one row.  Rows come in the order of their ids, which is the
 * order relayd took the frames in, so each client's rows must come as 0,
 * 1, 2...: that one test finds a frame lost, doubled or out of order.
 */
static void
check_row(struct check *ck, int64_t id, int64_t conn, int64_t seq,
    const unsigned char *p, int len)
{
	struct load *ld = ck->ld;
	uint32_t client, index;

	if (len < 8) {
		problem(ck, "row %" PRId64 ": a payload of %d bytes", id, len);
		return;
	}
	client = get_be32(p);
	index = get_be32(p + 4);
	if (client >= ld->n) {
		problem(ck, "row %" PRId64 ": client %" PRIu32 " does not "
		    "exist", id, client);
		return;
	}
	if (index != ck->got[client]) {
		problem(ck, "row %" PRId64 ": client %" PRIu32 ", frame %"
		    PRIu32 " where %" PRIu64 " was due", id, client, index,
		    ck->got[client]);
		return;
	}
	ck->got[client]++;
	if (index >= ld->sent[client])
		problem(ck, "row %" PRId64 ": client %" PRIu32 ", frame %"
		    PRIu32 ", which it did not send completely", id, client,
		    index);
	else if (make_payload(ld, client, index, ck->payload) !=
	    (uint32_t)len || memcmp(ck->payload, p, (size_t)len) != 0)
		problem(ck, "row %" PRId64 ": client %" PRIu32 ", frame %"
		    PRIu32 ": the payload is damaged", id, client, index);
	if (seq != (int64_t)index)
		problem(ck, "row %" PRId64 ": client %" PRIu32 ", frame %"
		    PRIu32 " has sequence %" PRId64, id, client, index, seq);
	if (ck->conn[client] == 0)
		ck->conn[client] = conn;
	else if (ck->conn[client] != conn)
		problem(ck, "row %" PRId64 ": client %" PRIu32 " on "
		    "connections %" PRId64 " and %" PRId64, id, client,
		    ck->conn[client], conn);
}

static int
cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return (x > y) - (x < y);
}

/* Each client had a connection of its own. */
static void
check_conns(struct check *ck)
{
	size_t n = ck->ld->n;

	qsort(ck->conn, n, sizeof(*ck->conn), cmp_i64);
	for (size_t c = 1; c < n; c++)
		if (ck->conn[c] != 0 && ck->conn[c] == ck->conn[c - 1])
			problem(ck, "two clients on connection %" PRId64,
			    ck->conn[c]);
}

static void
read_rows(struct check *ck)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	int rc;

	if (sqlite3_open_v2(ck->ld->db, &db, SQLITE_OPEN_READONLY, NULL) !=
	    SQLITE_OK || sqlite3_prepare_v2(db, "SELECT id, connection, "
	    "sequence, payload FROM frames ORDER BY id", -1, &st, NULL) !=
	    SQLITE_OK) {
		problem(ck, "%s", sqlite3_errmsg(db));
		sqlite3_close(db);
		return;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const unsigned char *p = sqlite3_column_blob(st, 3);

		ck->rows++;
		check_row(ck, sqlite3_column_int64(st, 0),
		    sqlite3_column_int64(st, 1), sqlite3_column_int64(st, 2),
		    p, p != NULL ? sqlite3_column_bytes(st, 3) : 0);
	}
	if (rc != SQLITE_DONE)
		problem(ck, "%s", sqlite3_errmsg(db));
	sqlite3_finalize(st);
	sqlite3_close(db);
}

int
verify(struct load *ld)
{
	struct check ck = { .ld = ld };
	uint64_t total = 0;

	if (!read_record(ld))
		return 1;
	ck.got = calloc(ld->n + 1, sizeof(*ck.got));
	ck.conn = calloc(ld->n + 1, sizeof(*ck.conn));
	ck.payload = malloc(ld->max_size);
	if (ck.got == NULL || ck.conn == NULL || ck.payload == NULL) {
		complain("no memory");
		ck.problems++;
	} else {
		read_rows(&ck);
		check_conns(&ck);
	}
	for (size_t c = 0; c < ld->n; c++) {
		total += ld->sent[c];
		if (ck.got != NULL && !ld->partial &&
		    ck.got[c] != ld->sent[c])
			problem(&ck, "client %zu: %" PRIu64 " rows for %"
			    PRIu64 " frames sent", c, ck.got[c],
			    ld->sent[c]);
	}
	if (ld->partial)
		printf("relay-load: %s: %" PRIu64 " rows for at most %" PRIu64
		    " frames sent, each client's a prefix of what it sent; "
		    "%" PRIu64 " problems\n", ld->db, ck.rows, total,
		    ck.problems);
	else
		printf("relay-load: %s: %" PRIu64 " rows for %" PRIu64
		    " frames sent, %" PRIu64 " problems: lost: %" PRIu64 "\n",
		    ld->db, ck.rows, total, ck.problems,
		    total > ck.rows ? total - ck.rows : 0);
	free(ck.got);
	free(ck.conn);
	free(ck.payload);
	free(ld->sent);
	return ck.problems == 0 ? 0 : 1;
}
