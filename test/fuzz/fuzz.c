/*
 * fuzz.c - an interpreter of byte strings as programs over libworker's
 * public API, and the invariants every such program must keep.
 *
 * DESIGN
 *
 * An input is split into one program per driver thread.  A program is a
 * sequence of operations: a byte chooses the operation (through optab,
 * which weighs them), the next bytes its arguments.  Operations act on
 * fixed sets of slots: workers, deferred values, one channel, pipes for
 * watches, and records of listeners, timers and watches.  A worker's task,
 * and every listener, timer, watch callback and EXECUTE function the
 * programs install, runs a sub-program: a slice of the same input chosen
 * by three argument bytes, so a mutation anywhere changes what every
 * thread does.  Budgets of operations per input (one for tasks, one for
 * callbacks) bound the work, so a program that fires at itself from its
 * own listener still ends.  Each driver first makes a worker of its own,
 * so that the programs have workers to act on from the start.
 *
 * The input stops when the drivers are done, or have made no progress
 * for IDLE_MS (one of them blocks in a call only a stop will end): a
 * sweeper thread then stops every tracked worker and every driver's root
 * until all are joined, while tasks and callbacks go on with their
 * programs, so that the stops meet them at work.  It leaves the children
 * of a parent that is ending to that parent: a child the parent cannot
 * know of then hangs the input, which the watchdog reports (issue L2).
 *
 * The harness keeps one reference on every worker it made ("tracked"),
 * whatever the programs do with the slots, so that at the end it can stop
 * and join them all and then drop its references; a channel that every
 * tracked worker joined ("live") then tells whether they were all freed.
 * Waits that hold a reference are protected by cleanup handlers, as a
 * program must do, since any breakpoint of a started worker may unwind.
 * Blocking calls that do not run a loop (join, an overlay in a task) go
 * only from a running worker to workers made after it that are not its
 * descendants, so they cannot form a cycle that no stop could break, and
 * nothing waits without a limit while a STOP_THREAD is handled (the stop
 * waits for its listeners).  Those rules are the program's, not the
 * library's.
 *
 * What is checked while it runs: payload destructors and cleanup handlers
 * run once, handlers newest first; a listener sees only its event, its
 * source, a payload not yet freed, and a once listener one call; no timer
 * runs early, a one-shot at most once, none after a successful cancel;
 * no watch callback starts after worker_unwatch() returned, nor runs on
 * when a remote worker_unwatch() returns; no callback is re-entered for
 * the same cause (a watch for its descriptor, a STOP_THREAD listener for
 * a further STOP_THREAD, a periodic timer for its next period), and
 * nesting stays bounded; invalid arguments give EINVAL (or ERANGE, EBADF)
 * and free the payload.  At the end, after everything is stopped and
 * joined: every payload given was freed, every cleanup handler ran or
 * was popped, every task ended, every worker was freed, and the process
 * has the threads it had before.
 *
 * Lock order: S.lock is a leaf; the harness never holds it across a call
 * into the library that could wait or call back.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <dirent.h>

#include <worker.h>

#include "fuzz.h"

/* Seconds a parent waits for a stopped child (attr.stop_timeout). */
#define STOP_TIMEOUT_S 0.25


#define NSLOT		12	/* worker slots the operations choose from */
#define NTASK		48	/* workers one input may make, async too */
#define NDRIVER		3
#define NDEFER		4
#define NRETIRED	32	/* deferred values replaced, freed at the end */
#define NPIPE		4
#define NHELPER		4	/* threads that run an overlay */
#define NPAYLOAD	1024
#define NLISTENER	256
#define NTIMER		256
#define NWATCH		64
#define NCLEAN		2048
#define MAXCSTACK	32	/* cleanup handlers one worker may hold */
#define BUDGET		4000	/* callbacks' operations per input */
#define TASK_BUDGET	3000	/* tasks' operations per input */
#define TIMER_RUNS	24	/* program runs of one periodic timer */
#define WAIT_DEPTH	3	/* callbacks nested deeper do not wait */
#define MAX_DEPTH	24	/* nesting beyond this is a finding */
#define MAXFRAMES	64
#define IDLE_MS		50	/* drivers idle this long: stop the input */
#define PROG_MS		3000	/* the programs' phase never runs longer */
#define BAD_FD		1021	/* a descriptor number that is never open */
#define PAYLOAD_MAGIC	0x70617931u

void (*fuzz_alloc_hook)(int on);
void (*fuzz_nofail_hook)(int on);

/* Where an operation runs: what it may do depends on it. */
enum where {
	IN_DRIVER, IN_TASK, IN_LISTENER, IN_TIMER, IN_WATCH, IN_EXEC
};

/* The kinds of nested callbacks, for the re-entrance checks. */
enum { K_LISTENER, K_TIMER, K_WATCH, K_EXEC };

/* What a cleanup handler does besides being counted. */
enum { CL_COUNT, CL_UNREF, CL_DEFER };

struct payload {
	worker_execute_t exec;	/* first: an EXECUTE event may carry it */
	uint32_t magic;
	int id;
	size_t off, len;	/* the sub-program its EXECUTE runs */
	atomic_int given;	/* handed over with payload_free */
	atomic_int freed;
};

/* A worker's task argument; a driver's root worker has one too. */
struct task {
	int serial;		/* creation order; 0 for a driver */
	size_t off, len;	/* its program */
	int self_track;		/* an await task: tracks itself */
	atomic_int tracked;
	int cstack[MAXCSTACK];	/* its cleanup handlers, newest last */
	int ncstack;		/* touched only in the worker's thread */
	atomic_int op;		/* what its thread does, for hangs */
	atomic_int where;
	atomic_size_t pos;
	atomic_int runs;	/* its task has started this often */
	int uncounted;		/* its first handler could not be pushed */
};

struct clean {
	int kind;
	void *arg;
	int serial;		/* the worker it was pushed on; 0: a root */
	int where;		/* and from what */
	int ending;		/* in the worker's end sequence */
	atomic_int ran;
	atomic_int popped;
};

/*
 * Records of listeners, timers and watches are taken from pools by an
 * atomic index, so another thread may pick one up before its fields are
 * written: ready says they are.  The removal fields distinguish the
 * worker's own thread, where a removal is immediate, from another one,
 * where a call that had begun may still be under way (for a listener and
 * a timer; a watch must not be, see on_watch()).
 */
enum { GONE_NO, GONE_LOCAL, GONE_REMOTE };

struct listener {
	atomic_int ready;
	worker_t *w;		/* a reference, dropped at the end */
	int name;
	int once;
	const worker_t *source;	/* compared only, as the library does */
	size_t off, len;
	atomic_int calls;
	atomic_int gone;	/* worker_unlisten() returned 0 */
	atomic_int gone_calls;	/* calls begun when it returned */
};

struct timer {
	atomic_int ready;
	worker_t *w;
	_Atomic uint64_t id;
	int every;
	double due;		/* no call before this time */
	size_t off, len;
	atomic_int calls;
	atomic_int gone;	/* worker_cancel() returned 0 */
	atomic_int gone_calls;
};

struct watch {
	atomic_int ready;
	worker_t *w;
	_Atomic uint64_t id;
	int fd;
	int readable;		/* the read end of its pipe */
	size_t off, len;
	atomic_int calls;
	atomic_int gone;	/* worker_unwatch() returned 0 */
	atomic_int in_cb;	/* its callback's program runs */
};

/* One nested callback on this thread's stack. */
struct frame {
	uintptr_t sp;
	int kind;
	const void *rec;
	const worker_t *w;
	int stop;		/* a listener of STOP_THREAD */
};

struct prog {
	size_t pos, end;
	enum where where;
	int nowait;		/* this callback must not wait */
	int done;
	int rc;			/* a listener's return value */
	int driver;		/* a driver's index, or -1 */
};

struct driver {
	pthread_t thread;
	int index;
	size_t off, end;
	atomic_int op;		/* the operation it is in, for hangs */
	atomic_size_t pos;
	atomic_int done;
};

static struct {
	const uint8_t *in;
	size_t size;
	char label[256];
	_Atomic(const char *) phase;

	pthread_mutex_t lock;
	worker_t *slot[NSLOT];
	worker_t *tracked[NTASK];
	int ntracked;
	int ntask;
	worker_t *root[NDRIVER];
	pthread_t helper[NHELPER];
	int nhelper;
	atomic_int stopping;

	atomic_int budget;
	atomic_int task_budget;
	atomic_long progress;
	atomic_int tasks_started;
	atomic_int tasks_ended;
	struct driver driver[NDRIVER];
	int ndriver;

	struct task task[NTASK];
	struct payload pay[NPAYLOAD];
	atomic_int npay;
	struct clean clean[NCLEAN];
	atomic_int nclean;
	struct listener lis[NLISTENER];
	atomic_int nlis;
	struct timer tim[NTIMER];
	atomic_int ntim;
	struct watch wat[NWATCH];
	atomic_int nwat;

	worker_defer_t *defer[NDEFER];
	worker_defer_t *retired[NRETIRED];
	int nretired;
	worker_channel_t *chan;
	worker_channel_t *live;
	int pipe[NPIPE][2];
} S = { .lock = PTHREAD_MUTEX_INITIALIZER };

static unsigned avoid;
static double timeout_s = 30.0;
static int verbose;
static int trace;
static FILE *devnull;
static uint8_t optab[256];
static int value;			/* what deferred values resolve to */
static worker_execute_t static_exec;	/* EXECUTE data not owned */
static struct payload probe;
static char leaked[512];		/* workers the probe found alive */

#define NNAME_MAX 16

/* What the inputs exercised, over the whole process (FUZZ_STATS). */
static struct {
	atomic_long ops[OP_COUNT];
	atomic_long calls[NNAME_MAX];	/* listener calls by event name */
	atomic_long nested[NNAME_MAX];	/* ... from a nested wait */
	atomic_long timers, watches, execs, cleanups, tasks, inputs;
	atomic_long fired[3];		/* fires: 0, ESRCH, other errors */
} stats;

static void
count_fire(int rc)
{
	atomic_fetch_add(&stats.fired[rc == 0 ? 0 : rc == ESRCH ? 1 : 2], 1);
}

static __thread struct task *tl_root;	/* a driver's root context */
static __thread struct frame tl_frames[MAXFRAMES];
static __thread int tl_nframes;

static const char *const names[] = {
	"A", "B", "C", "an-event-name-longer-than-a-ring-slot-holds",
	WORKER_STOP_THREAD, WORKER_PAUSE_THREAD, WORKER_RESUME_THREAD,
	WORKER_CHILD_THREAD_START, WORKER_CHILD_THREAD_DONE,
	WORKER_CHILD_THREAD_STOP, WORKER_CHILD_THREAD_ERROR,
	WORKER_CHILD_THREAD_END, WORKER_EVENT_REJECT,
	WORKER_LISTENER_ERROR, WORKER_EXECUTE
};
#define NNAME (int)(sizeof(names) / sizeof(names[0]))
#define NAME_STOP 4
#define NAME_PAUSE 5
#define NAME_REJECT 12
#define NAME_LERR 13
#define NAME_EXECUTE 14

static const char *const wherename[] = {
	"driver", "task", "listener", "timer", "watch", "execute"
};

static const char *const opname[OP_COUNT] = {
	"new", "create", "start", "stop", "pause", "resume", "join",
	"wait_thread", "fire", "fire_ex", "bubble", "broadcast",
	"parent_fire", "children_fire", "pub", "pub_ex", "sub", "unsub",
	"listen", "unlisten", "later", "every", "cancel", "wait_event",
	"wait_until", "sleep", "update", "wait_forever", "watch", "unwatch",
	"pipe_write", "defer_settle", "defer_get", "defer_renew",
	"defer_private", "cleanup_push", "cleanup_pop", "exit", "fail",
	"return", "overlay", "async", "async_get", "await", "unref",
	"inspect", "badargs", "fire_root", "stop_root", "nop"
};

