/* mime: Content-Type for a stored file, from its name's extension.
 *
 * Uploads are served from a domain that may be the XMPP or web-client
 * domain itself, so a type a browser would execute (HTML, XHTML, SVG, any
 * XML, JavaScript) is never returned: those files are served as text/plain,
 * which shows the source and, with the X-Content-Type-Options: nosniff the
 * worker sends, is never sniffed back into markup. Inline SVG in web clients
 * is the price; an upload domain turned into an XSS vector is the
 * alternative. Unknown and missing extensions get application/octet-stream. */
#ifndef LIB_STORE_MIME_H
#define LIB_STORE_MIME_H

#define STORE_MIME_DEFAULT  "application/octet-stream"

/* name may be a bare file name or a relative path; the extension is taken
 * from the last component, case-insensitively. A leading dot does not start
 * an extension (".bashrc" has none). Never NULL; a static string. */
const char *store_mime_type(const char *name);

#endif
