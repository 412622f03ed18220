/*
 * listen.c - listeners and the dispatch of one event to them.
 *
 * DESIGN
 *
 * w->listen.list is one list sorted by priority (highest first) and,
 * within a priority, by age.  It is guarded by w->listen.llock, because
 * any thread may listen or unlisten at any time, while only the owner
 * thread dispatches.
 *
 * The owner does not take the lock per event.  It keeps its own copy of
 * the list, w->listen.cache, and w->listen.version counts the changes of
 * the list: only when the count moved does the owner copy the list again,
 * under the lock.  Dispatch then copies the listeners that match the
 * event from the cache into a snapshot and calls them, so a listener may
 * listen, unlisten, fire and wait.  A listener removed from the list is
 * never freed by the remover: it goes to w->listen.garbage, and the owner
 * frees the garbage when no dispatch of its own is under way
 * (w->listen.depth 0), when no snapshot can point at it and its stale
 * cache is sure to be copied anew before use.
 * Its `removed` flag tells a dispatch under way not to call it.  The
 * snapshot lives on the stack unless an event has more listeners than it
 * holds, so a listener call costs no allocation and no lock.
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
	size_t len;
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
	size_t next;		/* where in the cache the snapshot stopped */
	bool pinned;		/* it holds the cache as it is (see snapshot) */
	unsigned doing;		/* what the owner did before the dispatch */
	struct listener *calling;	/* the listener called before it */
	struct snap_entry stack[SNAP_STACK];
};

/* Publishes a change of the list to the owner's cache; llock held. */
static void
changed_locked(worker_t *w)
{
	atomic_fetch_add_explicit(&w->listen.version, 1, memory_order_release);
}

/* Does the owner have an array for one more listener?  llock held. */
static bool
has_room_locked(const worker_t *w)
{
	size_t need = w->listen.count + 1;

	return need <= w->listen.cache_cap || need <= w->listen.spare_cap;
}

/*
 * Makes sure the owner can copy the list with one more listener without
 * allocating (refresh_cache), so that a dispatch never fails for want of
 * memory: the caller of worker_listen() gets ENOMEM instead.  llock held;
 * false if memory ran out.
 */
static bool
make_room_locked(worker_t *w)
{
	while (!has_room_locked(w)) {
		size_t cap = 2 * (w->listen.count + 1);
		struct listener **spare;

		pthread_mutex_unlock(&w->listen.llock);
		spare = malloc(cap * sizeof(*spare));
		pthread_mutex_lock(&w->listen.llock);
		if (spare == NULL)
			return false;
		if (has_room_locked(w)) {
			free(spare);
			break;
		}
		free(w->listen.spare);
		w->listen.spare = spare;
		w->listen.spare_cap = cap;
	}
	return true;
}

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
	if (worker__gone(w))
		return ESRCH;
	if (opts == NULL)
		opts = &defaults;
	len = strlen(name);
	if ((l = malloc(sizeof(*l) + len + 1)) == NULL)
		return ENOMEM;
	memcpy(l->name, name, len + 1);
	atomic_init(&l->removed, false);
	l->hash = worker__hash(name, len);
	l->len = len;
	l->priority = opts->priority;
	l->once = opts->once != 0;
	l->transient = opts->transient != 0;
	l->source_id = opts->source != NULL ? opts->source->id : 0;
	l->fn = fn;
	l->ctx = ctx;

	pthread_mutex_lock(&w->listen.llock);
	if (!make_room_locked(w)) {
		pthread_mutex_unlock(&w->listen.llock);
		free(l);
		return ENOMEM;
	}
	/* After the last listener of the same or a higher priority. */
	for (pos = w->listen.list.prev; pos != &w->listen.list; pos = pos->prev)
		if (container_of(pos, struct listener, link)->priority >=
		    l->priority)
			break;
	list_insert_before(pos->next, &l->link);
	w->listen.count++;
	changed_locked(w);
	pthread_mutex_unlock(&w->listen.llock);
	return 0;
}

/* Takes l out of the list; the owner frees it (see DESIGN). */
static void
remove_locked(worker_t *w, struct listener *l)
{
	atomic_store_explicit(&l->removed, true, memory_order_relaxed);
	list_remove(&l->link);
	w->listen.count--;
	list_append(&w->listen.garbage, &l->link);
	atomic_store_explicit(&w->listen.has_garbage, true,
	    memory_order_relaxed);
	changed_locked(w);
}

int
worker_unlisten(worker_t *w, worker_listener_fn fn, void *ctx)
{
	struct list_node *pos, *tmp;
	int found = 0;

	if (w == NULL || fn == NULL)
		return EINVAL;
	if (worker__gone(w))
		return ESRCH;
	pthread_mutex_lock(&w->listen.llock);
	list_for_each_safe(pos, tmp, &w->listen.list) {
		struct listener *l = container_of(pos, struct listener, link);

		if (l->fn == fn && l->ctx == ctx) {
			remove_locked(w, l);
			found = 1;
		}
	}
	pthread_mutex_unlock(&w->listen.llock);
	return found ? 0 : ENOENT;
}