/* How often each operation comes up in random bytes, out of 256. */
static const unsigned char weight[OP_COUNT] = {
	[OP_NEW] = 5, [OP_CREATE] = 14, [OP_START] = 6, [OP_STOP] = 8,
	[OP_PAUSE] = 3, [OP_RESUME] = 4, [OP_JOIN] = 4, [OP_WAIT_THREAD] = 4,
	[OP_FIRE] = 12, [OP_FIRE_EX] = 14, [OP_BUBBLE] = 5,
	[OP_BROADCAST] = 5, [OP_PARENT_FIRE] = 4, [OP_CHILDREN_FIRE] = 4,
	[OP_PUB] = 4, [OP_PUB_EX] = 6, [OP_SUB] = 5, [OP_UNSUB] = 2,
	[OP_LISTEN] = 16, [OP_UNLISTEN] = 5, [OP_LATER] = 7, [OP_EVERY] = 4,
	[OP_CANCEL] = 5, [OP_WAIT_EVENT] = 9, [OP_WAIT_UNTIL] = 3,
	[OP_SLEEP] = 5, [OP_UPDATE] = 7, [OP_WAIT_FOREVER] = 2,
	[OP_WATCH] = 6, [OP_UNWATCH] = 5, [OP_PIPE_WRITE] = 6,
	[OP_DEFER_SETTLE] = 4, [OP_DEFER_GET] = 4, [OP_DEFER_RENEW] = 2,
	[OP_DEFER_PRIVATE] = 3, [OP_CLEANUP_PUSH] = 6, [OP_CLEANUP_POP] = 4,
	[OP_EXIT] = 3, [OP_FAIL] = 3, [OP_RETURN] = 3, [OP_OVERLAY] = 3,
	[OP_ASYNC] = 3, [OP_ASYNC_GET] = 2, [OP_AWAIT] = 2, [OP_UNREF] = 3,
	[OP_INSPECT] = 5, [OP_BADARGS] = 4, [OP_FIRE_ROOT] = 2,
	[OP_STOP_ROOT] = 1, [OP_NOP] = 2
};

static void interp(struct prog *p);

/* ---- Reporting ------------------------------------------------------ */

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* A broken invariant: say which, on which input, and crash. */
static _Noreturn void
fail(const char *fmt, ...)
{
	static pthread_mutex_t once = PTHREAD_MUTEX_INITIALIZER;
	va_list ap;

	pthread_mutex_lock(&once);
	fprintf(stderr, "fuzz: FAILED on %s: ", S.label);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	fflush(stderr);
	abort();
}

static void
nofail(int on)
{
	if (fuzz_nofail_hook != NULL)
		fuzz_nofail_hook(on);
}

/* ---- The watchdog ----------------------------------------------------- */

static struct {
	pthread_mutex_t m;
	pthread_cond_t c;
	double deadline;	/* 0: disarmed */
	pthread_t thread;
	int started;
} wd = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 0 };

static int is_root(const worker_t *w);

/* w's state as worker_dump() shows it ("running", "ending"...). */
static void
state_of(worker_t *w, char *buf, size_t size)
{
	char line[160] = "";
	FILE *f = fmemopen(line, sizeof(line) - 1, "w");
	char *a, *b;

	buf[0] = '\0';
	if (f == NULL)
		return;
	nofail(1);
	worker_dump(f, w);
	nofail(0);
	fclose(f);
	if ((a = strchr(line, '[')) != NULL && (b = strchr(a, ']')) != NULL)
		snprintf(buf, size, "%.*s", (int)(b - a - 1), a + 1);
}

/* A parent that has begun to end stops its children itself. */
static int
parent_ending(worker_t *w)
{
	worker_t *p = worker_parent(w);
	char st[32];

	if (p == NULL || is_root(p))
		return 0;
	state_of(p, st, sizeof(st));
	return strcmp(st, "ending") == 0 || strcmp(st, "stopping") == 0;
}

/* What was going on when an input hung, from the harness's own state,
 * then the library's view of each tracked tree. */
static _Noreturn void
hang_report(void)
{
	int i;

	fprintf(stderr, "fuzz: FAILED on %s: still running after %.0f s "
	    "(a hang), in phase \"%s\"\n", S.label, timeout_s,
	    atomic_load(&S.phase));
	for (i = 0; i < S.ndriver; i++)
		fprintf(stderr, "fuzz:   driver %d: %s, in %s at byte %zu\n",
		    i, atomic_load(&S.driver[i].done) ? "done" : "running",
		    opname[atomic_load(&S.driver[i].op)],
		    atomic_load(&S.driver[i].pos));
	fprintf(stderr, "fuzz:   %d workers made, %d tasks started, %d "
	    "ended\n", S.ntracked, atomic_load(&S.tasks_started),
	    atomic_load(&S.tasks_ended));
	for (i = 0; i < S.ntracked; i++) {
		worker_t *w = S.tracked[i];
		struct task *t = worker_arg(w);

		fprintf(stderr, "fuzz:   worker %d %s (%s%s): last in %s, "
		    "%s at byte %zu\n", t->serial, worker_name(w),
		    worker_is_running(w) ? "running" : "not running",
		    worker_is_daemon(w) ? ", daemon" : "",
		    wherename[atomic_load(&t->where)],
		    opname[atomic_load(&t->op)], atomic_load(&t->pos));
		if (worker_is_running(w) && parent_ending(w))
			fprintf(stderr, "fuzz:   worker %d runs, but its "
			    "parent %s is ending and did not stop it: %s\n",
			    t->serial, worker_name(worker_parent(w)),
			    fuzz_alloc_hook != NULL ? "the stop could not be "
			    "allocated? (issue L6)" : "it was made or started "
			    "under an ending parent (issue L2)");
	}
	fflush(stderr);
	/* Every thread's stack says more than any of this. */
	if (getenv("FUZZ_GDB") != NULL) {
		char cmd[128];

		snprintf(cmd, sizeof(cmd), "gdb -p %d -batch -ex "
		    "'thread apply all bt' >&2 2>/dev/null", (int)getpid());
		if (system(cmd) != 0)
			fprintf(stderr, "fuzz: %s failed\n", cmd);
	}
	/* The dump takes the library's locks, which a hang may hold: give
	 * it a few seconds, then the alarm ends the process. */
	alarm(5);
	for (i = 0; i < S.ntracked; i++)
		if (worker_parent(S.tracked[i]) == NULL ||
		    worker_arg(worker_parent(S.tracked[i])) == NULL)
			worker_dump(stderr, S.tracked[i]);
	fflush(stderr);
	abort();
}

static void *
wd_main(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&wd.m);
	for (;;) {
		struct timespec ts;

		if (wd.deadline != 0 && now() > wd.deadline)
			hang_report();
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 100 * 1000 * 1000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&wd.c, &wd.m, &ts);
	}
	return NULL;
}

static void
wd_arm(double seconds)
{
	pthread_mutex_lock(&wd.m);
	wd.deadline = seconds > 0 ? now() + seconds : 0;
	pthread_mutex_unlock(&wd.m);
}

/* ---- Programs --------------------------------------------------------- */

static unsigned
next(struct prog *p)
{
	if (p->pos >= p->end)
		return 0;
	return S.in[p->pos++];
}

/* A sub-program: a slice of the input named by three argument bytes. */
static void
sub(struct prog *p, size_t *off, size_t *len)
{
	unsigned a = next(p), b = next(p), c = next(p);

	*off = S.size != 0 ? ((size_t)a << 8 | b) % S.size : 0;
	*len = 2 + c % 48;
}

static void
run_sub(size_t off, size_t len, enum where where, int nowait)
{
	struct prog p = { 0 };

	p.pos = off;
	p.end = off + len < S.size ? off + len : S.size;
	p.where = where;
	p.nowait = nowait;
	p.driver = -1;
	interp(&p);
}

/*
 * Takes one operation from the input's budget.  A driver's program is
 * finite; tasks (which programs may restart) and callbacks (which events
 * may call again and again) each have a budget, so neither starves the
 * other and every input ends.
 */
static int
spend(enum where where)
{
	if (where == IN_DRIVER)
		return 1;
	if (where == IN_TASK)
		return atomic_fetch_sub(&S.task_budget, 1) > 0;
	return atomic_fetch_sub(&S.budget, 1) > 0;
}

static int
stopping(void)
{
	return atomic_load(&S.stopping);
}

/*
 * Was a call that began as call number calls made after its record's
 * removal returned?  A removal in the worker's own thread is immediate.
 * One from another thread may cross a call that the worker had already
 * begun (the contract of listeners and periodic timers allows it), so
 * only a call beyond those begun then counts; a NULL limit allows none.
 */
static int
gone_after(atomic_int *gone, atomic_int *limit, int calls)
{
	switch (atomic_load(gone)) {
	case GONE_LOCAL:
		return 1;
	case GONE_REMOTE:
		return limit == NULL || calls > atomic_load(limit);
	default:
		return 0;
	}
}

/* ---- Nesting ---------------------------------------------------------- */

/*
 * Callbacks record themselves on a per-thread stack with their frame
 * address.  A worker that unwinds abandons the records of the callbacks
 * it left; a record whose frame is not above the current one cannot be
 * a live caller, so it is dropped on the next entry.  This keeps the
 * stack right without a cleanup handler of the harness's own, which the
 * programs' pops would disturb.
 */
static int
frame_enter(uintptr_t sp, int kind, const void *rec, const worker_t *w,
    int stop, int started)
{
	int i;

	while (tl_nframes > 0 && tl_frames[tl_nframes - 1].sp <= sp)
		tl_nframes--;
	for (i = 0; i < tl_nframes; i++) {
		const struct frame *f = &tl_frames[i];

		if (kind == K_WATCH && f->rec == rec)
			fail("a watch callback was called again for its "
			    "descriptor while it waited (issue L4): %d deep",
			    tl_nframes + 1);
		if (kind == K_TIMER && f->rec == rec &&
		    !(avoid & FUZZ_AVOID_TIMER_REENTER))
			fail("a periodic timer was called again while its "
			    "callback waited: %d deep", tl_nframes + 1);
		if (kind == K_LISTENER && stop && f->stop && f->w == w &&
		    started)
			fail("a STOP_THREAD listener that waits was entered "
			    "again by a further STOP_THREAD (issue L3): %d "
			    "deep", tl_nframes + 1);
	}
	if (tl_nframes >= MAX_DEPTH)
		fail("callbacks nested %d deep on one thread: unbounded "
		    "re-entrance", tl_nframes + 1);
	tl_frames[tl_nframes].sp = sp;
	tl_frames[tl_nframes].kind = kind;
	tl_frames[tl_nframes].rec = rec;
	tl_frames[tl_nframes].w = w;
	tl_frames[tl_nframes].stop = stop;
	return ++tl_nframes;
}

static void
frame_leave(uintptr_t sp)
{
	if (tl_nframes > 0 && tl_frames[tl_nframes - 1].sp == sp)
		tl_nframes--;
}

/* The nesting depth now: callbacks deeper than WAIT_DEPTH do not wait. */
static int
depth(void)
{
	uintptr_t sp = (uintptr_t)__builtin_frame_address(0);

	while (tl_nframes > 0 && tl_frames[tl_nframes - 1].sp <= sp)
		tl_nframes--;
	return tl_nframes;
}

static int
may_wait(const struct prog *p)
{
	return !p->nowait && depth() <= WAIT_DEPTH;
}

/*
 * Is a STOP_THREAD of the current worker being handled on this thread?
 * Then that stop waits for its listeners, and further stops are absorbed
 * (worker_stop(3)): a wait without a limit there would never end, which
 * is the program's fault, not the library's.
 */
