/*
 * cost.c - what the statistics counters and the USDT probes cost: the
 * same workloads with the library as built ("full"), with the counting
 * compiled out (-DWORKER_STATS=0, "nostats") and with the probes compiled
 * out (-DWORKER_NO_PROBES, "noprobes").  libworker only: no peer here.
 *
 * This one source is linked three times (bench/Makefile), each time with
 * the library built its way: cost-full, cost-nostats, cost-noprobes; and
 * once more as "cost", the driver, which is a full build too.  The
 * fourth, "watched", is cost-full with -l 1: it looks at a worker first
 * (worker_stats()), which starts the statistics' clock reads (clock.c),
 * so it measures what the statistics cost while a tool watches.  With -1 a
 * program runs the workloads (or only workload W) K times each in a row
 * and prints one line per workload with the best rate of the K.  Without
 * it, it is the driver: in each round, each workload is run by the four
 * programs one after the other, each as a process of its own, and who
 * goes first turns from one workload and round to the next (A B C, B C A,
 * C A B, ...).  Only the rates of the same workload in the same round are
 * compared: the machine is shared and noisy, and its speed changes from
 * one second to the next.  The best of K runs, not their mean: another
 * process only ever makes a run slower.
 *
 * The workloads are those of throughput.c and pingpong.c, set up in
 * their own way:
 *
 *   1->1, 2->1  one or two producer workers fire N events in all (default
 *               3,000,000) with a pointer payload at a consumer worker
 *               that only waits (worker_wait_forever()); its listener
 *               checks and counts.  Millions of events per second, from
 *               the producers' release until the last event counted.  No
 *               thread is pinned.
 *   pingpong    worker A fires "ping" at worker B, whose listener fires
 *               "pong" back; A waits for it with worker_wait_event().
 *               1,000 untimed round trips, then P timed ones (default
 *               50,000); thousands of round trips per second.  Both on
 *               CPU 0, or A on CPU 0 and B on CPU 1.
 *   solo        one worker fires S events (default 1,000,000) at itself:
 *               16 at a time, each 16 handled by one worker_update()
 *               ("batch"), or one at a time, each waited for with
 *               worker_wait_event() ("wait").  Millions of events per
 *               second.  No other thread, nothing to wait for: the
 *               library's own work per event, without the scheduler's
 *               noise.  No target of the issue; callgrind counts their
 *               instructions exactly (README).
 *
 * The driver checks that the programs are what their names say: that
 * the consumer of cost-full and cost-noprobes counted every event it
 * handled (worker_stats()), that cost-nostats counted none, and it counts
 * each program's probe sites, the notes of its ".note.stapsdt" section
 * (none in cost-noprobes).
 *
 * Usage: cost [-r ROUNDS] [-k K] [-n N] [-p P] [-s S]   the comparison
 *        cost-VARIANT -1 [-w W] [-l 1] [-k K] [-n N] [-p P] [-s S]
 *                                  the workloads, or only W (1 to 6)
 */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "worker.h"

#define MAX_PRODUCERS 2
#define WARMUP 1000
#define SOLO_BATCH 16

extern char **environ;

/* ---- Throughput ----------------------------------------------------- */

/* One run.  The sink's counters are written by the sink only, on cache
 * lines that no producer reads. */
struct flow {
	unsigned long per;	/* events per producer */
	int nprod;
	worker_t *sink;
	struct bench_latch ready;	/* every producer is running */
	struct bench_latch go;		/* main lets them fire */
	struct bench_latch done;	/* the sink counted the last */
	char tag[MAX_PRODUCERS];	/* producer i fires &tag[i] */
	_Alignas(128) unsigned long got[MAX_PRODUCERS];
	unsigned long total;
};

struct producer {
	struct flow *f;
	int i;
};

