/*
 * wire.h - what relayd and relay-load share: the wire format, and the few
 * helpers both programs need (a log line, the loopback address, a number
 * from the command line).  relay(5) (samples/relay/relay.5) is the
 * format's reference, for anyone who writes a client.
 *
 * Version 2.  A client opens with a hello: HELLO_MAGIC, the version
 * (big-endian 32 bits) and a client id of CLIENT_ID_LEN bytes that stays
 * the same across its connections.  Then frames: a 4-byte big-endian
 * payload length (at most FRAME_MAX), an 8-byte big-endian sequence
 * number, strictly increasing on a connection and below 2^63, then the
 * payload.  relayd answers with messages of MSG_LEN bytes: a type, a
 * code, two zero bytes and a big-endian 64-bit value.  MSG_WELCOME once
 * the hello is read; MSG_ACK whenever frames are committed, with the
 * highest sequence number committed of that connection; MSG_REFUSED or
 * MSG_ERROR, with a code, right before it closes the connection.  The
 * database keeps each (client id, sequence) once, so a client resends
 * whatever was not acknowledged when a connection ends, on the next one.
 *
 * A subscriber of relayd's second port speaks WebSocket instead, and gets
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

#define PROTO_VERSION	2
#define HELLO_MAGIC	"RLYC"
#define CLIENT_ID_LEN	16
#define HELLO_LEN	(4 + 4 + CLIENT_ID_LEN)
#define HEAD_LEN	12		/* a frame's length and sequence */
#define SEQ_LIMIT	(UINT64_C(1) << 63)	/* SQLite's integers */

/* relayd's messages: type, code, 0, 0, value. */
#define MSG_LEN		12
enum {
	MSG_WELCOME = 'W',	/* value: the version spoken */
	MSG_ACK = 'A',		/* value: the highest sequence committed */
	MSG_REFUSED = 'R',	/* code: REFUSE_*; value: the limit */
	MSG_ERROR = 'E'		/* code: ERR_*; value: see each */
};

/* Why relayd refuses a connection: try again later. */
enum {
	REFUSE_FULL = 1,	/* --max-conns connections already */
	REFUSE_ADDR = 2,	/* --max-per-addr from this address */
	REFUSE_NOFILE = 3	/* out of descriptors */
};

/* Why relayd closes a connection after an error of the client's. */
enum {
	ERR_HELLO = 1,		/* not a hello */
	ERR_VERSION = 2,	/* value: the version relayd speaks */
	ERR_TOO_LONG = 3,	/* value: FRAME_MAX */
	ERR_SEQUENCE = 4,	/* value: the last sequence taken */
	ERR_IDLE = 5,		/* value: the idle timeout, ms */
	ERR_SLOW_FRAME = 6,	/* value: the frame timeout, ms */
	ERR_NOMEM = 7		/* relayd's trouble: try again later */
};

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

static inline uint64_t
get_be64(const unsigned char *p)
{
	return (uint64_t)get_be32(p) << 32 | get_be32(p + 4);
}

static inline void
put_be64(unsigned char *p, uint64_t v)
{
	put_be32(p, (uint32_t)(v >> 32));
	put_be32(p + 4, (uint32_t)v);
}

/* One message of relayd's, into p (MSG_LEN bytes). */
static inline void
put_msg(unsigned char *p, int type, int code, uint64_t value)
{
	p[0] = (unsigned char)type;
	p[1] = (unsigned char)code;
	p[2] = p[3] = 0;
	put_be64(p + 4, value);
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

/* Seconds of the command line, in (0, 1e6); false if s is anything else. */
static inline bool
relay_parse_secs(const char *s, double *out)
{
	char *end;

	errno = 0;
	*out = strtod(s, &end);
	return errno == 0 && end != s && *end == '\0' && *out > 0 &&
	    *out < 1e6;
}

#endif
