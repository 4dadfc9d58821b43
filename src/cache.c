/*
 * cache.c - the caching store of cache.h: tables of experiments, run
 * folder indexes, run snapshots and metric steps in front of another store.
 *
 * Every entry remembers the generation it was filled in; the generation
 * moves when next's watch says another client changed the store (or, with
 * no watch, an entry is stale after cache_ttl).  Writes through the cache
 * bump a write sequence and stamp what they touch with it, so a read that
 * started before a write never caches what it fetched after it.  One mutex
 * guards the tables; it is never held while next is called or while a
 * caller's callback runs.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "cache.h"
#include "log.h"
#include "metric.h"
#include "options.h"
#include "store-internal.h"

/* Budgets of the tables, in entries (snapshots and indexes weigh more). */
#define EXP_MAX	  1024
#define INDEX_MAX 40000 /* runs in all lists: a list of 20,000 beside others */
#define STEP_MAX  4096
/*
 * KiB of snapshots (snap_cost) of a store without a watch, a remote one:
 * about 16,000 runs of a few keys.  A remote listing brings its runs whole,
 * and only what fits here is kept; every other run then costs a request
 * each time it is read, and a walk over more runs than fit evicts each
 * before it is read again.  So an experiment of 10,000 runs must fit
 * (4 MiB held 4,096: a grep over 10,000 runs made 25,000 requests).  Small
 * runs use about half a KiB.
 */
#define SNAP_MAX 16384
/* ... and of a store with a watch, a local one, where a run read again
 * costs a few queries, not a request: enough for the runs a walk (grep -r,
 * ls -l) is in at once.  Room for 16,000 runs added some 10 MB to the
 * daemon's peak over 10,000 runs, twice that over 20,000, for nothing. */
#define SNAP_MAX_WATCHED 1024
/* A snapshot with more metrics than this is dropped, not copied, when a
 * point changes one. */
#define SNAP_PATCH_MAX 64

/* ---- tables ---------------------------------------------------------- */

/* The head of every entry: in a hash chain and in the table's LRU list. */
struct centry {
	struct centry *hnext;
	struct centry *lprev, *lnext;
	char *key;
	uint64_t hash;
	uint64_t gen;  /* the generation it was filled in; 0: holds nothing */
	int64_t at_ms; /* when it was filled */
	/* The write sequence it is current at: that of the fetch that filled
	 * it, or of the last write that changed or dropped it. */
	uint64_t changed;
	size_t cost;
};

struct ctable {
	struct centry **b;
	size_t nb, n;
	struct centry *head, *tail; /* most recently used first */
	size_t cost, max_cost;
	uint64_t changed;		 /* a write touched every entry at this sequence */
	void (*empty)(struct centry *e); /* frees what e holds, not e */
	uint64_t hits, misses;
};

/* The head of entry e, which may be NULL. */
#define HEAD(e) ((e) ? &(e)->h : NULL)

static uint64_t hash_str(const char *s)
{
	uint64_t h = 1469598103934665603ULL; /* FNV-1a */

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return h;
}

static void lru_unlink(struct ctable *t, struct centry *e)
{
	if (e->lprev)
		e->lprev->lnext = e->lnext;
	else
		t->head = e->lnext;
	if (e->lnext)
		e->lnext->lprev = e->lprev;
	else
		t->tail = e->lprev;
	e->lprev = e->lnext = NULL;
}

static void lru_front(struct ctable *t, struct centry *e)
{
	e->lnext = t->head;
	if (t->head)
		t->head->lprev = e;
	t->head = e;
	if (!t->tail)
		t->tail = e;
}

static struct centry *ctable_find(struct ctable *t, const char *key)
{
	uint64_t h = hash_str(key);
	struct centry *e;

	if (!t->nb)
		return NULL;
	for (e = t->b[h % t->nb]; e; e = e->hnext) {
		if (e->hash == h && !strcmp(e->key, key)) {
			lru_unlink(t, e);
			lru_front(t, e);
			return e;
		}
	}
	return NULL;
}

static void ctable_remove(struct ctable *t, struct centry *e)
{
	struct centry **pp = &t->b[e->hash % t->nb];

	while (*pp != e)
		pp = &(*pp)->hnext;
	*pp = e->hnext;
	lru_unlink(t, e);
	t->n--;
	t->cost -= e->cost;
	t->empty(e);
	free(e->key);
	free(e);
}

/* Evicts least recently used entries, but keep, while over budget. */
static void ctable_trim(struct ctable *t, struct centry *keep)
{
	while (t->cost > t->max_cost && t->tail && t->tail != keep)
		ctable_remove(t, t->tail);
}

static int ctable_grow(struct ctable *t)
{
	size_t nb = t->nb ? t->nb * 2 : 64, i;
	struct centry **b = calloc(nb, sizeof(*b)), *e, *next;

	if (!b)
		return -ENOMEM;
	for (i = 0; i < t->nb; i++) {
		for (e = t->b[i]; e; e = next) {
			next = e->hnext;
			e->hnext = b[e->hash % nb];
			b[e->hash % nb] = e;
		}
	}
	free(t->b);
	t->b = b;
	t->nb = nb;
	return 0;
}

/* The entry of key, made (empty, size bytes) if missing; NULL without memory. */
static struct centry *ctable_get(struct ctable *t, const char *key, size_t size)
{
	struct centry *e = ctable_find(t, key);

	if (e)
		return e;
	if (t->n >= t->nb && ctable_grow(t))
		return NULL;
	e = calloc(1, size);
	if (!e)
		return NULL;
	e->key = strdup(key);
	if (!e->key) {
		free(e);
		return NULL;
	}
	e->hash = hash_str(key);
	e->hnext = t->b[e->hash % t->nb];
	t->b[e->hash % t->nb] = e;
	lru_front(t, e);
	t->n++;
	return e;
}

/* Sets what e weighs, trimming the table to its budget. */
static void ctable_cost(struct ctable *t, struct centry *e, size_t cost)
{
	t->cost = t->cost - e->cost + cost;
	e->cost = cost;
	ctable_trim(t, e);
}

static void ctable_clear(struct ctable *t)
{
	while (t->head)
		ctable_remove(t, t->head);
	free(t->b);
	t->b = NULL;
	t->nb = 0;
}

/* ---- the cache ------------------------------------------------------- */

struct cache {
	struct store base;
	struct store *next;
	int64_t ttl_ms;	      /* < 0: entries live until the watch moves */
	pthread_mutex_t lock; /* guards everything below */
	int watch;	      /* next has a watch; read without the lock too */
	uint64_t gen;
	uint64_t others; /* next's watch at the last look */
	uint64_t wseq;	 /* writes through the cache */
	int listing;	 /* run lists being fetched from next */
	struct ctable exp_by_name, exp_by_id, indexes, snaps, steps;
};

struct exp_ent {
	struct centry h;
	int err; /* what next answered: 0 or -errno (-ENOENT is kept too) */
	struct store_experiment e;
};

/*
 * The folder index of one experiment: its active runs, oldest first, and
 * two open-addressing hash tables from folder name and from run id to a
 * run.  Slots hold an index + 1; 0 is empty.
 */
struct index_ent {
	struct centry h;
	struct store_run *runs;
	size_t n, cap;
	size_t nslots;
	uint32_t *by_folder;
	uint32_t *by_id;
};

struct snap_ent {
	struct centry h;
	const struct store_snapshot *snap;
};

struct step_ent {
	struct centry h;
	int64_t next; /* the next auto-step; INT64_MIN: the metric has no point */
};

static const struct store_ops cache_ops;

static struct cache *to_cache(struct store *s)
{
	if (s->ops != &cache_ops) {
		log_error("internal error: a %s store passed to the cache", s->ops->name);
		abort();
	}
	return (struct cache *)s;
}

