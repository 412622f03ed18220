/*
 * listen.c - listeners and the dispatch of one event to them.
 *
 * DESIGN
 *
 * w->listeners is one list sorted by priority (highest first) and, within
 * a priority, by age.  It is guarded by w->llock, because any thread may
 * listen or unlisten at any time, while only the owner thread dispatches.
 *
 * Dispatch copies the matching listeners into a snapshot under the lock,
 * then calls them without it, so a listener may listen, unlisten, fire and
 * wait.  A listener removed while a dispatch is under way is unlinked at
 * once but freed only when the outermost dispatch ends (w->garbage), so
 * the snapshot never points at freed memory; its `removed` flag tells the
 * dispatch not to call it.  The snapshot lives on the stack unless an
 * event has more listeners than it holds, so a listener call costs no
 * allocation.
 *
 * A dispatch that is unwound (a listener calls worker_exit(), or the
 * built-in STOP_THREAD action runs) is finished by its hook: the depth
 * goes down, garbage is freed and the event is released.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

struct listener {
	struct list_node link;	/* llock: in listeners or garbage */
	atomic_bool removed;
	uint32_t hash;
	int priority;
	bool once;
	bool transient;
	uint64_t source_id;	/* 0: any source */
	worker_listener_fn fn;
	void *ctx;
	char name[];
};

struct snap_entry {
	struct listener *l;
	bool claimed;		/* a once listener this dispatch removed */
};

#define SNAP_STACK 16

struct dispatch {
	worker_t *w;
	struct wevent *ev;
	struct snap_entry *snap;
	size_t n;
	size_t cap;
	struct snap_entry stack[SNAP_STACK];
};

int
worker_listen(worker_t *w, const char *name, worker_listener_fn fn,
    void *ctx, const worker_listen_opts_t *opts)
{
	static const worker_listen_opts_t defaults;
	struct listener *l;
	struct list_node *pos;
	size_t len;

	if (w == NULL || name == NULL || name[0] == '\0' || fn == NULL)
		return EINVAL;
	if (opts == NULL)
		opts = &defaults;
	len = strlen(name);
	if ((l = malloc(sizeof(*l) + len + 1)) == NULL)
		return ENOMEM;
	memcpy(l->name, name, len + 1);
	atomic_init(&l->removed, false);
	l->hash = worker__hash(name, len);
	l->priority = opts->priority;
	l->once = opts->once != 0;
	l->transient = opts->transient != 0;
	l->source_id = opts->source != NULL ? opts->source->id : 0;
	l->fn = fn;
	l->ctx = ctx;

	/* After the last listener of the same or a higher priority. */
	pthread_mutex_lock(&w->llock);
	for (pos = w->listeners.prev; pos != &w->listeners; pos = pos->prev)
		if (container_of(pos, struct listener, link)->priority >=
		    l->priority)
			break;
	list_insert_before(pos->next, &l->link);
	pthread_mutex_unlock(&w->llock);
	return 0;
}

/* Takes l out of the list; frees it unless a dispatch may still see it. */
static void
remove_locked(worker_t *w, struct listener *l)
{
	atomic_store_explicit(&l->removed, true, memory_order_relaxed);
	list_remove(&l->link);
	if (w->dispatching > 0)
		list_append(&w->garbage, &l->link);
	else
		free(l);
}

int
worker_unlisten(worker_t *w, worker_listener_fn fn, void *ctx)
{
	struct list_node *pos, *tmp;
	int found = 0;

	if (w == NULL || fn == NULL)
		return EINVAL;
	pthread_mutex_lock(&w->llock);
	list_for_each_safe(pos, tmp, &w->listeners) {
		struct listener *l = container_of(pos, struct listener, link);

		if (l->fn == fn && l->ctx == ctx) {
			remove_locked(w, l);
			found = 1;
		}
	}
	pthread_mutex_unlock(&w->llock);
	return found ? 0 : ENOENT;
}

void
worker__remove_transient(worker_t *w)
{
	struct list_node *pos, *tmp;

	pthread_mutex_lock(&w->llock);
	list_for_each_safe(pos, tmp, &w->listeners) {
		struct listener *l = container_of(pos, struct listener, link);

		if (l->transient)
			remove_locked(w, l);
	}
	pthread_mutex_unlock(&w->llock);
}

