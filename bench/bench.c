/*
 * bench.c - the helpers of bench.h, shared by every benchmark program so
 * that they measure, summarise and report the same way.
 */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

uint64_t
bench_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * BENCH_NS_PER_S + (uint64_t)ts.tv_nsec;
}

void
bench_pin(int cpu)
{
	cpu_set_t set;
	int rc;

	if (cpu < 0)
		return;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if ((rc = pthread_setaffinity_np(pthread_self(), sizeof(set),
	    &set)) != 0)
		bench_die("pthread_setaffinity_np", rc);
}

void
bench_name(const char *name)
{
	char buf[16];

	snprintf(buf, sizeof(buf), "%s", name);
	(void)pthread_setname_np(pthread_self(), buf);
}

pthread_t
bench_thread(void *(*fn)(void *), void *arg)
{
	return bench_thread_stack(fn, arg, 0);
}

pthread_t
bench_thread_stack(void *(*fn)(void *), void *arg, size_t stack)
{
	pthread_attr_t attr;
	pthread_t t;
	int rc;

	pthread_attr_init(&attr);
	if (stack != 0 && (rc = pthread_attr_setstacksize(&attr,
	    stack)) != 0)
		bench_die("pthread_attr_setstacksize", rc);
	if ((rc = pthread_create(&t, &attr, fn, arg)) != 0)
		bench_die("pthread_create", rc);
	pthread_attr_destroy(&attr);
	return t;
}

void
bench_join(pthread_t t)
{
	int rc;

	if ((rc = pthread_join(t, NULL)) != 0)
		bench_die("pthread_join", rc);
}

int
bench_parse_count(const char *s, unsigned long max, unsigned long *out)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (end == s || *end != '\0' || errno != 0 || v == 0 || v > max ||
	    *s == '-')
		return EINVAL;
	*out = v;
	return 0;
}

void
bench_options(int argc, char **argv, const char *usage,
    const struct bench_opt *opts, int nopts)
{
	char spec[2 * nopts + 1];
	int c, i;

	for (i = 0; i < nopts; i++) {
		spec[2 * i] = opts[i].letter;
		spec[2 * i + 1] = ':';
	}
	spec[2 * nopts] = '\0';
	while ((c = getopt(argc, argv, spec)) != -1) {
		for (i = 0; i < nopts && opts[i].letter != c; i++)
			;
		if (i == nopts || bench_parse_count(optarg, opts[i].max,
		    opts[i].value) != 0)
			break;
	}
	if (c != -1 || optind != argc) {
		fprintf(stderr, "usage: %s\n", usage);
		exit(EXIT_FAILURE);
	}
}

void
bench_die(const char *what, int err)
{
	fprintf(stderr, "bench: %s: %s\n", what, strerror(err));
	exit(EXIT_FAILURE);
}

/* ---- The latch ------------------------------------------------------ */

void
bench_latch_init(struct bench_latch *l, unsigned n)
{
	pthread_condattr_t ca;

	pthread_mutex_init(&l->lock, NULL);
	/* The timeout of bench_latch_wait() must not jump with the date. */
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&l->cond, &ca);
	pthread_condattr_destroy(&ca);
	l->left = n;
	l->when = 0;
}

void
bench_latch_arrive(struct bench_latch *l)
{
	uint64_t t = bench_now_ns();

	pthread_mutex_lock(&l->lock);
	if (l->left > 0 && --l->left == 0) {
		l->when = t;
		pthread_cond_broadcast(&l->cond);
	}
	pthread_mutex_unlock(&l->lock);
}

uint64_t
bench_latch_wait(struct bench_latch *l)
{
	uint64_t until = bench_now_ns() +
	    (uint64_t)(BENCH_TIMEOUT * BENCH_NS_PER_S);
	struct timespec ts = {
		.tv_sec = (time_t)(until / BENCH_NS_PER_S),
		.tv_nsec = (long)(until % BENCH_NS_PER_S)
	};
	uint64_t when;

	pthread_mutex_lock(&l->lock);
	while (l->left > 0)
		if (pthread_cond_timedwait(&l->cond, &l->lock, &ts) ==
		    ETIMEDOUT)
			break;
	when = l->left == 0 ? l->when : 0;
	pthread_mutex_unlock(&l->lock);
	return when;
}

