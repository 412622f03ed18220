/*
 * parts.h - a worker is made of parts, one per module of lib/: this is
 * each part, what it holds and which lock guards it, and struct worker,
 * which puts them together.  Each part's init and fini are in its module
 * (internal.h names them); worker.c calls them.  Included by internal.h
 * only.
 */
#ifndef WORKER_PARTS_H
#define WORKER_PARTS_H

enum worker_phase {
	PHASE_IDLE,		/* never started, or completely ended */
	PHASE_RUNNING,		/* accepting events */
	PHASE_ENDING		/* end sequence under way */
};

/* How a run ended, as reported to the parent. */
enum worker_outcome {
	OUTCOME_DONE,		/* the task returned */
	OUTCOME_STOP,		/* STOP_THREAD or worker_exit() */
	OUTCOME_FAIL		/* worker_fail() */
};

struct worker__ring;
struct wevent;
struct listener;
struct cleanup;
struct worker__frame;
struct worker__hook;

/* root.c: which worker a thread runs.  Owner. */
struct worker__thread_part {
	worker_t *prev_current;		/* current worker before an overlay */
};

/*
 * wake.c: how the owner sleeps and is woken.  qlock, but for the atomics
 * and spin_ns (owner).
 */
struct worker__wake_part {
	atomic_uint wake_seq;		/* the owner sleeps on it (futex) */
	bool sleeping;			/* the owner sleeps on sleep_word */
	bool polling;			/* ... in ppoll() instead */
	bool woken;			/* worker__wake() since last look */
	bool fd_signaled;		/* xfd written for worker_fd() */
	atomic_uint *sleep_word;	/* wake_seq or a ring slot's word */
	unsigned sleep_val;		/* the value it sleeps on */
	atomic_uint wakers;		/* calls about to wake the owner */
	atomic_uint_least64_t next_due;	/* nearest timer, UINT64_MAX: none */
	int efd;			/* eventfd of ppoll(), or -1 */
	int xfd;			/* eventfd of worker_fd(), or -1 */
	int tfd;			/* timerfd of worker_fd(), or -1 */
	unsigned spin_ns;		/* owner: worker__spin(), 0: not yet */
};

/* unwind.c: frames and cleanup handlers.  Owner. */
struct worker__unwind_part {
	bool leaving;			/* a frame's leaving step runs */
	struct worker__frame *frame;
	struct worker__hook *hooks;
	struct cleanup *cleanups;
	size_t ncleanup;
	size_t capcleanup;
};

/* Nodes a worker keeps for what must not fail for want of memory. */
enum {
	RESERVE_TAKE,			/* the owner: a ring slot to take */
	RESERVE_STOP,			/* a STOP_THREAD for w */
	RESERVE_NOTIFY,			/* CHILD_THREAD_* to its parent */
	/* four of them: START, the outcome, END, and a restart's START */
	RESERVE_NODES = RESERVE_NOTIFY + 4
};

/*
 * event.c: the owner's spare nodes and its debts of references (owner),
 * and its reserved nodes (atomic: taken and given back by any thread).
 */
struct worker__event_part {
	struct wevent *nodes;		/* spare nodes */
	unsigned nnodes;
	unsigned prepaid;		/* references on w to spend as sender */
	worker_t *unref_source;		/* references owed to it */
	unsigned unref_count;
	_Atomic(struct wevent *) reserve[RESERVE_NODES];
	void *reserve_block;		/* the memory of the reserved nodes */
};

/* queue.c: the locked queue.  qlock; admitted is read anywhere. */
struct worker__queue_part {
	list_t events;
	size_t max;			/* queue_max, immutable */
	atomic_size_t admitted;		/* events ever locked-queued */
	size_t spliced;			/* owner: admitted at the last take */
};

/*
 * ring.c, the producers' side: read per event by every producer, so kept
 * apart from the lines the owner writes per event.  Set under qlock.
 */
