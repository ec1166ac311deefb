/* decimal: strict parsing of unsigned decimal numbers from headers.
 *
 * Digits only: no sign, no spaces, no hex, no overflow — the lenient
 * strtoull rules are how length-confusion bugs begin. */
#ifndef LIB_UTIL_DECIMAL_H
#define LIB_UTIL_DECIMAL_H

#include <stddef.h>
#include <stdint.h>

/* 0 if s is 1+ digits with a value <= max, else -1. */
int decimal_parse(const char *s, uint64_t max, uint64_t *out);

#define DECIMAL_MAX_DIGITS 20   /* UINT64_MAX */

/* v in decimal into out (no NUL); returns the number of digits, 1-20.
 * For heads and log lines built on every request: no printf. */
size_t decimal_format(uint64_t v, char out[DECIMAL_MAX_DIGITS]);

#endif
