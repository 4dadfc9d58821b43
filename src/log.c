/* placeholder: log.c is being written */
