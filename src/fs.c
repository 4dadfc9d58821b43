/* placeholder: fs.c is being written */
