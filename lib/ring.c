/*
 * ring.c - the lock-free way into a worker's queue.
 *
 * DESIGN
 *
 * A worker that receives a stream of events gets a ring of RING_MIN
 * slots of one cache line each, after Dmitry Vyukov's bounded queue.  A
 * producer claims a position with one compare-and-swap on the ring's
 * tail, once the owner's published head says the slot is free, writes the
 * event into the slot (name, data, source, payload) and publishes it with
 * one atomic exchange on the slot's sequence word.  The owner copies
 * published slots out, straight into the event it is about to handle
 * (worker__ring_pop) or into event nodes of its own (event.c), and frees
 * them by publishing its head, once every RING_FREE slots.  No lock, no
 * allocation in the producer, and producer and consumer share only the
 * slot's line: the owner only reads it, so a slot's line crosses from one
 * CPU to the other once per event, and the owner's head once per
 * RING_FREE events.  (Freeing each slot with a store of its own, as
 * Vyukov's queue does, cost a second crossing per event.)  Both sides
 * ask for lines ahead of the slot they are at, the owner to read and the
 * producer to write (claim), so the crossings overlap rather than add
 * up: where a line takes a quarter of a microsecond from one CPU to the
 * other (two vCPUs on distant cores of the host), that makes 35 million
 * events a second of 9.  The locked queue (queue.c) cost each event the
 * mutex, a node allocated on one CPU and freed on another, and a counter
 * both sides wrote.
 *
 * The locked queue stays for everything the ring does not do: names longer
 * than RING_NAME_MAX, workers that are not running, a ring that stays
 * full while its owner takes no event for FULL_WAIT, and workers that
 * hold the ring closed
 * (w->rout.holds): those with queue_max (admission needs the count under
 * the lock), and those that watch descriptors or have a worker_fd()
 * (their wake-up is an eventfd write: watch.c and embed.c take a hold).
 * Both ways keep one order, because the tail carries a bit, RING_LOCKED,
 * that sends every producer to the locked queue:
 *
 *   - it is set, under qlock, by the first producer that has to take the
 *     locked path, and at the end of a run; tail then holds the position
 *     where the ring stopped (w->rout.locked_at) and no compare-and-swap on it
 *     can succeed;
 *   - the owner takes what the ring holds below locked_at (waiting for
 *     producers that claimed a slot before the bit and have not yet
 *     published it) before it takes the locked queue, so everything that
 *     went through the ring first is handled first;
 *   - only the owner clears the bit, under qlock, once the locked queue is
 *     empty and the worker may use the ring again.
 *
 * So the locked queue is never used while the bit is clear, and the owner
 * may pop the ring without the lock whenever it sees the bit clear: if a
 * producer has just set it, what the owner pops lies below locked_at, and
 * comes before the locked queue anyway.
 *
 * Sleeping: an owner about to sleep marks the slot it waits for with
 * SLOT_SLEEPER (a compare-and-swap that fails if the slot was published
 * meanwhile) and sleeps on that slot's word with a futex.  The exchange
 * that publishes the slot returns the mark, so the producer knows it must
 * wake the owner without reading anything else of the worker: after the
 * exchange the owner may handle the event, end and free the worker, and
 * a private futex wake touches no memory.  Other wakers (wake.c) clear
 * the mark under qlock before they wake the same word.
 *
 * A ring a producer had to wait for room in grows (worker__ring_grow),
 * doubling up to RING_MAX slots: with the producer and the owner on one
 * CPU, each fill of the ring costs a switch from one thread to the other
 * and back, which took as long as the events in a ring of 256.  The
 * owner grows it between two events, under qlock: it locks the ring as a
 * producer would, takes what it holds, and puts a ring twice the size in
 * its place, locked at the same position, which the locked queue's take
 * opens as usual.  The old ring stays allocated until the worker is
 * freed, since a producer may still be reading it (to find it locked).
 *
 * Sequence words count laps, in steps of 4: the slot of position pos is
 * published for its lap L = pos / size at 4L + 2, and keeps that
 * value until the producer of lap L + 1 publishes it again (a zeroed ring
 * holds no published slot).  The owner marks an unpublished slot by
 * setting its bit 0.  32 bits wrap harmlessly, since a slot's word is
 * only compared with the value of its own lap.
 */
