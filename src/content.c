/* placeholder: content.c is being written */
