/*
 * probes.h - USDT probes: where perf, bpftrace and SystemTap may look in.
 *
 * DESIGN: with <sys/sdt.h> (Debian: systemtap-sdt-dev) each probe is one
 * nop in the code and a note in the ELF file (readelf -n); an attached
 * tracer turns the nop into a trap.  Without the header, or with
 * WORKER_NO_PROBES (the benchmark that measures their cost), they compile
 * to nothing.  The probes and their arguments are listed in worker(7),
 * "Tracing"; strings are the worker's and the event's names, valid only
 * during the probe.
 */
#ifndef WORKER_PROBES_H
#define WORKER_PROBES_H

#if !defined(WORKER_NO_PROBES) && defined(__has_include)
#if __has_include(<sys/sdt.h>)
#include <sys/sdt.h>
#define WORKER_PROBES 1
#endif
#endif

#ifdef WORKER_PROBES
#define PROBE2(name, a, b)		DTRACE_PROBE2(libworker, name, a, b)
#define PROBE3(name, a, b, c)		DTRACE_PROBE3(libworker, name, a, b, c)
#else
/* The arguments are still evaluated, so that what they do is done. */
#define PROBE2(name, a, b)		((void)(a), (void)(b))
#define PROBE3(name, a, b, c)		((void)(a), (void)(b), (void)(c))
#endif

#endif