static int
in_stop(void)
{
	const worker_t *w = worker_current();

	depth();
	for (int i = 0; i < tl_nframes; i++)
		if (tl_frames[i].stop && tl_frames[i].w == w)
			return 1;
	return 0;
}

/* Is the callback of rec running on this thread, below the caller? */
static int
on_stack(const void *rec)
{
	depth();
	for (int i = 0; i < tl_nframes; i++)
		if (tl_frames[i].rec == rec)
			return 1;
	return 0;
}

/* Is this thread inside a watch callback, however deep? */
static int
in_watch_callback(void)
{
	depth();
	for (int i = 0; i < tl_nframes; i++)
		if (tl_frames[i].kind == K_WATCH)
			return 1;
	return 0;
}

/* A timeout that ends, where a wait must end. */
static double
bounded(double timeout)
{
	return timeout < 0 && in_stop() ? 0.01 : timeout;
}

/* ---- Payloads --------------------------------------------------------- */

static int
is_payload(const void *data)
{
	const char *c = data;

	return c >= (const char *)S.pay &&
	    c < (const char *)(S.pay + NPAYLOAD);
}

static void
check_payload(const void *data, const char *who)
{
	const struct payload *pl = data;

	if (!is_payload(data))
		return;
	if (pl->magic != PAYLOAD_MAGIC)
		fail("%s got a pointer into the payloads that is no payload",
		    who);
	if (atomic_load(&pl->freed) != 0)
		fail("%s got payload %d after its destructor ran", who,
		    pl->id);
}

static void run_exec(void *arg);

static struct payload *
payload_new(struct prog *p)
{
	int i = atomic_fetch_add(&S.npay, 1);
	struct payload *pl;

	if (i >= NPAYLOAD)
		return NULL;
	pl = &S.pay[i];
	pl->exec.fn = run_exec;
	pl->exec.arg = pl;
	pl->magic = PAYLOAD_MAGIC;
	pl->id = i;
	sub(p, &pl->off, &pl->len);
	atomic_store(&pl->given, 1);
	return pl;
}

static void
payload_free(void *data)
{
	struct payload *pl = data;

	if (!is_payload(data) || pl->magic != PAYLOAD_MAGIC)
		fail("a payload destructor got %p, not a payload", data);
	if (atomic_fetch_add(&pl->freed, 1) != 0)
		fail("the destructor of payload %d ran twice", pl->id);
}

static void
probe_free(void *data)
{
	struct payload *pl = data;

	atomic_fetch_add(&pl->freed, 1);
}

/* ---- Cleanup handlers ------------------------------------------------- */

/*
 * worker_cleanup_push() is void in this tree's header and cannot fail but
 * by aborting (issue L7); its fix makes it return ENOMEM.  The harness
 * works with either: with the int form it keeps only the handlers that
 * were pushed.  The int form is called through a pointer copied with
 * memcpy(), so that the void form compiles too; that call happens only
 * when the header declares an int.
 */
typedef int (*push_fn)(void (*)(void *), void *);

static int
push_handler(void (*fn)(void *), void *arg)
{
	void (*raw)(void) = (void (*)(void))worker_cleanup_push;
	push_fn push;

	if (__builtin_types_compatible_p(__typeof__(worker_cleanup_push(fn,
	    arg)), void)) {
		worker_cleanup_push(fn, arg);
		return 0;
	}
	memcpy(&push, &raw, sizeof(push));
	return push(fn, arg);
}

/* The calling thread's context: its started worker's, or its driver's. */
static struct task *
cur_task(void)
{
	worker_t *w = worker_current();
	struct task *t = w != NULL ? worker_arg(w) : NULL;

	return t != NULL ? t : tl_root;
}

/* A started worker (task or overlay): its breakpoints may unwind it. */
static int
in_worker(void)
{
	worker_t *w = worker_current();

	return w != NULL && worker_arg(w) != NULL;
}

static void
clean_run(void *arg)
{
	struct clean *c = arg;
	int i = (int)(c - S.clean);
	struct task *t = cur_task();

	if (t == NULL || t->ncstack == 0 || t->cstack[t->ncstack - 1] != i)
		fail("cleanup handler %d ran out of order (newest first)", i);
	t->ncstack--;
	atomic_fetch_add(&stats.cleanups, 1);
	if (atomic_fetch_add(&c->ran, 1) != 0)
		fail("cleanup handler %d ran twice", i);
	if (c->kind == CL_UNREF)
		worker_unref(c->arg);
	else if (c->kind == CL_DEFER)
		worker_defer_free(c->arg);
}

/* Pushes a handler of kind on the current worker; NULL if it cannot. */
static struct clean *
cl_push(int kind, void *arg, enum where where)
{
	struct task *t = cur_task();
	struct clean *c;
	int i;

	if (t == NULL || t->ncstack == MAXCSTACK || worker_current() == NULL ||
	    (avoid & FUZZ_AVOID_CLEANUP_PUSH))
		return NULL;
	/* A handler left by a listener in the end sequence is never run in
	 * that run (finding N1). */
	if (kind == CL_COUNT && (avoid & FUZZ_AVOID_END_CLEANUP) &&
	    in_worker() && !worker_is_running(worker_current()))
		return NULL;
	if ((i = atomic_fetch_add(&S.nclean, 1)) >= NCLEAN)
		return NULL;
	c = &S.clean[i];
	c->kind = kind;
	c->arg = arg;
	c->serial = t->serial;
	c->where = where;
	c->ending = !worker_is_running(worker_current());
	t->cstack[t->ncstack++] = i;
	if (push_handler(clean_run, c) != 0) {
		t->ncstack--;
		atomic_store(&c->popped, 1);	/* never pushed: no debt */
		return NULL;
	}
	return c;
}

/* Pops the newest handler if a program may: only a counted one, since
 * the others guard what a wait in progress uses. */
static void
cl_pop(int execute)
{
	struct task *t = cur_task();
	struct clean *c;

	if (t == NULL || t->ncstack == 0)
		return;
	c = &S.clean[t->cstack[t->ncstack - 1]];
	if (c->kind != CL_COUNT)
		return;
	if (execute) {
		worker_cleanup_pop(1);
		return;
	}
	t->ncstack--;
	atomic_store(&c->popped, 1);
	worker_cleanup_pop(0);
}

/* Pops, running them, the handlers down to and including c: the ones
 * above it were left by callbacks that ran in the wait c guarded. */
static void
cl_release(struct clean *c)
{
	struct task *t = cur_task();
	int i = (int)(c - S.clean);

	while (t != NULL && t->ncstack > 0 && atomic_load(&c->ran) == 0) {
		if (t->cstack[t->ncstack - 1] == i) {
			worker_cleanup_pop(1);
			break;
		}
		worker_cleanup_pop(1);
	}
}

/*
 * Protects a reference across a breakpoint.  In a started worker a
 * cleanup handler owns it, since the wait may unwind; a root worker never
 * unwinds.  Returns -1 if the reference cannot be protected (and drops
 * it): the caller skips its wait.
 */
static int
guard(worker_t *w, struct clean **c)
{
	*c = NULL;
	if (w == NULL || !in_worker())
		return 0;
	if ((*c = cl_push(CL_UNREF, w, IN_TASK)) == NULL) {
		worker_unref(w);
		return -1;
	}
	return 0;
}

static void
unguard(worker_t *w, struct clean *c)
{
	if (c != NULL)
		cl_release(c);
	else
		worker_unref(w);
}

/* ---- Workers and slots ------------------------------------------------ */

static struct task *
task_new(struct prog *p)
{
	struct task *t = NULL;

	pthread_mutex_lock(&S.lock);
	if (S.ntask < NTASK && !stopping()) {
		t = &S.task[S.ntask++];
		t->serial = S.ntask;
	}
	pthread_mutex_unlock(&S.lock);
	if (t != NULL)
		sub(p, &t->off, &t->len);
	return t;
}

/*
 * Keeps a reference on w until the end and has w join the live channel;
 * returns nonzero if the input is stopping, and then the caller stops the
 * worker it just started, which a sweep may have missed.
 */
static int
track(worker_t *w, struct task *t)
{
	int stop, dup;

	if (atomic_exchange(&t->tracked, 1) != 0)
		return stopping();
	nofail(1);
	pthread_mutex_lock(&S.lock);
	dup = 0;
	for (int i = 0; i < S.ntracked; i++)
		dup |= S.tracked[i] == w;
	if (!dup && S.ntracked < NTASK)
		S.tracked[S.ntracked++] = worker_ref(w);
	stop = stopping();
	pthread_mutex_unlock(&S.lock);
	worker_channel_sub(S.live, w);
	nofail(0);
	return stop;
}

static void
slot_put(unsigned i, worker_t *w)
{
	worker_t *old;

	pthread_mutex_lock(&S.lock);
	old = S.slot[i];
	S.slot[i] = w;
	pthread_mutex_unlock(&S.lock);
	worker_unref(old);
}

static worker_t *
root_ref(unsigned i)
{
	worker_t *w;

	pthread_mutex_lock(&S.lock);
	w = worker_ref(S.root[i % NDRIVER]);
	pthread_mutex_unlock(&S.lock);
	return w;
}

/* A slot from one byte: mostly one of the first two, then one of the
 * next four, so that operations often meet on the same workers. */
static unsigned
slot_of(unsigned b)
{
	unsigned v = (b & 15) % 12;

	if (v < 6)
		return v & 1;
	if (v < 10)
		return 2 + (b >> 4) % 4;
	return 6 + (b >> 4) % (NSLOT - 6);
}

/* A worker named by one argument byte, as a new reference (or NULL):
 * a slot, the current worker, its parent, a driver's root or NULL. */
static worker_t *
arg_worker(struct prog *p)
{
	unsigned b = next(p);
	worker_t *w = NULL;

	if (b % 16 < 12) {
		pthread_mutex_lock(&S.lock);
		w = worker_ref(S.slot[slot_of(b)]);
		pthread_mutex_unlock(&S.lock);
	} else if (b % 16 == 12 || b % 16 == 13) {
		w = worker_ref(worker_current());
	} else if (b % 16 == 14) {
		w = worker_ref(worker_parent(worker_current()));
	} else if (b & 16) {
		w = root_ref(b / 32);
	}
	return w;
}

static int
is_root(const worker_t *w)
{
	return w != NULL && worker_arg(w) == NULL;
}

static int
serial_of(const worker_t *w)
{
	const struct task *t = worker_arg(w);

	return t != NULL ? t->serial : 0;
}

/* True if w is the current worker or one of its ancestors. */
static int
is_self_or_ancestor(const worker_t *w)
{
	for (const worker_t *a = worker_current(); a != NULL;
	    a = worker_parent(a))
		if (a == w)
			return 1;
	return 0;
}

/*
 * May the caller block, without running its loop, until w ends?  A
 * driver may; a worker only on a worker made after it, so that such
 * waits never form a cycle (a worker's end waits for its children,
 * which are always younger), and never on its own descendants, which it
 * stops when it ends.  Nor may a worker whose end has begun: its end
 * must go on to stop its children, which are left to it (sweeper_main).
 */
static int
may_block_on(const worker_t *w)
{
	const struct task *t = cur_task();
	worker_t *self = worker_current();
	char st[32];

	if (w == NULL || is_root(w))
		return 0;
	if (t == NULL || t->serial == 0)
		return 1;
	if (serial_of(w) <= t->serial)
		return 0;
	for (const worker_t *a = worker_parent(w); a != NULL;
	    a = worker_parent(a))
		if (a == self)
			return 0;
	state_of(self, st, sizeof(st));
	return strcmp(st, "running") == 0 || strcmp(st, "paused") == 0;
}