#include <sched.h>
#include <stdalign.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

enum {
	RING_MIN = 256,		/* slots of a new ring, a power of two */
	RING_MAX = 4096,	/* slots of the largest */
	RING_AFTER = 32,	/* locked events before a worker gets a ring */
	RING_TAKE = 64,		/* events moved to the batch per look */
	RING_FREE = 32,		/* slots the owner frees at once */
	READ_AHEAD = 8,		/* slots the owner asks for ahead */
	WRITE_AHEAD = 16,	/* slots a producer asks for ahead */
	FULL_WAIT = 200000	/* ns a producer waits for room while the
				 * owner takes nothing */
};

_Static_assert(RING_MIN % RING_FREE == 0, "whole groups of freed slots");

#define RING_LOCKED	((uint64_t)1 << 63)	/* in tail */
#define SLOT_SLEEPER	WORKER_WAKE_MARK	/* in a slot's seq */

struct ring_slot {
	atomic_uint seq;
	uint32_t hash;
	void *data;
	worker_t *source;		/* holds a reference */
	struct payload *payload;	/* holds a reference */
	uint8_t kind;
	uint8_t flags;
	uint8_t len;
	char name[RING_NAME_MAX + 1];
};

_Static_assert(sizeof(struct ring_slot) == 64, "a slot is a cache line");
_Static_assert((WORKER_BUBBLE | WORKER_BROADCAST) <= UINT8_MAX,
    "flags fit a slot");

struct worker__ring {
	alignas(64) atomic_uint_least64_t tail;	/* producers */
	alignas(64) atomic_uint_least64_t head;	/* the owner: all below
						 * is free */
	atomic_bool waited;		/* a producer waited for room */
	uint64_t size;			/* slots, a power of two */
	unsigned shift;			/* log2(size) */
	struct worker__ring *older;	/* the ring this one replaced */
	alignas(64) struct ring_slot slots[];
};

/* The sequence word of the slot at pos once it is published. */
static unsigned
pub_seq(const struct worker__ring *r, uint64_t pos)
{
	return (unsigned)(pos >> r->shift) * 4u + 2u;
}

static struct ring_slot *
slot_at(struct worker__ring *r, uint64_t pos)
{
	return &r->slots[pos & (r->size - 1)];
}

/* A zeroed ring of size slots, or NULL. */
static struct worker__ring *
ring_new(uint64_t size)
{
	struct worker__ring *r = aligned_alloc(alignof(struct worker__ring),
	    sizeof(*r) + size * sizeof(r->slots[0]));

	if (r == NULL)
		return NULL;
	memset(r, 0, sizeof(*r) + size * sizeof(r->slots[0]));
	r->size = size;
	while (((uint64_t)1 << r->shift) < size)
		r->shift++;
	return r;
}

static struct worker__ring *
ring_of(const worker_t *w)
{
	return atomic_load_explicit(&w->rin.ring, memory_order_acquire);
}

/*
 * Is RING_LOCKED set?  The owner asks w->rin.locked, a copy kept under
 * qlock next to w->rin.ring, rather than the tail: the tail's cache line is
 * the producers', and reading it per batch would take it from them.
 * Exact under qlock; without it, a hint that may lag.
 */
static bool
is_locked(const worker_t *w)
{
	return atomic_load_explicit(&w->rin.locked, memory_order_acquire);
}

static void
set_locked(worker_t *w, bool locked)
{
	atomic_store_explicit(&w->rin.locked, locked, memory_order_release);
}

/* How long a producer has waited for room, and what it saw of w. */
struct room_wait {
	uint64_t until;		/* 0 before the first wait */
	size_t taken;		/* w's events taken off its queues */
};

