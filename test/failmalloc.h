/*
 * failmalloc.h - allocations that fail on a schedule, for the tests of
 * what the library does when memory runs out.
 *
 * The suite is linked with -Wl,--wrap=malloc (and calloc, realloc,
 * aligned_alloc, strdup), so the library's calls and the tests' own come
 * through here; libc's internal ones do not.  Disarmed, every call goes
 * through to the real allocator.
 */
#ifndef FAILMALLOC_H
#define FAILMALLOC_H

/*
 * From now on, the allocations from the after-th on fail (after < 0:
 * none of them), and so does every every-th one (every 0: none).
 */
void failmalloc_arm(long after, long every);
/* Every allocation succeeds again. */
void failmalloc_disarm(void);
/* Lets the armed schedule act (on) or not, keeping its count. */
void failmalloc_enable(int on);
/* The calling thread's allocations always succeed (on), nested; for a
 * harness's own bookkeeping amid a failing workload. */
void failmalloc_pause(int on);
/* How many allocations failed since the last arm. */
long failmalloc_failed(void);
/* How many allocations the schedule counted since the last arm. */
long failmalloc_calls(void);

#endif