static void
after_start(worker_t *w)
{
	if (stopping())
		worker_stop(w);
}

static void *
task_main(void *arg);

static void
task_end(void *arg)
{
	struct task *t = arg;

	if (t->ncstack != 0)
		fail("the task's first cleanup handler ran before %d newer "
		    "ones", t->ncstack);
	atomic_fetch_add(&S.tasks_ended, 1);
}

static void *
task_main(void *arg)
{
	struct task *t = arg;
	struct prog p = { 0 };

	atomic_fetch_add(&S.tasks_started, 1);
	atomic_fetch_add(&stats.tasks, 1);
	atomic_fetch_add(&t->runs, 1);
	t->ncstack = 0;
	if (t->self_track && track(worker_current(), t)) {
		atomic_fetch_add(&S.tasks_ended, 1);
		return NULL;
	}
	/* The oldest handler: it runs once however the task ends, when it
	 * returns or unwinds, and so counts the tasks that ended.  Without
	 * it, the task is not counted. */
	if ((avoid & FUZZ_AVOID_CLEANUP_PUSH) ||
	    push_handler(task_end, t) != 0) {
		atomic_fetch_sub(&S.tasks_started, 1);
		t->uncounted = 1;
	}
	p.pos = t->off;
	p.end = t->off + t->len < S.size ? t->off + t->len : S.size;
	p.where = IN_TASK;
	p.driver = -1;
	interp(&p);
	/* Most workers then serve their listeners until stopped, so that
	 * events find them running; a quarter return (done). */
	if (!p.done && (t->len == 0 || (S.in[t->off] & 3) != 0)) {
		atomic_store(&t->op, OP_WAIT_FOREVER);
		atomic_store(&t->where, IN_TASK);
		worker_wait_forever();
	}
	return p.rc != 0 ? (void *)(intptr_t)p.rc : t;
}

/* ---- Callbacks -------------------------------------------------------- */

static int
on_event(const worker_event_t *ev, void *ctx)
{
	uintptr_t sp = (uintptr_t)__builtin_frame_address(0);
	struct listener *l = ctx;
	worker_t *self = worker_current();
	struct prog p = { 0 };
	int stop, calls;

	if (ev == NULL || ev->name == NULL)
		fail("a listener got no event");
	if (strcmp(ev->name, names[l->name]) != 0)
		fail("a listener of %s got %s", names[l->name], ev->name);
	if (l->source != NULL && ev->source != l->source)
		fail("a listener of %s limited to one source got an event of "
		    "another", names[l->name]);
	calls = atomic_fetch_add(&l->calls, 1);
	if (gone_after(&l->gone, &l->gone_calls, calls))
		fail("a listener of %s was called after worker_unlisten() "
		    "returned", names[l->name]);
	if (l->once && calls != 0)
		fail("a once listener of %s was called %d times",
		    names[l->name], calls + 1);
	if (is_payload(ev->data)) {
		check_payload(ev->data, "a listener");
	} else if (l->name == NAME_LERR && ev->data != NULL) {
		const worker_listener_error_t *le = ev->data;

		if (le->rc == 0 || le->event == NULL)
			fail("LISTENER_ERROR with rc %d, event %s", le->rc,
			    le->event != NULL ? le->event : "NULL");
	} else if (l->name == NAME_REJECT && ev->data != NULL) {
		const worker_event_t *re = ev->data;

		if (re->name == NULL || re->name[0] == '\0')
			fail("EVENT_REJECT of an event without a name");
		check_payload(re->data, "an EVENT_REJECT listener");
	}
	stop = l->name == NAME_STOP;
	atomic_fetch_add(&stats.calls[l->name], 1);
	if (frame_enter(sp, K_LISTENER, l, self, stop, in_worker()) > 1)
		atomic_fetch_add(&stats.nested[l->name], 1);
	if (spend(IN_LISTENER)) {
		p.pos = l->off;
		p.end = l->off + l->len < S.size ? l->off + l->len : S.size;
		p.where = IN_LISTENER;
		p.nowait = stop && (avoid & FUZZ_AVOID_STOP_LISTENER_WAIT);
		p.driver = -1;
		interp(&p);
	}
	frame_leave(sp);
	return p.rc;
}

static void
on_timer(void *arg)
{
	uintptr_t sp = (uintptr_t)__builtin_frame_address(0);
	struct timer *t = arg;
	int calls;

	calls = atomic_fetch_add(&t->calls, 1);
	if (gone_after(&t->gone, t->every ? &t->gone_calls : NULL, calls))
		fail("timer %d ran after worker_cancel() returned 0",
		    (int)(t - S.tim));
	if (!t->every && calls != 0)
		fail("one-shot timer %d ran %d times", (int)(t - S.tim),
		    calls + 1);
	if (calls == 0 && now() < t->due)
		fail("timer %d ran %.6f s early", (int)(t - S.tim),
		    t->due - now());
	frame_enter(sp, K_TIMER, t, worker_current(), 0, 0);
	atomic_fetch_add(&stats.timers, 1);
	if (calls < TIMER_RUNS && spend(IN_TIMER))
		run_sub(t->off, t->len, IN_TIMER, 0);
	frame_leave(sp);
}

static void
bad_timer(void *arg)
{
	(void)arg;
	fail("a timer refused with EINVAL or ERANGE ran");
}

static void
drain(int fd)
{
	char buf[64];

	while (read(fd, buf, sizeof(buf)) > 0)
		continue;
}

static void
on_watch(int fd, unsigned revents, void *ctx)
{
	uintptr_t sp = (uintptr_t)__builtin_frame_address(0);
	struct watch *wa = ctx;
	int gone, calls, read_first, nowait;
	uint64_t id;

	if ((gone = atomic_load(&wa->gone)) != GONE_NO)
		fail("watch %d called after worker_unwatch() returned%s",
		    (int)(wa - S.wat), gone == GONE_REMOTE ?
		    " in another thread (issue L8)" : "");
	if (fd != wa->fd)
		fail("watch %d of fd %d called for fd %d", (int)(wa - S.wat),
		    wa->fd, fd);
	if (revents == 0 ||
	    (revents & ~(unsigned)(WORKER_READABLE | WORKER_WRITABLE)))
		fail("watch callback with revents %#x", revents);
	calls = atomic_fetch_add(&wa->calls, 1);
	frame_enter(sp, K_WATCH, wa, worker_current(), 0, 0);
	atomic_fetch_add(&stats.watches, 1);
	/* A callback that waits before it reads is what issue L4 is about;
	 * the program's first byte decides.  Avoiding it, a callback does
	 * not wait at all: a write during its wait would call it again. */
	nowait = (avoid & FUZZ_AVOID_WATCH_WAIT) != 0;
	read_first = nowait || wa->len == 0 || (S.in[wa->off] & 1);
	if (wa->readable && read_first)
		drain(fd);
	if (spend(IN_WATCH)) {
		/* Left raised if the program unwinds: that watch then gets
		 * no remote unwatch (op_unwatch), which costs nothing. */
		atomic_fetch_add(&wa->in_cb, 1);
		run_sub(wa->off, wa->len, IN_WATCH, nowait);
		atomic_fetch_sub(&wa->in_cb, 1);
	}
	if (wa->readable && !read_first)
		drain(fd);
	/* Level-triggered: a write end is always ready, so it unwatches
	 * itself after a few calls rather than spin. */
	id = atomic_load(&wa->id);
	if (calls >= 6 && id != 0 &&
	    worker_unwatch(worker_current(), id) == 0)
		atomic_store(&wa->gone, GONE_LOCAL);
	/* From another thread, worker_unwatch() returns only once the
	 * callback is not running (the 0.2 contract). */
	if (gone == GONE_NO && atomic_load(&wa->gone) == GONE_REMOTE)
		fail("worker_unwatch() from another thread returned while "
		    "watch %d's callback ran (issue L8)", (int)(wa - S.wat));
	frame_leave(sp);
}

static void
run_exec(void *arg)
{
	uintptr_t sp = (uintptr_t)__builtin_frame_address(0);
	struct payload *pl = arg;

	check_payload(pl, "an EXECUTE function");
	frame_enter(sp, K_EXEC, pl, worker_current(), 0, 0);
	atomic_fetch_add(&stats.execs, 1);
	if (spend(IN_EXEC))
		run_sub(pl->off, pl->len, IN_EXEC, 0);
	frame_leave(sp);
}

static void
static_exec_fn(void *arg)
{
	(void)arg;
}

static int
until_cond(const worker_event_t *ev, void *ctx)
{
	const char *name = ctx;

	check_payload(ev->data, "a wait_until condition");
	return strcmp(ev->name, name) == 0;
}

/* ---- Operations ------------------------------------------------------- */

/* An event name for a fire: mostly the plain ones.  Avoiding pauses
 * (finding N2), PAUSE_THREAD is fired as A. */
static int
fire_name(struct prog *p)
{
	unsigned b = next(p);
	int name = b < 200 ? (int)(b % 4) : (int)(b % NNAME);

	return name == NAME_PAUSE && (avoid & FUZZ_AVOID_PAUSE) ? 0 : name;
}

/* Data that a fire does not own: safe for any built-in name. */
static void *
fire_data(int name, unsigned b)
{
	if (name == NAME_LERR || name == NAME_REJECT)
		return NULL;
	return (b & 1) ? &static_exec : NULL;
}

static const double timeouts[8] = {
	0, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.03, -1
};

static void
op_new(struct prog *p, int start)
{
	static const int daemons[8] = { 0, -1, 1, 0, -1, 1, 0, 2 };
	unsigned b = next(p), c = next(p), s = next(p);
	worker_attr_t a = { 0 };
	worker_t *parent = NULL, *w;
	struct task *t;
	char name[64];
	int bad = 0;

	switch (b & 7) {
	case 0:
	case 1:
		break;
	case 2:
		a.name = "fz";
		break;
	case 3:
		a.name = "a-worker-name-longer-than-fifteen-bytes";
		break;
	case 7:
		if (c & 1) {
			a.name = "";
			bad = 1;
			break;
		}
		/* FALLTHROUGH */
	default:
		snprintf(name, sizeof(name), "fz%u", s % NSLOT);
		a.name = name;
		break;
	}
	switch ((b >> 3) & 7) {
	case 3:
		a.no_parent = 1;
		break;
	case 4:
		pthread_mutex_lock(&S.lock);
		parent = worker_ref(S.slot[c % 4]);
		pthread_mutex_unlock(&S.lock);
		break;
	case 5:
		parent = worker_ref(worker_current());
		break;
	case 6:
		parent = root_ref(c);
		break;
	case 7:
		if ((c & 6) == 0) {
			parent = worker_ref(worker_current());
			a.no_parent = parent != NULL;
			bad |= parent != NULL;
		}
		break;
	}
	/* Avoiding issue L2: no parent that might be ending, which the
	 * default one is in a listener of the end sequence. */
	if ((avoid & FUZZ_AVOID_EXPLICIT_PARENT) && !bad &&
	    ((parent != NULL && !is_root(parent)) || (parent == NULL &&
	    !a.no_parent && in_worker() &&
	    !worker_is_running(worker_current())))) {
		worker_unref(parent);
		parent = NULL;
		a.no_parent = 1;
	}
	a.parent = parent;
	a.daemon = daemons[(c >> 4) & 7];
	bad |= a.daemon == 2;
	a.queue_max = (c >> 2 & 3) == 2 ? 1 : (c >> 2 & 3) == 3 ? 4 : 0;
	a.quiet = (s & 0xf0) != 0 || !verbose;
	if (b & 0x40)
		a.stack_size = 512 * 1024;
	/* A child stuck in a join of its own (a random program may join in
	 * a cycle) is given up on soon, so that stuck ones cost the
	 * watchdog little; both stop orders. */
	a.stop_timeout = STOP_TIMEOUT_S;
	a.stop_order = (s & 1) ? WORKER_STOP_PARALLEL : WORKER_STOP_REVERSE;
	if ((t = task_new(p)) == NULL) {
		worker_unref(parent);
		return;
	}
	w = start ? worker_create(task_main, t, &a) :
	    worker_new(task_main, t, &a);
	worker_unref(parent);
	if (bad && (w != NULL || errno != EINVAL))
		fail("worker_%s with an invalid attr gave %p, errno %d",
		    start ? "create" : "new", (void *)w, errno);
	if (w == NULL)
		return;
	if (track(w, t) && start)
		worker_stop(w);
	slot_put(slot_of(s), w);
}