/*
 * A producer found w's ring full: lets the owner run and make room.  It
 * waits while the owner makes progress, and gives up (false) once the
 * owner has taken no event at all for FULL_WAIT ns: then the owner is
 * stuck, or waits for this very producer (two workers that fill each
 * other's rings), and the event takes the locked queue.  An owner that
 * works through a long batch of the locked queue, and frees no slot
 * meanwhile, counts as making progress: a producer that gave up on it
 * would only make the next batch long too, and the owner would never
 * get back to the ring.  It yields rather than spins: with more threads
 * than CPUs, the owner may be waiting for this very CPU, and a producer
 * that spins takes it.
 */
static bool
wait_room(const worker_t *w, struct room_wait *rw)
{
	uint64_t now = worker__now_ns();

	/* The owner's count of events is read at the start and at the end
	 * of each FULL_WAIT only: the owner writes it per event, and a
	 * producer that read it per look would cost the owner a miss per
	 * event, as long as the ring is full. */
	if (rw->until == 0 || now >= rw->until) {
		size_t taken = atomic_load_explicit(&w->inbox.taken,
		    memory_order_relaxed);

		if (rw->until != 0 && taken == rw->taken)
			return false;
		rw->until = now + FULL_WAIT;
		rw->taken = taken;
	}
	sched_yield();
	return true;
}

/*
 * Claims a position in r's tail, or returns NULL: the ring is locked, or
 * is full and wait is false, or stayed full while its owner w made no
 * progress (wait_room).  The acquire load of the head orders the
 * producer's writes to the slot after the owner's last reads of it.
 */
static __attribute__((noinline)) struct ring_slot *
claim_slow(const worker_t *w, struct worker__ring *r, bool wait,
    uint64_t *posp)
{
	uint64_t pos = atomic_load_explicit(&r->tail, memory_order_relaxed);
	struct room_wait rw = { 0, 0 };

	for (;;) {
		if (pos & RING_LOCKED)
			return NULL;
		if (pos - atomic_load_explicit(&r->head,
		    memory_order_acquire) < r->size) {
			if (atomic_compare_exchange_weak_explicit(&r->tail,
			    &pos, pos + 1, memory_order_relaxed,
			    memory_order_relaxed)) {
				*posp = pos;
				return slot_at(r, pos);
			}
			continue;
		}
		/* The owner has not freed the slot of the last lap. */
		if (!wait)
			return NULL;
		if (!atomic_load_explicit(&r->waited, memory_order_relaxed))
			atomic_store_explicit(&r->waited, true,
			    memory_order_relaxed);
		if (!wait_room(w, &rw))
			return NULL;
		pos = atomic_load_explicit(&r->tail, memory_order_relaxed);
	}
}

/*
 * Asks for the line at p for writing: the line comes, and the owner's
 * copy goes, while the caller does other work.
 */
static inline void
prefetch_write(const void *p)
{
#if defined(__x86_64__) || defined(__i386__)
	/* GCC emits prefetchw only for -mprfchw; a CPU without it takes
	 * the instruction for a no-op. */
	__asm__ __volatile__("prefetchw %0" : : "m"(*(const char *)p));
#else
	__builtin_prefetch(p, 1);
#endif
}

/*
 * The same; the first try inline, with nothing to save.  A producer that
 * got pos asks for the slot WRITE_AHEAD further on, if the owner has
 * freed it: the slot's line was last read by the owner, a lap ago, and
 * a producer's writes wait for the owner's copy to be invalidated; the
 * exchange that publishes a slot waits for them.  Asked for ahead, that
 * wait overlaps the events between.
 */
