/* placeholder: store.c is being written */
