/*
 * log.c - the one way the library writes a message: worker_set_log().
 *
 * DESIGN
 *
 * Every report (a failed task, a failing listener, a stuck worker, memory
 * that ran out where nothing can return an error, a broken invariant
 * before an abort) goes through worker__log(), with a syslog level and
 * the worker it is about, to the hook of worker_set_log().  The default
 * hook writes the 0.1 lines: "libworker: " and the message, on stderr,
 * with one call so that lines of two threads never mix.
 *
 * Hooks are called under log_lock, one at a time: when worker_set_log()
 * returns, the old hook runs no more and its ctx may be freed.  A message
 * that the hook itself causes on its thread is dropped rather than sent
 * back into the hook, which could recurse without end; worker_set_log()
 * called from the hook just swaps the hook.
 *
 * Floods.  A listener that fails on every event, or a supervisor that
 * reports every restart, would write one line per event.  So a message
 * identical (level and text) to one written less than LOG_WINDOW ago is
 * only counted.  The count goes out as one line, the message followed by
 * "... N more", when the message comes again after the window, when
 * LOG_SLOTS other messages pushed it out, when the hook changes, and at
 * exit for the default hook (a user's hook may be gone by then).
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

#define LOG_MSG_MAX 512
#define LOG_SLOTS 8
#define LOG_WINDOW 5000000000ull	/* ns */

typedef void log_fn(int level, const worker_t *w, const char *msg,
    void *ctx);

/* A message written lately, and how many times it came since. */
struct recent {
	uint64_t hash;			/* 0: a free slot */
	int level;
	uint64_t shown;			/* when it was written (monotonic) */
	uint64_t used;			/* when it last came, to push out */
	unsigned long more;		/* came again and was not written */
	char msg[LOG_MSG_MAX];
};

static void write_stderr(int level, const worker_t *w, const char *msg,
    void *ctx);

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static log_fn *hook = write_stderr;
static void *hook_ctx;
static struct recent recent[LOG_SLOTS];
static _Thread_local bool in_hook;

static void
write_stderr(int level, const worker_t *w, const char *msg, void *ctx)
{
	(void)level;
	(void)w;
	(void)ctx;
	fprintf(stderr, "libworker: %s\n", msg);
}

/* log_lock held. */
static void
call_hook(int level, const worker_t *w, const char *msg)
{
	in_hook = true;
	hook(level, w, msg, hook_ctx);
	in_hook = false;
}

/* Writes how many times r came unwritten, if it did; log_lock held. */
static void
flush_locked(struct recent *r)
{
	char line[LOG_MSG_MAX + 32];

	if (r->hash == 0 || r->more == 0)
		return;
	snprintf(line, sizeof(line), "%s ... %lu more", r->msg, r->more);
	r->more = 0;
	call_hook(r->level, NULL, line);
}

static uint64_t
hash_of(int level, const char *msg)
{
	uint64_t h = 14695981039346656037ull ^ (unsigned)level;

	for (; *msg != '\0'; msg++)
		h = (h ^ (unsigned char)*msg) * 1099511628211ull;
	return h != 0 ? h : 1;
}

/*
 * Should msg be written now?  Counts it instead if it was written less
 * than LOG_WINDOW ago; log_lock held.
 */
static bool
admit_locked(int level, const char *msg, uint64_t now)
{
	uint64_t h = hash_of(level, msg);
	struct recent *r, *oldest = &recent[0];

	for (r = recent; r < recent + LOG_SLOTS; r++) {
		if (r->hash == h && r->level == level &&
		    strcmp(r->msg, msg) == 0)
			break;
		if (r->used < oldest->used)
			oldest = r;
	}
	if (r < recent + LOG_SLOTS) {
		r->used = now;
		if (now - r->shown < LOG_WINDOW) {
			r->more++;
			return false;
		}
		flush_locked(r);
	} else {
		r = oldest;
		flush_locked(r);
		r->hash = h;
		r->level = level;
		r->used = now;
		snprintf(r->msg, sizeof(r->msg), "%s", msg);
	}
	r->shown = now;
	return true;
}

void
worker__log(int level, const worker_t *w, const char *fmt, ...)
{
	char msg[LOG_MSG_MAX];
	va_list ap;

	if (in_hook)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	pthread_mutex_lock(&log_lock);
	if (admit_locked(level, msg, worker__now_ns()))
		call_hook(level, w, msg);
	pthread_mutex_unlock(&log_lock);
}

static void
flush_all_locked(void)
{
	for (struct recent *r = recent; r < recent + LOG_SLOTS; r++)
		flush_locked(r);
}

void
worker_set_log(log_fn *fn, void *ctx)
{
	/* From the hook, on its thread, log_lock is already ours. */
	bool mine = in_hook;

	if (!mine)
		pthread_mutex_lock(&log_lock);
	else
		in_hook = false;
	flush_all_locked();
	hook = fn != NULL ? fn : write_stderr;
	hook_ctx = fn != NULL ? ctx : NULL;
	if (!mine)
		pthread_mutex_unlock(&log_lock);
	else
		in_hook = true;
}

/* Around fork() (fork.c): the child must not find log_lock held. */
void
worker__log_lock(bool lock)
{
	if (lock)
		pthread_mutex_lock(&log_lock);
	else
		pthread_mutex_unlock(&log_lock);
}

/*
 * At exit, the counts the default hook still owes.  Not if another
 * thread holds the lock: exit() must not wait for a hook.
 */
__attribute__((destructor)) static void
log_at_exit(void)
{
	if (pthread_mutex_trylock(&log_lock) != 0)
		return;
	if (hook == write_stderr)
		flush_all_locked();
	pthread_mutex_unlock(&log_lock);
}
