/* ietf_parse: the constants of the IETF resumable-upload draft
 * (draft-ietf-httpbis-resumable-upload) and the pure parts of reading its
 * headers: Structured Field booleans and integers, the interop version and
 * what each version changed, problem documents. No I/O, no state:
 * unit-tested in tests/unit/test_ietf_parse.c, fuzzed by
 * tests/fuzz/fuzz_ietf_parse.c. */
#ifndef WORKER_IETF_PARSE_H
#define WORKER_IETF_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define IETF_RESOURCE     ".ietf/"          /* <prefix>.ietf/<id> */
#define IETF_ID_BYTES     16                /* 128 bits */
#define IETF_ID_LEN       (2 * IETF_ID_BYTES)
#define IETF_PARTIAL      "application/partial-upload"
#define IETF_PROBLEM      "application/problem+json"
/* Upload-Draft-Interop-Version values served: 3 (draft -01, iOS 17), 4
 * (-02), 5 (-03: iOS 18.0, tus-js-client 'ietf-draft-03'), 6 (-04/-05:
 * iOS 18.1, tus-js-client 'ietf-draft-05'), 7 (-06..-08), 8 (-09 on). */
#define IETF_INTEROP_MIN  3
#define IETF_INTEROP_MAX  8
#define IETF_INTEROP_LIST "3, 4, 5, 6, 7, 8"

/* The problem types the drafts define (RFC 9457 documents). */
enum ietf_problem {
    IETF_PROBLEM_NONE,
    IETF_MISMATCHING_OFFSET,      /* 409, from interop 6 */
    IETF_COMPLETED_UPLOAD,        /* 400, interop 6 to 8 */
    IETF_INCONSISTENT_LENGTH,     /* 400, from interop 7 */
};

/* Structured Field (RFC 9651) Boolean item "?1"/"?0", parameters allowed
 * and ignored: 0, or -1 if absent or malformed. */
int  ietf_sf_bool(const char *v, bool *out);
/* Structured Field Integer item, non-negative (at most 15 digits),
 * parameters allowed and ignored: 0, or -1 if absent or malformed. */
int  ietf_sf_uint(const char *v, uint64_t *out);
/* Upload-Draft-Interop-Version: 0 with *out for a served version; -1
 * absent or malformed; -2 a well-formed version this server does not
 * serve (*out holds it). */
int  ietf_interop_parse(const char *v, int *out);
/* Whether the request says the upload is complete, from Upload-Complete
 * (interop 4 on) or its inverse Upload-Incomplete (interop 3). 0, or -1
 * with *why naming the header that is missing or malformed. */
int  ietf_complete_parse(int version, const char *complete,
                         const char *incomplete, bool *out,
                         const char **why);
/* The completion header of `version` for an answer: name and value. */
const char *ietf_complete_name(int version);
const char *ietf_complete_value(int version, bool complete);
/* Which version introduced what. */
bool ietf_needs_partial_ctype(int version);     /* PATCH Content-Type */
bool ietf_has_limit(int version);               /* Upload-Limit */
bool ietf_has_problem(int version, enum ietf_problem p);
/* Upload-Limit's value: max-size always, max-age (seconds left, interop
 * 7 on; "expires" in 6) when age >= 0. */
void ietf_limit_format(int version, uint64_t max_size, int64_t age,
                       char *buf, size_t len);
/* The problem document for p (offsets used by MISMATCHING_OFFSET): its
 * length, or 0 if buf is too small. */
size_t ietf_problem_json(enum ietf_problem p, uint64_t expected,
                         uint64_t provided, char *buf, size_t len);
bool ietf_id_valid(const char *id);

#endif