static inline struct ring_slot *
claim(const worker_t *w, struct worker__ring *r, bool wait, uint64_t *posp)
{
	uint64_t pos = atomic_load_explicit(&r->tail, memory_order_relaxed);
	uint64_t head = atomic_load_explicit(&r->head, memory_order_acquire);

	if (!(pos & RING_LOCKED) && pos - head < r->size &&
	    atomic_compare_exchange_weak_explicit(&r->tail, &pos, pos + 1,
	    memory_order_relaxed, memory_order_relaxed)) {
		if (pos + WRITE_AHEAD - head < r->size)
			prefetch_write(slot_at(r, pos + WRITE_AHEAD));
		*posp = pos;
		return slot_at(r, pos);
	}
	return claim_slow(w, r, wait, posp);
}

void
worker__ring_init(worker_t *w)
{
	atomic_init(&w->rin.ring, NULL);
	atomic_init(&w->rin.locked, false);
	atomic_init(&w->rout.head, 0);
	w->rout.locked_at = 0;
	/* A bounded queue counts its events under the lock. */
	w->rout.holds = w->queue.max != 0;
}

/*
 * Writes an event named n (len bytes, at most RING_NAME_MAX) into the
 * claimed slot s; the references to source and pl are the slot's now.
 */
static inline void
fill_slot(struct ring_slot *s, const struct event_name *n, size_t len,
    void *data, worker_t *source, struct payload *pl, unsigned flags)
{
	s->hash = n->hash;
	s->kind = (uint8_t)n->kind;
	s->flags = (uint8_t)flags;
	s->len = (uint8_t)len;
	memcpy(s->name, n->name, len + 1);
	s->data = data;
	s->source = source;
	s->payload = pl;
}

/* Makes the filled slot s at pos of r visible to the owner, wakes it. */
static void
publish(const struct worker__ring *r, struct ring_slot *s, uint64_t pos)
{
	unsigned old = atomic_exchange_explicit(&s->seq, pub_seq(r, pos),
	    memory_order_release);

	/* From here on the worker may be gone: only its address is used. */
	if (old & SLOT_SLEEPER)
		worker__futex_wake(&s->seq);
}

bool
worker__ring_send(worker_t *source, worker_t *w, const struct event_name *n,
    void *data, struct payload *pl, unsigned flags)
{
	struct worker__ring *r = ring_of(w);
	/* A local, so the copy below knows it is short and stays inline. */
	size_t len = n->len;
	struct ring_slot *s;
	uint64_t pos;

	if (r == NULL || len > RING_NAME_MAX ||
	    (s = claim(w, r, true, &pos)) == NULL)
		return false;
	fill_slot(s, n, len, data, worker__source_ref(source), pl, flags);
	worker__payload_hold(pl);
	publish(r, s, pos);
	return true;
}

/* Owner: is the slot at the head published? */
static bool
head_published(struct worker__ring *r, uint64_t head)
{
	return atomic_load_explicit(&slot_at(r, head)->seq,
	    memory_order_acquire) == pub_seq(r, head);
}

/* Owner: producers may use every slot below head again. */
static void
free_below(struct worker__ring *r, uint64_t head)
{
	atomic_store_explicit(&r->head, head, memory_order_release);
}

/* Owner: copies the published slot s into ev, whose name has room. */
static void
copy_slot(struct wevent *ev, const struct ring_slot *s)
{
	/* The whole slot's name, a fixed size: a few moves, no call. */
	memcpy(ev->name, s->name, sizeof(s->name));
	ev->hash = s->hash;
	ev->len = s->len;
	ev->kind = s->kind;
	ev->pub.name = ev->name;
	ev->pub.data = s->data;
	ev->pub.source = s->source;
	ev->pub.flags = s->flags;
	ev->payload = s->payload;
}

/* Owner: one more slot taken; frees them RING_FREE at a time. */
static void
advance(worker_t *w, struct worker__ring *r, uint64_t head)
{
	atomic_store_explicit(&w->rout.head, head + 1, memory_order_relaxed);
	if ((head + 1) % RING_FREE == 0)
		free_below(r, head + 1);
}

/*
 * Owner, the ring seen open: copies the event at the head into ev (an
 * event on the owner's stack, with room for RING_NAME_MAX bytes of name)
 * and takes it; false if none is published.  The handling of a stream
 * of events costs no node and no list.
 */