static int64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Asks next's watch (cheap: at every read) whether another client changed
 * the store; if so, everything cached so far is stale. */
static void watch(struct cache *c)
{
	uint64_t v = 0;
	int err;

	if (!__atomic_load_n(&c->watch, __ATOMIC_RELAXED))
		return;
	err = store_others_version(c->next, &v);
	pthread_mutex_lock(&c->lock);
	if (err == -ENOSYS) {
		__atomic_store_n(&c->watch, 0, __ATOMIC_RELAXED);
	} else if (err || v != c->others) {
		/* -EAGAIN: another program holds the lock and is writing. */
		log_debug("cache: the store changed (%s): dropping what is cached",
			  err ? strerror(-err) : "another client wrote");
		c->others = v;
		c->gen++;
	}
	pthread_mutex_unlock(&c->lock);
}

/* Whether e holds something current; lock held. */
static int valid(const struct cache *c, const struct ctable *t, const struct centry *e)
{
	if (!e || !e->gen || e->gen != c->gen || e->changed < t->changed)
		return 0;
	return c->ttl_ms < 0 || now_us() / 1000 - e->at_ms < c->ttl_ms;
}

/* When a fetch from next began: the write sequence and the generation. */
struct mark {
	uint64_t seq, gen;
};

/* Lock held. */
static struct mark mark(const struct cache *c)
{
	return (struct mark){ c->wseq, c->gen };
}

/* Whether what was fetched since m may be kept in e (or in key's entry):
 * no write touched it meanwhile; lock held. */
static int keepable(const struct ctable *t, const struct centry *e, struct mark m)
{
	return t->changed <= m.seq && (!e || e->changed <= m.seq);
}

/*
 * Marks e filled now with what was fetched since m; lock held.  It belongs
 * to the generation the fetch began in: when another client's change was
 * seen meanwhile, what the fetch read may predate it, and the entry is out
 * of date from the start.
 */
static void filled(struct centry *e, struct mark m)
{
	e->gen = m.gen;
	e->at_ms = now_us() / 1000;
	e->changed = m.seq;
}

/* A write through the cache: the next sequence number; lock held. */
static uint64_t wrote(struct cache *c)
{
	return ++c->wseq;
}

/* Drops what key's entry holds and stamps it with write seq; lock held. */
static void touch(struct ctable *t, const char *key, uint64_t seq, size_t size)
{
	struct centry *e = ctable_get(t, key, size);

	if (!e) {
		t->changed = seq; /* no memory: stamp them all */
		return;
	}
	t->empty(e);
	e->gen = 0;
	e->changed = seq;
	ctable_cost(t, e, 1);
}

/* ---- experiments ----------------------------------------------------- */

static void exp_empty(struct centry *h)
{
	struct exp_ent *e = (struct exp_ent *)h;

	store_experiment_release(&e->e);
	e->err = 0;
}

typedef int exp_fetch_fn(struct store *s, const char *key, struct store_experiment *out);

static int exp_lookup(struct cache *c, struct ctable *t, const char *key, exp_fetch_fn *fetch,
		      struct store_experiment *out)
{
	struct exp_ent *e;
	struct mark start;
	int err;

	watch(c);
	pthread_mutex_lock(&c->lock);
	e = (struct exp_ent *)ctable_find(t, key);
	if (valid(c, t, HEAD(e))) {
		t->hits++;
		err = e->err ? e->err : store_experiment_copy(out, &e->e);
		pthread_mutex_unlock(&c->lock);
		return err;
	}
	t->misses++;
	start = mark(c);
	pthread_mutex_unlock(&c->lock);

	err = fetch(c->next, key, out);
	if (err && err != -ENOENT)
		return err;
	pthread_mutex_lock(&c->lock);
	e = (struct exp_ent *)ctable_find(t, key);
	if (keepable(t, HEAD(e), start)) {
		e = (struct exp_ent *)ctable_get(t, key, sizeof(*e));
		if (e) {
			exp_empty(&e->h);
			e->err = err;
			if (err || !store_experiment_copy(&e->e, out))
				filled(&e->h, start);
			ctable_cost(t, &e->h, 1);
		}
	}
	pthread_mutex_unlock(&c->lock);
	return err;
}

static int cache_get_experiment(struct store *s, const char *name, struct store_experiment *out)
{
	struct cache *c = to_cache(s);

	return exp_lookup(c, &c->exp_by_name, name, store_get_experiment, out);
}

static int cache_get_experiment_by_id(struct store *s, const char *id, struct store_experiment *out)
{
	struct cache *c = to_cache(s);

	return exp_lookup(c, &c->exp_by_id, id, store_get_experiment_by_id, out);
}

/* A write changed some experiment: every experiment entry is stale. */
static void experiments_changed(struct cache *c)
{
	uint64_t seq;

	pthread_mutex_lock(&c->lock);
	seq = wrote(c);
	c->exp_by_name.changed = seq;
	c->exp_by_id.changed = seq;
	pthread_mutex_unlock(&c->lock);
}

/* Copies of what a listing gave, called back after next let go. */
struct exp_list {
	struct store_experiment *v;
	size_t n, cap;
};

static int exp_collect(void *ctx, const struct store_experiment *e)
{
	struct exp_list *l = ctx;

	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 16;
		struct store_experiment *v = realloc(l->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		l->v = v;
		l->cap = cap;
	}
	if (store_experiment_copy(&l->v[l->n], e))
		return -ENOMEM;
	l->n++;
	return 0;
}

static int cache_list_experiments(struct store *s, store_experiment_cb *cb, void *ctx)
{
	struct cache *c = to_cache(s);
	struct exp_list l = { 0 };
	size_t i;
	int err;

	err = store_list_experiments(c->next, exp_collect, &l);
	for (i = 0; !err && i < l.n; i++)
		err = cb(ctx, &l.v[i]);
	for (i = 0; i < l.n; i++)
		store_experiment_release(&l.v[i]);
	free(l.v);
	return err;
}

static int cache_create_experiment(struct store *s, struct store_batch *b, const char *name,
				   struct store_experiment *out)
{
	struct cache *c = to_cache(s);
	int err = store_create_experiment(c->next, b, name, out);

	experiments_changed(c);
	return err;
}

static int cache_rename_experiment(struct store *s, struct store_batch *b, const char *id,
				   const char *new_name)
{
	struct cache *c = to_cache(s);
	int err = store_rename_experiment(c->next, b, id, new_name);

	experiments_changed(c);
	return err;
}

static int cache_delete_experiment(struct store *s, struct store_batch *b, const char *id)
{
	struct cache *c = to_cache(s);
	int err = store_delete_experiment(c->next, b, id);

	experiments_changed(c);
	return err;
}

/* ---- run folder indexes ---------------------------------------------- */

static void index_empty(struct centry *h)
{
	struct index_ent *ix = (struct index_ent *)h;
	size_t i;

	for (i = 0; i < ix->n; i++)
		store_run_release(&ix->runs[i]);
	free(ix->runs);
	free(ix->by_folder);
	free(ix->by_id);
	ix->runs = NULL;
	ix->by_folder = ix->by_id = NULL;
	ix->n = ix->cap = ix->nslots = 0;
}

/* Finds the slot of key in table, or the empty slot where it would go. */
static size_t slot_find(const struct index_ent *ix, const uint32_t *table, int by_folder,
			const char *key)
{
	size_t mask = ix->nslots - 1, i = hash_str(key) & mask;

	while (table[i]) {
		const struct store_run *r = &ix->runs[table[i] - 1];

		if (!strcmp(by_folder ? r->folder : r->run_id, key))
			return i;
		i = (i + 1) & mask;
	}
	return i;
}

/* Gives run i its folder by the naming rule of mlflowfs(1), THE TREE, and
 * enters it in both tables. */
