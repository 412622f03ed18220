/*
 * run.c - a run: main's root worker starts the subscribers, then the
 * senders, waits for each, prints the rate, has the subscribers give their
 * verdicts, writes the record and, with --db, checks the database.  The
 * run owns what each client sent and had acked (ld->sent, ld->acked) and
 * every worker it starts.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "load.h"

/* Stops a worker that may wait for main, and drops it. */
static void
finish(worker_t *w)
{
	if (w == NULL)
		return;
	(void)worker_stop(w);
	(void)worker_join(w);
	worker_unref(w);
}

/* The senders, each started and waited for; false if one failed. */
static bool
send_all(struct load *ld, struct sender **sd, worker_t **w)
{
	worker_attr_t attr = { .parent = worker_current(), .quiet = 1 };
	size_t started = 0;
	char name[32];
	bool ok = true;

	for (size_t i = 0; i < ld->threads; i++) {
		snprintf(name, sizeof(name), "sender-%zu", i);
		attr.name = name;
		if ((sd[i] = sender_new(ld, i)) == NULL ||
		    (w[i] = worker_create(sender_task, sd[i], &attr)) ==
		    NULL) {
			complain("%s: %s", name, strerror(errno));
			ok = false;
			break;
		}
		started++;
	}
	for (size_t i = 0; i < started; i++)
		if (worker_wait_thread(w[i], NULL) != 0 ||
		    worker_result(w[i], NULL) != 0)
			ok = false;
	return ok;
}

/* The rate, and what became of the frames and the connections. */
static void
report(struct load *ld, uint64_t t0, uint64_t t1, uint64_t *total,
    uint64_t *unacked)
{
	uint64_t bytes = 0, unused;

	*total = *unacked = 0;
	for (size_t c = 0; c < ld->n; c++) {
		*total += ld->sent[c];
		*unacked += ld->sent[c] - ld->acked[c];
		for (uint32_t i = 0; i < ld->sent[c]; i++)
			bytes += HEAD_LEN + payload_len(ld, (uint32_t)c, i,
			    &unused);
	}
	printf("relay-load: %zu clients sent %" PRIu64 " frames (%.1f MB) "
	    "in %.2f s: %.0f frames/s\n", ld->n, *total, (double)bytes / 1e6,
	    (double)(t1 - t0) / 1e9,
	    (double)*total / ((double)(t1 - t0) / 1e9));
	printf("relay-load: %" PRIu64 " connections, %" PRIu64 " refused, %"
	    PRIu64 " ended by an error of relayd's\n",
	    (uint64_t)atomic_load(&ld->connects),
	    (uint64_t)atomic_load(&ld->refusals),
	    (uint64_t)atomic_load(&ld->errors));
}

/* A run; 0 if every check passed, else 1. */
int
run(struct load *ld)
{
	struct subscriber *sub = NULL, *slow = NULL;
	worker_t *sub_w = NULL, *slow_w = NULL, **senders = NULL;
	struct sender **sd = NULL;
	uint64_t t1, total = 0, unacked = 0;
	bool ok = true;

	if ((ld->sent = calloc(ld->n, sizeof(*ld->sent))) == NULL ||
	    (ld->acked = calloc(ld->n, sizeof(*ld->acked))) == NULL ||
	    (senders = calloc(ld->threads, sizeof(*senders))) == NULL ||
	    (sd = calloc(ld->threads, sizeof(*sd))) == NULL) {
		complain("no memory");
		ok = false;
		goto out;
	}
	if (ld->sub_port != 0 && ((sub = sub_new(ld)) == NULL ||
	    (sub_w = start_sub(sub, false)) == NULL)) {
		ok = false;
		goto out;
	}
	if (ld->slow_sub && ((slow = sub_new(ld)) == NULL ||
	    (slow_w = start_sub(slow, true)) == NULL)) {
		ok = false;
		goto out;
	}

	ld->start_ns = now_ns();
	if (ld->duration > 0)
		ld->deadline_ns = ld->start_ns + (uint64_t)(ld->duration * 1e9);
	ok = send_all(ld, sd, senders);
	t1 = now_ns();
	report(ld, ld->start_ns, t1, &total, &unacked);
	if ((unacked > 0 || atomic_load(&ld->unfinished) > 0) &&
	    !ld->tolerate) {
		complain("%" PRIu64 " frames sent were never acknowledged",
		    unacked);
		ok = false;
	}
	if (sub_w != NULL) {
		ld->expect = total;
		if (worker_fire(sub_w, "expect", NULL) != 0 ||
		    worker_wait_thread(sub_w, NULL) != 0 ||
		    !sub_report(ld, sub, total,
		    (double)(now_ns() - ld->start_ns) / 1e9))
			ok = false;
	}
	if (slow_w != NULL && (worker_fire(slow_w, "check", NULL) != 0 ||
	    worker_wait_thread(slow_w, NULL) != 0 || !slow_report(slow)))
		ok = false;
	if (ld->record != NULL && !write_record(ld))
		ok = false;
	if (ld->db != NULL) {
		if (check_db(ld) != 0)
			ok = false;
	} else {
		printf("sent: %" PRIu64 ", acked: %" PRIu64 " (no --db: the "
		    "database is not checked)\n", total, total - unacked);
	}
out:
	for (size_t i = 0; senders != NULL && i < ld->threads; i++) {
		finish(senders[i]);
		sender_free(sd[i]);
	}
	finish(sub_w);
	finish(slow_w);
	sub_free(sub);
	sub_free(slow);
	free(senders);
	free(sd);
	free(ld->sent);
	free(ld->acked);
	return ok ? 0 : 1;
}