static void
op_start(struct prog *p)
{
	worker_t *w = arg_worker(p), *parent = worker_parent(w);
	int rc;

	if (((avoid & FUZZ_AVOID_EXPLICIT_PARENT) && parent != NULL &&
	    !is_root(parent)) || ((avoid & FUZZ_AVOID_RESTART) &&
	    worker_arg(w) != NULL &&
	    atomic_load(&((struct task *)worker_arg(w))->runs) != 0)) {
		worker_unref(w);
		return;
	}
	rc = worker_start(w);
	if (rc == 0)
		after_start(w);
	else if (w == NULL && rc != EINVAL)
		fail("worker_start(NULL) gave %d", rc);
	worker_unref(w);
}

static void
op_join(struct prog *p)
{
	worker_t *w = arg_worker(p);
	int rc;

	if (w != NULL && !is_root(w) && is_self_or_ancestor(w)) {
		if ((rc = worker_join(w)) != EDEADLK)
			fail("worker_join() of the caller or an ancestor gave "
			    "%d, not EDEADLK", rc);
	} else if (w == NULL) {
		if ((rc = worker_join(w)) != EINVAL)
			fail("worker_join(NULL) gave %d", rc);
	} else if (may_block_on(w)) {
		worker_join(w);
	}
	worker_unref(w);
}

static void
op_wait_thread(struct prog *p, int async)
{
	worker_t *w = arg_worker(p);
	struct clean *c;
	void *ret;

	if (!may_wait(p) || in_stop()) {
		worker_unref(w);
		return;
	}
	if (guard(w, &c) != 0)
		return;
	if (async)
		worker_async_get(w, &ret);
	else
		worker_wait_thread(w, &ret);
	unguard(w, c);
}

static void
op_fire(struct prog *p, enum fuzz_op op)
{
	worker_t *w = arg_worker(p);
	int name = fire_name(p);
	unsigned b = next(p);
	void *data = fire_data(name, b);

	switch (op) {
	case OP_FIRE:
		count_fire(worker_fire(w, names[name], data));
		break;
	case OP_BUBBLE:
		count_fire(worker_bubble(w, names[name], data));
		break;
	case OP_BROADCAST:
		count_fire(worker_broadcast(w, names[name], data));
		break;
	case OP_PARENT_FIRE:
		count_fire(worker_parent_fire(w, names[name], data));
		break;
	case OP_CHILDREN_FIRE:
		count_fire(worker_children_fire(w, names[name], data));
		break;
	default:
		break;
	}
	worker_unref(w);
}

static void
op_fire_ex(struct prog *p)
{
	worker_t *w = arg_worker(p);
	int name = fire_name(p);
	unsigned b = next(p);
	struct payload *pl = payload_new(p);
	unsigned flags = b & 3;
	int rc;

	if (pl != NULL) {
		if (b >= 0xf0)
			flags |= 4;
		rc = worker_fire_ex(w, names[name], pl, payload_free, flags);
		count_fire(rc);
		if ((flags & 4) && rc != EINVAL)
			fail("worker_fire_ex() with flag 4 gave %d", rc);
	}
	worker_unref(w);
}

static void
op_pub(struct prog *p, int ex)
{
	int name = fire_name(p);
	unsigned b = next(p);
	struct payload *pl;

	if (!ex) {
		worker_channel_pub(S.chan, names[name], fire_data(name, b));
		return;
	}
	if ((pl = payload_new(p)) != NULL)
		worker_channel_pub_ex(S.chan, names[name], pl, payload_free);
}

static void
op_sub(struct prog *p, int unsub)
{
	unsigned b = next(p);
	worker_t *w = (b & 1) ? NULL : arg_worker(p);

	if (unsub)
		worker_channel_unsub(S.chan, w);
	else
		worker_channel_sub(S.chan, w);
	worker_unref(w);
}

static void
op_listen(struct prog *p)
{
	static const int prio[8] = { 0, 0, 0, 1, -1, 5, 2, -3 };
	worker_t *w = arg_worker(p);
	unsigned n = next(p), b = next(p);
	worker_listen_opts_t o = { 0 };
	struct listener *l;
	int i, rc;

	if ((i = atomic_fetch_add(&S.nlis, 1)) >= NLISTENER) {
		worker_unref(w);
		return;
	}
	l = &S.lis[i];
	l->w = w;
	l->name = n < 160 ? (int)(n % 4) : (int)(n % NNAME);
	o.priority = prio[b & 7];
	o.once = (b & 8) != 0;
	o.transient = (b & 16) != 0;
	switch (b >> 5) {
	case 5:
		pthread_mutex_lock(&S.lock);
		o.source = S.slot[n % 4];
		pthread_mutex_unlock(&S.lock);
		break;
	case 6:
		o.source = worker_current();
		break;
	case 7:
		o.source = worker_parent(w);
		break;
	}
	l->once = o.once;
	l->source = o.source;
	sub(p, &l->off, &l->len);
	atomic_store(&l->ready, 1);
	rc = worker_listen(w, names[l->name], on_event, l, b == 0 ? NULL : &o);
	if (w == NULL && rc != EINVAL)
		fail("worker_listen(NULL) gave %d", rc);
}

/* A record index from one byte, if that record is ready. */
static int
pick(struct prog *p, atomic_int *count, int max)
{
	int n = atomic_load(count);

	if (n > max)
		n = max;
	return n == 0 ? -1 : (int)(next(p) % (unsigned)n);
}

static void
op_unlisten(struct prog *p)
{
	int i = pick(p, &S.nlis, NLISTENER), calls, rc;
	struct listener *l;

	if (i < 0 || !atomic_load(&S.lis[i].ready) || S.lis[i].w == NULL)
		return;
	l = &S.lis[i];
	calls = atomic_load(&l->calls);
	rc = worker_unlisten(l->w, on_event, l);
	if (rc == 0 && l->once && calls != 0)
		fail("a once listener of %s was still there after its call",
		    names[l->name]);
	if (rc == 0) {
		atomic_store(&l->gone_calls, atomic_load(&l->calls));
		atomic_store(&l->gone, l->w == worker_current() ?
		    GONE_LOCAL : GONE_REMOTE);
	}
}

static void
op_timer(struct prog *p, int every)
{
	/*
	 * Indexes 6 and 7 are invalid.  A period of 1e300 s cannot be
	 * represented (ERANGE, issue L9); a delay that long is as good as
	 * forever (worker_later() caps it), as are the other long ones,
	 * which may also be refused with ERANGE.
	 */
	static const double delays[8] = {
		0, 0.0005, 0.002, 0.01, 1e9, 1e300, -1, NAN
	};
	static const double periods[8] = {
		0.0005, 0.001, 0.003, 0.01, 5e9, 1e300, 0, INFINITY
	};
	worker_t *w = arg_worker(p);
	unsigned b = next(p);
	struct timer *t;
	double d = every ? periods[b & 7] : delays[b & 7];
	uint64_t id = 0;
	int i, rc, huge = every && (b & 7) == 5;
	int bad = huge || (b & 7) >= 6;

	if (huge && (avoid & FUZZ_AVOID_HUGE_INTERVAL)) {
		worker_unref(w);
		return;
	}
	if ((i = atomic_fetch_add(&S.ntim, 1)) >= NTIMER) {
		worker_unref(w);
		return;
	}
	t = &S.tim[i];
	t->w = w;
	t->every = every;
	t->due = now() + (bad ? 0 : d);
	sub(p, &t->off, &t->len);
	if (bad) {
		rc = every ? worker_every(w, bad_timer, NULL, d, &id) :
		    worker_later(w, bad_timer, NULL, d, &id);
		if (w != NULL && rc == 0)
			fail("worker_%s() accepted %g s%s", every ? "every" :
			    "later", d, huge ? " (issue L9)" : "");
		if (w != NULL && huge && rc != ERANGE && rc != ESRCH)
			fail("worker_every(%g) gave %d, not ERANGE (issue L9)",
			    d, rc);
		atomic_store(&t->ready, 1);
		return;
	}
	rc = every ? worker_every(w, on_timer, t, d, &id) :
	    worker_later(w, on_timer, t, d, &id);
	atomic_store(&t->id, rc == 0 ? id : 0);
	atomic_store(&t->ready, 1);
}

static void
op_cancel(struct prog *p)
{
	int i = pick(p, &S.ntim, NTIMER), calls, rc;
	struct timer *t;
	uint64_t id;

	if (i < 0 || !atomic_load(&S.tim[i].ready) || S.tim[i].w == NULL)
		return;
	t = &S.tim[i];
	id = atomic_load(&t->id);
	calls = atomic_load(&t->calls);
	rc = worker_cancel(t->w, id);
	if (id == 0 && rc != EINVAL)
		fail("worker_cancel() of id 0 gave %d", rc);
	if (rc != 0)
		return;
	if (!t->every && calls != 0)
		fail("worker_cancel() of one-shot timer %d that had run "
		    "gave 0", (int)(t - S.tim));
	if (atomic_load(&t->gone) != GONE_NO)
		fail("timer %d cancelled twice", (int)(t - S.tim));
	atomic_store(&t->gone_calls, atomic_load(&t->calls));
	atomic_store(&t->gone, t->w == worker_current() ? GONE_LOCAL :
	    GONE_REMOTE);
}

static void
op_wait_event(struct prog *p)
{
	unsigned b = next(p);
	int name = (int)(next(p) % NNAME);
	worker_t *src = (b & 8) ? arg_worker(p) : NULL;
	double t = timeouts[b & 7];
	struct clean *c;
	void *data = NULL;
	int rc;

	if (t < 0 && (b & 0x30) != 0)
		t = 0.002;	/* a wait without limit only now and then */
	if (!may_wait(p)) {
		worker_unref(src);
		return;
	}
	if (guard(src, &c) != 0)
		return;
	rc = worker_wait_event(b >= 0xf8 ? "" : names[name], src, bounded(t),
	    &data);
	if (b >= 0xf8 && rc != EINVAL)
		fail("worker_wait_event(\"\") gave %d", rc);
	if (rc == 0)
		check_payload(data, "worker_wait_event()");
	unguard(src, c);
}

static void
op_wait_until(struct prog *p)
{
	unsigned b = next(p);
	void *data = NULL;

	if (!may_wait(p))
		return;
	if (worker_wait_until(until_cond, (void *)names[b % 4],
	    bounded(timeouts[b >> 4 & 7]), &data) == 0)
		check_payload(data, "worker_wait_until()");
}

