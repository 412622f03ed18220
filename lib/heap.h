/*
 * heap.h - the one binary min-heap of libworker.
 *
 * DESIGN: elements embed a struct heap_node and are ordered by (key, seq),
 * so equal keys come out in the order their seq says.  Each node knows its
 * index, which makes removing any node O(log n).  The heap locks nothing:
 * its owner says which lock guards it.
 */
#ifndef WORKER_HEAP_H
#define WORKER_HEAP_H

#include <stddef.h>
#include <stdint.h>

struct heap_node {
	uint64_t key;
	uint64_t seq;
	size_t index;
};

struct heap {
	struct heap_node **nodes;
	size_t len;
	size_t cap;
};

/* Makes room for n nodes in all; ENOMEM, or 0: pushes up to n succeed. */
int worker__heap_grow(struct heap *h, size_t n);

static inline int
worker__heap_reserve(struct heap *h, size_t n)
{
	return n <= h->cap ? 0 : worker__heap_grow(h, n);
}
/* Adds n; ENOMEM if the array cannot grow, else 0. */
int worker__heap_push(struct heap *h, struct heap_node *n);
/* Removes n, which must be in h. */
void worker__heap_remove(struct heap *h, struct heap_node *n);
/* Frees the array (not the nodes) and empties h. */
void worker__heap_free(struct heap *h);

/* The smallest node, or NULL. */
static inline struct heap_node *
worker__heap_min(const struct heap *h)
{
	return h->len != 0 ? h->nodes[0] : NULL;
}

#endif
