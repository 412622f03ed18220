/*
 * dump.c - worker_dump(): the trees as text, for people.
 *
 * DESIGN: the whole walk holds tree_lock, so no worker of the tree can be
 * freed under it (tree.c); each worker's run state is read under its
 * qlock, one at a time (tree_lock before a qlock).
 */
#include <errno.h>
#include <stdio.h>

#include "internal.h"

static int
dump_locked(FILE *out, worker_t *w, int depth)
{
	struct list_node *n;

	if (fprintf(out, "%*s%s [%s] daemon=%s queued=%zu\n", 2 * depth, "",
	    w->name, worker__state_name(w), w->daemon ? "yes" : "no",
	    worker__queued(w)) < 0)
		return EIO;
	list_for_each(n, &w->tree.children)
		if (dump_locked(out, container_of(n, worker_t,
		    tree.sibling), depth + 1) != 0)
			return EIO;
	return 0;
}

int
worker_dump(FILE *out, const worker_t *root)
{
	int rc;

	if (out == NULL || root == NULL)
		return EINVAL;
	if (worker__gone(root))
		return ESRCH;
	pthread_mutex_lock(&worker__tree_lock);
	rc = dump_locked(out, (worker_t *)root, 0);
	pthread_mutex_unlock(&worker__tree_lock);
	if (rc == 0 && fflush(out) != 0)
		rc = EIO;
	return rc;
}