static int
on_item(const worker_event_t *ev, void *ctx)
{
	struct flow *f = ctx;
	ptrdiff_t i = (char *)ev->data - f->tag;

	if (i < 0 || i >= f->nprod)
		bench_die("cost: sink", EPROTO);
	f->got[i]++;
	if (++f->total == f->per * (unsigned long)f->nprod)
		bench_latch_arrive(&f->done);
	return 0;
}

static void *
produce(void *arg)
{
	struct producer *p = arg;
	struct flow *f = p->f;
	unsigned long k;
	int rc;

	bench_latch_arrive(&f->ready);
	if (bench_latch_wait(&f->go) == 0)
		bench_die("cost: producer", ETIMEDOUT);
	for (k = 0; k < f->per; k++)
		if ((rc = worker_fire(f->sink, "item", &f->tag[p->i])) != 0)
			bench_die("cost: worker_fire", rc);
	return NULL;
}

static void
end_worker(worker_t *w, int stop)
{
	int rc;

	if ((stop && (rc = worker_stop(w)) != 0) ||
	    (rc = worker_join(w)) != 0 || (rc = worker_result(w, NULL)) != 0)
		bench_die("cost: worker", rc);
	worker_unref(w);
}

/*
 * n events from nprod producers; returns millions of events per second,
 * and in *handled what worker_stats() says the sink handled.
 */
static double
flow_run(unsigned long n, int nprod, uint64_t *handled)
{
	static const worker_attr_t sink_attr = { .name = "sink" };
	static const worker_attr_t prod_attr = { .name = "producer" };
	struct flow *f = aligned_alloc(_Alignof(struct flow), sizeof(*f));
	struct producer p[MAX_PRODUCERS];
	worker_t *w[MAX_PRODUCERS];
	worker_stats_t st;
	uint64_t t0, t1;
	int i, rc;

	if (f == NULL)
		bench_die("cost", ENOMEM);
	memset(f, 0, sizeof(*f));
	f->per = n / (unsigned long)nprod;
	f->nprod = nprod;
	bench_latch_init(&f->ready, (unsigned)nprod);
	bench_latch_init(&f->go, 1);
	bench_latch_init(&f->done, 1);
	/* No task: a worker without one waits for events until stopped. */
	if ((f->sink = worker_new(NULL, NULL, &sink_attr)) == NULL)
		bench_die("cost: worker_new", errno);
	if ((rc = worker_listen(f->sink, "item", on_item, f, NULL)) != 0 ||
	    (rc = worker_start(f->sink)) != 0)
		bench_die("cost: worker_start", rc);
	for (i = 0; i < nprod; i++) {
		p[i] = (struct producer){ .f = f, .i = i };
		if ((w[i] = worker_create(produce, &p[i], &prod_attr)) == NULL)
			bench_die("cost: worker_create", errno);
	}
	if (bench_latch_wait(&f->ready) == 0)
		bench_die("cost: producers", ETIMEDOUT);
	t0 = bench_now_ns();
	bench_latch_arrive(&f->go);
	if ((t1 = bench_latch_wait(&f->done)) == 0)
		bench_die("cost: sink", ETIMEDOUT);
	for (i = 0; i < nprod; i++) {
		end_worker(w[i], 0);
		if (f->got[i] != f->per)
			bench_die("cost: events lost", EPROTO);
	}
	/* Before the stop, which is an event too. */
	if ((rc = worker_stats(f->sink, &st)) != 0)
		bench_die("cost: worker_stats", rc);
	*handled = st.handled;
	end_worker(f->sink, 1);
	bench_latch_destroy(&f->ready);
	bench_latch_destroy(&f->go);
	bench_latch_destroy(&f->done);
	free(f);
	return (double)n / ((double)(t1 - t0) / BENCH_NS_PER_S) / 1e6;
}

/* ---- Ping-pong ------------------------------------------------------ */

struct rally {
	unsigned long trips;	/* WARMUP + the timed ones */
	int cpu_b;
	worker_t *b;
	uint64_t t0, t1;	/* A's: after the warm-up, at the end */
	unsigned long answered;	/* B's */
};

