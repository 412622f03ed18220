/*
 * peers.c - the raw queue and the libuv mailbox of peers.h.
 */
#include <errno.h>
#include <stdlib.h>

#include <glib.h>

#include "peers.h"

const char *const peer_systems[SYS_COUNT] = {
	[SYS_WORKER] = "libworker",
	[SYS_RAW] = "raw",
	[SYS_GLIB] = "glib",
	[SYS_UV] = "libuv",
};

const char peer_stop;

static struct peer_node *
node_new(void *data)
{
	struct peer_node *n = malloc(sizeof(*n));

	if (n != NULL) {
		n->next = NULL;
		n->data = data;
	}
	return n;
}

static void
list_append(struct peer_list *l, struct peer_node *n)
{
	if (l->tail != NULL)
		l->tail->next = n;
	else
		l->head = n;
	l->tail = n;
}

/* Empties l and returns its first node: the caller owns the chain. */
static struct peer_node *
list_take(struct peer_list *l)
{
	struct peer_node *n = l->head;

	l->head = l->tail = NULL;
	return n;
}

static void
free_nodes(struct peer_node *n)
{
	struct peer_node *next;

	for (; n != NULL; n = next) {
		next = n->next;
		free(n);
	}
}

/* ---- raw ------------------------------------------------------------ */

struct rawq {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct peer_list list;	/* lock */
};

static void *
rawq_create(void)
{
	struct rawq *q = malloc(sizeof(*q));

	if (q == NULL)
		return NULL;
	pthread_mutex_init(&q->lock, NULL);
	pthread_cond_init(&q->cond, NULL);
	q->list.head = q->list.tail = NULL;
	return q;
}

static void
rawq_destroy(void *arg)
{
	struct rawq *q = arg;

	free_nodes(list_take(&q->list));
	pthread_cond_destroy(&q->cond);
	pthread_mutex_destroy(&q->lock);
	free(q);
}

/* A signal on every push: the simplest producer there is. */
static int
rawq_push(void *arg, void *data)
{
	struct rawq *q = arg;
	struct peer_node *n = node_new(data);

	if (n == NULL)
		return ENOMEM;
	pthread_mutex_lock(&q->lock);
	list_append(&q->list, n);
	pthread_cond_signal(&q->cond);
	pthread_mutex_unlock(&q->lock);
	return 0;
}

/* One message per lock: the simplest consumer there is. */
static void *
rawq_pop(void *arg)
{
	struct rawq *q = arg;
	struct peer_node *n;
	void *data;

	pthread_mutex_lock(&q->lock);
	while (q->list.head == NULL)
		pthread_cond_wait(&q->cond, &q->lock);
	n = q->list.head;
	if ((q->list.head = n->next) == NULL)
		q->list.tail = NULL;
	pthread_mutex_unlock(&q->lock);
	data = n->data;
	free(n);
	return data;
}

const struct peer_queue peer_raw = {
	"raw", rawq_create, rawq_destroy, rawq_push, rawq_pop
};

/* ---- GLib ----------------------------------------------------------- */

static void *
glibq_create(void)
{
	/* GLib aborts rather than return NULL when memory runs out. */
	return g_async_queue_new();
}

static void
glibq_destroy(void *q)
{
	g_async_queue_unref(q);
}

static int
glibq_push(void *q, void *data)
{
	g_async_queue_push(q, data);
	return 0;
}

static void *
glibq_pop(void *q)
{
	return g_async_queue_pop(q);
}

const struct peer_queue peer_glib = {
	"glib", glibq_create, glibq_destroy, glibq_push, glibq_pop
};

/* ---- libuv ---------------------------------------------------------- */

/* Takes the whole list in one lock, as a loop thread would. */
static void
on_async(uv_async_t *a)
{
	struct uvbox *b = a->data;
	struct peer_node *n, *next;

	pthread_mutex_lock(&b->lock);
	n = list_take(&b->list);
	pthread_mutex_unlock(&b->lock);
	for (; n != NULL; n = next) {
		void *data = n->data;

		next = n->next;
		free(n);
		b->on_msg(b, data);
	}
}

int
uvbox_init(struct uvbox *b, uvbox_fn on_msg, void *ctx)
{
	int rc;

	if ((rc = uv_loop_init(&b->loop)) != 0)
		return -rc;
	if ((rc = uv_async_init(&b->loop, &b->async, on_async)) != 0) {
		uv_loop_close(&b->loop);
		return -rc;
	}
	b->async.data = b;
	pthread_mutex_init(&b->lock, NULL);
	b->list.head = b->list.tail = NULL;
	b->on_msg = on_msg;
	b->ctx = ctx;
	return 0;
}

int
uvbox_send(struct uvbox *b, void *data)
{
	struct peer_node *n = node_new(data);

	if (n == NULL)
		return ENOMEM;
	pthread_mutex_lock(&b->lock);
	list_append(&b->list, n);
	pthread_mutex_unlock(&b->lock);
	/* Coalesces: one wake-up for all that was sent meanwhile. */
	return -uv_async_send(&b->async);
}

void
uvbox_run(struct uvbox *b)
{
	(void)uv_run(&b->loop, UV_RUN_DEFAULT);
}

void
uvbox_close(struct uvbox *b)
{
	uv_close((uv_handle_t *)&b->async, NULL);
}

int
uvbox_destroy(struct uvbox *b)
{
	int rc;

	/* On an error path the loop may never have run: close it here. */
	if (!uv_is_closing((uv_handle_t *)&b->async))
		uvbox_close(b);
	(void)uv_run(&b->loop, UV_RUN_NOWAIT);
	rc = -uv_loop_close(&b->loop);
	free_nodes(list_take(&b->list));
	pthread_mutex_destroy(&b->lock);
	return rc;
}