static int index_place(struct index_ent *ix, size_t i)
{
	struct store_run *r = &ix->runs[i];
	size_t slot;

	free(r->folder);
	r->folder = NULL;
	if (!r->name[0]) {
		r->folder = strdup(r->run_id);
	} else {
		slot = slot_find(ix, ix->by_folder, 1, r->name);
		if (!ix->by_folder[slot])
			r->folder = strdup(r->name);
		else if (asprintf(&r->folder, "%s@%.8s", r->name, r->run_id) < 0)
			r->folder = NULL;
	}
	if (!r->folder)
		return -ENOMEM;
	slot = slot_find(ix, ix->by_folder, 1, r->folder);
	if (ix->by_folder[slot] && strcmp(r->folder, r->run_id)) {
		/* A run named like another's name@hex8 took it: the id is unique. */
		free(r->folder);
		r->folder = strdup(r->run_id);
		if (!r->folder)
			return -ENOMEM;
		slot = slot_find(ix, ix->by_folder, 1, r->folder);
	}
	if (!ix->by_folder[slot])
		ix->by_folder[slot] = (uint32_t)i + 1;
	slot = slot_find(ix, ix->by_id, 0, r->run_id);
	ix->by_id[slot] = (uint32_t)i + 1;
	return 0;
}

/* (Re)builds both tables and every folder, with room to grow. */
static int index_rebuild(struct index_ent *ix)
{
	size_t i;
	int err = 0;

	free(ix->by_folder);
	free(ix->by_id);
	ix->nslots = 16;
	while (ix->nslots < ix->n * 2 + 2)
		ix->nslots *= 2;
	ix->by_folder = calloc(ix->nslots, sizeof(uint32_t));
	ix->by_id = calloc(ix->nslots, sizeof(uint32_t));
	if (!ix->by_folder || !ix->by_id)
		return -ENOMEM;
	for (i = 0; !err && i < ix->n; i++)
		err = index_place(ix, i);
	return err;
}

/* A listing being collected: the runs, and the snapshots it came with
 * (held), to seed the snapshot table after. */
struct collect {
	struct index_ent *ix;
	const struct store_snapshot **seeds;
	size_t nseeds, cap;
};

static void collect_release(struct collect *co)
{
	size_t i;

	for (i = 0; i < co->nseeds; i++)
		store_snapshot_put(co->seeds[i]);
	free(co->seeds);
	co->seeds = NULL;
	co->nseeds = co->cap = 0;
}

/* Appends a copy of run to ix (without its folder). */
static int index_append(struct index_ent *ix, const struct store_run *run)
{
	struct store_run *r;

	if (ix->n == ix->cap) {
		size_t cap = ix->cap ? ix->cap * 2 : 64;
		struct store_run *p = realloc(ix->runs, cap * sizeof(*p));

		if (!p)
			return -ENOMEM;
		ix->runs = p;
		ix->cap = cap;
	}
	r = &ix->runs[ix->n];
	if (store_run_copy(r, run))
		return -ENOMEM;
	free(r->folder);
	r->folder = NULL;
	ix->n++;
	return 0;
}

/* A listing's run, and the snapshot it may come with. */
static int index_collect(void *ctx, const struct store_run *run)
{
	struct collect *co = ctx;

	if (run->snap && co->nseeds == co->cap) {
		size_t cap = co->cap ? co->cap * 2 : 64;
		const struct store_snapshot **p = realloc(co->seeds, cap * sizeof(*p));

		if (p) {
			co->seeds = p;
			co->cap = cap;
		}
	}
	/* Without room for a seed, the run is fetched when it is read. */
	if (run->snap && co->nseeds < co->cap)
		co->seeds[co->nseeds++] = store_snapshot_hold(run->snap);
	return index_append(co->ix, run);
}

static struct store_run *index_lookup_id(const struct index_ent *ix, const char *run_id)
{
	size_t slot;

	if (!ix->nslots)
		return NULL;
	slot = slot_find(ix, ix->by_id, 0, run_id);
	return ix->by_id[slot] ? &ix->runs[ix->by_id[slot] - 1] : NULL;
}

/* Whether run a comes after run b in the list: (start time, run id). */
static int run_after(const struct store_run *a, const struct store_run *b)
{
	if (a->start_time != b->start_time)
		return a->start_time > b->start_time;
	return strcmp(a->run_id, b->run_id) > 0;
}

/*
 * Adds a run just made to the list at its place: mostly the end (it is the
 * newest), or a few places before it when runs made in the same
 * millisecond sort by id.  It takes its name unless an older run has it.
 * Only the runs it moves are entered again in the tables, unless a newer
 * one of its name must give the name up (then all are, as after a listing).
 */
static int index_insert(struct index_ent *ix, const struct store_run *run)
{
	size_t n = ix->n, p = n, j, moved, folder_slot[8], id_slot[8];
	struct store_run added;

	/* A list fetched after the run was made has it already. */
	if (index_lookup_id(ix, run->run_id))
		return 0;
	while (p > 0 && run_after(&ix->runs[p - 1], run))
		p--;
	moved = n - p;
	for (j = p; j < n; j++)
		if (run->name[0] && !strcmp(ix->runs[j].name, run->name))
			moved = SIZE_MAX; /* a newer run of its name: it gives it up */
	if (moved > sizeof(id_slot) / sizeof(id_slot[0]) || (n + 1) * 2 + 2 > ix->nslots) {
		if (index_append(ix, run))
			return -ENOMEM;
		memmove(&added, &ix->runs[n], sizeof(added));
		memmove(&ix->runs[p + 1], &ix->runs[p], (n - p) * sizeof(added));
		ix->runs[p] = added;
		return index_rebuild(ix);
	}
	/* Where the runs it moves stand in the tables, found before they move. */
	for (j = 0; j < moved; j++) {
		folder_slot[j] = slot_find(ix, ix->by_folder, 1, ix->runs[p + j].folder);
		id_slot[j] = slot_find(ix, ix->by_id, 0, ix->runs[p + j].run_id);
	}
	if (index_append(ix, run))
		return -ENOMEM;
	added = ix->runs[n];
	memmove(&ix->runs[p + 1], &ix->runs[p], moved * sizeof(added));
	ix->runs[p] = added;
	for (j = 0; j < moved; j++) {
		if (ix->by_folder[folder_slot[j]] == p + j + 1)
			ix->by_folder[folder_slot[j]] = (uint32_t)(p + j + 2);
		ix->by_id[id_slot[j]] = (uint32_t)(p + j + 2);
	}
	return index_place(ix, p);
}

/* The run a folder name names, or failing that the run of that id. */
static struct store_run *index_lookup(const struct index_ent *ix, const char *folder)
{
	size_t slot;

	if (!ix->nslots)
		return NULL;
	slot = slot_find(ix, ix->by_folder, 1, folder);
	if (ix->by_folder[slot])
		return &ix->runs[ix->by_folder[slot] - 1];
	slot = slot_find(ix, ix->by_id, 0, folder);
	return ix->by_id[slot] ? &ix->runs[ix->by_id[slot] - 1] : NULL;
}

static size_t snap_cost(const struct store_snapshot *snap);
static void snap_empty(struct centry *h);

/*
 * Keeps the snapshots a listing came with, as if each run had been read
 * (a remote search returns runs whole: reading them again would cost a
 * request each).  Only into room the table has: a listing must not push
 * out what is in use.  Takes the seeds' holds; lock held.
 */
static void seed_snapshots(struct cache *c, const struct index_ent *ix, struct collect *co,
			   struct mark start)
{
	size_t i;

