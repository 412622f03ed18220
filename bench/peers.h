/*
 * peers.h - the queues libworker is compared with, built once for every
 * program:
 *
 *   raw    struct rawq: a linked list under a mutex, and a condition
 *          variable that pop() sleeps on; push() signals it every time.
 *          It is written as simply as it can be, with a malloc() per
 *          message as libworker has one per event: it is the floor that
 *          libworker builds on.
 *   libuv  struct uvbox: a uv_loop_t per thread, woken by uv_async_send()
 *          after the sender appended to a list under a mutex, which the
 *          async callback takes whole.
 *   GLib   GAsyncQueue as it comes (g_async_queue_push/_pop).
 *
 * raw and GLib are both blocking queues, so the programs drive them
 * through one table of functions, struct peer_queue: the same thread
 * code serves both, and the indirect call costs them alike.
 *
 * Messages are non-NULL pointers (GAsyncQueue refuses NULL); PEER_STOP is
 * the one every program uses to tell a thread to end.
 */
#ifndef PEERS_H
#define PEERS_H

#include <pthread.h>

#include <uv.h>

/*
 * The systems a program compares, in the order of its rounds: libworker
 * first (its values are the numerators of every ratio), then the peers.
 * A program that needs fewer takes the first ones.
 */
enum { SYS_WORKER, SYS_RAW, SYS_GLIB, SYS_UV, SYS_COUNT };
extern const char *const peer_systems[SYS_COUNT];

#define PEER_STOP ((void *)&peer_stop)
extern const char peer_stop;

struct peer_node {
	struct peer_node *next;
	void *data;
};

/* A list of messages in the order sent. */
struct peer_list {
	struct peer_node *head;
	struct peer_node *tail;
};

/* A blocking queue: raw or GLib. */
struct peer_queue {
	const char *name;
	/* A new empty queue, or NULL (out of memory). */
	void *(*create)(void);
	/* Frees q and the messages left in it. */
	void (*destroy)(void *q);
	/* Appends data; returns 0 or ENOMEM. */
	int (*push)(void *q, void *data);
	/* Takes the oldest message; blocks while there is none. */
	void *(*pop)(void *q);
};

extern const struct peer_queue peer_raw;
extern const struct peer_queue peer_glib;

struct uvbox;
typedef void (*uvbox_fn)(struct uvbox *b, void *data);

struct uvbox {
	uv_loop_t loop;
	uv_async_t async;
	pthread_mutex_t lock;
	struct peer_list list;	/* lock */
	uvbox_fn on_msg;	/* on the loop's thread, per message */
	void *ctx;
};

/* Any thread, before uvbox_run(); returns 0 or an error number. */
int uvbox_init(struct uvbox *b, uvbox_fn on_msg, void *ctx);
/* Any thread; returns 0 or an error number. */
int uvbox_send(struct uvbox *b, void *data);
/* Runs the loop on the calling thread until uvbox_close(). */
void uvbox_run(struct uvbox *b);
/* On the loop's thread (in on_msg): the loop ends when it returns. */
void uvbox_close(struct uvbox *b);
/* After uvbox_run() returned, or instead of it on an error path;
 * returns 0 or an error number. */
int uvbox_destroy(struct uvbox *b);

#endif /* PEERS_H */
