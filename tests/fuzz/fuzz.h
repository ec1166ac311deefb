/* fuzz: what every fuzz target shares.
 *
 * A target is tests/fuzz/fuzz_<name>.c defining LLVMFuzzerTestOneInput. Its
 * first comment names what it links, which is all run.sh and regress.sh need
 * to build it (a target whose sources are not in the tree yet is skipped):
 *
 *   fuzz-sources: lib/http/request.c
 *   fuzz-libs:    -lhttp_parser
 *   fuzz-args:    -max_len=20000         (libFuzzer options, optional)
 *
 * Seeds live in tests/fuzz/corpus/<name>/, an optional dictionary in
 * tests/fuzz/<name>.dict. The same file builds against libFuzzer
 * (run.sh) and against standalone_main.c (regress.sh, for `make check`). */
#ifndef TESTS_FUZZ_FUZZ_H
#define TESTS_FUZZ_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* An invariant broke: the input is a bug report. abort() so that libFuzzer
 * saves it as a crash-* file and the standalone runner fails. */
#define FUZZ_CHECK(cond)                                                    \
    do {                                                                    \
        if (!(cond)) {                                                      \
            fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__,      \
                    __LINE__, #cond);                                       \
            abort();                                                        \
        }                                                                   \
    } while (0)

/* Copies n bytes into a fresh allocation of exactly n (+1 for a NUL when
 * nul is set), so ASan flags a parser that reads one byte too far. */
static inline char *
fuzz_dup(const void *p, size_t n, int nul)
{
    char *s = malloc(n + (nul ? 1 : 0) + (n == 0 && !nul));
    if (s == NULL)
        abort();
    for (size_t i = 0; i < n; i++)
        s[i] = ((const char *)p)[i];
    if (nul)
        s[n] = '\0';
    return s;
}

/* Splits the input at the first '\n': *field is what precedes it, *rest
 * and *restlen what follows. Returns 0 if there was no '\n' (the whole
 * input is the field, the rest is empty). Text fields keep seeds readable. */
static inline int
fuzz_field(const uint8_t **data, size_t *size, const uint8_t **field,
           size_t *flen)
{
    size_t i;

    for (i = 0; i < *size && (*data)[i] != '\n'; i++)
        ;
    *field = *data;
    *flen = i;
    if (i == *size) {
        *data += i;
        *size = 0;
        return 0;
    }
    *data += i + 1;
    *size -= i + 1;
    return 1;
}

/* splitmix64: a cheap deterministic stream derived from the input, for
 * choices (split points, buffer sizes) the input does not spell out. */
static inline uint64_t
fuzz_rand(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static inline uint64_t
fuzz_hash(const uint8_t *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ULL;     /* FNV-1a */
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 0x100000001b3ULL;
    return h;
}

#endif