static void
op_watch(struct prog *p)
{
	worker_t *w = arg_worker(p);
	unsigned b = next(p);
	int k = (int)(next(p) % NPIPE);
	struct watch *wa;
	unsigned events;
	uint64_t id = 0;
	int i, fd, rc;

	if ((b & 7) == 7 && (avoid & FUZZ_AVOID_BAD_FD)) {
		worker_unref(w);
		return;
	}
	if ((i = atomic_fetch_add(&S.nwat, 1)) >= NWATCH) {
		worker_unref(w);
		return;
	}
	wa = &S.wat[i];
	wa->w = w;
	sub(p, &wa->off, &wa->len);
	atomic_store(&wa->ready, 1);
	switch (b & 7) {
	case 4:
	case 5:
		fd = S.pipe[k][1];
		events = WORKER_WRITABLE;
		break;
	case 6:
		fd = b & 8 ? -1 : S.pipe[k][0];
		events = b & 8 ? WORKER_READABLE : b & 16 ? 0 : 4;
		rc = worker_watch(w, fd, events, on_watch, wa, &id);
		if (rc != EINVAL)
			fail("worker_watch(fd %d, events %u) gave %d", fd,
			    events, rc);
		return;
	case 7:
		wa->fd = BAD_FD;
		rc = worker_watch(w, BAD_FD, WORKER_READABLE, on_watch, wa,
		    &id);
		if (w != NULL && rc == 0)
			fail("worker_watch() of a descriptor that is not open "
			    "gave 0 (issue L10)");
		if (w != NULL && rc != EBADF && rc != ESRCH && rc != ENOMEM)
			fail("worker_watch() of a descriptor that is not open "
			    "gave %d, not EBADF", rc);
		return;
	default:
		fd = S.pipe[k][0];
		events = WORKER_READABLE | (b & 8 ? WORKER_WRITABLE : 0);
		wa->readable = 1;
		break;
	}
	wa->fd = fd;
	if (worker_watch(w, fd, events, on_watch, wa, &id) == 0)
		atomic_store(&wa->id, id);
}

static void
op_unwatch(struct prog *p)
{
	int i = pick(p, &S.nwat, NWATCH), remote;
	struct watch *wa;
	uint64_t id;

	if (i < 0 || !atomic_load(&S.wat[i].ready) || S.wat[i].w == NULL)
		return;
	wa = &S.wat[i];
	if ((id = atomic_load(&wa->id)) == 0)
		return;
	/* Another thread: not the watch's worker, nor one that an overlay
	 * runs on the thread where the callback waits. */
	remote = wa->w != worker_current() && !on_stack(wa);
	if (remote && (avoid & FUZZ_AVOID_REMOTE_UNWATCH))
		return;
	/* A remote unwatch waits for the other callback to return: from
	 * inside a watch callback of its own, however deep, it may wait for
	 * one that waits for it, a deadlock the contract allows
	 * (worker_watch(3) CAVEATS). */
	if (remote && in_watch_callback())
		return;
	/* Nor, for the same reason, while the callback's program runs: it
	 * may join or wait for the caller. */
	if (remote && atomic_load(&wa->in_cb) > 0)
		return;
	if (worker_unwatch(wa->w, id) == 0)
		atomic_store(&wa->gone, remote ? GONE_REMOTE : GONE_LOCAL);
}

static worker_defer_t *
defer_at(unsigned i)
{
	worker_defer_t *d;

	pthread_mutex_lock(&S.lock);
	d = S.defer[i % NDEFER];
	pthread_mutex_unlock(&S.lock);
	return d;
}

static void
op_defer(struct prog *p, enum fuzz_op op)
{
	unsigned b = next(p);
	worker_defer_t *d = defer_at(b), *old;
	struct clean *c;
	void *v;
	int rc;

	switch (op) {
	case OP_DEFER_SETTLE:
		if (b & 4) {
			worker_defer_resolve(d, &value);
			break;
		}
		rc = worker_defer_reject(d, (int)(b >> 3 & 3));
		if ((b >> 3 & 3) == 0 && rc != EINVAL)
			fail("worker_defer_reject(d, 0) gave %d", rc);
		break;
	case OP_DEFER_GET:
		if (may_wait(p) && worker_defer_get(d,
		    bounded(timeouts[b >> 4 & 7]), &v) == 0 && v != &value)
			fail("worker_defer_get() gave a value never given");
		break;
	case OP_DEFER_RENEW:
		nofail(1);
		pthread_mutex_lock(&S.lock);
		if (S.nretired < NRETIRED &&
		    (d = worker_defer_new()) != NULL) {
			old = S.defer[b % NDEFER];
			S.defer[b % NDEFER] = d;
			S.retired[S.nretired++] = old;
		}
		pthread_mutex_unlock(&S.lock);
		nofail(0);
		break;
	case OP_DEFER_PRIVATE:
		/* A cleanup handler frees the value the wait used (issue
		 * L1's pattern): it runs after the wait let go of it. */
		if (!may_wait(p) || (d = worker_defer_new()) == NULL)
			break;
		if (b & 8)
			worker_defer_resolve(d, &value);
		c = in_worker() ? cl_push(CL_DEFER, d, p->where) : NULL;
		if (in_worker() && c == NULL) {
			worker_defer_free(d);
			break;
		}
		worker_defer_get(d, bounded(timeouts[b >> 4 & 7]), &v);
		if (c != NULL)
			cl_release(c);
		else
			worker_defer_free(d);
		break;
	default:
		break;
	}
}

static void
op_fail(struct prog *p, int exit)
{
	static const int codes[8] = { 0, 1, 5, 22, 42, 7, -1, 3 };
	int code = codes[next(p) & 7], rc, started = in_worker();

	if (exit) {
		worker_exit();
		if (started)
			fail("worker_exit() returned in a started worker");
		return;
	}
	rc = worker_fail(code);
	if (code < 0 && rc != EINVAL)
		fail("worker_fail(%d) gave %d, not EINVAL", code, rc);
	if (code >= 0 && started)
		fail("worker_fail(%d) returned %d in a started worker", code,
		    rc);
}

struct helper_arg {
	worker_t *w;
};

static void *
helper_main(void *arg)
{
	worker_t *w = arg;

	worker_start_overlay(w);
	worker_unref(w);
	return NULL;
}

static void
op_overlay(struct prog *p)
{
	worker_t *w = arg_worker(p);
	unsigned b = next(p);
	pthread_t th;
	int ok;

	if (w == NULL || (avoid & FUZZ_AVOID_OVERLAY) || !may_block_on(w) ||
	    depth() > WAIT_DEPTH || stopping()) {
		worker_unref(w);
		return;
	}
	if (p->where != IN_DRIVER || (b & 1) == 0) {
		worker_start_overlay(w);
		worker_unref(w);
		return;
	}
	pthread_mutex_lock(&S.lock);
	ok = S.nhelper < NHELPER && !stopping() &&
	    pthread_create(&th, NULL, helper_main, w) == 0;
	if (ok)
		S.helper[S.nhelper++] = th;
	pthread_mutex_unlock(&S.lock);
	if (!ok)
		worker_unref(w);
}

static void
op_async(struct prog *p)
{
	unsigned s = next(p);
	struct task *t = task_new(p);
	worker_t *w;

	if (t == NULL)
		return;
	if ((w = worker_async(task_main, t)) == NULL)
		return;
	if (track(w, t))
		worker_stop(w);
	slot_put(slot_of(s), w);
}

static void
op_await(struct prog *p)
{
	struct task *t;
	void *ret;

	if (!may_wait(p) || in_stop() || (t = task_new(p)) == NULL)
		return;
	t->self_track = 1;
	worker_await(task_main, t, &ret);
}

static void
op_inspect(struct prog *p)
{
	worker_t *w = arg_worker(p), *c;
	unsigned b = next(p);
	uintptr_t a;
	void *ret;
	const char *n;

	switch (b & 7) {
	case 0:
		if (w != NULL && worker_dump(devnull, w) != 0)
			fail("worker_dump() failed");
		break;
	case 1:
		c = worker_find_child(w, b & 8 ? "fz" : "fz3");
		if (c != NULL && worker_parent(c) != w)
			fail("worker_find_child() gave a worker of another "
			    "parent");
		worker_unref(c);
		break;
	case 2:
		worker_result(w, &ret);
		break;
	case 3:
		n = worker_name(w);
		if ((w != NULL) != (n != NULL && n[0] != '\0'))
			fail("worker_name() gave %s", n ? n : "NULL");
		break;
	case 4:
		a = (uintptr_t)worker_arg(w);
		if (a != 0 && (a < (uintptr_t)S.task ||
		    a >= (uintptr_t)(S.task + NTASK)))
			fail("worker_arg() gave an argument never given");
		break;
	case 5:
		worker_is_running(w);
		worker_is_daemon(w);
		worker_is_main(w);
		break;
	case 6:
		if (w == NULL && worker_fd(w) != -1)
			fail("worker_fd(NULL) is not -1");
		else if (w != NULL)
			worker_fd(w);
		break;
	case 7:
		if (strcmp(worker_version(), "0.2.0") != 0)
			fail("worker_version() is %s", worker_version());
		break;
	}
	worker_unref(w);
}

static void
op_badargs(struct prog *p)
{
	worker_t *self = worker_current();
	unsigned b = next(p);
	struct payload *pl;
	worker_attr_t a = { 0 };
	uint64_t id;
	int rc = EINVAL;
	const char *what = "";

	switch (b % 12) {
	case 0:
		what = "worker_fire(NULL)";
		rc = worker_fire(NULL, "A", NULL);
		break;
	case 1:
		what = "worker_fire(w, \"\")";
		rc = worker_fire(self, b & 16 ? "" : NULL, NULL);
		break;
	case 2:
		what = "worker_fire_ex(NULL)";
		if ((pl = payload_new(p)) != NULL)
			rc = worker_fire_ex(NULL, "A", pl, payload_free, 0);
		break;
	case 3:
		what = "worker_listen(w, \"A\", NULL)";
		rc = worker_listen(self, "A", NULL, NULL, NULL);
		break;
	case 4:
		what = "worker_later(w, fn, NULL, NaN)";
		rc = worker_later(self, bad_timer, NULL, NAN, &id);
		break;
	case 5:
		what = "worker_cancel(w, 0)";
		rc = b & 16 ? worker_cancel(self, 0) :
		    worker_unwatch(self, 0);
		break;
	case 6:
		what = "worker_channel_pub_ex(NULL)";
		if ((pl = payload_new(p)) != NULL)
			rc = worker_channel_pub_ex(b & 16 ? NULL : S.chan,
			    b & 16 ? "A" : "", pl, payload_free);
		break;
	case 7:
		what = "worker_sleep(-1)";
		rc = worker_sleep(-1);
		break;
	case 8:
		what = "worker_wait_until(NULL)";
		rc = worker_wait_until(NULL, NULL, 0, NULL);
		break;
	case 9:
		what = "worker_new(stack_size 1)";
		a.stack_size = 1;
		if (worker_new(task_main, NULL, &a) != NULL)
			fail("worker_new() with stack_size 1 made a worker");
		rc = errno;
		break;
	case 10:
		what = "worker_defer_resolve(NULL)";
		rc = worker_defer_resolve(NULL, NULL);
		break;
	case 11:
		what = "worker_stop(NULL)";
		rc = worker_stop(NULL);
		if (worker_ref(NULL) != NULL || worker_is_running(NULL) ||
		    worker_find_child(NULL, "fz") != NULL ||
		    worker_dump(NULL, self) != EINVAL)
			fail("a NULL worker was not answered harmlessly");
		break;
	}
	/* On a thread whose root could not be made, EINVAL may be ENOMEM. */
	if (rc != EINVAL && !(rc == ENOMEM && self == NULL))
		fail("%s gave %d, not EINVAL", what, rc);
}

