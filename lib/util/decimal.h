/* decimal: strict parsing of unsigned decimal numbers from headers.
 *
 * Digits only: no sign, no spaces, no hex, no overflow — the lenient
 * strtoull rules are how length-confusion bugs begin. */
#ifndef LIB_UTIL_DECIMAL_H
#define LIB_UTIL_DECIMAL_H

#include <stdint.h>

/* 0 if s is 1+ digits with a value <= max, else -1. */
int decimal_parse(const char *s, uint64_t max, uint64_t *out);

#endif
