/*
 * verify.c - the check of relayd's database: at the end of a run with
 * --db, or once relayd has stopped (--verify, against the record of a
 * run).  It reads every row of the run's clients (the first 8 bytes of
 * the client id are the run's) from the database itself, and counts the
 * frames sent that are stored, intact, exactly once:
 *
 *	sent: N, acked: N, stored: N, lost: N, duplicated: N
 *
 * sent counts the frames written whole at least once, acked those
 * relayd acknowledged, stored those of the sent that have a row, lost
 * the sent that have none, duplicated the rows beyond the first of a
 * (client, sequence).  A row that is no frame sent (damaged, of a client
 * or a frame that does not exist) is a problem, named.  Good: nothing
 * lost, duplicated or wrong; with --tolerate (relayd went away for good)
 * or --partial, only the acked frames must be stored.  The check owns
 * its tallies; the record's counts go into ld->sent and ld->acked.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "load.h"

bool
write_record(const struct load *ld)
{
	FILE *f;
	bool ok;

	if ((f = fopen(ld->record, "w")) == NULL) {
		complain("%s: %s", ld->record, strerror(errno));
		return false;
	}
	fprintf(f, "relay-load 2\nrun %" PRIx64 "\nseed %" PRIu64
	    "\nmin-size %" PRIu32 "\nmax-size %" PRIu32 "\nclients %zu\n",
	    ld->run_id, ld->seed, ld->min_size, ld->max_size, ld->n);
	for (size_t c = 0; c < ld->n; c++)
		fprintf(f, "%" PRIu64 " %" PRIu64 "\n", ld->sent[c],
		    ld->acked[c]);
	ok = !ferror(f);
	if (fclose(f) != 0)
		ok = false;
	if (!ok)
		complain("%s: cannot write it", ld->record);
	return ok;
}

/* Reads a record into ld (run, seed, sizes, clients, sent, acked). */
static bool
read_record(struct load *ld)
{
	unsigned long long run, seed, n, s, a;
	unsigned long min, max;
	FILE *f;
	bool ok;

	if ((f = fopen(ld->record, "r")) == NULL) {
		complain("%s: %s", ld->record, strerror(errno));
		return false;
	}
	ok = fscanf(f, "relay-load 2 run %llx seed %llu min-size %lu "
	    "max-size %lu clients %llu", &run, &seed, &min, &max, &n) == 5 &&
	    min >= 8 && max >= min && max <= FRAME_MAX && n <= UINT32_MAX &&
	    (ld->sent = calloc(n != 0 ? n : 1, sizeof(*ld->sent))) != NULL &&
	    (ld->acked = calloc(n != 0 ? n : 1, sizeof(*ld->acked))) != NULL;
	for (unsigned long long c = 0; ok && c < n; c++) {
		ok = fscanf(f, "%llu %llu", &s, &a) == 2 && a <= s;
		ld->sent[c] = s;
		ld->acked[c] = a;
	}
	fclose(f);
	if (!ok) {
		complain("%s: not a record of relay-load", ld->record);
		return false;
	}
	ld->run_id = run;
	ld->seed = seed;
	ld->min_size = (uint32_t)min;
	ld->max_size = (uint32_t)max;
	ld->n = (size_t)n;
	return true;
}

