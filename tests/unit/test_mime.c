/* test_mime.c: extension -> Content-Type. */
#include "tests/unit/unit.h"
#include "lib/store/mime.h"

#include <stdio.h>
#include <string.h>

#define TEXT "text/plain; charset=utf-8"

/* Every entry of the table: a binary search over a mis-sorted table loses
 * entries silently, and only asking for each one shows it. */
static const struct { const char *ext, *type; } all[] = {
    { "3g2", "video/3gpp2" }, { "3gp", "video/3gpp" },
    { "3gpp", "video/3gpp" }, { "7z", "application/x-7z-compressed" },
    { "aac", "audio/aac" }, { "amr", "audio/amr" },
    { "apk", "application/vnd.android.package-archive" },
    { "asc", TEXT }, { "avi", "video/x-msvideo" }, { "avif", "image/avif" },
    { "bmp", "image/bmp" }, { "bz2", "application/x-bzip2" },
    { "css", TEXT }, { "csv", "text/csv; charset=utf-8" },
    { "doc", "application/msword" },
    { "docx", "application/vnd.openxmlformats-officedocument"
              ".wordprocessingml.document" },
    { "epub", "application/epub+zip" }, { "flac", "audio/flac" },
    { "gif", "image/gif" }, { "gz", "application/gzip" },
    { "heic", "image/heic" }, { "heif", "image/heif" },
    { "htm", TEXT }, { "html", TEXT }, { "ico", "image/x-icon" },
    { "ics", "text/calendar; charset=utf-8" }, { "jfif", "image/jpeg" },
    { "jpeg", "image/jpeg" }, { "jpg", "image/jpeg" }, { "js", TEXT },
    { "json", "application/json" }, { "jxl", "image/jxl" },
    { "log", TEXT }, { "m4a", "audio/mp4" }, { "m4v", "video/mp4" },
    { "md", "text/markdown; charset=utf-8" }, { "mid", "audio/midi" },
    { "midi", "audio/midi" }, { "mjs", TEXT },
    { "mkv", "video/x-matroska" }, { "mov", "video/quicktime" },
    { "mp3", "audio/mpeg" }, { "mp4", "video/mp4" },
    { "mpeg", "video/mpeg" }, { "mpg", "video/mpeg" },
    { "odp", "application/vnd.oasis.opendocument.presentation" },
    { "ods", "application/vnd.oasis.opendocument.spreadsheet" },
    { "odt", "application/vnd.oasis.opendocument.text" },
    { "oga", "audio/ogg" }, { "ogg", "audio/ogg" }, { "ogv", "video/ogg" },
    { "opus", "audio/ogg" }, { "pdf", "application/pdf" },
    { "png", "image/png" }, { "ppt", "application/vnd.ms-powerpoint" },
    { "pptx", "application/vnd.openxmlformats-officedocument"
              ".presentationml.presentation" },
    { "rar", "application/vnd.rar" }, { "rtf", "application/rtf" },
    { "svg", TEXT }, { "tar", "application/x-tar" },
    { "tgz", "application/gzip" }, { "tif", "image/tiff" },
    { "tiff", "image/tiff" }, { "txt", TEXT },
    { "vcf", "text/vcard; charset=utf-8" }, { "wav", "audio/wav" },
    { "weba", "audio/webm" }, { "webm", "video/webm" },
    { "webp", "image/webp" }, { "xht", TEXT }, { "xhtml", TEXT },
    { "xls", "application/vnd.ms-excel" },
    { "xlsx", "application/vnd.openxmlformats-officedocument"
              ".spreadsheetml.sheet" },
    { "xml", TEXT }, { "xsl", TEXT }, { "xslt", TEXT },
    { "xz", "application/x-xz" }, { "zip", "application/zip" },
    { "zst", "application/zstd" },
};

static void
test_every_entry(void)
{
    char   name[32];
    size_t i;

    for (i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
        strcpy(name, "f.");
        strcat(name, all[i].ext);
        CU_ASSERT_STRING_EQUAL(store_mime_type(name), all[i].type);
        if (strcmp(store_mime_type(name), all[i].type) != 0)
            printf("    mismatch for %s\n", name);
    }
}