void
bench_latch_destroy(struct bench_latch *l)
{
	pthread_cond_destroy(&l->cond);
	pthread_mutex_destroy(&l->lock);
}

/* ---- Statistics ----------------------------------------------------- */

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

double
bench_median(double *v, size_t n)
{
	if (n == 0)
		return NAN;
	qsort(v, n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

int
bench_table_init(struct bench_table *t, const char *title,
    const char *const *systems, int nsys, const struct bench_metric *metrics,
    int nmet, int rounds)
{
	t->title = title;
	t->systems = systems;
	t->nsys = nsys;
	t->metrics = metrics;
	t->nmet = nmet;
	t->rounds = rounds;
	t->v = calloc((size_t)rounds * (size_t)nsys * (size_t)nmet,
	    sizeof(*t->v));
	return t->v != NULL ? 0 : ENOMEM;
}

void
bench_table_free(struct bench_table *t)
{
	free(t->v);
	t->v = NULL;
}

double *
bench_run(struct bench_table *t, int round, int sys)
{
	return &t->v[((size_t)round * (size_t)t->nsys + (size_t)sys) *
	    (size_t)t->nmet];
}

static double
value(const struct bench_table *t, int round, int sys, int met)
{
	return t->v[((size_t)round * (size_t)t->nsys + (size_t)sys) *
	    (size_t)t->nmet + (size_t)met];
}

/* The metric's values over the rounds, or libworker's / sys's when
 * ratio; a round whose divisor is 0 is left out.  Returns the count. */
static size_t
gather(const struct bench_table *t, int sys, int met, int ratio, double *v)
{
	size_t n = 0;
	int r;

	for (r = 0; r < t->rounds; r++) {
		double x = value(t, r, sys, met);

		if (!ratio)
			v[n++] = x;
		else if (x != 0)
			v[n++] = value(t, r, 0, met) / x;
	}
	return n;
}

static double
stat_of(const struct bench_table *t, int sys, int met, int ratio)
{
	double v[t->rounds > 0 ? t->rounds : 1];

	return bench_median(v, gather(t, sys, met, ratio, v));
}

double
bench_median_of(const struct bench_table *t, int sys, int met)
{
	return stat_of(t, sys, met, 0);
}

double
bench_ratio(const struct bench_table *t, int sys, int met)
{
	return stat_of(t, sys, met, 1);
}

int
bench_best(const struct bench_table *t, const int *peers, int n, int met)
{
	int best = peers[0], i;

	for (i = 1; i < n; i++) {
		double a = bench_median_of(t, peers[i], met);
		double b = bench_median_of(t, best, met);

		if (t->metrics[met].better == BENCH_HIGHER ? a > b : a < b)
			best = peers[i];
	}
	return best;
}

void
bench_play(struct bench_table *t,
    void (*run)(int round, int sys, double *m, void *ctx), void *ctx)
{
	int r, s;

	bench_print_head(t);
	for (r = 0; r < t->rounds; r++) {
		for (s = 0; s < t->nsys; s++) {
			run(r, s, bench_run(t, r, s), ctx);
			bench_print_run(t, r, s);
		}
	}
	bench_print_summary(t);
}

void
bench_print_head(const struct bench_table *t)
{
	int k;

	printf("\n%s\n%5s %-10s", t->title, "round", "system");
	for (k = 0; k < t->nmet; k++)
		printf(" %9s", t->metrics[k].head);
	printf("\n");
}

void
bench_print_run(const struct bench_table *t, int round, int sys)
{
	int k;

	printf("%5d %-10s", round + 1, t->systems[sys]);
	for (k = 0; k < t->nmet; k++)
		printf(t->metrics[k].format, value(t, round, sys, k));
	printf("\n");
	/* Each line as it comes: a long run shows that it moves. */
	fflush(stdout);
}

/* One block per metric: a line per system, libworker first. */
void
bench_print_summary(const struct bench_table *t)
{
	double v[t->rounds];
	int k, s;

	printf("\nsummary: %s, %d rounds\n", t->title, t->rounds);
	printf("%-16s %9s %9s %9s %9s\n", "", "median", "min", "max",
	    "lw/this");
	for (k = 0; k < t->nmet; k++) {
		printf("%s\n", t->metrics[k].label);
		for (s = 0; s < t->nsys; s++) {
			size_t n = gather(t, s, k, 0, v);

			printf("  %-14s", t->systems[s]);
			printf(t->metrics[k].format, bench_median(v, n));
			/* Sorted by bench_median(). */
			printf(t->metrics[k].format, v[0]);
			printf(t->metrics[k].format, v[n - 1]);
			if (s == 0 || t->metrics[k].better == BENCH_NONE)
				printf(" %9s\n", "-");
			else
				printf(" %9.3f\n", bench_ratio(t, s, k));
		}
	}
	fflush(stdout);
}

/* ---- The final table ------------------------------------------------ */

const char *
bench_fmt(char *buf, size_t size, double v)
{
	if (isnan(v))
		snprintf(buf, size, "-");
	else if (fabs(v) >= 1e6)
		snprintf(buf, size, "%.3gM", v / 1e6);
	else if (fabs(v) >= 1e4)
		snprintf(buf, size, "%.3gk", v / 1e3);
	else
		snprintf(buf, size, "%.4g", v);
	return buf;
}

void
bench_target_row(const char *workload, const char *libworker,
    const char *peer, double ratio, const char *target, int met)
{
	static int headed;
	char r[32];

	if (!headed) {
		printf("target: %-27s %-9s %-15s %5s %-11s %s\n",
		    "workload", "libworker", "best peer", "ratio", "target",
		    "met?");
		headed = 1;
	}
	if (isnan(ratio))
		snprintf(r, sizeof(r), "-");
	else
		snprintf(r, sizeof(r), "%.3f", ratio);
	printf("target: %-27s %-9s %-15s %5s %-11s %s\n", workload,
	    libworker, peer, r, target, met ? "yes" : "NO");
	fflush(stdout);
}

void
bench_target_peer(const struct bench_table *t, const char *workload,
    const char *libworker, int peer, int met, const char *target, int ok)
{
	char lw[32], pv[32], name[48];

	if (libworker == NULL)
		libworker = bench_fmt(lw, sizeof(lw),
		    bench_median_of(t, 0, met));
	snprintf(name, sizeof(name), "%s %s", t->systems[peer],
	    bench_fmt(pv, sizeof(pv), bench_median_of(t, peer, met)));
	bench_target_row(workload, libworker, name,
	    bench_ratio(t, peer, met), target, ok);
}

int
bench_target_ratio(const struct bench_table *t, const char *workload,
    int met, const int *peers, int n, double limit)
{
	int best = bench_best(t, peers, n, met);
	double ratio = bench_ratio(t, best, met);
	int lower = t->metrics[met].better != BENCH_HIGHER;
	int ok = lower ? ratio <= limit : ratio >= limit;
	char target[32];

	snprintf(target, sizeof(target), "%s %.2fx", lower ? "<=" : ">=",
	    limit);
	bench_target_peer(t, workload, NULL, best, met, target, ok);
	return ok;
}

double
bench_worst_ratio(const struct bench_table *t, int met, const int *peers,
    int n)
{
	int higher = t->metrics[met].better == BENCH_HIGHER;
	double worst = NAN;
	int r, i;

	for (r = 0; r < t->rounds; r++) {
		/* The best peer of this round. */
		double best = value(t, r, peers[0], met), ratio;

		for (i = 1; i < n; i++) {
			double x = value(t, r, peers[i], met);

			if (higher ? x > best : x < best)
				best = x;
		}
		if (best == 0)
			continue;
		ratio = value(t, r, 0, met) / best;
		if (isnan(worst) || (higher ? ratio < worst : ratio > worst))
			worst = ratio;
	}
	return worst;
}

int
bench_target_ratio_worst(const struct bench_table *t, const char *workload,
    int met, const int *peers, int n, double limit, double worst)
{
	int lower = t->metrics[met].better != BENCH_HIGHER;
	int ok = bench_target_ratio(t, workload, met, peers, n, limit);
	double w = bench_worst_ratio(t, met, peers, n);
	int wok = lower ? w <= worst : w >= worst;
	char row[64], target[32];

	snprintf(row, sizeof(row), "%s, worst", workload);
	snprintf(target, sizeof(target), "%s %.2fx", lower ? "<=" : ">=",
	    worst);
	bench_target_row(row, "-", "best per round", w, target, wok);
	return ok && wok;
}

/* ---- /proc ---------------------------------------------------------- */

long
bench_rss_kib(void)
{
	FILE *f = fopen("/proc/self/statm", "r");
	long size, resident;
	int n;

	if (f == NULL)
		return -1;
	n = fscanf(f, "%ld %ld", &size, &resident);
	fclose(f);
	if (n != 2)
		return -1;
	return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

int
bench_nfds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	if (d == NULL)
		return -1;
	while ((e = readdir(d)) != NULL)
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	/* Less the descriptor of d itself. */
	return n - 1;
}

int
bench_nthreads(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	int n = -1;

	if (f == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL)
		if (sscanf(line, "Threads: %d", &n) == 1)
			break;
	fclose(f);
	return n;
}

/* ---- The machine ---------------------------------------------------- */

#define LINE_TRIPS 20000

struct line_probe {
	_Alignas(64) atomic_ulong ping;
	_Alignas(64) atomic_ulong pong;
	int cpu[2];
};

static void *
line_echo(void *arg)
{
	struct line_probe *lp = arg;
	unsigned long i;

	bench_pin(lp->cpu[1]);
	for (i = 1; i <= LINE_TRIPS; i++) {
		while (atomic_load_explicit(&lp->ping,
		    memory_order_acquire) != i)
			;
		atomic_store_explicit(&lp->pong, i, memory_order_release);
	}
	return NULL;
}

static void *
line_call(void *arg)
{
	struct line_probe *lp = arg;
	uint64_t *ns = malloc(sizeof(*ns));
	uint64_t t0;
	unsigned long i;

	if (ns == NULL)
		bench_die("bench_line_ns", ENOMEM);
	bench_pin(lp->cpu[0]);
	t0 = bench_now_ns();
	for (i = 1; i <= LINE_TRIPS; i++) {
		atomic_store_explicit(&lp->ping, i, memory_order_release);
		while (atomic_load_explicit(&lp->pong,
		    memory_order_acquire) != i)
			;
	}
	*ns = bench_now_ns() - t0;
	return ns;
}

double
bench_line_ns(void)
{
	struct line_probe *lp = aligned_alloc(64, sizeof(*lp));
	cpu_set_t set;
	pthread_t a, b;
	void *ret;
	double ns;
	int cpu, n = 0;

	if (lp == NULL)
		bench_die("bench_line_ns", ENOMEM);
	memset(lp, 0, sizeof(*lp));
	if (sched_getaffinity(0, sizeof(set), &set) == 0)
		for (cpu = 0; cpu < CPU_SETSIZE && n < 2; cpu++)
			if (CPU_ISSET(cpu, &set))
				lp->cpu[n++] = cpu;
	if (n < 2) {
		free(lp);
		return 0;
	}
	b = bench_thread(line_echo, lp);
	a = bench_thread(line_call, lp);
	if ((n = pthread_join(a, &ret)) != 0)
		bench_die("pthread_join", n);
	bench_join(b);
	ns = (double)*(uint64_t *)ret / LINE_TRIPS;
	free(ret);
	free(lp);
	return ns;
}
