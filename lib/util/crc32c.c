/* crc32c.c: CRC-32C, reflected polynomial 0x82F63B78.
 *
 * The tables are built once under pthread_once: they are write-once data, not
 * mutable state, and building them costs less than shipping 8 KiB of literals.
 * Entry tab[k][n] is the CRC register after byte n followed by k zero bytes,
 * which is what lets slice-by-8 fold eight input bytes per step. */
#include "lib/util/crc32c.h"

#include <pthread.h>
#include <string.h>

#define CRC32C_POLY 0x82f63b78u

static uint32_t       tab[8][256];
static int            have_hw;
static pthread_once_t tab_once = PTHREAD_ONCE_INIT;


static void
tab_init(void)
{
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t c = n;
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? (c >> 1) ^ CRC32C_POLY : c >> 1;
        tab[0][n] = c;
    }
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t c = tab[0][n];
        for (int k = 1; k < 8; k++) {
            c = tab[0][c & 0xff] ^ (c >> 8);
            tab[k][n] = c;
        }
    }
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    have_hw = __builtin_cpu_supports("sse4.2");
#endif
}


static uint32_t
sw(uint32_t crc, const unsigned char *p, size_t n)
{
    while (n > 0 && ((uintptr_t)p & 7) != 0) {
        crc = tab[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
        n--;
    }
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    while (n >= 8) {
        uint64_t w;

        memcpy(&w, p, 8);
        w ^= crc;
        crc = tab[7][w & 0xff] ^ tab[6][(w >> 8) & 0xff]
            ^ tab[5][(w >> 16) & 0xff] ^ tab[4][(w >> 24) & 0xff]
            ^ tab[3][(w >> 32) & 0xff] ^ tab[2][(w >> 40) & 0xff]
            ^ tab[1][(w >> 48) & 0xff] ^ tab[0][w >> 56];
        p += 8;
        n -= 8;
    }
#endif
    while (n-- > 0)
        crc = tab[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
    return crc;
}


#if defined(__x86_64__)
__attribute__((target("sse4.2"))) static uint32_t
hw(uint32_t crc, const unsigned char *p, size_t n)
{
    uint64_t c = crc;

    while (n > 0 && ((uintptr_t)p & 7) != 0) {
        c = __builtin_ia32_crc32qi((uint32_t)c, *p++);
        n--;
    }
    while (n >= 8) {
        uint64_t w;

        memcpy(&w, p, 8);
        c = __builtin_ia32_crc32di(c, w);
        p += 8;
        n -= 8;
    }
    while (n-- > 0)
        c = __builtin_ia32_crc32qi((uint32_t)c, *p++);
    return (uint32_t)c;
}
#endif


uint32_t
crc32c_sw(uint32_t crc, const void *buf, size_t len)
{
    pthread_once(&tab_once, tab_init);
    return ~sw(~crc, buf, len);
}


uint32_t
crc32c(uint32_t crc, const void *buf, size_t len)
{
    pthread_once(&tab_once, tab_init);
#if defined(__x86_64__)
    if (have_hw)
        return ~hw(~crc, buf, len);
#endif
    return ~sw(~crc, buf, len);
}
