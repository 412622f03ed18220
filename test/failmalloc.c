/*
 * failmalloc.c - see failmalloc.h.  The schedule is shared by every
 * thread: counts are atomic, and an armed schedule applies to the
 * library's threads as well as to the test's.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "failmalloc.h"

void *__real_malloc(size_t size);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t size);
void *__real_aligned_alloc(size_t align, size_t size);
char *__real_strdup(const char *s);

void *__wrap_malloc(size_t size);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_realloc(void *p, size_t size);
void *__wrap_aligned_alloc(size_t align, size_t size);
char *__wrap_strdup(const char *s);

static atomic_bool armed;
static atomic_long calls;
static atomic_long failed;
static long fail_after;
static long fail_every;
static __thread int paused;

void
failmalloc_arm(long after, long every)
{
	fail_after = after;
	fail_every = every;
	atomic_store(&calls, 0);
	atomic_store(&failed, 0);
	atomic_store(&armed, true);
}

void
failmalloc_disarm(void)
{
	atomic_store(&armed, false);
}

void
failmalloc_enable(int on)
{
	atomic_store(&armed, on != 0);
}

void
failmalloc_pause(int on)
{
	paused += on ? 1 : -1;
}

long
failmalloc_failed(void)
{
	return atomic_load(&failed);
}

long
failmalloc_calls(void)
{
	return atomic_load(&calls);
}

static bool
must_fail(void)
{
	long n;

	if (!atomic_load_explicit(&armed, memory_order_relaxed) || paused > 0)
		return false;
	n = atomic_fetch_add(&calls, 1);
	if ((fail_after >= 0 && n >= fail_after) ||
	    (fail_every > 0 && n % fail_every == fail_every - 1)) {
		atomic_fetch_add(&failed, 1);
		errno = ENOMEM;
		return true;
	}
	return false;
}

void *
__wrap_malloc(size_t size)
{
	return must_fail() ? NULL : __real_malloc(size);
}

void *
__wrap_calloc(size_t n, size_t size)
{
	return must_fail() ? NULL : __real_calloc(n, size);
}

void *
__wrap_realloc(void *p, size_t size)
{
	return must_fail() ? NULL : __real_realloc(p, size);
}

void *
__wrap_aligned_alloc(size_t align, size_t size)
{
	return must_fail() ? NULL : __real_aligned_alloc(align, size);
}

char *
__wrap_strdup(const char *s)
{
	return must_fail() ? NULL : __real_strdup(s);
}