static int
on_ping(const worker_event_t *ev, void *ctx)
{
	struct rally *r = ctx;

	r->answered++;
	return worker_fire(ev->source, "pong", ev->data);
}

static void *
pinned_wait(void *arg)
{
	bench_pin(*(const int *)arg);
	worker_wait_forever();
	return NULL;
}

static void *
serve(void *arg)
{
	struct rally *r = arg;
	unsigned long k;
	void *back;
	int rc;

	bench_pin(0);
	for (k = 0; k < r->trips; k++) {
		if (k == WARMUP)
			r->t0 = bench_now_ns();
		if ((rc = worker_fire(r->b, "ping", r)) != 0 ||
		    (rc = worker_wait_event("pong", r->b, -1, &back)) != 0)
			bench_die("cost: ping", rc);
		if (back != r)
			bench_die("cost: pong", EPROTO);
	}
	r->t1 = bench_now_ns();
	return NULL;
}

/* n timed round trips, B on cpu_b; returns thousands per second. */
static double
rally_run(unsigned long n, int cpu_b)
{
	static const worker_attr_t a_attr = { .name = "ping" };
	static const worker_attr_t b_attr = { .name = "pong" };
	struct rally r = { .trips = WARMUP + n, .cpu_b = cpu_b };
	worker_t *a;
	int rc;

	if ((r.b = worker_new(pinned_wait, &r.cpu_b, &b_attr)) == NULL)
		bench_die("cost: worker_new", errno);
	if ((rc = worker_listen(r.b, "ping", on_ping, &r, NULL)) != 0 ||
	    (rc = worker_start(r.b)) != 0)
		bench_die("cost: worker_start", rc);
	if ((a = worker_create(serve, &r, &a_attr)) == NULL)
		bench_die("cost: worker_create", errno);
	end_worker(a, 0);
	end_worker(r.b, 1);
	if (r.answered != r.trips)
		bench_die("cost: pings lost", EPROTO);
	return (double)n / ((double)(r.t1 - r.t0) / BENCH_NS_PER_S) / 1e3;
}

/* ---- One thread firing at itself ----------------------------------- */

struct solo {
	unsigned long n;	/* a multiple of SOLO_BATCH */
	uint64_t t0, t1;
	unsigned long seen;
};

static int
on_tick(const worker_event_t *ev, void *ctx)
{
	struct solo *s = ctx;

	if (ev->data != s)
		bench_die("cost: tick", EPROTO);
	s->seen++;
	return 0;
}

/* SOLO_BATCH events at itself, then one worker_update() for them all. */
static void *
solo_batch(void *arg)
{
	struct solo *s = arg;
	worker_t *me = worker_current();
	unsigned long k;
	int j, rc;

	s->t0 = bench_now_ns();
	for (k = 0; k < s->n; k += SOLO_BATCH) {
		for (j = 0; j < SOLO_BATCH; j++)
			if ((rc = worker_fire(me, "tick", s)) != 0)
				bench_die("cost: worker_fire", rc);
		(void)worker_update();
	}
	s->t1 = bench_now_ns();
	return NULL;
}

/* One event at itself, then worker_wait_event() for it. */
static void *
solo_wait(void *arg)
{
	struct solo *s = arg;
	worker_t *me = worker_current();
	unsigned long k;
	void *data;
	int rc;

	s->t0 = bench_now_ns();
	for (k = 0; k < s->n; k++)
		if ((rc = worker_fire(me, "tick", s)) != 0 ||
		    (rc = worker_wait_event("tick", NULL, -1, &data)) != 0)
			bench_die("cost: solo", rc);
	s->t1 = bench_now_ns();
	return NULL;
}