	for (i = 0; i < co->nseeds; i++) {
		struct store_snapshot *snap = (struct store_snapshot *)co->seeds[i];
		struct snap_ent *e = (struct snap_ent *)ctable_find(&c->snaps, snap->run.run_id);
		const struct store_run *r = index_lookup_id(ix, snap->run.run_id);
		size_t cost = snap_cost(snap);

		co->seeds[i] = NULL;
		/* Only the listing holds it yet: it may still be completed. */
		if (!r || valid(c, &c->snaps, HEAD(e)) || !keepable(&c->snaps, HEAD(e), start) ||
		    c->snaps.cost + cost > c->snaps.max_cost || !r->folder ||
		    !(snap->run.folder = strdup(r->folder)) ||
		    !(e = (struct snap_ent *)ctable_get(&c->snaps, snap->run.run_id, sizeof(*e)))) {
			store_snapshot_put(snap);
			continue;
		}
		snap_empty(&e->h);
		e->snap = snap;
		filled(&e->h, start);
		ctable_cost(&c->snaps, &e->h, cost);
	}
	co->nseeds = 0;
}

/* What to do with an index, under the lock (it must not call any store). */
typedef int index_fn(struct index_ent *ix, void *arg);

/*
 * Runs fn on the current index of an experiment: the cached one, or one
 * listed now (then kept, unless a write touched the experiment meanwhile).
 */
static int with_index(struct cache *c, const char *experiment_id, index_fn *fn, void *arg)
{
	struct index_ent *ix, *fresh;
	struct collect co = { 0 };
	struct mark start;
	int err;

	watch(c);
	pthread_mutex_lock(&c->lock);
	ix = (struct index_ent *)ctable_find(&c->indexes, experiment_id);
	if (valid(c, &c->indexes, HEAD(ix))) {
		c->indexes.hits++;
		err = fn(ix, arg);
		pthread_mutex_unlock(&c->lock);
		return err;
	}
	c->indexes.misses++;
	log_debug("cache: listing the runs of experiment %s (%s)", experiment_id,
		  ix ? "out of date" : "not cached");
	start = mark(c);
	c->listing++;
	pthread_mutex_unlock(&c->lock);

	fresh = calloc(1, sizeof(*fresh));
	co.ix = fresh;
	err = fresh ? store_list_runs(c->next, experiment_id, index_collect, &co) : -ENOMEM;
	if (!err)
		err = index_rebuild(fresh);
	pthread_mutex_lock(&c->lock);
	c->listing--;
	if (err) {
		pthread_mutex_unlock(&c->lock);
		collect_release(&co);
		if (fresh)
			index_empty(&fresh->h);
		free(fresh);
		return err;
	}
	ix = (struct index_ent *)ctable_find(&c->indexes, experiment_id);
	if (keepable(&c->indexes, HEAD(ix), start) &&
	    (ix = (struct index_ent *)ctable_get(&c->indexes, experiment_id, sizeof(*ix)))) {
		/* The entry takes over what was listed. */
		index_empty(&ix->h);
		ix->runs = fresh->runs;
		ix->n = fresh->n;
		ix->cap = fresh->cap;
		ix->nslots = fresh->nslots;
		ix->by_folder = fresh->by_folder;
		ix->by_id = fresh->by_id;
		free(fresh);
		fresh = NULL;
		filled(&ix->h, start);
		ctable_cost(&c->indexes, &ix->h, ix->n + 1);
	} else {
		ix = fresh;
	}
	seed_snapshots(c, ix, &co, start);
	err = fn(ix, arg);
	pthread_mutex_unlock(&c->lock);
	collect_release(&co);
	if (fresh) {
		index_empty(&fresh->h);
		free(fresh);
	}
	return err;
}

struct find_arg {
	const char *name;
	struct store_run *out;
	int by_id;
};

static int find_fn(struct index_ent *ix, void *arg)
{
	struct find_arg *a = arg;
	const struct store_run *r =
		a->by_id ? index_lookup_id(ix, a->name) : index_lookup(ix, a->name);

	return r ? store_run_copy(a->out, r) : -ENOENT;
}

static int cache_find_run(struct store *s, const char *experiment_id, const char *folder,
			  struct store_run *out)
{
	struct find_arg a = { folder, out, 0 };

	return with_index(to_cache(s), experiment_id, find_fn, &a);
}

/* Copies of the runs listed, called back after the lock is let go. */
struct run_list {
	struct store_run *v;
	size_t n;
};

static int list_fn(struct index_ent *ix, void *arg)
{
	struct run_list *l = arg;
	size_t i;

	l->v = calloc(ix->n ? ix->n : 1, sizeof(*l->v));
	if (!l->v)
		return -ENOMEM;
	for (i = 0; i < ix->n; i++) {
		/* A listing shows names, folders, status and times. */
		l->v[i] = ix->runs[i];
		l->v[i].user_id = l->v[i].artifact_uri = NULL;
		l->v[i].name = strdup(ix->runs[i].name);
		l->v[i].folder = strdup(ix->runs[i].folder);
		l->n++;
		if (!l->v[i].name || !l->v[i].folder)
			return -ENOMEM;
	}
	return 0;
}

static int cache_list_runs(struct store *s, const char *experiment_id, store_run_cb *cb, void *ctx)
{
	struct run_list l = { NULL, 0 };
	size_t i;
	int err = with_index(to_cache(s), experiment_id, list_fn, &l);

	for (i = 0; !err && i < l.n; i++)
		err = cb(ctx, &l.v[i]);
	for (i = 0; i < l.n; i++)
		store_run_release(&l.v[i]);
	free(l.v);
	return err;
}

/* The folder of an active run, into run->folder. */
static int set_folder(struct cache *c, struct store_run *run)
{
	struct store_run found = { 0 };
	struct find_arg a = { run->run_id, &found, 1 };
	int err;

	if (run->deleted)
		return 0;
	err = with_index(c, run->experiment_id, find_fn, &a);
	if (err == -ENOENT)
		return 0; /* not in the list: as good as deleted for the tree */
	if (!err) {
		free(run->folder);
		run->folder = found.folder;
		found.folder = NULL;
	}
	store_run_release(&found);
	return err;
}

static int cache_get_run(struct store *s, const char *run_id, struct store_run *out)
{
	struct cache *c = to_cache(s);
	int err = store_get_run(c->next, run_id, out);

	if (!err)
		err = set_folder(c, out);
	if (err)
		store_run_release(out);
	return err;
}

/* The current cached index that holds run_id, or NULL; lock held.  (An
 * index out of date is listed again before anyone reads it.) */
static struct index_ent *index_of_run(struct cache *c, const char *run_id, struct store_run **run)
{
	struct centry *e;

	for (e = c->indexes.head; e; e = e->lnext) {
		struct index_ent *ix = (struct index_ent *)e;

		if (valid(c, &c->indexes, e) && (*run = index_lookup_id(ix, run_id)))
			return ix;
	}
	return NULL;
}

/*
 * A write changed a run that no cached list holds: a list being fetched
 * now may have read it before, so no list fetched meanwhile is kept.
 * Lock held.
 */
static void run_unlisted_changed(struct cache *c, uint64_t seq)
{
	if (c->listing)
		c->indexes.changed = seq;
}

static void index_drop_run(struct index_ent *ix, struct store_run *r)
{
	size_t i = (size_t)(r - ix->runs);

	store_run_release(r);
	memmove(r, r + 1, (ix->n - i - 1) * sizeof(*r));
	ix->n--;
}

/*
 * A write changed a run's name, status or life: its entry in the index is
 * taken again from next (the folders of the experiment with it).  When
 * that fails, or another write changed the index while the run was read
 * (what was read may be older than what that write put in), the index is
 * dropped, to be listed again.
 */