void
worker__remove_transient(worker_t *w)
{
	struct list_node *pos, *tmp;

	pthread_mutex_lock(&w->listen.llock);
	list_for_each_safe(pos, tmp, &w->listen.list) {
		struct listener *l = container_of(pos, struct listener, link);

		if (l->transient)
			remove_locked(w, l);
	}
	pthread_mutex_unlock(&w->listen.llock);
}

static void
free_list(list_t *l)
{
	struct list_node *n;

	while ((n = list_pop(l)) != NULL)
		free(container_of(n, struct listener, link));
}

/* Owner, no dispatch under way: frees the removed listeners. */
void
worker__free_garbage(worker_t *w)
{
	list_t garbage;

	if (!atomic_load_explicit(&w->listen.has_garbage, memory_order_relaxed))
		return;
	list_init(&garbage);
	pthread_mutex_lock(&w->listen.llock);
	list_splice_tail(&garbage, &w->listen.garbage);
	atomic_store_explicit(&w->listen.has_garbage, false,
	    memory_order_relaxed);
	pthread_mutex_unlock(&w->listen.llock);
	free_list(&garbage);
}

void
worker__listen_init(struct worker__listen_part *l)
{
	pthread_mutex_init(&l->llock, NULL);
	list_init(&l->list);
	list_init(&l->garbage);
	atomic_init(&l->version, 0);
	atomic_init(&l->has_garbage, false);
	l->count = 0;
	l->cache = NULL;
	l->cache_len = 0;
	l->cache_cap = 0;
	l->spare = NULL;
	l->spare_cap = 0;
	l->pinned = 0;
	l->cache_ver = 0;
	l->depth = 0;
	atomic_init(&l->calling, NULL);
}

void
worker__listen_fini(worker_t *w)
{
	free_list(&w->listen.list);
	free_list(&w->listen.garbage);
	free(w->listen.cache);
	free(w->listen.spare);
	pthread_mutex_destroy(&w->listen.llock);
}

/*
 * Copies the list into the owner's cache, if it changed, into the spare
 * array if the cache is too small (worker_listen made sure one of them
 * is big enough).  Not while a dispatch pins the cache.
 */
static void
refresh_cache(worker_t *w)
{
	struct worker__listen_part *lp = &w->listen;
	struct list_node *pos;
	size_t n = 0;

	if (lp->cache_ver == atomic_load_explicit(&lp->version,
	    memory_order_acquire) || lp->pinned > 0)
		return;
	pthread_mutex_lock(&lp->llock);
	if (lp->count > lp->cache_cap) {
		struct listener **c = lp->cache;
		size_t cap = lp->cache_cap;

		lp->cache = lp->spare;
		lp->cache_cap = lp->spare_cap;
		lp->spare = c;
		lp->spare_cap = cap;
	}
	list_for_each(pos, &lp->list)
		lp->cache[n++] = container_of(pos, struct listener, link);
	lp->cache_len = n;
	lp->cache_ver = atomic_load_explicit(&lp->version,
	    memory_order_relaxed);
	pthread_mutex_unlock(&lp->llock);
}

/* The lengths first: a call of memcmp() costs less than one of strcmp(). */
static bool
listener_matches(const struct listener *l, const struct wevent *ev)
{
	if (l->hash != ev->hash || (ev->len != UINT32_MAX ?
	    l->len != ev->len || memcmp(l->name, ev->name, l->len) != 0 :
	    strcmp(l->name, ev->name) != 0))
		return false;
	return l->source_id == 0 ||
	    (ev->pub.source != NULL && ev->pub.source->id == l->source_id);
}

/*
 * Room for one more entry: a full snapshot moves to an array twice the
 * size.  False if memory ran out.
 */
static bool
snapshot_room(struct dispatch *d)
{
	struct snap_entry *bigger;

	if (d->n < d->cap)
		return true;
	if ((bigger = malloc(2 * d->cap * sizeof(*bigger))) == NULL)
		return false;
	memcpy(bigger, d->snap, d->n * sizeof(*bigger));
	if (d->snap != d->stack)
		free(d->snap);
	d->snap = bigger;
	d->cap *= 2;
	return true;
}

static inline void
snapshot_push(struct dispatch *d, struct listener *l, bool claimed)
{
	d->snap[d->n].l = l;
	d->snap[d->n].claimed = claimed;
	d->n++;
}

