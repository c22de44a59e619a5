/*
 * export.h - what libtokend exports. The library is built with hidden
 * visibility by default; every function of the public headers carries
 * TK_API, and nothing else leaves the shared object.
 */
#ifndef TOKEND_EXPORT_H
#define TOKEND_EXPORT_H

#if defined(__GNUC__) || defined(__clang__)
#define TK_API __attribute__((visibility("default")))
#else
#define TK_API
#endif

#endif
