/*
 * log.c - the one way the library writes a message.
 *
 * DESIGN: every report (a failed task, a failing LISTENER_ERROR listener,
 * memory that ran out where nothing can return an error, a broken
 * invariant before an abort) goes through worker__log(), with a syslog
 * level and the worker it is about, so that one function decides where
 * messages go.  Today that is stderr, as "libworker: " and the message on
 * one line, written with one call so that lines of two threads never mix.
 */
#include <stdarg.h>
#include <stdio.h>

#include "internal.h"

void
worker__log(int level, const worker_t *w, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	(void)level;
	(void)w;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fprintf(stderr, "libworker: %s\n", msg);
}
