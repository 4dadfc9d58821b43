/*
 * fs.h - the FUSE operations: each handler parses its path into a node,
 * makes one or a few store calls and fills a stat or a buffer.
 */
#ifndef MFS_FS_H
#define MFS_FS_H

struct fuse_operations;
struct mfs_config;
struct store;

struct fs;

/* The handlers' shared state: borrows the store and config until fs_free. */
struct fs *fs_new(struct store *store, const struct mfs_config *cfg);
void fs_free(struct fs *fs);

extern const struct fuse_operations fs_operations;

#endif
