/*
 * run.c - fuzz-run: runs fuzz.c on inputs made from seeds, or on files.
 *
 *	fuzz-run SEED_FIRST SEED_LAST	the inputs of a range of seeds
 *	fuzz-run FILE|DIR...		corpus files (a DIR: its files)
 *	fuzz-run -o FILE SEED		writes the input of SEED to FILE
 *	fuzz-run -l			lists which byte is which operation
 *
 * FUZZ_REPEAT=N runs each input N times: inputs run several threads, so
 * a failure may need a few runs to show again.  FUZZ_JOBS=N shares the
 * inputs among N runners at once (the inputs mostly wait, so two runners
 * on two cores go almost twice as fast).
 *
 * The inputs run one after the other in a child process, which tells the
 * parent on a pipe which input it is about to run.  An input that breaks
 * an invariant or hangs kills the child (abort() with a message, or the
 * sanitizer's report); the parent counts it as failed and goes on with
 * the next input in a new child.  The parent itself never calls the
 * library, so each child starts from a process without workers.
 *
 * The last line is "fuzz-run: N passed, M failed"; the exit status is
 * nonzero if any failed.
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fuzz.h"

struct job {
	uint64_t seed;
	const char *file;	/* NULL: the seed's input */
	char *owned;		/* file, when this program allocated it */
};

static struct job *jobs;
static size_t njobs, capjobs;
static size_t *bad;		/* the indexes of the failed jobs */
static size_t nbad;

/* Under ASan, LeakSanitizer checks after each input, so that a leak is
 * blamed on the input that made it. */
int __lsan_do_recoverable_leak_check(void) __attribute__((weak));

static void
add_job(uint64_t seed, const char *file, char *owned)
{
	if (njobs == capjobs) {
		capjobs = capjobs != 0 ? 2 * capjobs : 64;
		if ((jobs = realloc(jobs, capjobs * sizeof(*jobs))) == NULL) {
			perror("fuzz-run");
			exit(2);
		}
	}
	jobs[njobs].seed = seed;
	jobs[njobs].file = file;
	jobs[njobs].owned = owned;
	njobs++;
}

static int
by_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* A directory's regular files, sorted, so runs are repeatable. */
static void
add_dir(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char **names = NULL;
	size_t n = 0, i;

	if (d == NULL) {
		perror(dir);
		exit(2);
	}
	while ((e = readdir(d)) != NULL) {
		char *path;
		struct stat st;

		if (e->d_name[0] == '.')
			continue;
		if ((path = malloc(strlen(dir) + strlen(e->d_name) + 2)) ==
		    NULL || (names = realloc(names, (n + 1) *
		    sizeof(*names))) == NULL) {
			perror("fuzz-run");
			exit(2);
		}
		sprintf(path, "%s/%s", dir, e->d_name);
		if (stat(path, &st) == 0 && S_ISREG(st.st_mode))
			names[n++] = path;
		else
			free(path);
	}
	closedir(d);
	qsort(names, n, sizeof(*names), by_name);
	for (i = 0; i < n; i++)
		add_job(0, names[i], names[i]);
	free(names);
}

static size_t
read_file(const char *path, uint8_t *buf, size_t cap)
{
	FILE *f = fopen(path, "rb");
	size_t n;

	if (f == NULL) {
		perror(path);
		exit(2);
	}
	n = fread(buf, 1, cap, f);
	fclose(f);
	return n;
}

static void
label(const struct job *j, char *buf, size_t size)
{
	if (j->file != NULL)
		snprintf(buf, size, "file %s", j->file);
	else
		snprintf(buf, size, "seed %" PRIu64, j->seed);
}

