/*
 * wire.h - what relayd and relay-load share: the wire format, and the few
 * helpers both programs need (a log line, the loopback address, a number
 * from the command line).
 *
 * A frame is a 4-byte big-endian payload length, then the payload.  A
 * subscriber of relayd's second port speaks WebSocket instead, and gets
 * each frame as a binary message: ws.h.
 *
 * Header only: relayd is built from the C files of samples/relay and
 * relay-load from those of samples/relay/load, so a wire.c would belong
 * to relayd alone.
 */
#ifndef RELAY_WIRE_H
#define RELAY_WIRE_H

#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define FRAME_MAX	(1u << 20)	/* the longest payload: 1 MiB */

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

/* 127.0.0.1:port, where relayd listens and where relay-load goes. */
static inline struct sockaddr_in
relay_loopback(int port)
{
	struct sockaddr_in sa = {
		.sin_family = AF_INET,
		.sin_port = htons((uint16_t)port),
		.sin_addr.s_addr = htonl(INADDR_LOOPBACK)
	};

	return sa;
}

/*
 * A decimal number of the command line, within [min, max]; false if s is
 * anything else.  The sign is refused by hand: strtoull() takes "-1" for
 * a huge number.
 */
static inline bool
relay_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	char *end;

	errno = 0;
	*out = strtoull(s, &end, 10);
	return errno == 0 && end != s && *end == '\0' && s[0] != '-' &&
	    *out >= min && *out <= max;
}

#endif
