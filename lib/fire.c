/*
 * fire.c - the public fire functions: one target, bubbling up the
 * parents, broadcasting down the children.
 *
 * DESIGN
 *
 * Propagation happens at fire time, as in pyThreadWorker: a bubbling event
 * is queued on the target and on each of its ancestors at once, and a
 * broadcast on every running descendant.  Copies go out top down (the
 * oldest ancestor first, a parent before its children), so a worker that
 * reacts to its copy by firing at a parent finds the parent's copy queued
 * before its own message.  The return value is the first
 * target's answer; a copy that an ancestor or descendant refuses is dropped
 * without an EVENT_REJECT, since the sender did not aim at that worker.
 *
 * Ancestors need no lock: a worker's parent never changes and is kept
 * alive by the child.  Descendants are walked under tree_lock (tree.c).
 *
 * The data of worker_fire_ex() belongs to the library from the call on,
 * whatever the call returns: every path ends in worker__payload_put().
 */
#include <errno.h>
#include <string.h>

#include "internal.h"

static bool
valid_name(const char *name)
{
	return name != NULL && name[0] != '\0';
}

/* Queues a copy on up and its ancestors, the oldest first. */
static void
send_up(worker_t *source, worker_t *up, const char *name, void *data,
    struct payload *pl, unsigned flags)
{
	if (up == NULL)
		return;
	send_up(source, up->parent, name, data, pl, flags);
	if (worker_is_running(up))
		worker__send(source, up, name, data, pl, flags, false);
}

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

/* Frees data the library was handed, for the error paths. */
static int
refuse(int rc, void *data, void (*data_free)(void *))
{
	if (data_free != NULL)
		data_free(data);
	return rc;
}

int
worker_fire_ex(worker_t *w, const char *name, void *data,
    void (*data_free)(void *), unsigned flags)
{
	struct payload *pl = NULL;
	worker_t *source;
	int rc;

	if (w == NULL || !valid_name(name) ||
	    (flags & ~(unsigned)(WORKER_BUBBLE | WORKER_BROADCAST)) != 0)
		return refuse(EINVAL, data, data_free);
	if (data_free != NULL &&
	    (pl = worker__payload_new(data, data_free)) == NULL)
		return refuse(ENOMEM, data, data_free);
	source = worker__current();
	rc = worker__fire_from(source, w, name, data, pl, flags, true);
	worker__payload_put(pl);
	return rc;
}

int
worker_fire(worker_t *w, const char *name, void *data)
{
	if (w == NULL || !valid_name(name))
		return EINVAL;
	return worker__send(worker__current(), w, name, data, NULL, 0,
	    true);
}

int
worker_stop(worker_t *w)
{
	return worker_fire(w, WORKER_STOP_THREAD, NULL);
}

int
worker_pause(worker_t *w)
{
	return worker_fire(w, WORKER_PAUSE_THREAD, NULL);
}

int
worker_resume(worker_t *w)
{
	return worker_fire(w, WORKER_RESUME_THREAD, NULL);
}

static int
fire_parent(worker_t *from, const char *name, void *data, unsigned flags)
{
	if (from == NULL || !valid_name(name))
		return EINVAL;
	if (from->parent == NULL)
		return ESRCH;
	return worker__fire_from(from, from->parent, name, data, NULL, flags,
	    true);
}

static int
fire_children(worker_t *from, const char *name, void *data, unsigned flags)
{
	if (from == NULL || !valid_name(name))
		return EINVAL;
	return worker__tree_fire(from, (flags & WORKER_BROADCAST) != 0, from,
	    name, data, NULL, flags);
}

int
worker_bubble(worker_t *from, const char *name, void *data)
{
	return fire_parent(from, name, data, WORKER_BUBBLE);
}

int
worker_parent_fire(worker_t *from, const char *name, void *data)
{
	return fire_parent(from, name, data, 0);
}

int
worker_broadcast(worker_t *from, const char *name, void *data)
{
	return fire_children(from, name, data, WORKER_BROADCAST);
}

int
worker_children_fire(worker_t *from, const char *name, void *data)
{
	return fire_children(from, name, data, 0);
}