static void refresh_run(struct cache *c, const char *run_id)
{
	struct store_run now, *r;
	struct index_ent *ix;
	uint64_t seq, before;
	int err;

	pthread_mutex_lock(&c->lock);
	before = c->wseq;
	pthread_mutex_unlock(&c->lock);
	err = store_get_run(c->next, run_id, &now);
	pthread_mutex_lock(&c->lock);
	seq = wrote(c);
	touch(&c->snaps, run_id, seq, sizeof(struct snap_ent));
	ix = index_of_run(c, run_id, &r);
	if (ix && ix->h.changed > before)
		err = -EAGAIN; /* the index changed while the run was read */
	if (ix) {
		int renamed = err || now.deleted || strcmp(r->name, now.name);

		if (!err && now.deleted) {
			index_drop_run(ix, r);
		} else if (!err) {
			/* The same name keeps its folder; another moves folders. */
			free(now.folder);
			now.folder = renamed ? NULL : r->folder;
			if (renamed)
				free(r->folder);
			r->folder = NULL;
			store_run_release(r);
			*r = now;
			memset(&now, 0, sizeof(now));
		}
		if (err || (renamed && index_rebuild(ix)))
			touch(&c->indexes, ix->h.key, seq, sizeof(*ix));
		else
			ix->h.changed = seq;
	} else {
		run_unlisted_changed(c, seq);
	}
	pthread_mutex_unlock(&c->lock);
	store_run_release(&now);
}

static int cache_create_run(struct store *s, struct store_batch *b, const char *experiment_id,
			    const char *name, const char *user, struct store_run *out)
{
	struct cache *c = to_cache(s);
	struct index_ent *ix;
	uint64_t seq;
	int err = store_create_run(c->next, b, experiment_id, name, user, out);

	if (err)
		return err;
	pthread_mutex_lock(&c->lock);
	seq = wrote(c);
	ix = (struct index_ent *)ctable_find(&c->indexes, experiment_id);
	if (valid(c, &c->indexes, HEAD(ix))) {
		/* No listing again, at any size: the new run joins the list. */
		err = index_insert(ix, out);
		if (!err) {
			ix->h.changed = seq;
			ctable_cost(&c->indexes, &ix->h, ix->n + 1);
		} else {
			touch(&c->indexes, experiment_id, seq, sizeof(*ix));
		}
	} else {
		touch(&c->indexes, experiment_id, seq, sizeof(*ix));
	}
	pthread_mutex_unlock(&c->lock);
	return set_folder(c, out);
}

static int cache_rename_run(struct store *s, struct store_batch *b, const char *run_id,
			    const char *new_name)
{
	struct cache *c = to_cache(s);
	int err = store_rename_run(c->next, b, run_id, new_name);

	refresh_run(c, run_id);
	return err;
}

static int cache_delete_run(struct store *s, struct store_batch *b, const char *run_id)
{
	struct cache *c = to_cache(s);
	int err = store_delete_run(c->next, b, run_id);

	refresh_run(c, run_id);
	return err;
}

static int cache_set_status(struct store *s, struct store_batch *b, const char *run_id,
			    const char *status)
{
	struct cache *c = to_cache(s);
	int err = store_set_status(c->next, b, run_id, status);

	refresh_run(c, run_id);
	return err;
}

/* ---- snapshots ------------------------------------------------------- */

static void snap_empty(struct centry *h)
{
	struct snap_ent *e = (struct snap_ent *)h;

	store_snapshot_put(e->snap);
	e->snap = NULL;
}

/* The heap a section takes, roughly: its array, and each string with
 * malloc's own words. */
static size_t kvs_bytes(const struct store_kvs *kvs)
{
	size_t i, n = 0;

	if (!kvs)
		return 0;
	n = sizeof(*kvs) + kvs->cap * sizeof(kvs->v[0]);
	for (i = 0; i < kvs->n; i++)
		n += strlen(kvs->v[i].key) + 17 +
		     (kvs->v[i].value ? strlen(kvs->v[i].value) + 17 : 0);
	return n;
}

/* What a snapshot weighs in the table's budget: one per KiB it holds, so
 * that memory, not the number of runs, bounds the table. */
static size_t snap_cost(const struct store_snapshot *snap)
{
	size_t bytes = sizeof(*snap) + kvs_bytes(snap->params) + kvs_bytes(snap->metrics) +
		       kvs_bytes(snap->tags);

	return 1 + bytes / 1024;
}

static int cache_get_snapshot(struct store *s, const char *run_id, unsigned want,
			      struct store_snapshot **out)
{
	struct cache *c = to_cache(s);
	const struct store_snapshot *got, *old = NULL;
	struct store_snapshot *mine;
	struct store_run run, *listed;
	struct snap_ent *e;
	int known;
	struct mark start;
	int err;

	watch(c);
	pthread_mutex_lock(&c->lock);
	e = (struct snap_ent *)ctable_find(&c->snaps, run_id);
	if (valid(c, &c->snaps, HEAD(e)) && (e->snap->have & want) == want) {
		c->snaps.hits++;
		*out = (struct store_snapshot *)store_snapshot_hold(e->snap);
		pthread_mutex_unlock(&c->lock);
		return 0;
	}
	/* The sections it has stay: only the missing ones are fetched. */
	if (valid(c, &c->snaps, HEAD(e)))
		old = store_snapshot_hold(e->snap);
	/* A listed run's info is here already: the store need not read it. */
	known = index_of_run(c, run_id, &listed) && !store_run_copy(&run, listed);
	c->snaps.misses++;
	start = mark(c);
	pthread_mutex_unlock(&c->lock);

	err = store_get_snapshot(c->next, run_id,
				 (want & ~(old ? old->have : 0u)) | (known ? SNAP_RUN_KNOWN : 0u),
				 &got);
	mine = (struct store_snapshot *)got;
	if (!err && known) {
		store_run_release(&mine->run);
		mine->run = run;
		known = 0;
	}
	if (known)
		store_run_release(&run);
	if (!err && old) {
		if (!(mine->have & SNAP_PARAMS) && (old->have & SNAP_PARAMS))
			mine->params = store_kvs_hold(old->params);
		if (!(mine->have & SNAP_METRICS) && (old->have & SNAP_METRICS))
			mine->metrics = store_kvs_hold(old->metrics);
		if (!(mine->have & SNAP_TAGS) && (old->have & SNAP_TAGS))
			mine->tags = store_kvs_hold(old->tags);
		mine->have |= old->have;
	}
	store_snapshot_put(old);
	if (!err)
		err = set_folder(c, &mine->run);
	if (err) {
		store_snapshot_put(got);
		return err;
	}
	pthread_mutex_lock(&c->lock);
	e = (struct snap_ent *)ctable_find(&c->snaps, run_id);
	if (keepable(&c->snaps, HEAD(e), start) &&
	    (e = (struct snap_ent *)ctable_get(&c->snaps, run_id, sizeof(*e)))) {
		snap_empty(&e->h);
		e->snap = store_snapshot_hold(got);
		filled(&e->h, start);
		ctable_cost(&c->snaps, &e->h, snap_cost(got));
	}
	pthread_mutex_unlock(&c->lock);
	*out = (struct store_snapshot *)got;
	return 0;
}

/* A write changed something of a run's snapshot; lock not held. */
static void run_changed(struct cache *c, const char *run_id)
{
	pthread_mutex_lock(&c->lock);
	touch(&c->snaps, run_id, wrote(c), sizeof(struct snap_ent));
	pthread_mutex_unlock(&c->lock);
}

/* ---- keys ------------------------------------------------------------ */

static int kv_collect(void *ctx, const struct store_kv *kv)
{
	return store_kvs_add(ctx, kv);
}

static int cache_list_kv(struct store *s, enum store_section sec, const struct store_ref *ref,
			 const char *prefix, store_kv_cb *cb, void *ctx)
{
	struct store_kvs *kvs = store_kvs_new(0);
	size_t i;
	int err;

	if (!kvs)
		return -ENOMEM;
	err = store_list_kv(to_cache(s)->next, sec, ref, prefix, kv_collect, kvs);
	for (i = 0; !err && i < kvs->n; i++)
		err = cb(ctx, &kvs->v[i]);
	store_kvs_put(kvs);
	return err;
}

