/*
 * queue.c - events and the per-worker event queue.
 *
 * DESIGN
 *
 * Producers append to w->queue under w->qlock.  The owner thread takes the
 * whole queue in one step (worker__take_batch) into w->batch, which only it
 * touches, and handles the batch without the lock: one lock acquisition per
 * batch, not per event.  The condition variable is signalled only when the
 * owner is really asleep on it (w->sleeping), so a busy worker costs its
 * producers no system call.
 *
 * An event fired at several workers (bubble, broadcast) is copied once per
 * target; the copies share one struct payload whose reference count calls
 * the destructor exactly once, when the last copy is freed.  The firing
 * call holds a reference too, so a fire that queued nothing frees the data
 * before it returns.
 *
 * w->queued counts events admitted and not yet taken off the batch; it is
 * what queue_max bounds.  Built-in control events are always admitted, so a
 * full queue can still be stopped.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* FNV-1a: names are short, and a hash check saves most strcmp calls. */
uint32_t
worker__hash(const char *name, size_t len)
{
	uint32_t h = 2166136261u;

	for (size_t i = 0; i < len; i++) {
		h ^= (unsigned char)name[i];
		h *= 16777619u;
	}
	return h;
}

static const struct {
	const char *name;
	enum event_kind kind;
} builtin_names[] = {
	{ WORKER_STOP_THREAD, KIND_STOP },
	{ WORKER_PAUSE_THREAD, KIND_PAUSE },
	{ WORKER_RESUME_THREAD, KIND_RESUME },
	{ WORKER_CHILD_THREAD_START, KIND_CHILD },
	{ WORKER_CHILD_THREAD_STOP, KIND_CHILD },
	{ WORKER_CHILD_THREAD_ERROR, KIND_CHILD },
	{ WORKER_CHILD_THREAD_DONE, KIND_CHILD },
	{ WORKER_CHILD_THREAD_END, KIND_CHILD },
	{ WORKER_EXECUTE, KIND_EXECUTE },
	{ WORKER_EVENT_REJECT, KIND_REJECT },
	{ WORKER_LISTENER_ERROR, KIND_LISTENER_ERROR },
};

static enum event_kind
classify(const char *name)
{
	/* Every built-in name is upper case; most user names are not. */
	if (name[0] < 'C' || name[0] > 'S')
		return KIND_USER;
	for (size_t i = 0; i < sizeof(builtin_names) /
	    sizeof(builtin_names[0]); i++)
		if (strcmp(name, builtin_names[i].name) == 0)
			return builtin_names[i].kind;
	return KIND_USER;
}

static bool
always_admitted(enum event_kind kind)
{
	return kind == KIND_STOP || kind == KIND_PAUSE ||
	    kind == KIND_RESUME || kind == KIND_CHILD;
}

struct payload *
worker__payload_new(void *data, void (*data_free)(void *))
{
	struct payload *pl = malloc(sizeof(*pl));

	if (pl == NULL)
		return NULL;
	atomic_init(&pl->refs, 1);
	pl->data = data;
	pl->data_free = data_free;
	return pl;
}

void
worker__payload_put(struct payload *pl)
{
	if (pl == NULL || atomic_fetch_sub(&pl->refs, 1) != 1)
		return;
	pl->data_free(pl->data);
	free(pl);
}

static struct wevent *
event_new(worker_t *source, const char *name, void *data,
    struct payload *pl, unsigned flags)
{
	size_t len = strlen(name);
	struct wevent *ev = malloc(sizeof(*ev) + len + 1);

	if (ev == NULL)
		return NULL;
	memcpy(ev->name, name, len + 1);
	ev->hash = worker__hash(name, len);
	ev->kind = classify(name);
	ev->pub.name = ev->name;
	ev->pub.data = data;
	ev->pub.source = worker_ref(source);
	ev->pub.flags = flags;
	ev->payload = pl;
	if (pl != NULL)
		atomic_fetch_add(&pl->refs, 1);
	return ev;
}