static void
do_op(struct prog *p, enum fuzz_op op)
{
	worker_t *w;
	unsigned b;

	switch (op) {
	case OP_NEW:
	case OP_CREATE:
		op_new(p, op == OP_CREATE);
		break;
	case OP_START:
		op_start(p);
		break;
	case OP_STOP:
	case OP_PAUSE:
	case OP_RESUME:
		w = arg_worker(p);
		if (op == OP_STOP)
			worker_stop(w);
		else if (op == OP_PAUSE && !(avoid & FUZZ_AVOID_PAUSE))
			worker_pause(w);
		else
			worker_resume(w);
		worker_unref(w);
		break;
	case OP_JOIN:
		op_join(p);
		break;
	case OP_WAIT_THREAD:
	case OP_ASYNC_GET:
		op_wait_thread(p, op == OP_ASYNC_GET);
		break;
	case OP_FIRE:
	case OP_BUBBLE:
	case OP_BROADCAST:
	case OP_PARENT_FIRE:
	case OP_CHILDREN_FIRE:
		op_fire(p, op);
		break;
	case OP_FIRE_EX:
		op_fire_ex(p);
		break;
	case OP_PUB:
	case OP_PUB_EX:
		op_pub(p, op == OP_PUB_EX);
		break;
	case OP_SUB:
	case OP_UNSUB:
		op_sub(p, op == OP_UNSUB);
		break;
	case OP_LISTEN:
		op_listen(p);
		break;
	case OP_UNLISTEN:
		op_unlisten(p);
		break;
	case OP_LATER:
	case OP_EVERY:
		op_timer(p, op == OP_EVERY);
		break;
	case OP_CANCEL:
		op_cancel(p);
		break;
	case OP_WAIT_EVENT:
		op_wait_event(p);
		break;
	case OP_WAIT_UNTIL:
		op_wait_until(p);
		break;
	case OP_SLEEP:
		b = next(p);
		if (may_wait(p) && worker_sleep(b >= 0xf8 ? -1 :
		    timeouts[b & 3]) != EINVAL && b >= 0xf8)
			fail("worker_sleep(-1) did not give EINVAL");
		break;
	case OP_UPDATE:
		if (may_wait(p))
			worker_update();
		break;
	case OP_WAIT_FOREVER:
		if (may_wait(p) && !in_stop())
			worker_wait_forever();
		break;
	case OP_WATCH:
		op_watch(p);
		break;
	case OP_UNWATCH:
		op_unwatch(p);
		break;
	case OP_PIPE_WRITE:
		b = next(p);
		if (write(S.pipe[b % NPIPE][1], "x", 1) < 0 &&
		    errno != EAGAIN)
			fail("write to a pipe: %s", strerror(errno));
		break;
	case OP_DEFER_SETTLE:
	case OP_DEFER_GET:
	case OP_DEFER_RENEW:
	case OP_DEFER_PRIVATE:
		op_defer(p, op);
		break;
	case OP_CLEANUP_PUSH:
		cl_push(CL_COUNT, NULL, p->where);
		break;
	case OP_CLEANUP_POP:
		cl_pop((int)(next(p) & 1));
		break;
	case OP_EXIT:
	case OP_FAIL:
		op_fail(p, op == OP_EXIT);
		break;
	case OP_RETURN:
		p->rc = (int)(next(p) % 3);
		p->done = 1;
		break;
	case OP_OVERLAY:
		op_overlay(p);
		break;
	case OP_ASYNC:
		op_async(p);
		break;
	case OP_AWAIT:
		op_await(p);
		break;
	case OP_UNREF:
		slot_put(slot_of(next(p)), NULL);
		break;
	case OP_INSPECT:
		op_inspect(p);
		break;
	case OP_BADARGS:
		op_badargs(p);
		break;
	case OP_FIRE_ROOT:
		w = root_ref(next(p));
		b = next(p);
		worker_fire(w, names[b % 4], fire_data((int)(b % 4), b));
		worker_unref(w);
		break;
	case OP_STOP_ROOT:
		w = root_ref(next(p));
		worker_stop(w);
		worker_unref(w);
		break;
	case OP_NOP:
	case OP_COUNT:
		break;
	}
}

/*
 * Runs a program.  Once the input is stopping, the drivers end, while
 * tasks and callbacks go on, so that the stops of the end meet them at
 * work (a STOP_THREAD listener that waits, say); they make no more
 * workers or threads then, and the budget bounds them.
 */
static void
interp(struct prog *p)
{
	while (!p->done && p->pos < p->end && spend(p->where) &&
	    !(p->where == IN_DRIVER && stopping())) {
		enum fuzz_op op = optab[next(p)];

		if (p->driver >= 0) {
			atomic_store(&S.driver[p->driver].op, op);
			atomic_store(&S.driver[p->driver].pos, p->pos);
		}
		if (trace && p->driver >= 0)
			fprintf(stderr, "fuzz: driver %d: %s at %zu\n",
			    p->driver, opname[op], p->pos - 1);
		else if (trace)
			fprintf(stderr, "fuzz: %s of worker %d: %s at %zu\n",
			    wherename[p->where], cur_task() != NULL ?
			    cur_task()->serial : -1, opname[op], p->pos - 1);
		atomic_fetch_add(&stats.ops[op], 1);
		if (p->driver < 0 && cur_task() != NULL) {
			struct task *t = cur_task();

			atomic_store(&t->op, op);
			atomic_store(&t->where, p->where);
			atomic_store(&t->pos, p->pos - 1);
		}
		do_op(p, op);
		if (p->driver >= 0)
			atomic_fetch_add(&S.progress, 1);
	}
}

/* ---- One input -------------------------------------------------------- */

static pthread_barrier_t start_line;

static void *
driver_main(void *arg)
{
	struct driver *d = arg;
	struct task root = { 0 }, *t;
	struct prog p = { 0 };
	worker_t *w;

	tl_root = &root;
	nofail(1);
	pthread_mutex_lock(&S.lock);
	S.root[d->index] = worker_ref(worker_current());
	pthread_mutex_unlock(&S.lock);
	nofail(0);
	/* Each driver first makes a worker of its own in slot 0, 1 or 2,
	 * whose task is the second half of the driver's part, so that the
	 * programs have workers to act on from their first operation. */
	if ((t = task_new(&p)) != NULL) {
		worker_attr_t a = { .quiet = 1,
		    .stop_timeout = STOP_TIMEOUT_S };

		t->off = d->off + (d->end - d->off) / 2;
		t->len = d->end - t->off;
		a.parent = d->index == 2 ? worker_current() : NULL;
		if ((w = worker_create(task_main, t, &a)) != NULL) {
			track(w, t);
			slot_put((unsigned)d->index, w);
		}
	}
	pthread_barrier_wait(&start_line);
	p.pos = d->off;
	p.end = d->end;
	p.where = IN_DRIVER;
	p.driver = d->index;
	interp(&p);
	/* A root worker runs its handlers only when they are popped. */
	while (root.ncstack > 0) {
		int n = root.ncstack;

		worker_cleanup_pop(1);
		if (root.ncstack == n)
			fail("worker_cleanup_pop(1) on a root ran no handler");
	}
	atomic_store(&d->done, 1);
	tl_root = NULL;
	return NULL;
}

/*
 * Stops every tracked worker and every driver's root until told to end:
 * a worker started, or a wait begun, after one sweep meets the next.  A
 * worker whose parent is ending is left to that parent, which must stop
 * it: a child it cannot know of (made under it while it ended, issue L2)
 * then hangs the input rather than being ended by the sweep.
 */
static atomic_int sweeping;

static void *
sweeper_main(void *arg)
{
	(void)arg;
	while (atomic_load(&sweeping)) {
		worker_t *w[NTASK + NDRIVER];
		int i, n = 0;
		struct timespec ts = { 0, 2 * 1000 * 1000 };

		pthread_mutex_lock(&S.lock);
		for (i = 0; i < S.ntracked; i++)
			w[n++] = worker_ref(S.tracked[i]);
		for (i = 0; i < NDRIVER; i++)
			if (S.root[i] != NULL)
				w[n++] = worker_ref(S.root[i]);
		pthread_mutex_unlock(&S.lock);
		for (i = 0; i < n; i++) {
			if (worker_is_running(w[i]) && !parent_ending(w[i]))
				worker_stop(w[i]);
			worker_unref(w[i]);
		}
		/* The rejections of stops that came too late pile up on
		 * this thread's root until it waits. */
		worker_update();
		nanosleep(&ts, NULL);
	}
	return NULL;
}

static int
count_threads(void)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *e;
	int n = 0;

	if (d == NULL)
		return -1;
	while ((e = readdir(d)) != NULL)
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

static int
on_probe_reject(const worker_event_t *ev, void *ctx)
{
	const worker_event_t *re = ev->data;
	size_t n = strlen(leaked);

	(void)ctx;
	if (re != NULL && re->name != NULL && strcmp(re->name, "PROBE") == 0) {
		const struct task *t = worker_arg(ev->source);

		snprintf(leaked + n, sizeof(leaked) - n, " %s (worker %d, "
		    "parent %s)", worker_name(ev->source), t != NULL ?
		    t->serial : 0, worker_parent(ev->source) != NULL ?
		    worker_name(worker_parent(ev->source)) : "none");
		worker_dump(stderr, ev->source);
	}
	return 0;
}

static void
setup(const uint8_t *data, size_t size, int ndriver)
{
	int i;

	S.in = data;
	S.size = size;
	atomic_store(&S.phase, "setup");
	memset(S.slot, 0, sizeof(S.slot));
	memset(S.tracked, 0, sizeof(S.tracked));
	memset(S.root, 0, sizeof(S.root));
	S.ntracked = S.ntask = S.nhelper = S.nretired = 0;
	atomic_store(&S.stopping, 0);
	atomic_store(&S.budget, BUDGET);
	atomic_store(&S.task_budget, TASK_BUDGET);
	atomic_store(&S.progress, 0);
	atomic_store(&S.tasks_started, 0);
	atomic_store(&S.tasks_ended, 0);
	memset(S.task, 0, sizeof(S.task));
	memset(S.pay, 0, sizeof(S.pay));
	memset(S.clean, 0, sizeof(S.clean));
	memset(S.lis, 0, sizeof(S.lis));
	memset(S.tim, 0, sizeof(S.tim));
	memset(S.wat, 0, sizeof(S.wat));
	atomic_store(&S.npay, 0);
	atomic_store(&S.nclean, 0);
	atomic_store(&S.nlis, 0);
	atomic_store(&S.ntim, 0);
	atomic_store(&S.nwat, 0);
	for (i = 0; i < NDEFER; i++)
		if ((S.defer[i] = worker_defer_new()) == NULL)
			fail("worker_defer_new: %s", strerror(errno));
	if ((S.chan = worker_channel_new()) == NULL ||
	    (S.live = worker_channel_new()) == NULL)
		fail("worker_channel_new: %s", strerror(errno));
	for (i = 0; i < NPIPE; i++)
		if (pipe2(S.pipe[i], O_NONBLOCK | O_CLOEXEC) != 0)
			fail("pipe2: %s", strerror(errno));
	S.ndriver = ndriver;
	for (i = 0; i < ndriver; i++) {
		struct driver *d = &S.driver[i];

		d->index = i;
		d->off = size * i / ndriver;
		d->end = size * (i + 1) / ndriver;
		atomic_store(&d->done, 0);
		atomic_store(&d->op, OP_COUNT - 1);
		atomic_store(&d->pos, d->off);
	}
}

/* Lets the programs run until the drivers are done, or idle in a call
 * that only a stop will end. */
static void
run_programs(void)
{
	double start = now(), last_t = start;
	long last = -1;
	int i, done;

	atomic_store(&S.phase, "programs");
	pthread_barrier_init(&start_line, NULL, (unsigned)S.ndriver + 1);
	for (i = 0; i < S.ndriver; i++)
		if (pthread_create(&S.driver[i].thread, NULL, driver_main,
		    &S.driver[i]) != 0)
			fail("pthread_create: %s", strerror(errno));
	pthread_barrier_wait(&start_line);
	for (;;) {
		struct timespec ts = { 0, 1000 * 1000 };
		long pr = atomic_load(&S.progress);
		double t = now();

		for (done = 0, i = 0; i < S.ndriver; i++)
			done += atomic_load(&S.driver[i].done);
		if (done == S.ndriver)
			break;
		if (pr != last) {
			last = pr;
			last_t = t;
		} else if (t - last_t > IDLE_MS / 1000.0) {
			break;
		}
		if (t - start > PROG_MS / 1000.0)
			break;
		nanosleep(&ts, NULL);
	}
}

