/*
 * tree.c - parents and children: links, walks, an event fired along the
 * tree (bubble, broadcast), stopping the children.
 *
 * DESIGN
 *
 * One process-wide mutex, tree_lock, guards every parent's list of
 * children and each worker's in_parent flag.  Tree changes are rare (a
 * worker is created, starts, ends or is freed), so one lock keeps the
 * walks simple without costing the hot paths, which never take it.
 *
 * The list of children is weak.  A child is linked from worker_new() until
 * its run ends, and again when it is restarted; it unlinks itself when it
 * is freed.  A walk takes a reference with worker__tryref() before it uses
 * a child outside the lock, and skips children whose count already hit
 * zero.  While tree_lock is held, a linked child cannot be freed (its free
 * waits for the lock to unlink), so events may be queued on it directly.
 *
 * Propagation happens at fire time, as in pyThreadWorker: a bubbling event
 * is queued on the target and on each of its ancestors at once, and a
 * broadcast on every running descendant.  Copies go out top down (the
 * oldest ancestor first, a parent before its children), so a worker that
 * reacts to its copy by firing at a parent finds the parent's copy queued
 * before its own message.  The return value is the first target's
 * answer; a copy that an ancestor or descendant refuses is dropped
 * without an EVENT_REJECT, since the sender did not aim at that worker.
 * Ancestors need no lock: a worker's parent never changes and is kept
 * alive by the child.
 *
 * Lock order: tree_lock before any qlock.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

pthread_mutex_t worker__tree_lock = PTHREAD_MUTEX_INITIALIZER;

#define child_of(n) container_of(n, worker_t, tree.sibling)

/*
 * Every worker of the process, whatever its place in a tree: what a walk
 * of all trees starts from, and what keeps the workers of a parent
 * process reachable in a child that may never free them (fork.c).
 */
static list_t every_worker = { &every_worker, &every_worker };

void
worker__tree_init(worker_t *w)
{
	struct worker__tree_part *t = &w->tree;

	list_init(&t->sibling);
	list_init(&t->children);
	t->in_parent = false;
	t->closing = false;
	atomic_init(&t->abandoned, false);
	pthread_mutex_lock(&worker__tree_lock);
	list_append(&every_worker, &t->every);
	pthread_mutex_unlock(&worker__tree_lock);
}

/* w is being freed: it leaves its parent and the list of all. */
void
worker__tree_fini(worker_t *w)
{
	pthread_mutex_lock(&worker__tree_lock);
	if (w->tree.in_parent) {
		list_remove(&w->tree.sibling);
		w->tree.in_parent = false;
	}
	list_remove(&w->tree.every);
	pthread_mutex_unlock(&worker__tree_lock);
}

/*
 * Links child into its parent's children, tree_lock held; ESRCH if the
 * parent is ending, which takes no new child (it would stop and join its
 * children without this one).
 */
int
worker__tree_link_locked(worker_t *child)
{
	worker_t *parent = child->parent;

	if (parent == NULL)
		return 0;
	if (parent->tree.closing)
		return ESRCH;
	if (!child->tree.in_parent) {
		list_append(&parent->tree.children, &child->tree.sibling);
		child->tree.in_parent = true;
	}
	return 0;
}

int
worker__tree_link(worker_t *child)
{
	int rc;

	pthread_mutex_lock(&worker__tree_lock);
	rc = worker__tree_link_locked(child);
	pthread_mutex_unlock(&worker__tree_lock);
	return rc;
}

/*
 * A stuck child: its parent gives up on it and goes on.  It leaves its
 * parent's children, so nothing stops or waits for it any more, and it
 * tells its parent nothing more (notify_parent, worker.c).
 */
void
worker__tree_abandon(worker_t *child)
{
	pthread_mutex_lock(&worker__tree_lock);
	atomic_store(&child->tree.abandoned, true);
	if (child->tree.in_parent) {
		list_remove(&child->tree.sibling);
		child->tree.in_parent = false;
	}
	pthread_mutex_unlock(&worker__tree_lock);
}

/* Appends a reference to w to the array *out of *n, growing it. */
static bool
refs_push(worker_t ***out, size_t *n, size_t *cap, worker_t *w)
{
	if (*n == *cap) {
		size_t bigger = *cap != 0 ? 2 * *cap : 8;
		worker_t **a = realloc(*out, bigger * sizeof(*a));

		if (a == NULL)
			return false;
		*out = a;
		*cap = bigger;
	}
	if (worker__tryref(w))
		(*out)[(*n)++] = w;
	return true;
}

/*
 * References to w's children, the newest first; *out is malloc()ed (the
 * caller frees it and drops each reference).  0 and *out NULL if memory
 * ran out: the caller falls back on worker__stop_children().
 */
size_t
worker__children_newest_first(worker_t *w, worker_t ***out)
{
	struct list_node *n;
	size_t count = 0, cap = 0;

	*out = NULL;
	pthread_mutex_lock(&worker__tree_lock);
	for (n = w->tree.children.prev; n != &w->tree.children; n = n->prev)
		/* A child of the parent process (fork.c) is not there. */
		if (!worker__gone(child_of(n)) &&
		    !refs_push(out, &count, &cap, child_of(n)))
			break;
	pthread_mutex_unlock(&worker__tree_lock);
	return count;
}

