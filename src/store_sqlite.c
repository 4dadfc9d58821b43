/* placeholder: store_sqlite.c is being written */