static int cache_get_kv(struct store *s, enum store_section sec, const struct store_ref *ref,
			const char *key, struct store_kv *out)
{
	return store_get_kv(to_cache(s)->next, sec, ref, key, out);
}

static int cache_log_param(struct store *s, struct store_batch *b, const char *run_id,
			   const char *key, const char *value)
{
	struct cache *c = to_cache(s);
	int err = store_log_param(c->next, b, run_id, key, value);

	run_changed(c, run_id);
	return err;
}

/* After a tag write: a run's snapshot (and its name) or the experiment. */
static void tag_changed(struct cache *c, enum store_section sec, const struct store_ref *ref,
			const char *key, const char *to)
{
	if (sec == SEC_EXP_TAGS)
		experiments_changed(c);
	else if (sec != SEC_RUN_TAGS)
		return;
	else if (!strcmp(key, "mlflow.runName") || (to && !strcmp(to, "mlflow.runName")))
		refresh_run(c, ref->run_id);
	else
		run_changed(c, ref->run_id);
}

static int cache_set_tag(struct store *s, struct store_batch *b, enum store_section sec,
			 const struct store_ref *ref, const char *key, const char *value)
{
	struct cache *c = to_cache(s);
	int err = store_set_tag(c->next, b, sec, ref, key, value);

	tag_changed(c, sec, ref, key, NULL);
	return err;
}

static int cache_delete_tag(struct store *s, struct store_batch *b, enum store_section sec,
			    const struct store_ref *ref, const char *key)
{
	struct cache *c = to_cache(s);
	int err = store_delete_tag(c->next, b, sec, ref, key);

	tag_changed(c, sec, ref, key, NULL);
	return err;
}

static int cache_rename_tag(struct store *s, struct store_batch *b, enum store_section sec,
			    const struct store_ref *ref, const char *from, const char *to)
{
	struct cache *c = to_cache(s);
	int err = store_rename_tag(c->next, b, sec, ref, from, to);

	tag_changed(c, sec, ref, from, to);
	return err;
}

/* ---- metrics --------------------------------------------------------- */

static void step_empty(struct centry *h)
{
	((struct step_ent *)h)->next = INT64_MIN;
}

/* A steps entry, made empty (no point known) if missing; lock held. */
static struct step_ent *step_get(struct cache *c, const char *key)
{
	struct step_ent *e = (struct step_ent *)ctable_find(&c->steps, key);

	if (e)
		return e;
	e = (struct step_ent *)ctable_get(&c->steps, key, sizeof(*e));
	if (e) {
		step_empty(&e->h);
		ctable_cost(&c->steps, &e->h, 1);
	}
	return e;
}

/* Room for a steps table's key: a run id and a key of MLflow's length. */
#define STEP_KEY_MAX (32 + STORE_KEY_MAX * 4 + 1)

/* The steps table's key (a run id is always 32 characters), on the
 * caller's stack: a write() must not pay a malloc for it, nor a printf.
 * -ENAMETOOLONG for a key longer than MLflow takes (it is then not
 * cached). */
static int step_key(char *out, const char *run_id, const char *key)
{
	size_t r = strnlen(run_id, 32), k = strlen(key);

	if (r + k >= STEP_KEY_MAX)
		return -ENAMETOOLONG;
	memcpy(out, run_id, r);
	memcpy(out + r, key, k + 1);
	return 0;
}

static int cache_reserve_steps(struct store *s, const char *run_id, const char *key, int64_t floor,
			       size_t n, int64_t *first)
{
	struct cache *c = to_cache(s);
	char k[STEP_KEY_MAX];
	struct step_ent *e;
	struct mark start;
	int64_t next;
	int err;

	if (step_key(k, run_id, key))
		return store_reserve_steps(c->next, run_id, key, floor, n, first);
	watch(c);
	pthread_mutex_lock(&c->lock);
	e = (struct step_ent *)ctable_find(&c->steps, k);
	if (!valid(c, &c->steps, HEAD(e))) {
		c->steps.misses++;
		start = mark(c);
		pthread_mutex_unlock(&c->lock);
		err = store_next_step(c->next, run_id, key, &next);
		if (err)
			return err;
		pthread_mutex_lock(&c->lock);
		e = (struct step_ent *)ctable_find(&c->steps, k);
		/*
		 * What the entry still knows is a floor: steps reserved before
		 * (never handed out again while it is kept) and points logged
		 * meanwhile.  A failed write emptied it (step_empty).
		 */
		if (!valid(c, &c->steps, HEAD(e)) && (e = step_get(c, k))) {
			if (e->next > next)
				next = e->next;
			e->next = next;
			filled(&e->h, start);
			ctable_cost(&c->steps, &e->h, 1);
		}
	} else {
		c->steps.hits++;
	}
	next = e ? e->next : next;
	*first = next > floor ? next : floor;
	if (*first == INT64_MIN)
		*first = 0; /* the metric's first point */
	if (e)
		e->next = *first > INT64_MAX - (int64_t)n ? INT64_MAX : *first + (int64_t)n;
	pthread_mutex_unlock(&c->lock);
	return 0;
}

static int cache_next_step(struct store *s, const char *run_id, const char *key, int64_t *next)
{
	return store_next_step(to_cache(s)->next, run_id, key, next);
}

/*
 * Patches snap in place when the cache holds it alone (no reader can have
 * it: readers get theirs from the cache, under its lock) and key is in it:
 * a write() then costs no copy.  1 when done, and *latest whether best
 * became the key's latest point; 0 when a copy is needed.  Lock held.
 */
static int snap_patch_alone(const struct store_snapshot *snap, const char *key,
			    const struct metric_point *best, int *latest)
{
	struct store_snapshot *s = (struct store_snapshot *)snap;
	struct store_kv *kv;

	if (__atomic_load_n(&s->refs, __ATOMIC_ACQUIRE) != 1 || !s->metrics ||
	    __atomic_load_n(&s->metrics->refs, __ATOMIC_ACQUIRE) != 1)
		return 0;
	kv = (struct store_kv *)store_kvs_find(s->metrics, key);
	if (!kv)
		return 0;
	*latest = metric_later(best->step, best->timestamp, best->value, kv->step, kv->timestamp,
			       kv->num);
	if (*latest) {
		kv->num = best->value;
		kv->step = best->step;
		kv->timestamp = best->timestamp;
		if (best->timestamp > s->run.last_change)
			s->run.last_change = best->timestamp;
	}
	return 1;
}

/* A copy of snap whose metric key has pts' latest point, or NULL. */
static const struct store_snapshot *snap_patch(const struct store_snapshot *snap, const char *key,
					       const struct metric_point *best)
{
	struct store_snapshot *n;
	struct store_kvs *m;
	struct store_kv kv = { .key = (char *)key,
			       .num = best->value,
			       .step = best->step,
			       .timestamp = best->timestamp };
	const struct store_kv *old = store_kvs_find(snap->metrics, key);
	size_t i;
	int placed = 0, err = 0;

	if (old && !metric_later(best->step, best->timestamp, best->value, old->step,
				 old->timestamp, old->num))
		return store_snapshot_hold(snap); /* not the latest: nothing moves */
	n = store_snapshot_new();
	m = store_kvs_new(snap->metrics->n + 1);
	if (!n || !m || store_run_copy(&n->run, &snap->run)) {
		store_kvs_put(m);
		store_snapshot_put(n);
		return NULL;
	}
	for (i = 0; !err && i <= snap->metrics->n; i++) {
		const struct store_kv *cur = i < snap->metrics->n ? &snap->metrics->v[i] : NULL;

		if (!placed && (!cur || strcmp(cur->key, key) >= 0)) {
			err = store_kvs_add(m, &kv);
			placed = 1;
			if (cur && !strcmp(cur->key, key))
				continue;
		}
		if (cur)
			err = store_kvs_add(m, cur);
	}
	n->have = snap->have;
	n->params = store_kvs_hold(snap->params);
	n->tags = store_kvs_hold(snap->tags);
	n->metrics = m;
	if (best->timestamp > n->run.last_change)
		n->run.last_change = best->timestamp;
	if (err) {
		store_snapshot_put(n);
		return NULL;
	}
	return n;
}

