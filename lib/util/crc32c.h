/* crc32c: CRC-32C (Castagnoli, iSCSI, RFC 3720), the checksum of manifest
 * records and staged chunk bytes.
 *
 * Chainable like zlib's crc32: crc32c(crc32c(0, a, n), b, m) equals the CRC of
 * a followed by b. Uses the SSE4.2 crc32 instruction when the CPU has it,
 * otherwise slice-by-8 tables. Thread- and fork-safe. */
#ifndef LIB_UTIL_CRC32C_H
#define LIB_UTIL_CRC32C_H

#include <stddef.h>
#include <stdint.h>

uint32_t crc32c(uint32_t crc, const void *buf, size_t len);

/* The table path only, whatever the CPU: for tests and benchmarks. */
uint32_t crc32c_sw(uint32_t crc, const void *buf, size_t len);

#endif
