/*
 * fire.c - the public fire functions: one target, bubbling up the
 * parents, broadcasting down the children.
 *
 * DESIGN
 *
 * These check their arguments, name the sender (the calling thread's
 * worker, or `from`) and hand over to tree.c, which propagates along the
 * tree, and send.c, which queues each copy.  The data of
 * worker_fire_ex() belongs to the library from the call on, whatever the
 * call returns: every path ends in worker__payload_put().
 */
#include <errno.h>
#include <string.h>

#include "internal.h"

static bool
valid_name(const char *name)
{
	return name != NULL && name[0] != '\0';
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