static int cache_log_metrics(struct store *s, struct store_batch *b, const char *run_id,
			     const char *key, const struct metric_point *pts, size_t n)
{
	struct cache *c = to_cache(s);
	const struct metric_point *best = &pts[0];
	const struct store_snapshot *patched = NULL;
	char k[STEP_KEY_MAX];
	int keyed = !step_key(k, run_id, key), alone = 0;
	struct index_ent *ix;
	struct store_run *r;
	int latest = 1;
	struct step_ent *st;
	struct snap_ent *e;
	int64_t max_step = pts[0].step;
	uint64_t seq;
	size_t i;
	int err = store_log_metrics(c->next, b, run_id, key, pts, n);

	for (i = 1; i < n; i++) {
		const struct metric_point *p = &pts[i];

		if (p->step > max_step)
			max_step = p->step;
		if (metric_later(p->step, p->timestamp, p->value, best->step, best->timestamp,
				 best->value))
			best = p;
	}
	if (err) {
		/*
		 * The steps reserved for these points were not used: when they
		 * were the last reserved, the next auto-step is the store's one
		 * more than its highest again.  When another writer reserved
		 * steps after them, they stay a gap: handing them out again
		 * could give that writer's steps twice.
		 */
		pthread_mutex_lock(&c->lock);
		st = keyed ? (struct step_ent *)ctable_find(&c->steps, k) : NULL;
		if (st && max_step < INT64_MAX && st->next == max_step + 1)
			touch(&c->steps, k, wrote(c), sizeof(*st));
		pthread_mutex_unlock(&c->lock);
		return err;
	}
	pthread_mutex_lock(&c->lock);
	seq = wrote(c);
	e = (struct snap_ent *)ctable_find(&c->snaps, run_id);
	if (valid(c, &c->snaps, HEAD(e)))
		alone = snap_patch_alone(e->snap, key, best, &latest);
	if (!alone && valid(c, &c->snaps, HEAD(e)) && e->snap->metrics &&
	    e->snap->metrics->n <= SNAP_PATCH_MAX)
		patched = snap_patch(e->snap, key, best);
	/*
	 * The run's time moves with its metrics' latest points (mlflowfs(1), THE TREE: ls
	 * -t).  The snapshot tells whether the point became its metric's
	 * latest; without it, a point below a step the metric already has
	 * cannot be, and anything else is taken to be.
	 */
	if (patched) {
		latest = patched != e->snap;
	} else if (!alone && keyed) {
		st = (struct step_ent *)ctable_find(&c->steps, k);
		latest = !st || st->next == INT64_MIN || best->step >= st->next - 1;
	}
	ix = index_of_run(c, run_id, &r);
	if (ix && latest && best->timestamp > r->last_change)
		r->last_change = best->timestamp;
	else if (!ix)
		run_unlisted_changed(c, seq);
	if (patched) {
		snap_empty(&e->h);
		e->snap = patched;
	}
	if (alone || patched)
		e->h.changed = seq;
	else
		touch(&c->snaps, run_id, seq, sizeof(*e));
	/* The next auto-step follows the highest step logged, also when a
	 * look-up of it is under way (which takes this as a floor). */
	if (keyed && (st = step_get(c, k)) && max_step >= st->next)
		st->next = max_step == INT64_MAX ? INT64_MAX : max_step + 1;
	pthread_mutex_unlock(&c->lock);
	return 0;
}

static int cache_metric_history(struct store *s, const char *run_id, const char *key,
				store_point_cb *cb, void *ctx)
{
	/* Long, and read from a connection of its own: passed through, so cb
	 * must not call the store (store.h). */
	return store_metric_history(to_cache(s)->next, run_id, key, cb, ctx);
}

static int cache_history_stat(struct store *s, const char *run_id, const char *key,
			      struct store_history_stat *out)
{
	return store_history_stat(to_cache(s)->next, run_id, key, out);
}

/* ---- the registry: passed through, called back after next let go ------ */

struct model_list {
	struct store_model *v;
	size_t n, cap;
};

static int model_collect(void *ctx, const struct store_model *m)
{
	struct model_list *l = ctx;
	struct store_model *x;

	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 16;
		struct store_model *v = realloc(l->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		l->v = v;
		l->cap = cap;
	}
	x = &l->v[l->n++];
	*x = *m;
	x->name = strdup(m->name);
	x->description = strdup(m->description);
	return x->name && x->description ? 0 : -ENOMEM;
}

static int cache_list_models(struct store *s, store_model_cb *cb, void *ctx)
{
	struct model_list l = { 0 };
	size_t i;
	int err = store_list_models(to_cache(s)->next, model_collect, &l);

	for (i = 0; !err && i < l.n; i++)
		err = cb(ctx, &l.v[i]);
	for (i = 0; i < l.n; i++)
		store_model_release(&l.v[i]);
	free(l.v);
	return err;
}

static int cache_get_model(struct store *s, const char *name, struct store_model *out)
{
	return store_get_model(to_cache(s)->next, name, out);
}

struct version_list {
	struct store_version *v;
	size_t n, cap;
};

static int version_collect(void *ctx, const struct store_version *v)
{
	struct version_list *l = ctx;
	struct store_version *x;

	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 16;
		struct store_version *p = realloc(l->v, cap * sizeof(*p));

		if (!p)
			return -ENOMEM;
		l->v = p;
		l->cap = cap;
	}
	x = &l->v[l->n++];
	*x = *v;
	x->model = strdup(v->model);
	x->description = strdup(v->description);
	x->source = strdup(v->source);
	x->run_id = strdup(v->run_id);
	x->status = strdup(v->status);
	x->stage = strdup(v->stage);
	x->storage_location = strdup(v->storage_location);
	return x->model && x->description && x->source && x->run_id && x->status && x->stage &&
			       x->storage_location
		       ? 0
		       : -ENOMEM;
}

static int cache_list_versions(struct store *s, const char *model, store_version_cb *cb, void *ctx)
{
	struct version_list l = { 0 };
	size_t i;
	int err = store_list_versions(to_cache(s)->next, model, version_collect, &l);

	for (i = 0; !err && i < l.n; i++)
		err = cb(ctx, &l.v[i]);
	for (i = 0; i < l.n; i++)
		store_version_release(&l.v[i]);
	free(l.v);
	return err;
}

static int cache_get_version(struct store *s, const char *model, int64_t version,
			     struct store_version *out)
{
	return store_get_version(to_cache(s)->next, model, version, out);
}

static int alias_collect(void *ctx, const char *alias, int64_t version)
{
	struct store_kv kv = { .key = (char *)alias, .step = version };

	return store_kvs_add(ctx, &kv);
}

static int cache_list_aliases(struct store *s, const char *model, store_alias_cb *cb, void *ctx)
{
	struct store_kvs *kvs = store_kvs_new(0);
	size_t i;
	int err;

	if (!kvs)
		return -ENOMEM;
	err = store_list_aliases(to_cache(s)->next, model, alias_collect, kvs);
	for (i = 0; !err && i < kvs->n; i++)
		err = cb(ctx, kvs->v[i].key, kvs->v[i].step);
	store_kvs_put(kvs);
	return err;
}

/* Logged models: not cached either.  The listing is the backend's own,
 * without folders: store_list_logged_models() above the cache names them. */
static int cache_list_logged_models(struct store *s, const char *experiment_id,
				    store_logged_model_cb *cb, void *ctx)
{
	struct store *next = to_cache(s)->next;

	return next->ops->list_logged_models
		       ? next->ops->list_logged_models(next, experiment_id, cb, ctx)
		       : 0;
}

