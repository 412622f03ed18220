/*
 * heap.c - the binary min-heap of heap.h (timers use it).
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>

#include "heap.h"

static bool
less(const struct heap_node *a, const struct heap_node *b)
{
	return a->key < b->key || (a->key == b->key && a->seq < b->seq);
}

static void
place(struct heap *h, size_t i, struct heap_node *n)
{
	h->nodes[i] = n;
	n->index = i;
}

static void
sift_up(struct heap *h, size_t i)
{
	struct heap_node *n = h->nodes[i];

	while (i > 0) {
		size_t parent = (i - 1) / 2;

		if (!less(n, h->nodes[parent]))
			break;
		place(h, i, h->nodes[parent]);
		i = parent;
	}
	place(h, i, n);
}

static void
sift_down(struct heap *h, size_t i)
{
	struct heap_node *n = h->nodes[i];

	for (;;) {
		size_t child = 2 * i + 1;

		if (child >= h->len)
			break;
		if (child + 1 < h->len &&
		    less(h->nodes[child + 1], h->nodes[child]))
			child++;
		if (!less(h->nodes[child], n))
			break;
		place(h, i, h->nodes[child]);
		i = child;
	}
	place(h, i, n);
}

int
worker__heap_grow(struct heap *h, size_t n)
{
	size_t cap = h->cap != 0 ? h->cap : 64;
	struct heap_node **nodes;

	if (n <= h->cap)
		return 0;
	while (cap < n)
		cap *= 2;
	if ((nodes = realloc(h->nodes, cap * sizeof(*nodes))) == NULL)
		return ENOMEM;
	h->nodes = nodes;
	h->cap = cap;
	return 0;
}

int
worker__heap_push(struct heap *h, struct heap_node *n)
{
	if (h->len == h->cap && worker__heap_reserve(h, h->len + 1) != 0)
		return ENOMEM;
	place(h, h->len++, n);
	sift_up(h, n->index);
	return 0;
}

void
worker__heap_remove(struct heap *h, struct heap_node *n)
{
	size_t i = n->index;
	struct heap_node *last = h->nodes[--h->len];

	if (last == n)
		return;
	place(h, i, last);
	/* The moved node may belong above or below its new place. */
	if (i > 0 && less(last, h->nodes[(i - 1) / 2]))
		sift_up(h, i);
	else
		sift_down(h, i);
}

void
worker__heap_free(struct heap *h)
{
	free(h->nodes);
	h->nodes = NULL;
	h->len = 0;
	h->cap = 0;
}
