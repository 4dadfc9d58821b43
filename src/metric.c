/* placeholder: metric.c is being written */