struct check {
	struct load *ld;
	unsigned char **seen;	/* per client: a bit per frame sent */
	unsigned char *payload;
	uint64_t stored;
	uint64_t dups;
	uint64_t others;	/* rows of other runs */
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

/* Checks one row: a frame sent, intact, not seen before. */
static void
check_row(struct check *ck, const unsigned char *id, int id_len,
    uint64_t seq, const unsigned char *p, int len)
{
	struct load *ld = ck->ld;
	uint64_t client;

	if (id == NULL || id_len != CLIENT_ID_LEN ||
	    get_be64(id) != ld->run_id) {
		ck->others++;
		return;
	}
	client = get_be64(id + 8);
	if (client >= ld->n || seq >= ld->sent[client]) {
		problem(ck, "client %" PRIu64 ", frame %" PRIu64 ": a row of "
		    "a frame not sent", client, seq);
		return;
	}
	if (ck->seen[client][seq / 8] & (1u << (seq % 8))) {
		ck->dups++;
		return;
	}
	ck->seen[client][seq / 8] |= (unsigned char)(1u << (seq % 8));
	ck->stored++;
	if (p == NULL || make_payload(ld, (uint32_t)client, (uint32_t)seq,
	    ck->payload) != (uint32_t)len ||
	    memcmp(ck->payload, p, (size_t)len) != 0)
		problem(ck, "client %" PRIu64 ", frame %" PRIu64 ": the "
		    "payload is damaged", client, seq);
}

static void
read_rows(struct check *ck)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	int rc;

	if (sqlite3_open_v2(ck->ld->db, &db, SQLITE_OPEN_READONLY, NULL) !=
	    SQLITE_OK || sqlite3_prepare_v2(db, "SELECT client, sequence, "
	    "payload FROM frames", -1, &st, NULL) != SQLITE_OK) {
		problem(ck, "%s", sqlite3_errmsg(db));
		sqlite3_close(db);
		return;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		check_row(ck, sqlite3_column_blob(st, 0),
		    sqlite3_column_bytes(st, 0),
		    (uint64_t)sqlite3_column_int64(st, 1),
		    sqlite3_column_blob(st, 2), sqlite3_column_bytes(st, 2));
	if (rc != SQLITE_DONE)
		problem(ck, "%s", sqlite3_errmsg(db));
	sqlite3_finalize(st);
	sqlite3_close(db);
}

/* Frames acked that have no row: what relayd promised and broke. */
static uint64_t
acked_missing(const struct check *ck)
{
	const struct load *ld = ck->ld;
	uint64_t n = 0;

	for (size_t c = 0; c < ld->n; c++)
		for (uint64_t i = 0; i < ld->acked[c]; i++)
			n += !(ck->seen[c][i / 8] & (1u << (i % 8)));
	return n;
}

int
check_db(struct load *ld)
{
	struct check ck = { .ld = ld };
	uint64_t sent = 0, acked = 0, lost, missing = 0;
	bool ok;

	ck.seen = calloc(ld->n + 1, sizeof(*ck.seen));
	ck.payload = malloc(ld->max_size);
	ok = ck.seen != NULL && ck.payload != NULL;
	for (size_t c = 0; ok && c < ld->n; c++) {
		sent += ld->sent[c];
		acked += ld->acked[c];
		ok = (ck.seen[c] = calloc(ld->sent[c] / 8 + 1, 1)) != NULL;
	}
	if (!ok) {
		complain("no memory");
		ck.problems++;
	} else {
		read_rows(&ck);
		missing = acked_missing(&ck);
	}
	lost = sent - ck.stored;
	if (ck.others > 0)
		printf("relay-load: %s: %" PRIu64 " rows of other runs\n",
		    ld->db, ck.others);
	if (missing > 0 || ld->tolerate || ld->partial)
		printf("relay-load: %s: %" PRIu64 " frames acked and not "
		    "stored\n", ld->db, missing);
	printf("sent: %" PRIu64 ", acked: %" PRIu64 ", stored: %" PRIu64
	    ", lost: %" PRIu64 ", duplicated: %" PRIu64 "\n", sent, acked,
	    ck.stored, lost, ck.dups);
	for (size_t c = 0; ck.seen != NULL && c < ld->n; c++)
		free(ck.seen[c]);
	free(ck.seen);
	free(ck.payload);
	if (ck.problems > 0 || ck.dups > 0 || missing > 0)
		return 1;
	return lost == 0 || ld->tolerate || ld->partial ? 0 : 1;
}

/* --verify: the database against the record of a run. */
int
verify(struct load *ld)
{
	int status;

	if (!read_record(ld))
		return 1;
	status = check_db(ld);
	free(ld->sent);
	free(ld->acked);
	return status;
}
