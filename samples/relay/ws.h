/*
 * ws.h - what relayd's WebSocket side (fanout.c, http.c) and relay-load's
 * subscribers share: the greeting, and the handshake's accept key.
 *
 * A subscriber connects to relayd's second port and opens a WebSocket
 * (RFC 6455): an HTTP/1.1 GET with "Upgrade: websocket", on any path.
 * relayd answers 101 and then sends, as WebSocket messages:
 *
 *	1. one text message, WS_GREETING ("RELAYD1");
 *	2. every frame relayd takes from then on, each as one binary
 *	   message whose payload is the frame's payload, in the order
 *	   relayd took them.
 *
 * The greeting is the line from which frames count: relayd counts a
 * subscriber in as it queues the 101 response and the greeting, in the
 * same turn of its loop, so every frame that reaches the fanout after
 * that turn reaches the subscriber, and none before.  A large message may
 * come as several WebSocket frames (fragments of 4096 bytes); a client
 * library reassembles them.
 *
 * relayd closes a subscriber that falls more than --sub-buffer bytes
 * behind: it queues a close frame with status WS_TOO_SLOW (1008, policy
 * violation), and closes the connection at once if that cannot be sent.
 * When relayd stops, the subscribers get the last frames and then a close
 * frame with status 1001 (going away).  Messages a subscriber sends are
 * read and ignored (a ping is answered, a close frame closes).
 *
 * The same port answers a GET without the upgrade: "/" is a small page
 * that shows the frames arriving live, any other path 404.
 *
 * Header only, as wire.h: relayd and relay-load are built from different
 * folders.  The hashing is Nettle's (Debian: nettle-dev), the framing
 * wslay's (libwslay-dev).
 */
#ifndef RELAY_WS_H
#define RELAY_WS_H

#include <nettle/base64.h>
#include <nettle/sha1.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define WS_GREETING	"RELAYD1"	/* the first message, text */
#define WS_GREETING_LEN	(sizeof(WS_GREETING) - 1)
#define WS_TOO_SLOW	1008		/* close status of a slow one */
#define WS_GOING_AWAY	1001		/* close status when relayd stops */
#define WS_GUID		"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define WS_KEY_LEN	24		/* base64 of the client's 16 bytes */
#define WS_ACCEPT_LEN	BASE64_ENCODE_RAW_LENGTH(SHA1_DIGEST_SIZE)

/*
 * Sec-WebSocket-Accept for the client's Sec-WebSocket-Key (key, len
 * bytes): base64 of the SHA-1 of the key and the GUID, in out, with a
 * terminating NUL.
 */
static inline void
ws_accept(const char *key, size_t len, char out[WS_ACCEPT_LEN + 1])
{
	struct sha1_ctx sha;
	uint8_t digest[SHA1_DIGEST_SIZE];

	sha1_init(&sha);
	sha1_update(&sha, len, (const uint8_t *)key);
	sha1_update(&sha, sizeof(WS_GUID) - 1, (const uint8_t *)WS_GUID);
	sha1_digest(&sha, sizeof(digest), digest);
	base64_encode_raw(out, sizeof(digest), digest);
	out[WS_ACCEPT_LEN] = '\0';
}

#endif
