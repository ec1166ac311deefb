/* cors: the one place that says which headers a browser may send and read.
 *
 * A browser page on another origin can send only the CORS-safelisted
 * request headers unless the preflight (admin_options) allows the others,
 * and can read only the safelisted response headers (Cache-Control,
 * Content-Language, Content-Length, Content-Type, Expires, Last-Modified,
 * Pragma) unless the answer exposes them (conn_head_begin, on every answer
 * to an allowed origin, errors included). So each list names every header
 * the daemon acts on or a client needs: a header added to a protocol must
 * be added here too, or browsers are blocked while curl works.
 * docs/protocol.md, "CORS", mirrors both lists. */
#ifndef WORKER_CORS_H
#define WORKER_CORS_H

#define CORS_ALLOW_METHODS "GET, HEAD, PUT, PATCH, POST, DELETE, OPTIONS"

/* Request headers the daemon reads (grep http_header_get), less those a
 * browser sets itself (Host, Origin, Content-Length, Transfer-Encoding,
 * Expect are forbidden to pages). */
#define CORS_ALLOW_HEADERS                                                 \
    "Content-Type, Content-Range, Range, If-Range, If-None-Match, "        \
    "If-Modified-Since, "                                                  \
    "X-Content-SHA256, Digest, Repr-Digest, "                              \
    "X-Upload-Session-ID, X-Chunk-Number, X-Total-Chunks, X-Total-Size, "  \
    "Tus-Resumable, Upload-Length, Upload-Offset, Upload-Metadata, "       \
    "Upload-Checksum, Upload-Defer-Length, Upload-Concat, "                \
    "Upload-Complete, Upload-Incomplete, Upload-Draft-Interop-Version, "   \
    "X-HTTP-Method-Override"

/* Response headers beyond the safelisted ones that a client acts on. */
#define CORS_EXPOSE_HEADERS                                                \
    "ETag, Content-Range, Accept-Ranges, Content-Length, Location, Allow, " \
    "Retry-After, "                                                        \
    "Upload-Offset, Upload-Length, Upload-Defer-Length, Upload-Expires, "  \
    "Upload-Metadata, Upload-Concat, X-Upload-Ranges, "                    \
    "Tus-Resumable, Tus-Version, Tus-Extension, Tus-Max-Size, "            \
    "Tus-Checksum-Algorithm, "                                             \
    "Upload-Complete, Upload-Incomplete, Upload-Limit, "                   \
    "Upload-Draft-Interop-Version"

#endif