void
worker__event_free(struct wevent *ev)
{
	worker__payload_put(ev->payload);
	worker_unref(ev->pub.source);
	free(ev);
}

static void
event_free_cb(void *ev)
{
	worker__event_free(ev);
}

void
worker__drop_events(list_t *l)
{
	struct list_node *n;

	while ((n = list_pop(l)) != NULL)
		worker__event_free(container_of(n, struct wevent, link));
}

/*
 * Called with w->qlock held.  The signal goes out before the unlock: the
 * moment the lock is free, the owner may handle the event, end and free
 * w, condition variable included, and the caller holds no reference that
 * would prevent it.
 */
void
worker__signal_locked(worker_t *w)
{
	if (w->sleeping) {
		w->sleeping = false;
		if (w->polling)
			worker__poke_locked(w);
		else
			pthread_cond_signal(&w->wake_cond);
	}
}

/* Appends ev to w's queue, or says why not; wakes w if it sleeps. */
static int
enqueue(worker_t *w, struct wevent *ev)
{
	pthread_mutex_lock(&w->qlock);
	if (w->phase != PHASE_RUNNING) {
		pthread_mutex_unlock(&w->qlock);
		return ESRCH;
	}
	if (w->queue_max != 0 && !always_admitted(ev->kind) &&
	    atomic_load_explicit(&w->queued, memory_order_relaxed) >=
	    w->queue_max) {
		pthread_mutex_unlock(&w->qlock);
		return EAGAIN;
	}
	list_append(&w->queue, &ev->link);
	atomic_fetch_add_explicit(&w->queued, 1, memory_order_relaxed);
	worker__signal_locked(w);
	if (w->epfd >= 0)
		worker__fd_signal_locked(w);
	pthread_mutex_unlock(&w->qlock);
	return 0;
}

/*
 * Tells a running sender that target refused ev.  The EVENT_REJECT owns
 * the rejected event, so the original payload lives until the sender's
 * listeners have seen it.
 */
static void
reject(worker_t *target, struct wevent *ev)
{
	worker_t *sender = ev->pub.source;
	struct payload *pl;

	if (ev->kind == KIND_REJECT || sender == NULL ||
	    !worker_is_running(sender) ||
	    (pl = worker__payload_new(ev, event_free_cb)) == NULL) {
		worker__event_free(ev);
		return;
	}
	worker__send(target, sender, WORKER_EVENT_REJECT, &ev->pub, pl, 0,
	    false);
	worker__payload_put(pl);
}

/*
 * Queues one copy of an event on target.  With notify, a refusal because
 * target is not running is reported to the source with EVENT_REJECT.
 */
int
worker__send(worker_t *source, worker_t *target, const char *name,
    void *data, struct payload *pl, unsigned flags, bool notify)
{
	struct wevent *ev = event_new(source, name, data, pl, flags);
	int rc;

	if (ev == NULL)
		return ENOMEM;
	rc = enqueue(target, ev);
	if (rc == ESRCH && notify)
		reject(target, ev);
	else if (rc != 0)
		worker__event_free(ev);
	return rc;
}

/* Makes the owner of w leave its sleep and look at its wait again. */
void
worker__wake(worker_t *w)
{
	pthread_mutex_lock(&w->qlock);
	w->woken = true;
	worker__signal_locked(w);
	pthread_mutex_unlock(&w->qlock);
}

/* Owner thread: moves the whole queue to the end of the batch. */
void
worker__take_batch(worker_t *w)
{
	pthread_mutex_lock(&w->qlock);
	list_splice_tail(&w->batch, &w->queue);
	pthread_mutex_unlock(&w->qlock);
}

/* Owner thread: the next event of the batch, or NULL. */
struct wevent *
worker__next(worker_t *w)
{
	struct list_node *n = list_pop(&w->batch);

	if (n == NULL)
		return NULL;
	atomic_fetch_sub_explicit(&w->queued, 1, memory_order_relaxed);
	return container_of(n, struct wevent, link);
}