bool
worker__ring_pop(worker_t *w, struct wevent *ev)
{
	struct worker__ring *r = ring_of(w);
	uint64_t head = atomic_load_explicit(&w->rout.head,
	    memory_order_relaxed);
	const struct ring_slot *s;

	if (r == NULL || is_locked(w) || !head_published(r, head))
		return false;
	s = slot_at(r, head);
	/* Each slot's line comes from a producer's CPU: asking for one
	 * READ_AHEAD on now overlaps its miss with the events between. */
	__builtin_prefetch(slot_at(r, head + READ_AHEAD));
	copy_slot(ev, s);
	advance(w, r, head);
	return true;
}

/*
 * Owner, the ring seen open: how many events, up to max, are published
 * from the head on now.
 */
size_t
worker__ring_published(const worker_t *w, size_t max)
{
	struct worker__ring *r = ring_of(w);
	uint64_t head = atomic_load_explicit(&w->rout.head,
	    memory_order_relaxed);
	size_t n = 0;

	if (r == NULL || is_locked(w))
		return 0;
	while (n < max && head_published(r, head + n))
		n++;
	return n;
}

/* Owner: gives producers every slot taken so far. */
void
worker__ring_free(worker_t *w)
{
	struct worker__ring *r = ring_of(w);

	if (r != NULL)
		free_below(r, atomic_load_explicit(&w->rout.head,
		    memory_order_relaxed));
}

/* Owner: moves the published slot at the head to the end of into. */
static bool
take_head(worker_t *w, struct worker__ring *r, list_t *into)
{
	uint64_t head = atomic_load_explicit(&w->rout.head,
	    memory_order_relaxed);
	struct ring_slot *s = slot_at(r, head);
	struct wevent *ev = worker__event_node(w, s->kind);

	/* Out of memory: the event stays in its slot for the next look. */
	if (ev == NULL)
		return false;
	copy_slot(ev, s);
	advance(w, r, head);
	list_append(into, &ev->link);
	return true;
}

/*
 * Owner: moves up to RING_TAKE published events to the end of into;
 * returns how many.
 */
size_t
worker__ring_take(worker_t *w, list_t *into)
{
	struct worker__ring *r = ring_of(w);
	size_t n = 0;

	if (r == NULL)
		return 0;
	for (;;) {
		uint64_t head = atomic_load_explicit(&w->rout.head,
		    memory_order_relaxed);

		if (n >= RING_TAKE || !head_published(r, head))
			break;
		__builtin_prefetch(slot_at(r, head + READ_AHEAD));
		if (!take_head(w, r, into))
			break;
		n++;
	}
	worker__ring_free(w);
	return n;
}

/* Owner: true if the ring may hold events and the bit is clear. */
bool
worker__ring_open(const worker_t *w)
{
	struct worker__ring *r = ring_of(w);

	return r != NULL && !is_locked(w);
}

/* Owner: true if the ring exists and the bit is set. */
bool
worker__ring_locked(const worker_t *w)
{
	return ring_of(w) != NULL && is_locked(w);
}

/*
 * Owner, qlock held: takes what a locked ring holds, up to locked_at,
 * waiting for producers that claimed a slot there and have not yet
 * published it (they are between two atomic operations, and can only be
 * descheduled).  Without a node for a slot (no memory, and the owner's
 * reserved one in use) it stops there: the caller takes the rest, and
 * the locked queue behind it, once nodes come back.  An open ring is
 * left to worker__ring_pop().
 */
void
worker__ring_take_locked(worker_t *w, list_t *into)
{
	struct worker__ring *r = ring_of(w);
	uint64_t head;

	if (r == NULL || !is_locked(w))
		return;
	while ((head = atomic_load_explicit(&w->rout.head,
	    memory_order_relaxed)) != w->rout.locked_at) {
		if (!head_published(r, head))
			worker__relax();
		else if (!take_head(w, r, into))
			break;
	}
	worker__ring_free(w);
}

