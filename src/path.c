/* placeholder: path.c is being written */