/* A once listener runs once: the first dispatch to claim it wins. */
static bool
claim(worker_t *w, struct listener *l)
{
	bool won;

	pthread_mutex_lock(&w->listen.llock);
	won = !atomic_load_explicit(&l->removed, memory_order_relaxed);
	if (won)
		remove_locked(w, l);
	pthread_mutex_unlock(&w->listen.llock);
	return won;
}

/*
 * The end of a dispatch (dispatch_user, dispatch_any), returned or
 * unwound: what the owner did and the listener it called before come
 * back, the latter before the garbage, which may hold the listener, is
 * freed.
 */
static void
dispatch_leave(worker_t *w, unsigned doing, struct listener *calling)
{
	worker__doing_restore(w, doing);
	atomic_store_explicit(&w->listen.calling, calling,
	    memory_order_relaxed);
	if (--w->listen.depth == 0)
		worker__free_garbage(w);
}

/*
 * Copies the listeners of ev from the cache, from d->next on, into the
 * snapshot; once listeners are claimed right here.  Returns false if it
 * stopped before the end because memory ran out: the dispatch then calls
 * what it has and comes back for the rest, and meanwhile pins the cache,
 * so that no nested dispatch copies the list into it anew (they use it
 * as it is).  A removed listener is not freed before the dispatch ends.
 */
static bool
snapshot(struct dispatch *d)
{
	worker_t *w = d->w;

	d->n = 0;
	for (; d->next < w->listen.cache_len; d->next++) {
		struct listener *l = w->listen.cache[d->next];

		if (!listener_matches(l, d->ev))
			continue;
		if (!snapshot_room(d)) {
			if (!d->pinned) {
				d->pinned = true;
				w->listen.pinned++;
			}
			return false;
		}
		if (!l->once)
			snapshot_push(d, l, false);
		else if (claim(w, l))
			snapshot_push(d, l, true);
	}
	return true;
}

static void
dispatch_end(struct dispatch *d)
{
	if (d->pinned)
		d->w->listen.pinned--;
	dispatch_leave(d->w, d->doing, d->calling);
	if (d->snap != d->stack)
		free(d->snap);
}

/*
 * The name of the event whose listener w calls now, or of the built-in
 * event whose action it runs, into buf; any thread.  The listener's
 * own copy of the name is read under llock: the owner frees a removed
 * listener under llock too, and only once it is no longer the one
 * called (worker__dispatch), so the listener read here is alive.
 */
const char *
worker__listening_to(worker_t *w, char *buf, size_t size)
{
	unsigned doing = atomic_load_explicit(&w->doing, memory_order_relaxed);
	const char *builtin = worker__builtin_name(doing >> 8);
	struct listener *l;

	pthread_mutex_lock(&w->listen.llock);
	l = atomic_load_explicit(&w->listen.calling, memory_order_relaxed);
	snprintf(buf, size, "%s", l != NULL ? l->name :
	    builtin != NULL ? builtin : "?");
	pthread_mutex_unlock(&w->listen.llock);
	return buf;
}

/* The dispatch was unwound: finish it and drop its event. */
static void
dispatch_unwound(void *arg)
{
	struct dispatch *d = arg;

	dispatch_end(d);
	worker__event_free(NULL, d->ev);
}

/* The data of a LISTENER_ERROR, with the failed event's name. */
struct listener_error {
	worker_listener_error_t pub;
	char event[];
};

static void
listener_failed(worker_t *w, const struct wevent *ev, int rc)
{
	size_t len = strlen(ev->name);
	struct listener_error *e;
	struct payload *pl;

	/* A failing LISTENER_ERROR listener must not start a loop. */
	if (ev->kind == KIND_LISTENER_ERROR) {
		worker__log(LOG_ERR, w, "worker %s: LISTENER_ERROR listener "
		    "failed with %d", w->name, rc);
		return;
	}
	if ((e = malloc(sizeof(*e) + len + 1)) == NULL ||
	    (pl = worker__payload_new(e, free)) == NULL) {
		free(e);
		worker__log(LOG_ERR, w, "worker %s: a listener of %s failed "
		    "with %d (no memory to report it)", w->name, ev->name, rc);
		return;
	}
	memcpy(e->event, ev->name, len + 1);
	e->pub.rc = rc;
	e->pub.event = e->event;
	worker__fire_from(w, w, WORKER_LISTENER_ERROR, &e->pub, pl,
	    WORKER_BUBBLE, false);
	worker__payload_put(pl);
}

static void
call_snapshot(struct dispatch *d)
{
	for (size_t i = 0; i < d->n; i++) {
		struct listener *l = d->snap[i].l;
		int rc;

		if (!d->snap[i].claimed && atomic_load_explicit(&l->removed,
		    memory_order_relaxed))
			continue;
		atomic_store_explicit(&d->w->listen.calling, l,
		    memory_order_relaxed);
		if ((rc = l->fn(&d->ev->pub, l->ctx)) != 0) {
			worker__stats_add(&d->w->stats.listener_errors, 1);
			listener_failed(d->w, d->ev, rc);
		}
	}
}

