/*
 * relay.h - the wire format that relayd and relay-load share.
 *
 * A frame is a 4-byte big-endian payload length, then the payload.  A
 * subscriber of relayd's second port first gets GREETING, then every
 * frame in the same format.
 */
#ifndef RELAY_H
#define RELAY_H

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>

#define FRAME_MAX	(1u << 20)	/* the longest payload: 1 MiB */
#define GREETING	"RELAYD1\n"	/* what a subscriber gets first */
#define GREETING_LEN	(sizeof(GREETING) - 1)

static inline uint32_t
get_be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	    (uint32_t)p[2] << 8 | p[3];
}

static inline void
put_be32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)(v >> 24);
	p[1] = (unsigned char)(v >> 16);
	p[2] = (unsigned char)(v >> 8);
	p[3] = (unsigned char)v;
}

/*
 * One line "WHO: MESSAGE" on standard error, formatted first so that the
 * single fprintf() keeps lines of different threads from mixing.
 */
static inline void
relay_vlog(const char *who, const char *fmt, va_list ap)
{
	char line[512];

	vsnprintf(line, sizeof(line), fmt, ap);
	fprintf(stderr, "%s: %s\n", who, line);
}

#endif