void
worker__free_listeners(worker_t *w)
{
	struct list_node *n;

	while ((n = list_pop(&w->listeners)) != NULL)
		free(container_of(n, struct listener, link));
	while ((n = list_pop(&w->garbage)) != NULL)
		free(container_of(n, struct listener, link));
}

static bool
listener_matches(const struct listener *l, const struct wevent *ev)
{
	if (l->hash != ev->hash || strcmp(l->name, ev->name) != 0)
		return false;
	return l->source_id == 0 ||
	    (ev->pub.source != NULL && ev->pub.source->id == l->source_id);
}

static void
snapshot_push(struct dispatch *d, struct listener *l, bool claimed)
{
	if (d->n == d->cap) {
		struct snap_entry *bigger;

		bigger = malloc(2 * d->cap * sizeof(*bigger));
		if (bigger == NULL) {
			fprintf(stderr, "libworker: out of memory in "
			    "dispatch\n");
			abort();
		}
		memcpy(bigger, d->snap, d->n * sizeof(*bigger));
		if (d->snap != d->stack)
			free(d->snap);
		d->snap = bigger;
		d->cap *= 2;
	}
	d->snap[d->n].l = l;
	d->snap[d->n].claimed = claimed;
	d->n++;
}

/* Copies the listeners of ev; once listeners are claimed right here. */
static void
snapshot(struct dispatch *d)
{
	worker_t *w = d->w;
	struct list_node *pos, *tmp;

	pthread_mutex_lock(&w->llock);
	w->dispatching++;
	list_for_each_safe(pos, tmp, &w->listeners) {
		struct listener *l = container_of(pos, struct listener, link);

		if (!listener_matches(l, d->ev))
			continue;
		snapshot_push(d, l, l->once);
		if (l->once)
			remove_locked(w, l);
	}
	pthread_mutex_unlock(&w->llock);
}

static void
dispatch_end(struct dispatch *d)
{
	worker_t *w = d->w;
	struct list_node *n;
	list_t garbage;

	list_init(&garbage);
	pthread_mutex_lock(&w->llock);
	if (--w->dispatching == 0)
		list_splice_tail(&garbage, &w->garbage);
	pthread_mutex_unlock(&w->llock);
	while ((n = list_pop(&garbage)) != NULL)
		free(container_of(n, struct listener, link));
	if (d->snap != d->stack)
		free(d->snap);
}

/* The dispatch was unwound: finish it and drop its event. */
static void
dispatch_unwound(void *arg)
{
	struct dispatch *d = arg;

	dispatch_end(d);
	worker__event_free(d->ev);
}

static void
listener_failed(worker_t *w, const struct wevent *ev, int rc)
{
	/* A failing LISTENER_ERROR listener must not start a loop. */
	if (ev->kind == KIND_LISTENER_ERROR) {
		fprintf(stderr, "libworker: worker %s: LISTENER_ERROR "
		    "listener failed with %d\n", w->name, rc);
		return;
	}
	worker__fire_from(w, w, WORKER_LISTENER_ERROR, (void *)(intptr_t)rc,
	    NULL, WORKER_BUBBLE, false);
}

/*
 * Hands ev to w's listeners, then runs its built-in action.  Owner thread
 * only.  Either returns with ev still owned by the caller, or unwinds with
 * ev freed.
 */
void
worker__dispatch(worker_t *w, struct wevent *ev)
{
	struct dispatch d = { .w = w, .ev = ev, .n = 0, .cap = SNAP_STACK };
	struct worker__hook hook;

	d.snap = d.stack;
	snapshot(&d);
	worker__hook_push(w, &hook, dispatch_unwound, &d);
	for (size_t i = 0; i < d.n; i++) {
		struct listener *l = d.snap[i].l;
		int rc;

		if (!d.snap[i].claimed && atomic_load_explicit(&l->removed,
		    memory_order_relaxed))
			continue;
		if ((rc = l->fn(&ev->pub, l->ctx)) != 0)
			listener_failed(w, ev, rc);
	}
	worker__builtin(w, ev);
	worker__hook_pop(w, &hook);
	dispatch_end(&d);
}