/* The child: runs jobs first to last - 1, announcing each on fd. */
static _Noreturn void
child(size_t first, size_t last, int fd)
{
	static uint8_t buf[FUZZ_INPUT_MAX];
	const char *r = getenv("FUZZ_REPEAT");
	long repeat = r != NULL && atol(r) > 0 ? atol(r) : 1, j;
	char name[512];
	size_t i, n;

	if (fuzz_init() != 0)
		_exit(2);
	for (i = first; i < last; i++) {
		uint32_t k = (uint32_t)i;

		if (write(fd, &k, sizeof(k)) != sizeof(k))
			_exit(2);
		if (jobs[i].file != NULL)
			n = read_file(jobs[i].file, buf, sizeof(buf));
		else
			n = fuzz_gen(jobs[i].seed, buf, sizeof(buf));
		label(&jobs[i], name, sizeof(name));
		fuzz_set_label(name);
		if (getenv("FUZZ_VERBOSE") != NULL)
			fprintf(stderr, "fuzz-run: %s (%zu bytes)\n", name, n);
		for (j = 0; j < repeat; j++)
			fuzz_one(buf, n);
		if (__lsan_do_recoverable_leak_check != NULL &&
		    __lsan_do_recoverable_leak_check() != 0) {
			fprintf(stderr, "fuzz: FAILED on %s: memory leaked\n",
			    name);
			abort();
		}
	}
	if (getenv("FUZZ_STATS") != NULL)
		fuzz_stats(stderr);
	/* The workers are gone; the sanitizers' exit checks (leaks) run. */
	exit(0);
}

/*
 * Runs jobs first to last - 1, each failure in a child of its own: when a
 * child dies, the input it announced last failed, and a new child goes on
 * with the next one.  Returns how many passed; failures go to bad[].
 */
static size_t
run_range(size_t first, size_t last)
{
	size_t next = first, passed = 0;

	while (next < last) {
		int fds[2], status;
		uint32_t at = UINT32_MAX, k32;
		char name[512];
		pid_t pid;

		fflush(stdout);
		if (pipe(fds) != 0 || (pid = fork()) < 0) {
			perror("fuzz-run");
			exit(2);
		}
		if (pid == 0) {
			close(fds[0]);
			child(next, last, fds[1]);
		}
		close(fds[1]);
		while (read(fds[0], &k32, sizeof(k32)) == sizeof(k32))
			at = k32;
		close(fds[0]);
		while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
			continue;
		if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
			passed += last - next;
			break;
		}
		if (at == UINT32_MAX || at < next) {
			fprintf(stderr, "fuzz-run: the child failed before "
			    "its first input\n");
			exit(2);
		}
		label(&jobs[at], name, sizeof(name));
		if (WIFSIGNALED(status))
			printf("fuzz-run: FAILED: %s (signal %d)\n", name,
			    WTERMSIG(status));
		else
			printf("fuzz-run: FAILED: %s (exit %d)\n", name,
			    WEXITSTATUS(status));
		passed += at - next;
		bad[nbad++] = at;
		next = at + 1;
	}
	return passed;
}

/* n runners, each on a contiguous share; they report on a pipe. */
static void
run_parallel(size_t n, size_t *passed)
{
	size_t i, k;
	pid_t pid[64];
	int fds[64][2];

	if (n > 64)
		n = 64;
	for (i = 0; i < n; i++) {
		size_t a = njobs * i / n, b = njobs * (i + 1) / n;

		fflush(stdout);
		if (pipe(fds[i]) != 0 || (pid[i] = fork()) < 0) {
			perror("fuzz-run");
			exit(2);
		}
		if (pid[i] == 0) {
			size_t p;

			close(fds[i][0]);
			p = run_range(a, b);
			if (write(fds[i][1], &p, sizeof(p)) != sizeof(p) ||
			    write(fds[i][1], &nbad, sizeof(nbad)) !=
			    sizeof(nbad) || write(fds[i][1], bad, nbad *
			    sizeof(*bad)) != (ssize_t)(nbad * sizeof(*bad)))
				_exit(2);
			fflush(stdout);
			_exit(0);
		}
		close(fds[i][1]);
	}
	*passed = 0;
	for (i = 0; i < n; i++) {
		size_t p = 0, nb = 0;
		int status;

		if (read(fds[i][0], &p, sizeof(p)) != sizeof(p) ||
		    read(fds[i][0], &nb, sizeof(nb)) != sizeof(nb) ||
		    read(fds[i][0], bad + nbad, nb * sizeof(*bad)) !=
		    (ssize_t)(nb * sizeof(*bad))) {
			fprintf(stderr, "fuzz-run: runner %zu failed\n", i);
			exit(2);
		}
		*passed += p;
		nbad += nb;
		close(fds[i][0]);
		waitpid(pid[i], &status, 0);
	}
	for (i = 1; i < nbad; i++)	/* in input order, for the report */
		for (k = i; k > 0 && bad[k - 1] > bad[k]; k--) {
			size_t x = bad[k];

			bad[k] = bad[k - 1];
			bad[k - 1] = x;
		}
}

