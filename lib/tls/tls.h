/* tls: the server's OpenSSL context, built from tls.certificate / tls.key.
 *
 * Made by the master (which can read a root-only key) before it forks, and
 * inherited by the workers; a reload builds a new one and keeps the old one
 * if the new files are broken, so a bad certificate renewal never takes the
 * service down. TLS 1.2 is the floor, ciphers are OpenSSL's defaults, ALPN
 * offers http/1.1 only. */
#ifndef LIB_TLS_TLS_H
#define LIB_TLS_TLS_H

#include <stddef.h>
#include <openssl/ssl.h>

struct conf;

SSL_CTX *tls_context_create(const struct conf *c, char *err, size_t errlen);
void     tls_context_free(SSL_CTX *ctx);

#endif
