/* Masked and read-only paths of /proc and /sys (masks.c), as OCI runtimes
 * set them.  See README.md, "Masked paths". */
#ifndef IA_MASKS_H
#define IA_MASKS_H

#include "error.h"

/* Below ROOTFD, once /proc, /dev and /sys are mounted: /dev/null over
 * masked files, an empty read-only tmpfs over masked directories, and a
 * read-only bind of each read-only path onto itself.  Paths the kernel
 * does not have are skipped. */
int ia_mask_paths (int rootfd, struct ia_error **err);

#endif