/* May w's producers use its ring?  qlock held. */
static bool
ring_allowed_locked(const worker_t *w)
{
	return w->phase == PHASE_RUNNING && w->rout.holds == 0;
}

/*
 * A producer on the locked path, qlock held, with ev made for the locked
 * queue (its name len bytes long): if the ring is open by now and has
 * room, puts ev into it instead (ev's references go to the slot, its node
 * back to where it came from) and returns true.  A producer finds the
 * ring locked, makes its event, and meanwhile the owner may have taken
 * the locked queue and opened the ring again: locking it once more would
 * send every producer back to the locked queue, and with a producer or
 * two always on their way there, the ring would hardly ever be used.
 */
bool
worker__ring_resend_locked(worker_t *w, struct wevent *ev, size_t len)
{
	struct worker__ring *r = ring_of(w);
	struct event_name n = { .name = ev->name, .len = len,
	    .hash = ev->hash, .kind = (enum event_kind)ev->kind };
	struct ring_slot *s;
	uint64_t pos;

	if (r == NULL || is_locked(w) || !ring_allowed_locked(w) ||
	    len > RING_NAME_MAX || (s = claim(w, r, false, &pos)) == NULL)
		return false;
	fill_slot(s, &n, len, ev->pub.data, ev->pub.source, ev->payload,
	    ev->pub.flags);
	worker__event_node_free(ev);
	publish(r, s, pos);
	return true;
}

/*
 * Keeps producers on the locked path until the matching release (a
 * watch, worker_fd()); qlock held.
 */
void
worker__ring_hold_locked(worker_t *w)
{
	w->rout.holds++;
	worker__ring_close_locked(w);
}

/* The reason of a hold is gone; the owner reopens the ring.  qlock held. */
void
worker__ring_release_locked(worker_t *w)
{
	w->rout.holds--;
}

/* Sends producers to the locked queue from now on; qlock held. */
void
worker__ring_close_locked(worker_t *w)
{
	struct worker__ring *r = ring_of(w);

	if (r != NULL && !is_locked(w)) {
		w->rout.locked_at = atomic_fetch_or(&r->tail, RING_LOCKED);
		set_locked(w, true);
	}
}

/*
 * Owner, qlock held, after it took the locked queue: lets producers use
 * the ring again if nothing is left behind the bit.
 */
void
worker__ring_reopen_locked(worker_t *w)
{
	struct worker__ring *r = ring_of(w);

	if (r != NULL && is_locked(w) && worker__queue_empty_locked(w) &&
	    atomic_load_explicit(&w->rout.head, memory_order_relaxed) ==
	    w->rout.locked_at && ring_allowed_locked(w)) {
		free_below(r, w->rout.locked_at);
		atomic_store(&r->tail, w->rout.locked_at);
		set_locked(w, false);
	}
}

/*
 * A producer on the locked path, qlock held: gives a worker that receives
 * a stream its ring, and locks the ring so the event keeps its place.
 */
void
worker__ring_locked_send(worker_t *w)
{
	struct worker__ring *r = ring_of(w);

	if (r == NULL && atomic_load_explicit(&w->queue.admitted,
	    memory_order_relaxed) >= RING_AFTER && ring_allowed_locked(w) &&
	    (r = ring_new(RING_MIN)) != NULL) {
		/* Locked until the owner has taken the locked queue. */
		atomic_store(&r->tail, RING_LOCKED);
		w->rout.locked_at = 0;
		set_locked(w, true);
		atomic_store_explicit(&w->rin.ring, r, memory_order_release);
	}
	worker__ring_close_locked(w);
}

/* qlock held: does the ring hold events the owner has not taken? */
bool
worker__ring_pending_locked(const worker_t *w)
{
	struct worker__ring *r = ring_of(w);
	uint64_t head;

	if (r == NULL)
		return false;
	head = atomic_load_explicit(&w->rout.head, memory_order_relaxed);
	if (is_locked(w))
		return head != w->rout.locked_at;
	return head_published(r, head);
}