/* About n events through task; returns millions per second. */
static double
solo_run(unsigned long n, worker_fn task)
{
	static const worker_attr_t attr = { .name = "solo" };
	struct solo s = {
		.n = (n + SOLO_BATCH - 1) / SOLO_BATCH * SOLO_BATCH
	};
	worker_t *w;
	int rc;

	if ((w = worker_new(task, &s, &attr)) == NULL)
		bench_die("cost: worker_new", errno);
	if ((rc = worker_listen(w, "tick", on_tick, &s, NULL)) != 0 ||
	    (rc = worker_start(w)) != 0)
		bench_die("cost: worker_start", rc);
	end_worker(w, 0);
	if (s.seen != s.n)
		bench_die("cost: ticks lost", EPROTO);
	return (double)s.n / ((double)(s.t1 - s.t0) / BENCH_NS_PER_S) / 1e6;
}

/* ---- The workloads, as a program runs them (-1) ------------------- */

struct sizes {
	unsigned long n;	/* events per throughput run */
	unsigned long p;	/* timed round trips per ping-pong run */
	unsigned long s;	/* events per solo run */
};

static double
flow_1(const struct sizes *z, uint64_t *handled)
{
	return flow_run(z->n, 1, handled);
}

static double
flow_2(const struct sizes *z, uint64_t *handled)
{
	uint64_t ignored;

	(void)handled;
	return flow_run(z->n / 2 * 2, 2, &ignored);
}

static double
rally_1cpu(const struct sizes *z, uint64_t *handled)
{
	(void)handled;
	return rally_run(z->p, 0);
}

static double
rally_2cpu(const struct sizes *z, uint64_t *handled)
{
	(void)handled;
	return rally_run(z->p, 1);
}

static double
solo_16(const struct sizes *z, uint64_t *handled)
{
	(void)handled;
	return solo_run(z->s, solo_batch);
}

static double
solo_1(const struct sizes *z, uint64_t *handled)
{
	(void)handled;
	return solo_run(z->s, solo_wait);
}

/*
 * A program prints one line per workload it ran, "KEY RATE UNIT", RATE
 * the best of its runs; after 1->1 one more, "handled COUNT": what
 * worker_stats() says its sink handled.
 */
static const struct workload {
	const char *key;
	const char *unit;
	double (*run)(const struct sizes *z, uint64_t *handled);
} workloads[] = {
	{ "1->1", "Mev/s", flow_1 },
	{ "2->1", "Mev/s", flow_2 },
	{ "pingpong-1cpu", "krt/s", rally_1cpu },
	{ "pingpong-2cpu", "krt/s", rally_2cpu },
	{ "solo-batch", "Mev/s", solo_16 },
	{ "solo-wait", "Mev/s", solo_1 },
};
enum { NWORK = sizeof(workloads) / sizeof(workloads[0]) };
/* The first NTARGET have the targets. */
enum { NTARGET = 4 };

/*
 * Workload w (0: every one), k runs of each, in a row: the best of them
 * is the one that the rest of the machine disturbed least.
 */
static void
run_once(const struct sizes *z, unsigned long w, unsigned long k,
    unsigned long look)
{
	const struct workload *wl;
	uint64_t handled = 0;
	unsigned long i;
	double best, v;
	worker_stats_t st;

	/* A look at any worker starts the statistics' clocks (clock.c). */
	if (look && worker_stats(worker_current(), &st) != 0)
		bench_die("cost: worker_stats", EINVAL);
	for (wl = workloads; wl < workloads + NWORK; wl++) {
		if (w != 0 && wl != &workloads[w - 1])
			continue;
		for (best = 0, i = 0; i < k; i++)
			if ((v = wl->run(z, &handled)) > best)
				best = v;
		printf("%s %.3f %s\n", wl->key, best, wl->unit);
		if (wl->run == flow_1)
			printf("handled %llu\n", (unsigned long long)handled);
		fflush(stdout);
	}
}

/* ---- The driver ----------------------------------------------------- */

/* watched: cost-full once something looked at a worker, which times
 * listeners and stamps "since when" with clock reads. */
