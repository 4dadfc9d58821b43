/* keychars.h - which characters MLflow's key validator counts as \w */
#ifndef MLFLOWFS_KEYCHARS_H
#define MLFLOWFS_KEYCHARS_H

/* Whether code point cp matches \w in MLflow's key pattern: an ASCII letter,
 * digit or '_', or a character Python's str.isalnum() accepts. */
int keychar_word(unsigned cp);

#endif