static int cache_get_logged_model(struct store *s, const char *id, struct store_logged_model *out)
{
	return store_get_logged_model(to_cache(s)->next, id, out);
}

/* Registry writes: nothing of the registry is cached. */
static int cache_create_model(struct store *s, struct store_batch *b, const char *name)
{
	return store_create_model(to_cache(s)->next, b, name);
}

static int cache_rename_model(struct store *s, struct store_batch *b, const char *name,
			      const char *new_name)
{
	return store_rename_model(to_cache(s)->next, b, name, new_name);
}

static int cache_delete_model(struct store *s, struct store_batch *b, const char *name)
{
	return store_delete_model(to_cache(s)->next, b, name);
}

static int cache_set_description(struct store *s, struct store_batch *b, const char *model,
				 int64_t version, const char *text)
{
	return store_set_description(to_cache(s)->next, b, model, version, text);
}

static int cache_create_version(struct store *s, struct store_batch *b, const char *model,
				const char *source, const char *run_id, int64_t *version)
{
	return store_create_version(to_cache(s)->next, b, model, source, run_id, version);
}

static int cache_delete_version(struct store *s, struct store_batch *b, const char *model,
				int64_t version)
{
	return store_delete_version(to_cache(s)->next, b, model, version);
}

static int cache_set_stage(struct store *s, struct store_batch *b, const char *model,
			   int64_t version, const char *stage)
{
	return store_set_stage(to_cache(s)->next, b, model, version, stage);
}

static int cache_set_alias(struct store *s, struct store_batch *b, const char *model,
			   const char *alias, int64_t version)
{
	return store_set_alias(to_cache(s)->next, b, model, alias, version);
}

static int cache_delete_alias(struct store *s, struct store_batch *b, const char *model,
			      const char *alias)
{
	return store_delete_alias(to_cache(s)->next, b, model, alias);
}

/* ---- the rest passes through ----------------------------------------- */

static const char *cache_artifact_root(const struct store *s)
{
	return store_artifact_root(((const struct cache *)s)->next);
}

static int cache_others_version(struct store *s, uint64_t *v)
{
	return store_others_version(to_cache(s)->next, v);
}

static struct store_batch *cache_batch_new(struct store *s)
{
	return store_batch_new(to_cache(s)->next);
}

static int cache_batch_commit(struct store *s, struct store_batch *b, int durable)
{
	struct cache *c = to_cache(s);
	int err = store_batch_commit(c->next, b, durable);

	/* What the lost writes showed is cached: all of it is suspect now. */
	if (err) {
		pthread_mutex_lock(&c->lock);
		c->gen++;
		pthread_mutex_unlock(&c->lock);
	}
	return err;
}

static void cache_batch_free(struct store *s, struct store_batch *b)
{
	store_batch_free(to_cache(s)->next, b);
}

static int describe_table(struct buf *out, const char *name, const struct ctable *t)
{
	return buf_addf(out, "cache_%s: %zu entries, %" PRIu64 " hits, %" PRIu64 " misses\n", name,
			t->n, t->hits, t->misses);
}

static int cache_describe(struct store *s, struct buf *out)
{
	struct cache *c = to_cache(s);
	int err;

	pthread_mutex_lock(&c->lock);
	if (c->ttl_ms < 0)
		err = buf_adds(out, "cache_ttl: until another client writes\n");
	else
		err = buf_addf(out, "cache_ttl: %.3f s\n", (double)c->ttl_ms / 1000);
	if (!err)
		err = describe_table(out, "experiments", &c->exp_by_name);
	if (!err)
		err = describe_table(out, "experiment_ids", &c->exp_by_id);
	if (!err)
		err = describe_table(out, "run_lists", &c->indexes);
	if (!err)
		err = buf_addf(out, "cache_listed_runs: %zu\n", c->indexes.cost - c->indexes.n);
	if (!err)
		err = describe_table(out, "runs", &c->snaps);
	if (!err)
		err = describe_table(out, "steps", &c->steps);
	pthread_mutex_unlock(&c->lock);
	return err ? err : store_describe(c->next, out);
}

static void cache_close(struct store *s)
{
	struct cache *c = to_cache(s);

	ctable_clear(&c->exp_by_name);
	ctable_clear(&c->exp_by_id);
	ctable_clear(&c->indexes);
	ctable_clear(&c->snaps);
	ctable_clear(&c->steps);
	pthread_mutex_destroy(&c->lock);
	store_close(c->next);
	free(c);
}

struct store *cache_wrap(struct store *next, const struct mfs_config *cfg)
{
	struct cache *c = calloc(1, sizeof(*c));
	uint64_t v;
	int err;

	if (!c) {
		store_close(next);
		return NULL;
	}
	c->base.ops = &cache_ops;
	c->base.read_only = next->read_only;
	c->next = next;
	c->gen = 1;
	pthread_mutex_init(&c->lock, NULL);
	err = store_others_version(next, &v);
	c->watch = err != -ENOSYS;
	c->others = v;
	/* A watch tells of every change; without one, time bounds staleness. */
	c->ttl_ms = c->watch ? -1 : (int64_t)(cfg->cache_ttl * 1000);
	c->exp_by_name = (struct ctable){ .max_cost = EXP_MAX, .empty = exp_empty };
	c->exp_by_id = (struct ctable){ .max_cost = EXP_MAX, .empty = exp_empty };
	c->indexes = (struct ctable){ .max_cost = INDEX_MAX, .empty = index_empty };
	c->snaps = (struct ctable){ .max_cost = c->watch ? SNAP_MAX_WATCHED : SNAP_MAX,
				    .empty = snap_empty };
	c->steps = (struct ctable){ .max_cost = STEP_MAX, .empty = step_empty };
	return &c->base;
}

static const struct store_ops cache_ops = {
	.name = "cache",
	.close = cache_close,
	.describe = cache_describe,
	.artifact_root = cache_artifact_root,
	.others_version = cache_others_version,
	.batch_new = cache_batch_new,
	.batch_commit = cache_batch_commit,
	.batch_free = cache_batch_free,
	.list_experiments = cache_list_experiments,
	.get_experiment = cache_get_experiment,
	.get_experiment_by_id = cache_get_experiment_by_id,
	.create_experiment = cache_create_experiment,
	.rename_experiment = cache_rename_experiment,
	.delete_experiment = cache_delete_experiment,
	.list_runs = cache_list_runs,
	.find_run = cache_find_run,
	.get_run = cache_get_run,
	.create_run = cache_create_run,
	.rename_run = cache_rename_run,
	.delete_run = cache_delete_run,
	.set_status = cache_set_status,
	.get_snapshot = cache_get_snapshot,
	.list_kv = cache_list_kv,
	.get_kv = cache_get_kv,
	.log_param = cache_log_param,
	.set_tag = cache_set_tag,
	.delete_tag = cache_delete_tag,
	.rename_tag = cache_rename_tag,
	.next_step = cache_next_step,
	.reserve_steps = cache_reserve_steps,
	.log_metrics = cache_log_metrics,
	.metric_history = cache_metric_history,
	.history_stat = cache_history_stat,
	.list_models = cache_list_models,
	.get_model = cache_get_model,
	.list_versions = cache_list_versions,
	.get_version = cache_get_version,
	.list_aliases = cache_list_aliases,
	.list_logged_models = cache_list_logged_models,
	.get_logged_model = cache_get_logged_model,
	.create_model = cache_create_model,
	.rename_model = cache_rename_model,
	.delete_model = cache_delete_model,
	.set_description = cache_set_description,
	.create_version = cache_create_version,
	.delete_version = cache_delete_version,
	.set_stage = cache_set_stage,
	.set_alias = cache_set_alias,
	.delete_alias = cache_delete_alias,
};
