/*
 * relay.h - the wire format that relayd and relay-load share.
 *
 * A frame is a 4-byte big-endian payload length, then the payload.  A
 * subscriber of relayd's second port first gets GREETING, then every
 * frame in the same format.
 */
#ifndef RELAY_H
#define RELAY_H

#include <stdint.h>

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

#endif
