/* placeholder: schema.c is being written */