static int
write_seed(const char *path, const char *seed)
{
	static uint8_t buf[FUZZ_INPUT_MAX];
	size_t n = fuzz_gen(strtoull(seed, NULL, 0), buf, sizeof(buf));
	FILE *f = fopen(path, "wb");

	if (f == NULL || fwrite(buf, 1, n, f) != n || fclose(f) != 0) {
		perror(path);
		return 2;
	}
	return 0;
}

static int
is_number(const char *s)
{
	return *s != '\0' && strspn(s, "0123456789") == strlen(s);
}

int
main(int argc, char **argv)
{
	size_t passed = 0, i;
	struct timespec t0, t1;
	const char *e;
	int k;

	if (argc == 4 && strcmp(argv[1], "-o") == 0)
		return write_seed(argv[2], argv[3]);
	if (argc == 2 && strcmp(argv[1], "-l") == 0) {
		if (fuzz_init() != 0)
			return 2;
		for (k = 0; k < OP_COUNT; k++)
			printf("%3u %s\n", fuzz_op_byte(k), fuzz_op_name(k));
		return 0;
	}
	if (argc == 3 && is_number(argv[1]) && is_number(argv[2])) {
		uint64_t s = strtoull(argv[1], NULL, 10);
		uint64_t end = strtoull(argv[2], NULL, 10);

		for (; s <= end; s++)
			add_job(s, NULL, NULL);
	} else if (argc >= 2) {
		for (k = 1; k < argc; k++) {
			struct stat st;

			if (stat(argv[k], &st) != 0) {
				perror(argv[k]);
				return 2;
			}
			if (S_ISDIR(st.st_mode))
				add_dir(argv[k]);
			else
				add_job(0, argv[k], NULL);
		}
	} else {
		fprintf(stderr, "usage: fuzz-run SEED_FIRST SEED_LAST\n"
		    "       fuzz-run FILE|DIR...\n"
		    "       fuzz-run -o FILE SEED\n"
		    "       fuzz-run -l\n");
		return 2;
	}
	if ((bad = calloc(njobs + 1, sizeof(*bad))) == NULL) {
		perror("fuzz-run");
		return 2;
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	if ((e = getenv("FUZZ_JOBS")) != NULL && atoi(e) > 1)
		run_parallel((size_t)atoi(e), &passed);
	else
		passed = run_range(0, njobs);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	if (nbad != 0) {
		printf("fuzz-run: failing inputs:");
		for (i = 0; i < nbad; i++) {
			char name[512];

			label(&jobs[bad[i]], name, sizeof(name));
			printf(" [%s]", name);
		}
		printf("\n");
	}
	printf("fuzz-run: %zu passed, %zu failed (%.1f s)\n", passed, nbad,
	    (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9);
	free(bad);
	for (i = 0; i < njobs; i++)
		free(jobs[i].owned);
	free(jobs);
	return nbad != 0;
}
