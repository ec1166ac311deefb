/* mime.c: extension -> Content-Type, a sorted table and a binary search. */
#include "lib/store/mime.h"

#include <stdlib.h>
#include <string.h>

#define EXT_MAX  8      /* longer than any extension in the table */

/* Served as source, never executed: see mime.h. */
#define TEXT     "text/plain; charset=utf-8"

struct mime {
    const char *ext;    /* lower case; the table is sorted by strcmp */
    const char *type;
};

static const struct mime table[] = {
    { "3g2",   "video/3gpp2" },
    { "3gp",   "video/3gpp" },
    { "3gpp",  "video/3gpp" },
    { "7z",    "application/x-7z-compressed" },
    { "aac",   "audio/aac" },
    { "amr",   "audio/amr" },
    { "apk",   "application/vnd.android.package-archive" },
    { "asc",   TEXT },
    { "avi",   "video/x-msvideo" },
    { "avif",  "image/avif" },
    { "bmp",   "image/bmp" },
    { "bz2",   "application/x-bzip2" },
    { "css",   TEXT },
    { "csv",   "text/csv; charset=utf-8" },
    { "doc",   "application/msword" },
    { "docx",  "application/vnd.openxmlformats-officedocument"
               ".wordprocessingml.document" },
    { "epub",  "application/epub+zip" },
    { "flac",  "audio/flac" },
    { "gif",   "image/gif" },
    { "gz",    "application/gzip" },
    { "heic",  "image/heic" },
    { "heif",  "image/heif" },
    { "htm",   TEXT },
    { "html",  TEXT },
    { "ico",   "image/x-icon" },
    { "ics",   "text/calendar; charset=utf-8" },
    { "jfif",  "image/jpeg" },
    { "jpeg",  "image/jpeg" },
    { "jpg",   "image/jpeg" },
    { "js",    TEXT },
    { "json",  "application/json" },
    { "jxl",   "image/jxl" },
    { "log",   TEXT },
    { "m4a",   "audio/mp4" },
    { "m4v",   "video/mp4" },
    { "md",    "text/markdown; charset=utf-8" },
    { "mid",   "audio/midi" },
    { "midi",  "audio/midi" },
    { "mjs",   TEXT },
    { "mkv",   "video/x-matroska" },
    { "mov",   "video/quicktime" },
    { "mp3",   "audio/mpeg" },
    { "mp4",   "video/mp4" },
    { "mpeg",  "video/mpeg" },
    { "mpg",   "video/mpeg" },
    { "odp",   "application/vnd.oasis.opendocument.presentation" },
    { "ods",   "application/vnd.oasis.opendocument.spreadsheet" },
    { "odt",   "application/vnd.oasis.opendocument.text" },
    { "oga",   "audio/ogg" },
    { "ogg",   "audio/ogg" },
    { "ogv",   "video/ogg" },
    { "opus",  "audio/ogg" },   /* Ogg Opus files; audio/opus is RTP */
    { "pdf",   "application/pdf" },
    { "png",   "image/png" },
    { "ppt",   "application/vnd.ms-powerpoint" },
    { "pptx",  "application/vnd.openxmlformats-officedocument"
               ".presentationml.presentation" },
    { "rar",   "application/vnd.rar" },
    { "rtf",   "application/rtf" },
    { "svg",   TEXT },          /* image/svg+xml runs scripts */
    { "tar",   "application/x-tar" },
    { "tgz",   "application/gzip" },
    { "tif",   "image/tiff" },
    { "tiff",  "image/tiff" },
    { "txt",   TEXT },
    { "vcf",   "text/vcard; charset=utf-8" },
    { "wav",   "audio/wav" },
    { "weba",  "audio/webm" },
    { "webm",  "video/webm" },
    { "webp",  "image/webp" },
    { "xht",   TEXT },
    { "xhtml", TEXT },
    { "xls",   "application/vnd.ms-excel" },
    { "xlsx",  "application/vnd.openxmlformats-officedocument"
               ".spreadsheetml.sheet" },
    { "xml",   TEXT },          /* XML may embed XHTML script */
    { "xsl",   TEXT },
    { "xslt",  TEXT },
    { "xz",    "application/x-xz" },
    { "zip",   "application/zip" },
    { "zst",   "application/zstd" },
};

static int
cmp(const void *key, const void *elem)
{
    return strcmp(key, ((const struct mime *)elem)->ext);
}

const char *
store_mime_type(const char *name)
{
    const struct mime *m;
    const char        *base, *dot;
    char               ext[EXT_MAX + 1];
    size_t             i, n;

    if (name == NULL)
        return STORE_MIME_DEFAULT;
    base = strrchr(name, '/');
    base = base != NULL ? base + 1 : name;
    dot = strrchr(base, '.');
    /* ".bashrc" is a hidden name, not a file of type "bashrc". */
    if (dot == NULL || dot == base)
        return STORE_MIME_DEFAULT;
    n = strlen(dot + 1);
    if (n == 0 || n > EXT_MAX)
        return STORE_MIME_DEFAULT;
    /* ASCII-only lowering: tolower() would consult the locale. */
    for (i = 0; i < n; i++) {
        char c = dot[1 + i];
        ext[i] = c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
    }
    ext[n] = '\0';
    m = bsearch(ext, table, sizeof(table) / sizeof(table[0]), sizeof(table[0]),
                cmp);
    return m != NULL ? m->type : STORE_MIME_DEFAULT;
}