/* A user event's dispatch under way, for its hook (dispatch_user). */
struct user_frame {
	worker_t *w;
	struct wevent *ev;
	unsigned doing;
	struct listener *calling;
};

/* A listener of a user event unwound: finish the dispatch, drop ev. */
static void
user_unwound(void *arg)
{
	struct user_frame *f = arg;

	dispatch_leave(f->w, f->doing, f->calling);
	worker__event_free(NULL, f->ev);
}

/*
 * The dispatch of most events, as worker__dispatch() below does it but
 * with less to set up: a user event (no built-in action), the cache up
 * to date and not pinned, at most SNAP_STACK listeners, none of them
 * once.  Returns false, having done nothing, if it finds a once
 * listener of ev (its claim takes llock: dispatch_any does that).
 */
static bool
dispatch_user(worker_t *w, struct wevent *ev)
{
	struct worker__listen_part *lp = &w->listen;
	struct listener *snap[SNAP_STACK];
	struct worker__hook hook;
	struct user_frame f;
	size_t n = 0;

	for (size_t i = 0; i < lp->cache_len; i++) {
		struct listener *l = lp->cache[i];

		if (!listener_matches(l, ev))
			continue;
		if (l->once)
			return false;
		snap[n++] = l;
	}
	if (n == 0) {
		/* No dispatch of its own under way frees the garbage. */
		if (lp->depth == 0)
			worker__free_garbage(w);
		return true;
	}
	lp->depth++;
	f.w = w;
	f.ev = ev;
	f.doing = worker__doing(w, DOING_LISTENER, KIND_USER);
	f.calling = atomic_load_explicit(&lp->calling, memory_order_relaxed);
	worker__hook_push(w, &hook, user_unwound, &f);
	PROBE2(dispatch__begin, w->name, ev->pub.name);
	for (size_t i = 0; i < n; i++) {
		struct listener *l = snap[i];
		int rc;

		if (atomic_load_explicit(&l->removed, memory_order_relaxed))
			continue;
		atomic_store_explicit(&lp->calling, l, memory_order_relaxed);
		if ((rc = l->fn(&ev->pub, l->ctx)) != 0) {
			worker__stats_add(&w->stats.listener_errors, 1);
			listener_failed(w, ev, rc);
		}
	}
	PROBE2(dispatch__end, w->name, ev->pub.name);
	worker__hook_pop(w, &hook);
	dispatch_leave(w, f.doing, f.calling);
	return true;
}

/* Any event, in the general way (see worker__dispatch). */
static __attribute__((noinline)) void
dispatch_any(worker_t *w, struct wevent *ev)
{
	struct dispatch d;
	struct worker__hook hook;

	if (worker__control_redundant(w, ev))
		return;
	/* Field by field: an initializer would zero the whole stack array. */
	d.w = w;
	d.ev = ev;
	d.n = 0;
	d.cap = SNAP_STACK;
	d.snap = d.stack;
	d.next = 0;
	d.pinned = false;
	refresh_cache(w);
	w->listen.depth++;
	if (ev->kind == KIND_STOP)
		w->control.stopping++;
	/* A built-in event's name, for the action run after its listeners. */
	d.doing = worker__doing(w, DOING_LISTENER, ev->kind == KIND_USER ? 0 :
	    worker__builtin_number(ev->name));
	d.calling = atomic_load_explicit(&w->listen.calling,
	    memory_order_relaxed);
	worker__hook_push(w, &hook, dispatch_unwound, &d);
	PROBE2(dispatch__begin, w->name, ev->pub.name);
	for (bool whole = false; !whole;) {
		whole = snapshot(&d);
		call_snapshot(&d);
	}
	PROBE2(dispatch__end, w->name, ev->pub.name);
	if (ev->kind != KIND_USER) {
		/* The action is the event's, not its last listener's. */
		atomic_store_explicit(&w->listen.calling, NULL,
		    memory_order_relaxed);
		worker__control(w, ev);
	}
	worker__hook_pop(w, &hook);
	if (ev->kind == KIND_STOP)
		w->control.stopping--;
	dispatch_end(&d);
}

/*
 * Hands ev to w's listeners, then runs its built-in action (control.c).
 * Owner thread only.  Either returns with ev still owned by the caller,
 * or unwinds with ev freed.
 */
void
worker__dispatch(worker_t *w, struct wevent *ev)
{
	struct worker__listen_part *lp = &w->listen;

	if (ev->kind == KIND_USER && lp->pinned == 0 &&
	    lp->cache_ver == atomic_load_explicit(&lp->version,
	    memory_order_acquire) && lp->cache_len <= SNAP_STACK &&
	    dispatch_user(w, ev))
		return;
	dispatch_any(w, ev);
}