static void
test_common(void)
{
    CU_ASSERT_STRING_EQUAL(store_mime_type("photo.jpg"), "image/jpeg");
    CU_ASSERT_STRING_EQUAL(store_mime_type("IMG_0001.HEIC"), "image/heic");
    CU_ASSERT_STRING_EQUAL(store_mime_type("voice.m4a"), "audio/mp4");
    CU_ASSERT_STRING_EQUAL(store_mime_type("clip.mp4"), "video/mp4");
    CU_ASSERT_STRING_EQUAL(store_mime_type("a/b/report.pdf"),
                           "application/pdf");
    /* The last extension decides. */
    CU_ASSERT_STRING_EQUAL(store_mime_type("src.tar.gz"), "application/gzip");
    CU_ASSERT_STRING_EQUAL(store_mime_type("x.jpg.exe"), STORE_MIME_DEFAULT);
}

static void
test_case_insensitive(void)
{
    CU_ASSERT_STRING_EQUAL(store_mime_type("A.JPG"), "image/jpeg");
    CU_ASSERT_STRING_EQUAL(store_mime_type("a.JpEg"), "image/jpeg");
    CU_ASSERT_STRING_EQUAL(store_mime_type("a.Png"), "image/png");
    CU_ASSERT_STRING_EQUAL(store_mime_type("a.XLSX"),
                           "application/vnd.openxmlformats-officedocument"
                           ".spreadsheetml.sheet");
    CU_ASSERT_STRING_EQUAL(store_mime_type("a.OPUS"), "audio/ogg");
}

static void
test_active_content_is_text(void)
{
    static const char *names[] = { "x.html", "x.HTM", "x.svg", "x.SVG",
                                   "x.xhtml", "x.xml", "x.js", "x.xsl" };
    size_t i;

    for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        CU_ASSERT_STRING_EQUAL(store_mime_type(names[i]), TEXT);
        CU_ASSERT_PTR_NULL(strstr(store_mime_type(names[i]), "html"));
        CU_ASSERT_PTR_NULL(strstr(store_mime_type(names[i]), "svg"));
        CU_ASSERT_PTR_NULL(strstr(store_mime_type(names[i]), "xml"));
    }
}

static void
test_default(void)
{
    CU_ASSERT_STRING_EQUAL(STORE_MIME_DEFAULT, "application/octet-stream");
    CU_ASSERT_STRING_EQUAL(store_mime_type("file.unknownext"),
                           STORE_MIME_DEFAULT);
    CU_ASSERT_STRING_EQUAL(store_mime_type("file.qqq"), STORE_MIME_DEFAULT);
    CU_ASSERT_STRING_EQUAL(store_mime_type("README"), STORE_MIME_DEFAULT);
    CU_ASSERT_STRING_EQUAL(store_mime_type("dir.jpg/README"),
                           STORE_MIME_DEFAULT);
    CU_ASSERT_STRING_EQUAL(store_mime_type("trailing."), STORE_MIME_DEFAULT);
    CU_ASSERT_STRING_EQUAL(store_mime_type(""), STORE_MIME_DEFAULT);
    CU_ASSERT_STRING_EQUAL(store_mime_type(NULL), STORE_MIME_DEFAULT);
    /* Dotfiles: the leading dot is not an extension. */
    CU_ASSERT_STRING_EQUAL(store_mime_type(".png"), STORE_MIME_DEFAULT);
    CU_ASSERT_STRING_EQUAL(store_mime_type("a/.txt"), STORE_MIME_DEFAULT);
    CU_ASSERT_STRING_EQUAL(store_mime_type(".hidden.png"), "image/png");
    /* Near misses must not match a neighbour in the table. */
    CU_ASSERT_STRING_EQUAL(store_mime_type("a.jp"), STORE_MIME_DEFAULT);
    CU_ASSERT_STRING_EQUAL(store_mime_type("a.jpgg"), STORE_MIME_DEFAULT);
    CU_ASSERT_STRING_EQUAL(store_mime_type("a.mp"), STORE_MIME_DEFAULT);
    CU_ASSERT_STRING_EQUAL(store_mime_type("a.verylongextension"),
                           STORE_MIME_DEFAULT);
    /* Non-ASCII bytes neither crash nor match. */
    CU_ASSERT_STRING_EQUAL(store_mime_type("a.j\xc3\xa9g"), STORE_MIME_DEFAULT);
}

static CU_TestInfo tests[] = {
    { "every table entry", test_every_entry },
    { "common types", test_common },
    { "case-insensitive", test_case_insensitive },
    { "active content served as text", test_active_content_is_text },
    { "unknown, none, dotfile", test_default },
    CU_TEST_INFO_NULL
};

UNIT_SUITE("mime", NULL, NULL, tests);
