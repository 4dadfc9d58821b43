/* placeholder: options.c is being written */