static void
teardown(void)
{
	pthread_t sweeper;
	int i;

	if (fuzz_alloc_hook != NULL)
		fuzz_alloc_hook(0);
	atomic_store(&S.phase, "stopping");
	pthread_mutex_lock(&S.lock);
	atomic_store(&S.stopping, 1);
	pthread_mutex_unlock(&S.lock);
	atomic_store(&sweeping, 1);
	if (pthread_create(&sweeper, NULL, sweeper_main, NULL) != 0)
		fail("pthread_create: %s", strerror(errno));
	atomic_store(&S.phase, "joining the drivers");
	for (i = 0; i < S.ndriver; i++)
		pthread_join(S.driver[i].thread, NULL);
	pthread_barrier_destroy(&start_line);
	atomic_store(&S.phase, "joining the overlay threads");
	for (i = 0; i < S.nhelper; i++)
		pthread_join(S.helper[i], NULL);
	atomic_store(&S.phase, "joining the workers");
	/* A task that tracks itself (worker_await's) may add to the list
	 * meanwhile. */
	for (i = 0;; i++) {
		worker_t *w = NULL;

		pthread_mutex_lock(&S.lock);
		if (i < S.ntracked)
			w = worker_ref(S.tracked[i]);
		pthread_mutex_unlock(&S.lock);
		if (w == NULL)
			break;
		worker_join(w);
		worker_unref(w);
	}
	atomic_store(&sweeping, 0);
	pthread_join(sweeper, NULL);
}

static void
check_and_free(int threads)
{
	int i, n, waited;

	atomic_store(&S.phase, "checking");
	if (atomic_load(&S.tasks_started) != atomic_load(&S.tasks_ended))
		fail("%d tasks started, %d ended",
		    atomic_load(&S.tasks_started),
		    atomic_load(&S.tasks_ended));
	/* What the main thread's root was sent (rejections of its probes
	 * from earlier inputs, say) goes before the references do. */
	while (worker_update() > 0)
		continue;
	for (i = 0; i < NSLOT; i++)
		slot_put((unsigned)i, NULL);
	for (i = 0; i < NDRIVER; i++)
		worker_unref(S.root[i]);
	memset(S.root, 0, sizeof(S.root));
	n = atomic_load(&S.nlis) < NLISTENER ? atomic_load(&S.nlis) :
	    NLISTENER;
	for (i = 0; i < n; i++)
		worker_unref(S.lis[i].w);
	n = atomic_load(&S.ntim) < NTIMER ? atomic_load(&S.ntim) : NTIMER;
	for (i = 0; i < n; i++)
		worker_unref(S.tim[i].w);
	n = atomic_load(&S.nwat) < NWATCH ? atomic_load(&S.nwat) : NWATCH;
	for (i = 0; i < n; i++)
		worker_unref(S.wat[i].w);
	for (i = 0; i < S.ntracked; i++)
		worker_unref(S.tracked[i]);
	S.ntracked = 0;

	/* Every worker has left the live channel if it was freed: a probe
	 * finds no subscriber and its payload is freed at once. */
	memset(&probe, 0, sizeof(probe));
	leaked[0] = '\0';
	worker_channel_pub_ex(S.live, "PROBE", &probe, probe_free);
	while (worker_update() > 0)
		continue;
	if (leaked[0] != '\0')
		fail("workers not freed after the end:%s", leaked);
	if (atomic_load(&probe.freed) != 1)
		fail("a worker still runs after the end (it took the probe)");
	worker_channel_free(S.live);
	worker_channel_free(S.chan);
	for (i = 0; i < NDEFER; i++)
		worker_defer_free(S.defer[i]);
	for (i = 0; i < S.nretired; i++)
		worker_defer_free(S.retired[i]);

	n = atomic_load(&S.npay) < NPAYLOAD ? atomic_load(&S.npay) :
	    NPAYLOAD;
	for (i = 0; i < n; i++)
		if (atomic_load(&S.pay[i].given) &&
		    atomic_load(&S.pay[i].freed) != 1)
			fail("the destructor of payload %d ran %d times", i,
			    atomic_load(&S.pay[i].freed));
	n = atomic_load(&S.nclean) < NCLEAN ? atomic_load(&S.nclean) :
	    NCLEAN;
	for (i = 0; i < n; i++)
		if (atomic_load(&S.clean[i].ran) +
		    atomic_load(&S.clean[i].popped) != 1)
			fail("cleanup handler %d (pushed in a %s of %s %d%s) "
			    "ran %d times and was popped %d times", i,
			    wherename[S.clean[i].where], S.clean[i].serial ?
			    "worker" : "driver's root", S.clean[i].serial,
			    S.clean[i].ending ? ", ending" : "",
			    atomic_load(&S.clean[i].ran),
			    atomic_load(&S.clean[i].popped));
	for (i = 0; i < NPIPE; i++) {
		close(S.pipe[i][0]);
		close(S.pipe[i][1]);
	}
	/* Joined workers have joined their threads; give the kernel a
	 * moment to reap the last ones. */
	for (waited = 0; count_threads() != threads && waited < 2000;
	    waited++) {
		struct timespec ts = { 0, 1000 * 1000 };

		nanosleep(&ts, NULL);
	}
	if (count_threads() != threads)
		fail("%d threads left behind", count_threads() - threads);
}

void
fuzz_one_drivers(const uint8_t *data, size_t size, int ndriver)
{
	int threads;

	if (size > FUZZ_INPUT_MAX)
		size = FUZZ_INPUT_MAX;
	if (ndriver < 1 || ndriver > NDRIVER)
		ndriver = NDRIVER;
	wd_arm(timeout_s);
	threads = count_threads();
	setup(data, size, ndriver);
	if (fuzz_alloc_hook != NULL)
		fuzz_alloc_hook(1);
	run_programs();
	teardown();
	check_and_free(threads);
	atomic_fetch_add(&stats.inputs, 1);
	atomic_store(&S.phase, "idle");
	wd_arm(0);
}

void
fuzz_one(const uint8_t *data, size_t size)
{
	fuzz_one_drivers(data, size, NDRIVER);
}

void
fuzz_set_label(const char *label)
{
	snprintf(S.label, sizeof(S.label), "%s", label);
}

uint8_t
fuzz_op_byte(enum fuzz_op op)
{
	for (int i = 0; i < 256; i++)
		if (optab[i] == op)
			return (uint8_t)i;
	return 0;
}

void
fuzz_stats(FILE *out)
{
	int i;

	fprintf(out, "fuzz: %ld inputs, %ld tasks, %ld timer calls, %ld "
	    "watch calls, %ld EXECUTE calls, %ld cleanup handlers run\n",
	    atomic_load(&stats.inputs), atomic_load(&stats.tasks),
	    atomic_load(&stats.timers), atomic_load(&stats.watches),
	    atomic_load(&stats.execs), atomic_load(&stats.cleanups));
	fprintf(out, "fuzz: fires: %ld accepted, %ld ESRCH, %ld other "
	    "errors\n", atomic_load(&stats.fired[0]),
	    atomic_load(&stats.fired[1]), atomic_load(&stats.fired[2]));
	fprintf(out, "fuzz: operations:");
	for (i = 0; i < OP_COUNT; i++)
		fprintf(out, " %s %ld", opname[i], atomic_load(&stats.ops[i]));
	fprintf(out, "\nfuzz: listener calls (nested in a wait):");
	for (i = 0; i < NNAME; i++)
		fprintf(out, " %s %ld (%ld)", i == 3 ? "LONG" : names[i],
		    atomic_load(&stats.calls[i]),
		    atomic_load(&stats.nested[i]));
	fprintf(out, "\n");
}

const char *
fuzz_op_name(enum fuzz_op op)
{
	return op < OP_COUNT ? opname[op] : "?";
}

/* splitmix64: a seed gives the same input on every machine. */
static uint64_t
mix(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

size_t
fuzz_gen(uint64_t seed, uint8_t *buf, size_t cap)
{
	uint64_t s = seed;
	size_t n = 24 + mix(&s) % (FUZZ_GEN_MAX - 24), i;

	if (n > cap)
		n = cap;
	for (i = 0; i < n; i++)
		buf[i] = (uint8_t)mix(&s);
	return n;
}

static const struct {
	const char *name;
	unsigned bit;
} avoidable[] = {
	{ "stop_listener_wait", FUZZ_AVOID_STOP_LISTENER_WAIT },
	{ "watch_wait", FUZZ_AVOID_WATCH_WAIT },
	{ "explicit_parent", FUZZ_AVOID_EXPLICIT_PARENT },
	{ "overlay", FUZZ_AVOID_OVERLAY },
	{ "remote_unwatch", FUZZ_AVOID_REMOTE_UNWATCH },
	{ "huge_interval", FUZZ_AVOID_HUGE_INTERVAL },
	{ "bad_fd", FUZZ_AVOID_BAD_FD },
	{ "cleanup_push", FUZZ_AVOID_CLEANUP_PUSH },
	{ "timer_reenter", FUZZ_AVOID_TIMER_REENTER },
	{ "end_cleanup", FUZZ_AVOID_END_CLEANUP },
	{ "pause", FUZZ_AVOID_PAUSE },
	{ "restart", FUZZ_AVOID_RESTART },
};

static int
parse_avoid(const char *s)
{
	while (s != NULL && *s != '\0') {
		size_t n = strcspn(s, ",");
		size_t i, k = sizeof(avoidable) / sizeof(avoidable[0]);

		for (i = 0; i < k; i++)
			if (strlen(avoidable[i].name) == n &&
			    strncmp(s, avoidable[i].name, n) == 0)
				break;
		if (i == k) {
			fprintf(stderr, "fuzz: FUZZ_AVOID: unknown %.*s; "
			    "known:", (int)n, s);
			for (i = 0; i < k; i++)
				fprintf(stderr, " %s", avoidable[i].name);
			fprintf(stderr, "\n");
			return -1;
		}
		avoid |= avoidable[i].bit;
		s += n + (s[n] == ',');
	}
	return 0;
}

int
fuzz_init(void)
{
	const char *e;
	unsigned total = 0, at = 0;
	int op, i;

	if (parse_avoid(getenv("FUZZ_AVOID")) != 0)
		return -1;
	if ((e = getenv("FUZZ_TIMEOUT")) != NULL && atof(e) > 0)
		timeout_s = atof(e);
	verbose = getenv("FUZZ_VERBOSE") != NULL;
	trace = getenv("FUZZ_TRACE") != NULL;
	for (op = 0; op < OP_COUNT; op++)
		total += weight[op];
	/* Each operation gets its share of the 256 byte values. */
	for (op = 0, i = 0; op < OP_COUNT; op++) {
		at += weight[op];
		for (; i < 256 && (unsigned)i * total < at * 256u; i++)
			optab[i] = (uint8_t)op;
	}
	for (; i < 256; i++)
		optab[i] = OP_UPDATE;
	static_exec.fn = static_exec_fn;
	if (devnull == NULL && (devnull = fopen("/dev/null", "w")) == NULL)
		return -1;
	if (!wd.started) {
		if (pthread_create(&wd.thread, NULL, wd_main, NULL) != 0)
			return -1;
		wd.started = 1;
	}
	/* The probe's rejections, if any worker outlived its input. */
	return worker_listen(worker_current(), WORKER_EVENT_REJECT,
	    on_probe_reject, NULL, NULL) != 0 ? -1 : 0;
}