/* Owner, without a lock: is an event waiting in the ring? */
bool
worker__ring_ready(const worker_t *w)
{
	struct worker__ring *r = ring_of(w);

	return r != NULL && head_published(r, atomic_load_explicit(
	    &w->rout.head, memory_order_relaxed));
}

/* Events that ever went into the ring (claimed positions). */
uint64_t
worker__ring_admitted(const worker_t *w)
{
	struct worker__ring *r = ring_of(w);

	return r != NULL ? atomic_load_explicit(&r->tail,
	    memory_order_relaxed) & ~RING_LOCKED : 0;
}

/*
 * Owner, qlock held, about to sleep: marks the slot it waits for.  Returns
 * its word and the value to sleep on, or NULL if the ring is not in use
 * (sleep on the worker's own word) and *published if the slot was published
 * meanwhile (do not sleep).  The slots taken so far are freed first: a
 * producer must not find the ring full while its owner sleeps.
 */
atomic_uint *
worker__ring_mark_locked(worker_t *w, unsigned *val, bool *published)
{
	struct worker__ring *r = ring_of(w);
	struct ring_slot *s;
	uint64_t head;
	unsigned seen;

	*published = false;
	if (r == NULL || is_locked(w))
		return NULL;
	head = atomic_load_explicit(&w->rout.head, memory_order_relaxed);
	free_below(r, head);
	s = slot_at(r, head);
	seen = atomic_load_explicit(&s->seq, memory_order_relaxed);
	if (seen == pub_seq(r, head)) {
		*published = true;
		return NULL;
	}
	/* Marked by a sleep whose mark nobody took off: sleep on it. */
	if (seen & SLOT_SLEEPER) {
		*val = seen;
		return &s->seq;
	}
	if (!worker__mark(&s->seq, seen, val)) {
		*published = true;
		return NULL;
	}
	return &s->seq;
}

/* Owner, without a lock: has a producer had to wait for room? */
bool
worker__ring_waited(const worker_t *w)
{
	struct worker__ring *r = ring_of(w);

	return r != NULL && atomic_load_explicit(&r->waited,
	    memory_order_relaxed);
}

/*
 * Owner, qlock held, between two events: if a producer had to wait for
 * room, puts a ring twice the size in place of the ring (see DESIGN) and
 * returns true: the ring is locked, and what it held is at the end of
 * the batch, in its order; the caller takes the locked queue next.  Nothing
 * changes if memory runs short.
 */
bool
worker__ring_grow_locked(worker_t *w)
{
	struct worker__ring *r = ring_of(w), *bigger;

	if (r == NULL || !atomic_load_explicit(&r->waited,
	    memory_order_relaxed))
		return false;
	atomic_store_explicit(&r->waited, false, memory_order_relaxed);
	if (r->size >= RING_MAX || (bigger = ring_new(2 * r->size)) == NULL)
		return false;
	worker__ring_close_locked(w);
	worker__ring_take_locked(w, &w->inbox.batch);
	if (atomic_load_explicit(&w->rout.head, memory_order_relaxed) !=
	    w->rout.locked_at) {
		/* No node for a slot: the usual take goes on later. */
		free(bigger);
		return true;
	}
	/* Locked at the same position, until the locked queue is taken. */
	atomic_store(&bigger->tail, w->rout.locked_at | RING_LOCKED);
	atomic_store(&bigger->head, w->rout.locked_at);
	bigger->older = r;
	atomic_store_explicit(&w->rin.ring, bigger, memory_order_release);
	return true;
}

/* The worker is freed: drops what its ring still holds, frees it and the
 * rings it replaced. */
void
worker__ring_fini(worker_t *w)
{
	struct worker__ring *r = ring_of(w);
	list_t left;

	if (r == NULL)
		return;
	list_init(&left);
	while (worker__ring_take(w, &left) != 0)
		;
	worker__drop_events(&left);
	while (r != NULL) {
		struct worker__ring *older = r->older;

		free(r);
		r = older;
	}
}
