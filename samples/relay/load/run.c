/*
 * run.c - a run: main's root worker starts the subscribers, then the
 * senders, waits for each, prints the rate, has the subscribers give their
 * verdicts and writes the record.  The run owns what each client sent
 * (ld->sent) and every worker it starts.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "load.h"

static bool
write_record(const struct load *ld)
{
	FILE *f;
	bool ok;

	if ((f = fopen(ld->record, "w")) == NULL) {
		complain("%s: %s", ld->record, strerror(errno));
		return false;
	}
	fprintf(f, "relay-load 1\nseed %" PRIu64 "\nmin-size %" PRIu32
	    "\nmax-size %" PRIu32 "\nclients %zu\n", ld->seed, ld->min_size,
	    ld->max_size, ld->n);
	for (size_t c = 0; c < ld->n; c++)
		fprintf(f, "%" PRIu64 "\n", ld->sent[c]);
	ok = !ferror(f);
	if (fclose(f) != 0)
		ok = false;
	if (!ok)
		complain("%s: cannot write it", ld->record);
	return ok;
}

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

/* A run; 0 if every check passed, else 1. */
int
run(struct load *ld)
{
	struct subscriber *sub = NULL, *slow = NULL;
	worker_t *sub_w = NULL, *slow_w = NULL, **senders = NULL;
	struct sender *sd = NULL;
	worker_attr_t attr = { .parent = worker_current(), .quiet = 1 };
	uint64_t t0, t1, total = 0, bytes = 0;
	size_t started_n = 0;
	char name[32];
	bool ok = true;

	if ((ld->sent = calloc(ld->n, sizeof(*ld->sent))) == NULL ||
	    (senders = calloc(ld->parallel, sizeof(*senders))) == NULL ||
	    (sd = calloc(ld->parallel, sizeof(*sd))) == NULL) {
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

	t0 = now_ns();
	if (ld->duration > 0)
		ld->deadline_ns = t0 + (uint64_t)(ld->duration * 1e9);
	for (size_t i = 0; i < ld->parallel; i++) {
		sd[i].ld = ld;
		sd[i].first = i;
		snprintf(name, sizeof(name), "sender-%zu", i);
		attr.name = name;
		if ((senders[i] = worker_create(sender_task, &sd[i],
		    &attr)) == NULL) {
			complain("%s: %s", name, strerror(errno));
			ok = false;
			break;
		}
		started_n++;
	}
	for (size_t i = 0; i < started_n; i++)
		if (worker_wait_thread(senders[i], NULL) != 0)
			ok = false;
	t1 = now_ns();
	for (size_t c = 0; c < ld->n; c++) {
		uint64_t unused;

		total += ld->sent[c];
		for (uint32_t i = 0; i < ld->sent[c]; i++)
			bytes += 4 + payload_len(ld, (uint32_t)c, i, &unused);
	}
	printf("relay-load: %zu clients sent %" PRIu64 " frames (%.1f MB) "
	    "in %.2f s: %.0f frames/s\n", ld->n, total, (double)bytes / 1e6,
	    (double)(t1 - t0) / 1e9,
	    (double)total / ((double)(t1 - t0) / 1e9));

	if (sub_w != NULL) {
		ld->expect = total;
		if (worker_fire(sub_w, "expect", NULL) != 0 ||
		    worker_wait_thread(sub_w, NULL) != 0 ||
		    !sub_report(ld, sub, total,
		    (double)(now_ns() - t0) / 1e9))
			ok = false;
	}
	if (slow_w != NULL && (worker_fire(slow_w, "check", NULL) != 0 ||
	    worker_wait_thread(slow_w, NULL) != 0 || !slow_report(slow)))
		ok = false;
	if (ld->record != NULL && !write_record(ld))
		ok = false;
out:
	for (size_t i = 0; i < started_n; i++)
		finish(senders[i]);
	finish(sub_w);
	finish(slow_w);
	sub_free(sub);
	sub_free(slow);
	free(senders);
	free(sd);
	free(ld->sent);
	return ok ? 0 : 1;
}
