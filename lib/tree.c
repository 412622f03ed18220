/*
 * tree.c - parents and children: links, walks, stopping a subtree, dumps.
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
 * Lock order: tree_lock before any qlock.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

pthread_mutex_t worker__tree_lock = PTHREAD_MUTEX_INITIALIZER;

#define child_of(n) container_of(n, worker_t, sibling)

void
worker__tree_link(worker_t *child)
{
	if (child->parent == NULL)
		return;
	pthread_mutex_lock(&worker__tree_lock);
	if (!child->in_parent) {
		list_append(&child->parent->children, &child->sibling);
		child->in_parent = true;
	}
	pthread_mutex_unlock(&worker__tree_lock);
}

void
worker__tree_unlink(worker_t *child)
{
	pthread_mutex_lock(&worker__tree_lock);
	if (child->in_parent) {
		list_remove(&child->sibling);
		child->in_parent = false;
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

	list_for_each(n, &w->children) {
		worker_t *c = child_of(n);
		int rc;

		if (!worker_is_running(c))
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

/* Fires STOP_THREAD at every running child of w, with w as source. */
void
worker__stop_children(worker_t *w)
{
	worker__tree_fire(w, false, w, WORKER_STOP_THREAD, NULL, NULL, 0);
}

/* A running or ending non-daemon child of w, referenced, or NULL. */
static worker_t *
next_to_join(worker_t *w)
{
	struct list_node *n;
	worker_t *found = NULL;

	pthread_mutex_lock(&worker__tree_lock);
	list_for_each(n, &w->children) {
		worker_t *c = child_of(n);
		bool busy;

		if (c->daemon)
			continue;
		pthread_mutex_lock(&c->qlock);
		busy = c->phase != PHASE_IDLE;
		pthread_mutex_unlock(&c->qlock);
		if (busy && worker__tryref(c)) {
			found = c;
			break;
		}
	}
	pthread_mutex_unlock(&worker__tree_lock);
	return found;
}

/*
 * Joins the non-daemon children of w one at a time.  A joined child has
 * left the list, so the loop ends; a child restarted meanwhile is joined
 * again, as it should be.
 */
void
worker__join_children(worker_t *w)
{
	worker_t *c;

	while ((c = next_to_join(w)) != NULL) {
		worker_join(c);
		worker_unref(c);
	}
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
	pthread_mutex_lock(&worker__tree_lock);
	list_for_each(n, &w->children) {
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

static const char *
state_name(worker_t *w)
{
	int phase;
	unsigned starts;

	if (w->is_root)
		return worker_is_running(w) ? "root" : "ended";
	pthread_mutex_lock(&w->qlock);
	phase = w->phase;
	starts = w->starts;
	pthread_mutex_unlock(&w->qlock);
	switch (phase) {
	case PHASE_RUNNING:
		return atomic_load(&w->paused) ? "paused" : "running";
	case PHASE_ENDING:
		return "ending";
	default:
		return starts == 0 ? "new" : "ended";
	}
}

static int
dump_locked(FILE *out, worker_t *w, int depth)
{
	struct list_node *n;

	if (fprintf(out, "%*s%s [%s] daemon=%s queued=%zu\n", 2 * depth, "",
	    w->name, state_name(w), w->daemon ? "yes" : "no",
	    worker__queued(w)) < 0)
		return EIO;
	list_for_each(n, &w->children)
		if (dump_locked(out, child_of(n), depth + 1) != 0)
			return EIO;
	return 0;
}

int
worker_dump(FILE *out, const worker_t *root)
{
	int rc;

	if (out == NULL || root == NULL)
		return EINVAL;
	pthread_mutex_lock(&worker__tree_lock);
	rc = dump_locked(out, (worker_t *)root, 0);
	pthread_mutex_unlock(&worker__tree_lock);
	if (rc == 0 && fflush(out) != 0)
		rc = EIO;
	return rc;
}