struct worker__ring_in {
	_Atomic(struct worker__ring *) ring;	/* set once */
	atomic_bool locked;		/* a copy of ring.c's RING_LOCKED */
};

/* ring.c, the owner's side. */
struct worker__ring_out {
	atomic_uint_least64_t head;	/* owner: next slot to take */
	uint64_t locked_at;		/* qlock: where the ring was locked */
	unsigned holds;			/* qlock: reasons to use the lock */
};

/* send.c: the batch the owner took and handles.  Owner. */
struct worker__inbox_part {
	list_t batch;			/* taken from the queues, not handled */
	atomic_size_t taken;		/* events ever taken off the batch */
};

/* embed.c: worker_fd().  qlock. */
struct worker__embed_part {
	int epfd;			/* worker_fd(), or -1 */
};

struct timer_chunk;

/* timer.c.  qlock. */
struct worker__timer_part {
	struct calq queue;		/* pending timers, by deadline */
	struct timer **map;		/* timers by id & (map_size - 1) */
	size_t map_size;
	size_t count;			/* timers in map */
	struct timer *spare;		/* free nodes given back */
	struct timer_chunk *chunks;	/* the nodes' memory, oldest first */
	struct timer_chunk *last;	/* the newest chunk */
	struct timer_chunk *fresh;	/* free nodes not handed out since */
	unsigned fresh_next;		/* the last reset: fresh's from here,
					 * and every later chunk's */
	size_t live;			/* nodes in use */
	uint64_t next_id;		/* ids reserved for this worker: */
	uint64_t end_id;		/* next_id up to end_id */
};

/* watch.c.  qlock, but for the owner's poll set. */
struct worker__watch_part {
	list_t list;
	pthread_cond_t idle;		/* a callback returned */
	atomic_size_t count;		/* written under qlock */
	struct pollfd *pfds;		/* owner: the poll set */
	uint64_t *ids;
	size_t cap;
};

/* tree.c.  tree_lock. */
struct worker__tree_part {
	struct list_node every;		/* in tree.c's list of all workers */
	struct list_node sibling;	/* in parent->tree.children */
	list_t children;
	bool in_parent;
	bool closing;			/* ending: takes no new child */
	atomic_bool abandoned;		/* stuck: its parent went on */
};

/* control.c.  Owner. */
struct worker__control_part {
	bool ending;			/* draining in the end sequence */
	bool canceled;			/* root: STOP handled, not yet seen */
	unsigned stopping;		/* STOP_THREAD dispatches under way */
	unsigned ending_loop;		/* the loop that waits for its
					 * children to end (end.c), or 0 */
	/* What a CHILD_THREAD_END calls: the supervisor (supervise.c). */
	void (*child_ended)(worker_t *w, worker_t *child);
};

/* supervise.c: this worker as a child, and as a supervisor. */
struct worker__supervise_part {
	atomic_int restart;		/* as a child: WORKER_RESTART_* */
	atomic_uint_least64_t restarts;	/* as a child: times restarted */
	bool by_parent;			/* parent's owner: stopped by its
					 * supervisor, which restarts it */
	int strategy;			/* as a parent, immutable: */
	unsigned restart_max;
	double restart_period;
	double restart_delay;
	uint64_t *times;		/* owner: its last restarts, a ring */
	unsigned ntimes;
	unsigned next;
	list_t pending;			/* owner: restarts after a delay */
};

/* listen.c.  llock, but for the owner's cache. */
struct worker__listen_part {
	pthread_mutex_t llock;
	list_t list;			/* by priority, then age */
	list_t garbage;			/* removed, for the owner to free */
	atomic_uint version;		/* changes of list (llock) */
	atomic_bool has_garbage;	/* garbage is not empty (llock) */
	size_t count;			/* listeners in list (llock) */
	struct listener **cache;	/* owner: copy of list at cache_ver */
	size_t cache_len;
	size_t cache_cap;		/* llock to write, owner to read */
	struct listener **spare;	/* llock: an array for the next copy */
	size_t spare_cap;		/* llock */
	unsigned cache_ver;
	unsigned depth;			/* owner: dispatches under way */
	unsigned pinned;		/* owner: dispatches that pin cache */
	/* Owner writes, a reader under llock: the listener called now. */
	_Atomic(struct listener *) calling;
};

