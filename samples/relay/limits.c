/*
 * limits.c - how many connections relayd has open, in all and per source
 * address, against --max-conns and --max-per-addr.  main() owns the
 * struct limits, which outlives the tree; the listener takes a place for
 * each client it accepts and the conns give them back as they close, all
 * under its lock.
 *
 * The counts per address are an open-addressing table with linear
 * probing, at least twice as large as --max-conns, so that it never fills
 * and its probes stay short; an address whose count falls to zero leaves
 * it with a backward shift, which keeps every probe sequence unbroken
 * without tombstones.
 */
#include <errno.h>
#include <stdlib.h>

#include "relayd.h"

struct addr_count {
	uint32_t addr;		/* network order, as in_addr */
	uint32_t count;		/* 0: the slot is free */
};

int
limits_init(struct limits *l, size_t max, size_t per_addr)
{
	size_t cap = 16;

	while (cap < 2 * max)
		cap *= 2;
	if ((l->v = calloc(cap, sizeof(*l->v))) == NULL)
		return ENOMEM;
	pthread_mutex_init(&l->lock, NULL);
	l->cap = cap;
	l->max = max;
	l->per_addr = per_addr;
	l->open = 0;
	return 0;
}

void
limits_fini(struct limits *l)
{
	pthread_mutex_destroy(&l->lock);
	free(l->v);
	l->v = NULL;
}

static size_t
slot_of(const struct limits *l, uint32_t addr)
{
	/* Fibonacci hashing: consecutive addresses spread out. */
	return (size_t)((addr * UINT32_C(2654435769)) & (l->cap - 1));
}

/* The slot of addr, or the free slot where it would go; lock held. */
static size_t
find_locked(const struct limits *l, uint32_t addr)
{
	size_t i = slot_of(l, addr);

	while (l->v[i].count != 0 && l->v[i].addr != addr)
		i = (i + 1) & (l->cap - 1);
	return i;
}

int
limits_take(struct limits *l, struct in_addr addr)
{
	size_t i;
	int rc = 0;

	pthread_mutex_lock(&l->lock);
	i = find_locked(l, addr.s_addr);
	if (l->open >= l->max)
		rc = REFUSE_FULL;
	else if (l->v[i].count >= l->per_addr)
		rc = REFUSE_ADDR;
	if (rc == 0) {
		l->v[i].addr = addr.s_addr;
		l->v[i].count++;
		l->open++;
	}
	pthread_mutex_unlock(&l->lock);
	return rc;
}

void
limits_give(struct limits *l, struct in_addr addr)
{
	size_t i, j, home;

	pthread_mutex_lock(&l->lock);
	i = find_locked(l, addr.s_addr);
	if (l->v[i].count == 0) {
		/* Never taken: a bug of the caller's, counted nowhere. */
		pthread_mutex_unlock(&l->lock);
		return;
	}
	l->open--;
	if (--l->v[i].count > 0) {
		pthread_mutex_unlock(&l->lock);
		return;
	}
	/* Backward shift: move up each later entry of the run whose home
	 * is not between the hole and it, so no probe meets a false end. */
	for (j = (i + 1) & (l->cap - 1); l->v[j].count != 0;
	    j = (j + 1) & (l->cap - 1)) {
		home = slot_of(l, l->v[j].addr);
		if (((j - home) & (l->cap - 1)) >= ((j - i) & (l->cap - 1))) {
			l->v[i] = l->v[j];
			l->v[j].count = 0;
			i = j;
		}
	}
	pthread_mutex_unlock(&l->lock);
}