/*
 * References to the running top-level workers (no parent, not a root, not
 * an async task), the newest first, as worker__children_newest_first();
 * *short_of_memory tells whether memory ran out before the end.
 */
size_t
worker__top_newest_first(worker_t ***out, bool *short_of_memory)
{
	struct list_node *n;
	size_t count = 0, cap = 0;

	*out = NULL;
	*short_of_memory = false;
	pthread_mutex_lock(&worker__tree_lock);
	for (n = every_worker.prev; n != &every_worker; n = n->prev) {
		worker_t *w = container_of(n, worker_t, tree.every);

		if (w->parent != NULL || w->is_root || w->is_async ||
		    worker__gone(w) || !worker__running(w))
			continue;
		if (!refs_push(out, &count, &cap, w)) {
			*short_of_memory = true;
			break;
		}
	}
	pthread_mutex_unlock(&worker__tree_lock);
	return count;
}

/*
 * Calls fn on every worker with no parent, oldest first, until it returns
 * false; tree_lock held, so none of them is freed meanwhile.
 */
void
worker__each_top_locked(bool (*fn)(worker_t *w, void *ctx), void *ctx)
{
	struct list_node *n;

	for (n = every_worker.next; n != &every_worker; n = n->next) {
		worker_t *w = container_of(n, worker_t, tree.every);

		if (w->parent == NULL && !worker__gone(w) && !fn(w, ctx))
			return;
	}
}

/* w's end sequence begins (closing) or is over: new children or not. */
void
worker__tree_close(worker_t *w, bool closing)
{
	pthread_mutex_lock(&worker__tree_lock);
	w->tree.closing = closing;
	pthread_mutex_unlock(&worker__tree_lock);
}

void
worker__tree_unlink(worker_t *child)
{
	pthread_mutex_lock(&worker__tree_lock);
	if (child->tree.in_parent) {
		list_remove(&child->tree.sibling);
		child->tree.in_parent = false;
	}
	pthread_mutex_unlock(&worker__tree_lock);
}

/* Returns 0 if a child accepted or none runs, else the first refusal. */
static int
fire_locked(worker_t *w, bool deep, worker_t *source, const char *name,
    void *data, struct payload *pl, unsigned flags)
{
	struct list_node *n;
	bool accepted = false;
	int first_err = 0;

	list_for_each(n, &w->tree.children) {
		worker_t *c = child_of(n);
		int rc;

		if (!worker__running(c))
			continue;
		rc = worker__send(source, c, name, data, pl, flags, false);
		if (rc == 0)
			accepted = true;
		else if (first_err == 0)
			first_err = rc;
		if (deep)
			fire_locked(c, true, source, name, data, pl, flags);
	}
	return accepted ? 0 : first_err;
}

/*
 * Queues an event on each running child of w (and, with deep, on every
 * running descendant, a parent before its children).  Returns 0 if a child
 * accepted it or no child runs, else the first refusal.
 */
int
worker__tree_fire(worker_t *w, bool deep, worker_t *source, const char *name,
    void *data, struct payload *pl, unsigned flags)
{
	int rc;

	pthread_mutex_lock(&worker__tree_lock);
	rc = fire_locked(w, deep, source, name, data, pl, flags);
	pthread_mutex_unlock(&worker__tree_lock);
	return rc;
}

/* Queues a copy on up and its ancestors, the oldest first. */
static void
send_up(worker_t *source, worker_t *up, const char *name, void *data,
    struct payload *pl, unsigned flags)
{
	if (up == NULL)
		return;
	send_up(source, up->parent, name, data, pl, flags);
	if (worker__running(up))
		worker__send(source, up, name, data, pl, flags, false);
}

/*
 * Fires at w, and with WORKER_BUBBLE at its ancestors, with
 * WORKER_BROADCAST at its descendants.  Returns w's answer.
 */
int
worker__fire_from(worker_t *source, worker_t *w, const char *name,
    void *data, struct payload *pl, unsigned flags, bool notify)
{
	int rc;

	if (flags & WORKER_BUBBLE)
		send_up(source, w->parent, name, data, pl, flags);
	rc = worker__send(source, w, name, data, pl, flags, notify);
	if (flags & WORKER_BROADCAST)
		worker__tree_fire(w, true, source, name, data, pl, flags);
	return rc;
}

/* Fires STOP_THREAD at every running child of w, with w as source. */
void
worker__stop_children(worker_t *w)
{
	worker__tree_fire(w, false, w, WORKER_STOP_THREAD, NULL, NULL, 0);
}

worker_t *
worker_find_child(const worker_t *w, const char *name)
{
	struct list_node *n;
	worker_t *found = NULL;

	if (w == NULL || name == NULL || name[0] == '\0') {
		errno = EINVAL;
		return NULL;
	}
	if (worker__gone(w)) {
		errno = ESRCH;
		return NULL;
	}
	pthread_mutex_lock(&worker__tree_lock);
	list_for_each(n, &w->tree.children) {
		worker_t *c = child_of(n);

		if (strcmp(c->name, name) == 0 && worker__tryref(c)) {
			found = c;
			break;
		}
	}
	pthread_mutex_unlock(&worker__tree_lock);
	if (found == NULL)
		errno = ENOENT;
	return found;
}

