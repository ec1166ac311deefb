/* ietf_parse.c: see ietf_parse.h. Only the sliver of RFC 9651 the draft's
 * fields use: Boolean and Integer items with optional parameters. */
#include "worker/ietf_parse.h"

#include <stdio.h>
#include <string.h>

/* Parameters after an item: *( ";" *SP key [ "=" bare-item ] ), where a
 * key is lcalpha or "*" then lcalpha / DIGIT / "_" / "-" / "." / "*".
 * Values are checked only for being non-empty tokens without spaces:
 * nothing here reads them. Trailing spaces end the field. */
static int
params_ok(const char *p)
{
    while (*p == ';') {
        p++;
        while (*p == ' ')
            p++;
        if (!((*p >= 'a' && *p <= 'z') || *p == '*'))
            return -1;
        while ((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9')
               || *p == '_' || *p == '-' || *p == '.' || *p == '*')
            p++;
        if (*p == '=') {
            const char *v = ++p;
            while (*p && *p != ';' && *p != ' ' && *p != ',' && *p > 0x20
                   && *p < 0x7f)
                p++;
            if (p == v)
                return -1;
        }
    }
    while (*p == ' ')
        p++;
    return *p == '\0' ? 0 : -1;
}

static const char *
skip_sp(const char *v)
{
    while (*v == ' ')
        v++;
    return v;
}

int
ietf_sf_bool(const char *v, bool *out)
{
    if (v == NULL)
        return -1;
    v = skip_sp(v);
    if (v[0] != '?' || (v[1] != '0' && v[1] != '1') || params_ok(v + 2) < 0)
        return -1;
    *out = v[1] == '1';
    return 0;
}

int
ietf_sf_uint(const char *v, uint64_t *out)
{
    uint64_t n = 0;
    int digits = 0;

    if (v == NULL)
        return -1;
    v = skip_sp(v);
    for (; *v >= '0' && *v <= '9'; v++) {
        if (++digits > 15)          /* RFC 9651 3.3.1 */
            return -1;
        n = n * 10 + (uint64_t)(*v - '0');
    }
    if (digits == 0 || params_ok(v) < 0)
        return -1;
    *out = n;
    return 0;
}

int
ietf_interop_parse(const char *v, int *out)
{
    uint64_t n;
    if (ietf_sf_uint(v, &n) < 0)
        return -1;
    *out = n > 1000000 ? 1000000 : (int)n;
    return n >= IETF_INTEROP_MIN && n <= IETF_INTEROP_MAX ? 0 : -2;
}

int
ietf_complete_parse(int version, const char *complete, const char *incomplete,
                    bool *out, const char **why)
{
    bool b;
    if (version <= 3) {
        if (ietf_sf_bool(incomplete, &b) < 0) {
            *why = "Upload-Incomplete (?0 or ?1) is required by interop "
                   "version 3";
            return -1;
        }
        *out = !b;
        return 0;
    }
    if (ietf_sf_bool(complete, &b) < 0) {
        *why = "Upload-Complete (?0 or ?1) is required";
        return -1;
    }
    *out = b;
    return 0;
}

const char *
ietf_complete_name(int version)
{
    return version <= 3 ? "Upload-Incomplete" : "Upload-Complete";
}

const char *
ietf_complete_value(int version, bool complete)
{
    return (version <= 3 ? !complete : complete) ? "?1" : "?0";
}

bool
ietf_needs_partial_ctype(int version)
{
    return version >= 6;
}

bool
ietf_has_limit(int version)
{
    return version >= 6;
}

bool
ietf_has_problem(int version, enum ietf_problem p)
{
    switch (p) {
    case IETF_MISMATCHING_OFFSET:  return version >= 6;
    case IETF_COMPLETED_UPLOAD:    return version >= 6 && version <= 8;
    case IETF_INCONSISTENT_LENGTH: return version >= 7;
    default:                       return false;
    }
}

void
ietf_limit_format(int version, uint64_t max_size, int64_t age, char *buf,
                  size_t len)
{
    int n = snprintf(buf, len, "max-size=%llu", (unsigned long long)max_size);
    if (age >= 0 && n > 0 && (size_t)n < len)
        snprintf(buf + n, len - (size_t)n, ", %s=%lld",
                 version >= 7 ? "max-age" : "expires", (long long)age);
}

#define TYPE_BASE "https://iana.org/assignments/http-problem-types#"

size_t
ietf_problem_json(enum ietf_problem p, uint64_t expected, uint64_t provided,
                  char *buf, size_t len)
{
    int n;
    switch (p) {
    case IETF_MISMATCHING_OFFSET:
        n = snprintf(buf, len, "{\"type\":\"" TYPE_BASE
                     "mismatching-upload-offset\",\"title\":\"offset from "
                     "request does not match offset of resource\","
                     "\"expected-offset\":%llu,\"provided-offset\":%llu}\n",
                     (unsigned long long)expected,
                     (unsigned long long)provided);
        break;
    case IETF_COMPLETED_UPLOAD:
        n = snprintf(buf, len, "{\"type\":\"" TYPE_BASE "completed-upload\","
                     "\"title\":\"upload is already completed\"}\n");
        break;
    case IETF_INCONSISTENT_LENGTH:
        n = snprintf(buf, len, "{\"type\":\"" TYPE_BASE
                     "inconsistent-upload-length\",\"title\":\"inconsistent "
                     "length values for upload\"}\n");
        break;
    default:
        return 0;
    }
    return n > 0 && (size_t)n < len ? (size_t)n : 0;
}

bool
ietf_id_valid(const char *id)
{
    size_t i;
    for (i = 0; i < IETF_ID_LEN; i++)
        if (!((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'f')))
            return false;
    return id[i] == '\0';
}
