/*
 * list.h - the one intrusive doubly-linked list of libworker.
 *
 * DESIGN: a list is a sentinel node; elements embed a struct list_node and
 * are found again with container_of().  No function here locks anything:
 * each list's owner says which lock guards it.
 */
#ifndef WORKER_LIST_H
#define WORKER_LIST_H

#include <stddef.h>

#define container_of(ptr, type, member) \
	((type *)(void *)((char *)(ptr) - offsetof(type, member)))

struct list_node {
	struct list_node *next;
	struct list_node *prev;
};

typedef struct list_node list_t;

static inline void
list_init(list_t *l)
{
	l->next = l;
	l->prev = l;
}

static inline int
list_empty(const list_t *l)
{
	return l->next == l;
}

/* Links n in before pos (so list_insert_before(l, n) appends to l). */
static inline void
list_insert_before(struct list_node *pos, struct list_node *n)
{
	n->next = pos;
	n->prev = pos->prev;
	pos->prev->next = n;
	pos->prev = n;
}

static inline void
list_append(list_t *l, struct list_node *n)
{
	list_insert_before(l, n);
}

static inline void
list_remove(struct list_node *n)
{
	n->prev->next = n->next;
	n->next->prev = n->prev;
	n->next = n;
	n->prev = n;
}

/* Removes and returns the first node, or NULL when l is empty. */
static inline struct list_node *
list_pop(list_t *l)
{
	struct list_node *n = l->next;

	if (n == l)
		return NULL;
	list_remove(n);
	return n;
}

/* Moves every node of from to the end of to, leaving from empty. */
static inline void
list_splice_tail(list_t *to, list_t *from)
{
	if (list_empty(from))
		return;
	from->next->prev = to->prev;
	to->prev->next = from->next;
	from->prev->next = to;
	to->prev = from->prev;
	list_init(from);
}

#define list_for_each(pos, l) \
	for ((pos) = (l)->next; (pos) != (l); (pos) = (pos)->next)

/* Safe against removal of pos inside the loop body. */
#define list_for_each_safe(pos, tmp, l)					\
	for ((pos) = (l)->next, (tmp) = (pos)->next; (pos) != (l);	\
	    (pos) = (tmp), (tmp) = (pos)->next)

#endif