/* Loops a worker may run inside one another; one more is ELOOP. */
#define LOOP_DEPTH_MAX 64

/* loop.c.  Owner; paused is read anywhere. */
struct worker__loop_part {
	list_t cache;			/* handled while paused */
	struct payload *held;		/* data returned by the last wait */
	atomic_int paused;
	unsigned depth;			/* loops under way, one in another */
};

/* signal.c.  qlock. */
struct worker__signal_part {
	int fd;				/* signalfd, or -1 */
	sigset_t stop;
	sigset_t blocked;		/* what it blocked in its caller */
	pthread_t thread;		/* that caller's thread */
	worker_t *caller;		/* its worker, referenced, or NULL */
};

/* channel.c.  The channel lock. */
struct worker__channel_part {
	list_t subscriptions;
};

/* worker.c: the run.  qlock, but for the owner's fields. */
struct worker__run_part {
	pthread_cond_t end_cond;	/* worker_join() sleeps on it */
	unsigned starts;		/* runs started */
	list_t waiters;			/* struct worker__waiter */
	pthread_t thread;
	bool thread_joinable;		/* a pthread to join is left */
	int result;			/* last finished run */
	void *ret;
	atomic_uint ends;		/* runs whose waiters were woken */
	int outcome;			/* owner */
	int fail_err;			/* owner */
	void *task_ret;			/* owner */
};

/*
 * stats.c (stats.h): the counters of worker_stats().  The owner writes
 * all but rejected with plain relaxed stores, no read-modify-write;
 * senders add to rejected, on the path of a refusal only.
 */
struct worker__stats_part {
	atomic_uint_least64_t handled;
	atomic_uint_least64_t queued_max;
	atomic_uint_least64_t listener_errors;
	atomic_uint_least64_t listener_ns;
	atomic_uint_least64_t listener_max_ns;
	atomic_uint_least64_t busy_since;	/* CLOCK_MONOTONIC ns */
	uint64_t span_start;		/* owner: the timed run, 0: none */
	unsigned span_events;		/* owner: events in it */
	atomic_uint_least64_t rejected;	/* any sender */
};

struct worker {
	/* Immutable after worker_new(). */
	atomic_uint refs;
	unsigned epoch;		/* the fork generation it was made in */
	uint64_t id;
	char *name;
	worker_fn fn;
	void *arg;
	worker_t *parent;	/* holds a reference */
	bool daemon;
	bool quiet;
	bool is_root;
	bool is_async;		/* worker_async(): no top-level worker */
	bool stop_parallel;	/* attr.stop_order */
	double stop_timeout;	/* attr.stop_timeout, <0: no limit */
	size_t stack_size;
	struct worker__ring_in rin;

	struct worker__tree_part tree;

	/* The run state every module consults: qlock, running anywhere. */
	pthread_mutex_t qlock;
	int phase;
	atomic_int running;		/* phase == PHASE_RUNNING */
	atomic_bool on_main;		/* runs on the main thread now */
	atomic_ushort doing;		/* owner writes: worker__doing() */

	struct worker__wake_part wake;
	struct worker__queue_part queue;
	struct worker__ring_out rout;
	struct worker__timer_part timers;
	struct worker__run_part run;
	struct worker__listen_part listen;
	struct worker__inbox_part inbox;
	struct worker__loop_part loop;
	struct worker__control_part control;
	struct worker__event_part events;
	struct worker__unwind_part unwind;
	struct worker__thread_part thread;
	struct worker__watch_part watches;
	struct worker__embed_part embed;
	struct worker__signal_part signals;
	struct worker__channel_part channels;
	struct worker__supervise_part sup;
	struct worker__stats_part stats;
};

#endif
