/*
 * http.c - the HTTP side of the subscribers' port: reads the head of a
 * request and writes the answer, a WebSocket handshake (101), the page
 * (200) or a refusal.  Pure functions of their arguments: the fanout owns
 * the buffers and the sockets, and calls http_answer() each time more of
 * a request has come.  The framing after the handshake is wslay's, in
 * fanout.c.
 */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "relayd.h"
#include "ws.h"

/* What a request asks for, as far as the answer goes. */
struct request {
	const char *method;
	size_t method_len;
	const char *path;	/* without the query */
	size_t path_len;
	bool upgrade;		/* Upgrade: websocket */
	bool connection;	/* Connection: ... upgrade ... */
	const char *key;	/* Sec-WebSocket-Key */
	size_t key_len;
	bool version13;		/* Sec-WebSocket-Version: 13 */
};

/* s (n bytes) without the spaces and tabs around it. */
static void
trim(const char **s, size_t *n)
{
	while (*n > 0 && (**s == ' ' || **s == '\t')) {
		(*s)++;
		(*n)--;
	}
	while (*n > 0 && ((*s)[*n - 1] == ' ' || (*s)[*n - 1] == '\t'))
		(*n)--;
}

/* The comma-separated list v (n bytes) holds token, in any case. */
static bool
has_token(const char *v, size_t n, const char *token)
{
	size_t tlen = strlen(token);

	while (n > 0) {
		const char *comma = memchr(v, ',', n);
		size_t len = comma != NULL ? (size_t)(comma - v) : n;
		const char *t = v;
		size_t tl = len;

		trim(&t, &tl);
		if (tl == tlen && strncasecmp(t, token, tlen) == 0)
			return true;
		if (comma == NULL)
			break;
		v += len + 1;
		n -= len + 1;
	}
	return false;
}

/* Header name (n bytes) is want, in any case. */
static bool
is_header(const char *name, size_t n, const char *want)
{
	return n == strlen(want) && strncasecmp(name, want, n) == 0;
}

/* One header line (n bytes, without its CRLF); false if malformed. */
static bool
parse_header(struct request *rq, const char *line, size_t n)
{
	const char *colon = memchr(line, ':', n);
	const char *v;
	size_t name_len, vn;

	if (colon == NULL || colon == line)
		return false;
	name_len = (size_t)(colon - line);
	v = colon + 1;
	vn = n - name_len - 1;
	trim(&v, &vn);
	if (is_header(line, name_len, "Upgrade"))
		rq->upgrade = rq->upgrade || has_token(v, vn, "websocket");
	else if (is_header(line, name_len, "Connection"))
		rq->connection = rq->connection ||
		    has_token(v, vn, "upgrade");
	else if (is_header(line, name_len, "Sec-WebSocket-Key")) {
		rq->key = v;
		rq->key_len = vn;
	} else if (is_header(line, name_len, "Sec-WebSocket-Version"))
		rq->version13 = vn == 2 && memcmp(v, "13", 2) == 0;
	return true;
}

/* The head (n bytes, up to its last CRLF); false if malformed. */
static bool
parse_head(struct request *rq, const char *p, size_t n)
{
	const char *eol = memmem(p, n, "\r\n", 2);
	const char *sp1, *sp2, *q, *end = p + n;

	if (eol == NULL)
		return false;
	sp1 = memchr(p, ' ', (size_t)(eol - p));
	if (sp1 == NULL || sp1 == p)
		return false;
	sp2 = memchr(sp1 + 1, ' ', (size_t)(eol - sp1 - 1));
	if (sp2 == NULL || sp2 == sp1 + 1 || eol - sp2 < 9 ||
	    memcmp(sp2 + 1, "HTTP/1.", 7) != 0)
		return false;
	rq->method = p;
	rq->method_len = (size_t)(sp1 - p);
	rq->path = sp1 + 1;
	q = memchr(rq->path, '?', (size_t)(sp2 - rq->path));
	rq->path_len = (size_t)((q != NULL ? q : sp2) - rq->path);
	for (p = eol + 2; p < end; p = eol + 2) {
		eol = memmem(p, (size_t)(end - p), "\r\n", 2);
		if (eol == NULL)
			eol = end;
		if (eol > p && !parse_header(rq, p, (size_t)(eol - p)))
			return false;
	}
	return true;
}

/* A refusal with a short text body; its length, 0 if it does not fit. */
static size_t
refuse(char *out, size_t cap, const char *status, const char *extra)
{
	const char *body = strchr(status, ' ') + 1;
	int n;

	n = snprintf(out, cap, "HTTP/1.1 %s\r\n%sContent-Type: text/plain\r\n"
	    "Content-Length: %zu\r\nConnection: close\r\n\r\n%s\n", status,
	    extra, strlen(body) + 1, body);
	return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

int
http_answer(const char *req, size_t len, char *out, size_t cap,
    size_t *outlen, size_t *used)
{
	const char *end = memmem(req, len, "\r\n\r\n", 4);
	struct request rq = { 0 };
	char accept[WS_ACCEPT_LEN + 1];
	int n;

	*outlen = 0;
	if (end == NULL) {
		if (len < HTTP_HEAD_MAX)
			return HTTP_MORE;
		*used = len;
		*outlen = refuse(out, cap, "431 Request Header Fields Too "
		    "Large", "");
		return HTTP_REFUSE;
	}
	*used = (size_t)(end - req) + 4;
	if (!parse_head(&rq, req, (size_t)(end - req) + 2)) {
		*outlen = refuse(out, cap, "400 Bad Request", "");
		return HTTP_REFUSE;
	}
	if (rq.method_len != 3 || memcmp(rq.method, "GET", 3) != 0) {
		*outlen = refuse(out, cap, "405 Method Not Allowed",
		    "Allow: GET\r\n");
		return HTTP_REFUSE;
	}
	if (rq.upgrade) {
		if (!rq.connection || rq.key_len != WS_KEY_LEN) {
			*outlen = refuse(out, cap, "400 Bad Request", "");
			return HTTP_REFUSE;
		}
		if (!rq.version13) {
			*outlen = refuse(out, cap, "426 Upgrade Required",
			    "Sec-WebSocket-Version: 13\r\n");
			return HTTP_REFUSE;
		}
		ws_accept(rq.key, rq.key_len, accept);
		n = snprintf(out, cap, "HTTP/1.1 101 Switching Protocols\r\n"
		    "Upgrade: websocket\r\nConnection: Upgrade\r\n"
		    "Sec-WebSocket-Accept: %s\r\n\r\n", accept);
		*outlen = n > 0 && (size_t)n < cap ? (size_t)n : 0;
		return HTTP_UPGRADE;
	}
	if (rq.path_len != 1 || rq.path[0] != '/') {
		*outlen = refuse(out, cap, "404 Not Found", "");
		return HTTP_REFUSE;
	}
	n = snprintf(out, cap, "HTTP/1.1 200 OK\r\nContent-Type: text/html; "
	    "charset=utf-8\r\nContent-Length: %zu\r\nCache-Control: "
	    "no-store\r\nConnection: close\r\n\r\n", page_len);
	if (n <= 0 || (size_t)n + page_len > cap)
		return HTTP_REFUSE;
	memcpy(out + n, page_html, page_len);
	*outlen = (size_t)n + page_len;
	return HTTP_PAGE;
}
