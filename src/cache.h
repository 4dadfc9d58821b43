/*
 * cache.h - a store that wraps a store: cache_wrap(next) answers from its
 * tables or forwards to next, so handlers never know whether caching is on.
 *
 * It keeps experiments, each experiment's runs with their folder names
 * (the naming rule of mlflowfs(1), THE TREE, lives here, the same for every backend), run
 * snapshots and the next auto-step of metrics.  Writes through it change or
 * drop what they touch, so this mount reads its own writes at once.  What
 * other clients change is seen when next's watch (others_version) moves;
 * a store without one is asked again after cache_ttl.  Memory is bounded:
 * the least recently used entries go first.
 */
#ifndef MFS_CACHE_H
#define MFS_CACHE_H

struct mfs_config;
struct store;

/* Wraps next (the cache owns it from now on: closing the cache closes it);
 * NULL without memory, and next is closed. */
struct store *cache_wrap(struct store *next, const struct mfs_config *cfg);

#endif