enum { FULL, NOSTATS, NOPROBES, WATCHED, NVAR };
static const char *const variants[NVAR] = { "full", "nostats", "noprobes",
    "watched" };

static const struct bench_metric metrics[NWORK] = {
	{ " 1->1 M/s", "throughput 1->1, million events/s", " %9.3f",
	    BENCH_HIGHER },
	{ " 2->1 M/s", "throughput 2->1, million events/s", " %9.3f",
	    BENCH_HIGHER },
	{ "pp1 krt/s", "ping-pong 1 CPU, thousand round trips/s", " %9.2f",
	    BENCH_HIGHER },
	{ "pp2 krt/s", "ping-pong 2 CPUs, thousand round trips/s", " %9.2f",
	    BENCH_HIGHER },
	{ "batch M/s", "solo, 16 per worker_update(), million events/s",
	    " %9.3f", BENCH_HIGHER },
	{ " wait M/s", "solo, 1 per worker_wait_event(), million events/s",
	    " %9.3f", BENCH_HIGHER },
};

/* The rows of the final table: [0] the statistics, [1] the probes. */
static const char *const rows[2][NTARGET] = {
	{ "stats 1->1, Mev/s", "stats 2->1, Mev/s",
	    "stats pingpong 1 CPU, k/s", "stats pingpong 2 CPUs, k/s" },
	{ "probes 1->1, Mev/s", "probes 2->1, Mev/s",
	    "probes pingpong 1 CPU, k/s", "probes pingpong 2 CPUs, k/s" },
};

struct config {
	char dir[PATH_MAX];	/* where the programs are */
	struct sizes z;
	unsigned long k;	/* runs per process, the best kept */
};

static void
program_path(const struct config *cf, int var, char *path, size_t size)
{
	if ((size_t)snprintf(path, size, "%s/cost-%s", cf->dir,
	    variants[var == WATCHED ? FULL : var]) >= size)
		bench_die("cost: path", ENAMETOOLONG);
}

/* The USDT probe sites of an ELF file: the notes of .note.stapsdt, or
 * -1 if it cannot be read. */
static long
probe_sites(const char *path)
{
	struct stat sb;
	const unsigned char *m;
	const Elf64_Ehdr *eh;
	const Elf64_Shdr *sh;
	long count = -1;
	int fd, i;

	if ((fd = open(path, O_RDONLY)) < 0)
		return -1;
	if (fstat(fd, &sb) != 0 || (size_t)sb.st_size < sizeof(*eh) ||
	    (m = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd,
	    0)) == MAP_FAILED) {
		close(fd);
		return -1;
	}
	eh = (const void *)m;
	if (memcmp(eh->e_ident, ELFMAG, SELFMAG) != 0 ||
	    eh->e_ident[EI_CLASS] != ELFCLASS64 || eh->e_shoff == 0 ||
	    eh->e_shoff + (uint64_t)eh->e_shnum * sizeof(*sh) >
	    (uint64_t)sb.st_size || eh->e_shstrndx >= eh->e_shnum)
		goto out;
	sh = (const void *)(m + eh->e_shoff);
	count = 0;
	for (i = 0; i < eh->e_shnum; i++) {
		const char *name = (const char *)m +
		    sh[eh->e_shstrndx].sh_offset + sh[i].sh_name;
		uint64_t off = sh[i].sh_offset, end = off + sh[i].sh_size;

		if (sh[i].sh_type != SHT_NOTE ||
		    strcmp(name, ".note.stapsdt") != 0 ||
		    end > (uint64_t)sb.st_size)
			continue;
		/* Each note: a header, then name and description, each
		 * padded to 4 bytes. */
		while (off + sizeof(Elf64_Nhdr) <= end) {
			const Elf64_Nhdr *nh = (const void *)(m + off);

			off += sizeof(*nh) + ((nh->n_namesz + 3u) & ~3u) +
			    ((nh->n_descsz + 3u) & ~3u);
			count++;
		}
	}
out:
	munmap((void *)m, (size_t)sb.st_size);
	close(fd);
	return count;
}

