/*
 * fs.h - the FUSE operations: each handler parses its path into a node,
 * makes one or a few store calls and fills a stat or a buffer.
 */
#ifndef MFS_FS_H
#define MFS_FS_H

struct art_registry;
struct fuse_operations;
struct mfs_config;
struct store;

struct fs;

/* The handlers' shared state: borrows the store, the artifact repositories
 * and config until fs_free. */
struct fs *fs_new(struct store *store, struct art_registry *art, const struct mfs_config *cfg);
/* Stops the background work; call once the FUSE loop has ended. */
void fs_stop(struct fs *fs);
void fs_free(struct fs *fs);

extern const struct fuse_operations fs_operations;

#endif
