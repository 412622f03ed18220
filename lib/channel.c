/*
 * channel.c - channels: publish one event to every subscribed worker.
 *
 * DESIGN
 *
 * A subscription is a node in two lists at once: its channel's and its
 * worker's.  One process-wide mutex, worker__channel_lock, guards both
 * kinds of list, so a worker being freed and a channel being freed never
 * need each other's lock in opposite orders.  Channels hold no reference
 * on their subscribers: a worker leaves every channel when it is freed
 * (worker_free calls worker__channels_fini).
 *
 * Publishing takes a reference on each subscriber under the lock, skipping
 * workers already being freed, and fires after dropping it: a fire may
 * send EVENT_REJECT and the unreference may free a worker, and both may
 * need the lock.
 *
 * Lock order: worker__channel_lock is a leaf; nothing is locked inside it.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

pthread_mutex_t worker__channel_lock = PTHREAD_MUTEX_INITIALIZER;

struct worker_channel {
	list_t subs;		/* channel lock: struct subscription */
	size_t count;		/* channel lock */
};

struct subscription {
	struct list_node in_channel;
	struct list_node in_worker;
	worker_channel_t *channel;
	worker_t *worker;	/* weak */
};

worker_channel_t *
worker_channel_new(void)
{
	worker_channel_t *ch = malloc(sizeof(*ch));

	if (ch == NULL) {
		errno = ENOMEM;
		return NULL;
	}
	list_init(&ch->subs);
	ch->count = 0;
	return ch;
}

/* The subscription of w to ch, or NULL; the channel lock is held. */
static struct subscription *
find_locked(worker_channel_t *ch, worker_t *w)
{
	struct list_node *n;

	list_for_each(n, &w->channels.subscriptions) {
		struct subscription *s =
		    container_of(n, struct subscription, in_worker);

		if (s->channel == ch)
			return s;
	}
	return NULL;
}

static void
unsubscribe_locked(struct subscription *s)
{
	list_remove(&s->in_channel);
	list_remove(&s->in_worker);
	s->channel->count--;
	free(s);
}

int
worker_channel_sub(worker_channel_t *ch, worker_t *w)
{
	struct subscription *s;

	if (ch == NULL)
		return EINVAL;
	if (w == NULL && (w = worker__current()) == NULL)
		return ENOMEM;
	if (worker__gone(w))
		return ESRCH;
	if ((s = malloc(sizeof(*s))) == NULL)
		return ENOMEM;
	s->channel = ch;
	s->worker = w;
	pthread_mutex_lock(&worker__channel_lock);
	if (find_locked(ch, w) != NULL) {
		pthread_mutex_unlock(&worker__channel_lock);
		free(s);
		return EEXIST;
	}
	list_append(&ch->subs, &s->in_channel);
	list_append(&w->channels.subscriptions, &s->in_worker);
	ch->count++;
	pthread_mutex_unlock(&worker__channel_lock);
	return 0;
}

int
worker_channel_unsub(worker_channel_t *ch, worker_t *w)
{
	struct subscription *s;

	if (ch == NULL)
		return EINVAL;
	if (w == NULL && (w = worker__current()) == NULL)
		return ENOMEM;
	if (worker__gone(w))
		return ESRCH;
	pthread_mutex_lock(&worker__channel_lock);
	if ((s = find_locked(ch, w)) != NULL)
		unsubscribe_locked(s);
	pthread_mutex_unlock(&worker__channel_lock);
	return s != NULL ? 0 : ENOENT;
}

/* References to the live subscribers, in order; *n gets their count. */
static worker_t **
collect(worker_channel_t *ch, size_t *n)
{
	struct list_node *pos;
	worker_t **subs;

	*n = 0;
	pthread_mutex_lock(&worker__channel_lock);
	subs = malloc((ch->count != 0 ? ch->count : 1) * sizeof(*subs));
	if (subs != NULL)
		list_for_each(pos, &ch->subs) {
			worker_t *w = container_of(pos, struct subscription,
			    in_channel)->worker;

			if (worker__tryref(w))
				subs[(*n)++] = w;
		}
	pthread_mutex_unlock(&worker__channel_lock);
	return subs;
}

/* One copy per subscriber, all sharing pl (NULL: data is not owned). */
static int
publish(worker_channel_t *ch, const char *name, void *data,
    struct payload *pl)
{
	worker_t *source = worker__current();
	bool accepted = false;
	int first_err = 0;
	worker_t **subs;
	size_t n;

	if ((subs = collect(ch, &n)) == NULL)
		return ENOMEM;
	for (size_t i = 0; i < n; i++) {
		int rc = worker__send(source, subs[i], name, data, pl, 0,
		    true);

		if (rc == 0)
			accepted = true;
		else if (first_err == 0)
			first_err = rc;
		worker_unref(subs[i]);
	}
	free(subs);
	return accepted || n == 0 ? 0 : first_err;
}

int
worker_channel_pub(worker_channel_t *ch, const char *name, void *data)
{
	if (ch == NULL || name == NULL || name[0] == '\0')
		return EINVAL;
	return publish(ch, name, data, NULL);
}

int
worker_channel_pub_ex(worker_channel_t *ch, const char *name, void *data,
    void (*data_free)(void *))
{
	struct payload *pl = NULL;
	int rc;

	if (ch == NULL || name == NULL || name[0] == '\0') {
		rc = EINVAL;
	} else if (data_free != NULL &&
	    (pl = worker__payload_new(data, data_free)) == NULL) {
		rc = ENOMEM;
	} else {
		rc = publish(ch, name, data, pl);
		worker__payload_put(pl);
		return rc;
	}
	if (data_free != NULL)
		data_free(data);
	return rc;
}

void
worker_channel_free(worker_channel_t *ch)
{
	struct list_node *n;

	if (ch == NULL)
		return;
	pthread_mutex_lock(&worker__channel_lock);
	while ((n = ch->subs.next) != &ch->subs)
		unsubscribe_locked(container_of(n, struct subscription,
		    in_channel));
	pthread_mutex_unlock(&worker__channel_lock);
	free(ch);
}

void
worker__channels_init(struct worker__channel_part *c)
{
	list_init(&c->subscriptions);
}

/* w is being freed: it leaves every channel. */
void
worker__channels_fini(worker_t *w)
{
	list_t *subs = &w->channels.subscriptions;
	struct list_node *n;

	pthread_mutex_lock(&worker__channel_lock);
	while ((n = subs->next) != subs)
		unsubscribe_locked(container_of(n, struct subscription,
		    in_worker));
	pthread_mutex_unlock(&worker__channel_lock);
}