/*
 * Runs program var with -1 for workload w: its rate goes to *m.  Returns
 * what its sink handled (1->1), or UINT64_MAX.
 */
static uint64_t
spawn_once(const struct config *cf, int var, int w, double *m)
{
	char path[PATH_MAX + 16], a[6][32], line[256], key[64];
	char *argv[] = { path, "-1", "-w", a[0], "-k", a[1], "-n", a[2],
	    "-p", a[3], "-s", a[4], "-l", a[5], NULL };
	posix_spawn_file_actions_t fa;
	unsigned long long handled = UINT64_MAX;
	int fds[2], got = 0, rc, status;
	double v;
	FILE *in;
	pid_t pid;

	program_path(cf, var, path, sizeof(path));
	snprintf(a[0], sizeof(a[0]), "%d", w + 1);
	snprintf(a[1], sizeof(a[1]), "%lu", cf->k);
	snprintf(a[2], sizeof(a[2]), "%lu", cf->z.n);
	snprintf(a[3], sizeof(a[3]), "%lu", cf->z.p);
	snprintf(a[4], sizeof(a[4]), "%lu", cf->z.s);
	/* Counts start at 1: no -l is no look. */
	snprintf(a[5], sizeof(a[5]), "1");
	if (var != WATCHED)
		argv[12] = NULL;
	if (pipe(fds) != 0)
		bench_die("cost: pipe", errno);
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, fds[1], STDOUT_FILENO);
	posix_spawn_file_actions_addclose(&fa, fds[0]);
	posix_spawn_file_actions_addclose(&fa, fds[1]);
	if ((rc = posix_spawn(&pid, path, &fa, NULL, argv, environ)) != 0)
		bench_die(path, rc);
	posix_spawn_file_actions_destroy(&fa);
	close(fds[1]);
	if ((in = fdopen(fds[0], "r")) == NULL)
		bench_die("cost: fdopen", errno);
	while (fgets(line, sizeof(line), in) != NULL) {
		if (sscanf(line, "handled %llu", &handled) == 1)
			continue;
		if (sscanf(line, "%63s %lf", key, &v) == 2 &&
		    strcmp(key, workloads[w].key) == 0) {
			*m = v;
			got = 1;
		}
	}
	fclose(in);
	if (waitpid(pid, &status, 0) != pid)
		bench_die("cost: waitpid", errno);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || !got) {
		fprintf(stderr, "cost: %s -w %d failed\n", path, w + 1);
		exit(EXIT_FAILURE);
	}
	return handled;
}

/* The three programs are what their names say, or the run stops. */
static void
check_variant(int var, uint64_t handled, unsigned long n)
{
	int counts = handled != 0;

	/* watched is cost-full: one program, checked as full. */
	if (counts == (var != NOSTATS) && (!counts || handled == n))
		return;
	fprintf(stderr, "cost: cost-%s: the sink counted %llu of %lu events: "
	    "%s\n", variants[var], (unsigned long long)handled, n,
	    var == NOSTATS ? "not built with -DWORKER_STATS=0?" :
	    "the statistics are off or wrong");
	exit(EXIT_FAILURE);
}

/* What a look costs: the median over rounds of watched / nostats. */
static void
watched_cost(struct bench_table *t, int rounds)
{
	double ratio[1000];

	printf("cost: with a look (the clocks on), watched / nostats:");
	for (int w = 0; w < NWORK; w++) {
		for (int r = 0; r < rounds; r++)
			ratio[r] = bench_run(t, r, WATCHED)[w] /
			    bench_run(t, r, NOSTATS)[w];
		printf(" %s %.3f%s", workloads[w].key,
		    bench_median(ratio, (size_t)rounds),
		    w + 1 < NWORK ? "," : "\n");
	}
}

