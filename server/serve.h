/* serve.h - `tokend serve`: run the server until SIGTERM or SIGINT. */
#ifndef TOKEND_SERVE_H
#define TOKEND_SERVE_H

/* argc/argv start at "serve". Returns the exit status. */
int tk_serve_main(int argc, char **argv);

#endif
