/*
 * log.h - structured logs on stderr, one line per event.
 *
 * Every value is escaped (JSON string rules) so that client-supplied text can
 * neither break a line nor inject fields. Never pass a secret or a token.
 * Text format:  2026-11-24T01:02:03.456Z info event=token.issued req=... client_id="tk_..."
 * JSON format:  {"ts":"...","level":"info","event":"token.issued","req":"...",...}
 */
#ifndef TOKEND_LOG_H
#define TOKEND_LOG_H

typedef enum tk_log_level {
	TK_LOG_DEBUG = 0,
	TK_LOG_INFO,
	TK_LOG_WARNING,
	TK_LOG_ERROR,
} tk_log_level;

/* Set level ("debug".."error") and format ("text" or "json"). Thread-safe to call before threads start. */
void tk_log_init(const char *level, const char *format);

/* 1 if events at `lvl` are written. */
int tk_log_enabled(tk_log_level lvl);

/*
 * Log an event with key/value string pairs, terminated by NULL:
 *   tk_log(TK_LOG_INFO, "db.connected", "pool", "2", NULL);
 * A NULL value is skipped. Keys must be plain identifiers (not escaped).
 *
 * Typed values: a key starting with TK_LOG_NUM ("#") carries a number, one
 * starting with TK_LOG_BOOL ("?") a boolean ("1"/"0", "true"/"false",
 * "yes"/"no"); the sigil is not written, the value goes out bare (JSON
 * number or true/false; text: status=200). A value that is not what its key
 * promises is written as a string, so a caller's mistake never breaks a line:
 *   tk_log(TK_LOG_INFO, "server.started", TK_LOG_NUM "port", "8080", NULL);
 */
#define TK_LOG_NUM "#"
#define TK_LOG_BOOL "?"
void tk_log(tk_log_level lvl, const char *event, ...) __attribute__((sentinel));

/* Escape `in` (at most inlen bytes) as the inside of a JSON string into out
 * (truncated to outlen-1); returns out. Control characters become \u00XX. */
char *tk_log_escape(const char *in, size_t inlen, char *out, size_t outlen);

#endif