static void
compare(struct config *cf, int rounds)
{
	static const int vs_stats[] = { NOSTATS }, vs_probes[] = { NOPROBES };
	struct bench_table t;
	char path[PATH_MAX + 16];
	long sites[NVAR];
	uint64_t handled;
	int r, w, k, var;

	for (var = 0; var < NVAR; var++) {
		program_path(cf, var, path, sizeof(path));
		sites[var] = probe_sites(path);
	}
	printf("cost: statistics and probes; per run %lu events (1->1, "
	    "2->1), %lu round trips after %d untimed (ping-pong), %lu events "
	    "(solo); the best of %lu runs per process; %d rounds\n"
	    "libworker %s; USDT probe sites: full %ld, nostats %ld, "
	    "noprobes %ld\n", cf->z.n, cf->z.p, WARMUP, cf->z.s, cf->k,
	    rounds, worker_version(), sites[FULL], sites[NOSTATS],
	    sites[NOPROBES]);
	if (sites[FULL] <= 0)
		printf("cost: cost-full has no USDT probes (no <sys/sdt.h> "
		    "when it was built): the probe rows compare equal "
		    "builds\n");
	if (sites[NOPROBES] != 0)
		bench_die("cost: cost-noprobes has probes", EPROTO);
	if (bench_table_init(&t, "cost: rates, each workload run by the "
	    "four in turns", variants, NVAR, metrics, NWORK, rounds) != 0)
		bench_die("cost", ENOMEM);
	bench_print_head(&t);
	for (r = 0; r < rounds; r++) {
		/* Each workload by the four, one after the other; who goes
		 * first turns with the round and the workload. */
		for (w = 0; w < NWORK; w++)
			for (k = 0; k < NVAR; k++) {
				var = (r + w + k) % NVAR;
				handled = spawn_once(cf, var, w,
				    &bench_run(&t, r, var)[w]);
				if (w == 0)
					check_variant(var, handled, cf->z.n);
			}
		for (var = 0; var < NVAR; var++)
			bench_print_run(&t, r, var);
	}
	bench_print_summary(&t);
	printf("\n");
	for (w = 0; w < NTARGET; w++)
		bench_target_ratio(&t, rows[0][w], w, vs_stats, 1, 0.97);
	for (w = 0; w < NTARGET; w++)
		bench_target_ratio(&t, rows[1][w], w, vs_probes, 1, 0.99);
	watched_cost(&t, rounds);
	bench_table_free(&t);
}

int
main(int argc, char **argv)
{
	struct config cf = {
		.z = { .n = 3000000, .p = 50000, .s = 1000000 }, .k = 3
	};
	unsigned long rounds = 11, w = 0, look = 0;
	char *slash;
	ssize_t len;
	int once = argc > 1 && strcmp(argv[1], "-1") == 0;

	if (once) {
		argv[1] = argv[0];
		argc--;
		argv++;
	}
	bench_options(argc, argv, "cost [-1 [-w W] [-l 1]] [-r ROUNDS] [-k K] "
	    "[-n N] [-p P] [-s S]", (const struct bench_opt[]){
	    { 'n', &cf.z.n, 1000000000 }, { 'p', &cf.z.p, 100000000 },
	    { 's', &cf.z.s, 1000000000 }, { 'k', &cf.k, 1000 },
	    { 'r', &rounds, 1000 }, { 'w', &w, NWORK }, { 'l', &look, 1 } },
	    7);
	if (cf.z.n < MAX_PRODUCERS)
		bench_die("cost: -n", EINVAL);
	if (once) {
		run_once(&cf.z, w, cf.k, look);
		return 0;
	}
	/* The programs are beside this one, wherever it was run from. */
	if ((len = readlink("/proc/self/exe", cf.dir,
	    sizeof(cf.dir) - 1)) < 0)
		bench_die("cost: /proc/self/exe", errno);
	cf.dir[len] = '\0';
	if ((slash = strrchr(cf.dir, '/')) != NULL)
		*slash = '\0';
	compare(&cf, (int)rounds);
	return 0;
}
