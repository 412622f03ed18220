/*
 * bench.h - what the benchmark programs share: the clock, CPU pinning,
 * option parsing, a countdown latch, the table of rounds with its summary
 * (median, min, max, median of the per-round ratios), the "target:" lines
 * that "make bench" gathers into its final table, and what /proc says
 * about the process.
 *
 * Every program runs libworker and its peers in the same process, one
 * after the other within each round (A B C A B C ...), and compares only
 * values of the same round: the machine is shared, and its speed changes
 * from one second to the next.
 */
#ifndef BENCH_H
#define BENCH_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#define BENCH_NS_PER_S 1000000000u
#define BENCH_NS_PER_MS 1000000u
#define BENCH_NS_PER_US 1000u

/* How long any wait of a benchmark may last before it counts as hung. */
#define BENCH_TIMEOUT 60.0

/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t bench_now_ns(void);

/* Pins the calling thread to one CPU (as taskset -c does), or exits; a
 * negative cpu leaves it free. */
void bench_pin(int cpu);

/* Names the calling thread (the first 15 bytes), so that "perf report
 * --sort comm" and "top -H" tell the systems apart. */
void bench_name(const char *name);

/* pthread_create() and pthread_join() that exit on failure; stack is
 * the stack size, 0 for the default. */
pthread_t bench_thread(void *(*fn)(void *), void *arg);
pthread_t bench_thread_stack(void *(*fn)(void *), void *arg, size_t stack);
void bench_join(pthread_t t);

/* Parses a decimal count in [1, max] into *out; returns 0 or EINVAL. */
int bench_parse_count(const char *s, unsigned long max, unsigned long *out);

/* A numeric option: -letter COUNT, COUNT in [1, max]. */
struct bench_opt {
	char letter;
	unsigned long *value;	/* holds the default */
	unsigned long max;
};

/* Parses the options of a program; anything else prints "usage: " and
 * usage on stderr and exits. */
void bench_options(int argc, char **argv, const char *usage,
    const struct bench_opt *opts, int nopts);

/* Prints the error of what failed on stderr and exits. */
void bench_die(const char *what, int err) __attribute__((noreturn));

/*
 * A countdown latch: bench_latch_arrive() from n threads in all, and
 * bench_latch_wait() returns the time of the last arrival.  It is how the
 * programs learn that every event was delivered, the same way for every
 * system, outside of the systems measured.
 */
struct bench_latch {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	unsigned left;
	uint64_t when;		/* the last arrival, bench_now_ns() */
};

void bench_latch_init(struct bench_latch *l, unsigned n);
void bench_latch_arrive(struct bench_latch *l);
/* Returns the time of the last arrival, or 0 after BENCH_TIMEOUT. */
uint64_t bench_latch_wait(struct bench_latch *l);
void bench_latch_destroy(struct bench_latch *l);

/* ---- Rounds and their summary --------------------------------------- */

enum bench_better {
	BENCH_NONE,		/* no ratio in the summary */
	BENCH_LOWER,		/* a time, a size */
	BENCH_HIGHER		/* a rate */
};

struct bench_metric {
	const char *head;	/* column of the round lines, 9 characters */
	const char *label;	/* line of the summary */
	const char *format;	/* of one value, 9 characters wide */
	enum bench_better better;
};

/*
 * The values of every run: rounds x systems x metrics.  systems[0] is
 * libworker; the summary gives each metric's median, min and max per
 * system, and the median over the rounds of libworker / system.
 */
struct bench_table {
	const char *title;
	const char *const *systems;
	int nsys;
	const struct bench_metric *metrics;
	int nmet;
	int rounds;
	double *v;
};

/* Returns 0 or ENOMEM. */
int bench_table_init(struct bench_table *t, const char *title,
    const char *const *systems, int nsys, const struct bench_metric *metrics,
    int nmet, int rounds);
void bench_table_free(struct bench_table *t);
/* The metrics of one run, to be filled in. */
double *bench_run(struct bench_table *t, int round, int sys);
/*
 * Plays every round of t: in each, every system once, in order (A B C A B
 * C ...), run(round, sys, m, ctx) filling in the metrics m of that run.
 * Prints the head, each run as it ends, and the summary.
 */
void bench_play(struct bench_table *t,
    void (*run)(int round, int sys, double *m, void *ctx), void *ctx);
void bench_print_head(const struct bench_table *t);
void bench_print_run(const struct bench_table *t, int round, int sys);
void bench_print_summary(const struct bench_table *t);
/* The median over the rounds of one system's metric. */
double bench_median_of(const struct bench_table *t, int sys, int met);
/* The median over the rounds of libworker's value / sys's value. */
double bench_ratio(const struct bench_table *t, int sys, int met);
/* Of the systems in peers[0..n), the one with the best median. */
int bench_best(const struct bench_table *t, const int *peers, int n,
    int met);

/* The median of v[0..n), which it sorts. */
double bench_median(double *v, size_t n);

/* ---- The final table ------------------------------------------------ */

/*
 * Prints one row of the table that "make bench" ends with, as a line that
 * starts with "target:" (bench/Makefile gathers them).  The first call
 * prints the table's head too, as a "target:" line of its own.
 */
void bench_target_row(const char *workload, const char *libworker,
    const char *peer, double ratio, const char *target, int met);

/*
 * The row of a target on a ratio: libworker against the best of the
 * systems peers[0..n) by metric met.  The target is met when the ratio
 * is at most max (BENCH_LOWER) or at least min (BENCH_HIGHER) - the one
 * of "limit" that the metric's direction implies.  Returns whether it is.
 */
int bench_target_ratio(const struct bench_table *t, const char *workload,
    int met, const int *peers, int n, double limit);

/*
 * The row of a target of any other kind, met or not as ok says: libworker
 * (its median of met, or the text libworker if not NULL) shown beside the
 * system peer, with the median of the per-round ratios.
 */
void bench_target_peer(const struct bench_table *t, const char *workload,
    const char *libworker, int peer, int met, const char *target, int ok);

/*
 * The worst round of libworker against the best of peers[0..n) by metric
 * met: the lowest per-round ratio for a rate (BENCH_HIGHER), the highest
 * for a time or a size; NAN without rounds.
 */
double bench_worst_ratio(const struct bench_table *t, int met,
    const int *peers, int n);

/*
 * bench_target_ratio() with a second target on the worst round (see
 * bench_worst_ratio): met when the median ratio reaches limit and no
 * round's ratio is beyond worst.  Two rows; returns whether both hold.
 */
int bench_target_ratio_worst(const struct bench_table *t,
    const char *workload, int met, const int *peers, int n, double limit,
    double worst);

/* Formats v with 4 significant digits and k/M for thousands/millions. */
const char *bench_fmt(char *buf, size_t size, double v);

/* ---- The process, from /proc ---------------------------------------- */

/* Resident memory in KiB (/proc/self/statm), or -1. */
long bench_rss_kib(void);
/* Open descriptors (/proc/self/fd), or -1. */
int bench_nfds(void);
/* Threads of the process (/proc/self/status), or -1. */
int bench_nthreads(void);

/* ---- The machine ---------------------------------------------------- */

/*
 * The round trip of a cache line between the first two CPUs the process
 * may run on, in ns: two threads, one on each, hand a counter back and
 * forth.  0 with fewer than two CPUs.  On a VM it tells where the host
 * put the two vCPUs: on this one, 110 ns or 540.
 */
double bench_line_ns(void);

#endif /* BENCH_H */
