/*
 * payload.c - the payloads relay-load sends and expects: each a function
 * of (seed, client, index), so that a check regenerates what it expects
 * instead of keeping what was sent.
 */
#include <string.h>

#include "load.h"

/* splitmix64: small, fast, and the same on every run. */
uint64_t
next_rand(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15u);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
	return z ^ (z >> 31);
}

/*
 * The state of a generator for (client, index): salt 0 draws a payload,
 * salt 1 (index 0) the packet sizes of a client.
 */
uint64_t
seed_of(const struct load *ld, uint32_t client, uint32_t index,
    uint64_t salt)
{
	uint64_t s = ld->seed ^ salt;

	s ^= ((uint64_t)client << 32 | index) * 0xd1b54a32d192ed03u;
	(void)next_rand(&s);
	return s;
}

/* The length of payload (client, index); s is left for its bytes. */
uint32_t
payload_len(const struct load *ld, uint32_t client, uint32_t index,
    uint64_t *s)
{
	uint64_t span = (uint64_t)ld->max_size - ld->min_size + 1;

	*s = seed_of(ld, client, index, 0);
	return ld->min_size + (uint32_t)(next_rand(s) % span);
}

/* Writes payload (client, index) into buf (max_size bytes); its length. */
uint32_t
make_payload(const struct load *ld, uint32_t client, uint32_t index,
    unsigned char *buf)
{
	uint64_t s;
	uint32_t len = payload_len(ld, client, index, &s);

	put_be32(buf, client);
	put_be32(buf + 4, index);
	for (uint32_t k = 8; k < len; k += 8) {
		uint64_t r = next_rand(&s);
		uint32_t n = len - k < 8 ? len - k : 8;

		memcpy(buf + k, &r, n);
	}
	return len;
}

/* A client's hello: the magic, the version, and its id, which is the
 * run's id and the client's number. */
void
make_hello(const struct load *ld, uint32_t client, unsigned char *p)
{
	memcpy(p, HELLO_MAGIC, 4);
	put_be32(p + 4, PROTO_VERSION);
	put_be64(p + 8, ld->run_id);
	put_be64(p + 16, client);
}
