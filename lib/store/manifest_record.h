/* manifest_record: the byte format of one manifest record, in memory only.
 *
 * A record is a 20-byte head (magic, version, type, flags, payload length,
 * seq = its file offset), a payload, and a CRC-32C over both; the payload
 * layouts of HEADER, CHUNK, SIZE, COMPLETE and ABORT are encoded and decoded
 * here. No file I/O: lib/store/manifest.c reads and appends the file, and
 * tests/fuzz/fuzz_manifest.c mutates these bytes. Byte layout and why each
 * check is a torn tail or corruption: docs/recovery.md. Private to
 * lib/store/manifest*.c; callers use lib/store/manifest.h. */
#ifndef LIB_STORE_MANIFEST_RECORD_H
#define LIB_STORE_MANIFEST_RECORD_H

#include <stddef.h>
#include <stdint.h>

#include "lib/store/manifest.h"

#define REC_MAGIC       0x314d4648u     /* "HFM1" read little-endian */
#define REC_VERSION     1
#define REC_HDR         20              /* magic..seq */
#define REC_TRAILER     4               /* crc32c */
#define REC_PAYLOAD_MAX 8192
#define REC_MAX         (REC_HDR + REC_PAYLOAD_MAX + REC_TRAILER)
#define CHUNK_PAYLOAD   24

/* Result of framing one record at an offset. */
enum frame_rc { FRAME_OK, FRAME_TORN, FRAME_CORRUPT, FRAME_IOERR };

/* One record to append: type and an encoder callback for its payload. */
struct rec_src {
    int                          type;
    const struct manifest_chunk *chunk;     /* CHUNK */
    uint64_t                     size;      /* SIZE */
    const uint8_t               *sha256;    /* COMPLETE */
    const char                  *text;      /* COMPLETE path, ABORT reason */
    const struct manifest_header *header;   /* HEADER */
};

/* Little-endian store of v at p (also the length prefixes of manifest_key). */
void   manifest_record_put64(unsigned char *p, uint64_t v);

/* The REC_HDR bytes at p: FRAME_OK and the payload length *plen, or
 * FRAME_TORN if they cannot start a record. */
enum frame_rc manifest_record_head(const unsigned char *p, uint32_t *plen);
/* The whole record at p (plen from manifest_record_head), read at file
 * offset off: FRAME_OK, FRAME_TORN (bad CRC) or FRAME_CORRUPT. */
enum frame_rc manifest_record_check(const unsigned char *p, uint32_t plen,
                                    uint64_t off);
/* Decodes one payload into r; 0, or -1 if malformed. */
int    manifest_record_decode(int type, const unsigned char *p, size_t len,
                              struct manifest_record *r);
/* Encodes and frames s as one record at file offset seq into buf[cap]:
 * its length, or 0 if it does not fit or a field is too long. */
size_t manifest_record_encode(unsigned char *buf, size_t cap,
                              const struct rec_src *s, uint64_t seq);

#endif
