/*
 * wellknown.c - GET /.well-known/jwks.json and
 * GET /.well-known/oauth-authorization-server (RFC 8414). Both answer any
 * origin's simple CORS request (Access-Control-Allow-Origin: *).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>
#include <openssl/evp.h>

#include <tokend/crypto.h>

#include "log.h"
#include "oauth.h"
#include "server.h"

static int get_only(tk_worker *w, struct evhttp_request *req, tk_reqinfo *ri)
{
	enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
	if (cmd == EVHTTP_REQ_GET || cmd == EVHTTP_REQ_HEAD) {
		/* Public documents: any page may read them (simple CORS, no
		 * credentials), so that verifiers in browsers can fetch the keys. */
		evhttp_add_header(evhttp_request_get_output_headers(req), "Access-Control-Allow-Origin", "*");
		return 1;
	}
	evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "GET, HEAD");
	static const char body[] = "{\"error\":\"invalid_request\",\"error_description\":\"use GET\"}";
	tk_http_reply(w, req, ri, 405, "application/json", body, sizeof(body) - 1);
	return 0;
}

void tk_jwks_handle(tk_worker *w, struct evhttp_request *req, tk_reqinfo *ri)
{
	if (!get_only(w, req, ri))
		return;
	const tk_keyset *ks = w->keys;
	struct evkeyvalq *out = evhttp_request_get_output_headers(req);
	evhttp_add_header(out, "Cache-Control", w->srv->jwks_cache_control);
	evhttp_add_header(out, "ETag", ks->jwks_etag);
	const char *inm = evhttp_find_header(evhttp_request_get_input_headers(req), "If-None-Match");
	if (inm && strstr(inm, ks->jwks_etag))
		return tk_http_reply(w, req, ri, 304, NULL, NULL, 0);
	tk_http_reply(w, req, ri, 200, "application/jwk-set+json", ks->jwks_body, ks->jwks_len);
}

/* Build the metadata document for the given scope catalogue. */
static char *build_metadata(tk_server *srv, const tk_signer *signer, const char *scopes)
{
	const char *iss = srv->cfg->issuer;
	size_t ilen = strlen(iss);
	while (ilen && iss[ilen - 1] == '/')
		ilen--;
	char url[1024];
	json_t *o = json_object();
	json_object_set_new(o, "issuer", json_string(iss));
	snprintf(url, sizeof(url), "%.*s/oauth2/token", (int)ilen, iss);
	json_object_set_new(o, "token_endpoint", json_string(url));
	snprintf(url, sizeof(url), "%.*s/.well-known/jwks.json", (int)ilen, iss);
	json_object_set_new(o, "jwks_uri", json_string(url));
	json_object_set_new(o, "grant_types_supported", json_pack("[s]", "client_credentials"));
	json_object_set_new(o, "response_types_supported", json_array());
	json_object_set_new(o, "token_endpoint_auth_methods_supported",
	                    json_pack("[s,s]", "client_secret_basic", "client_secret_post"));
	snprintf(url, sizeof(url), "%.*s/oauth2/introspect", (int)ilen, iss);
	json_object_set_new(o, "introspection_endpoint", json_string(url));
	json_object_set_new(o, "introspection_endpoint_auth_methods_supported",
	                    json_pack("[s,s]", "client_secret_basic", "client_secret_post"));
	snprintf(url, sizeof(url), "%.*s/oauth2/revoke", (int)ilen, iss);
	json_object_set_new(o, "revocation_endpoint", json_string(url));
	json_object_set_new(o, "revocation_endpoint_auth_methods_supported",
	                    json_pack("[s,s]", "client_secret_basic", "client_secret_post"));
	json_t *sc = json_array();
	const char *s = scopes;
	while (s && *s) {
		const char *sp = strchr(s, ' ');
		size_t len = sp ? (size_t)(sp - s) : strlen(s);
		json_array_append_new(sc, json_stringn(s, len));
		s += len + (sp ? 1 : 0);
	}
	json_object_set_new(o, "scopes_supported", sc);
	json_t *algs = json_array();
	for (size_t i = 0; i < tk_signer_count(signer); i++) {
		const char *alg = NULL;
		tk_signer_key_at(signer, i, NULL, &alg);
		int dup = 0;
		size_t j;
		json_t *v;
		json_array_foreach(algs, j, v)
			dup |= strcmp(json_string_value(v), alg) == 0;
		if (!dup)
			json_array_append_new(algs, json_string(alg));
	}
	json_object_set_new(o, "access_token_signing_alg_values_supported", algs);
	/* Not a registered metadata name: where this server's Token Status List is. */
	if (srv->status_uri)
		json_object_set_new(o, "status_list_uri", json_string(srv->status_uri));
	char *body = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	return body;
}

typedef struct metareq {
	tk_worker *w;
	struct evhttp_request *req;
	tk_reqinfo ri;
	tk_dbjob job;
} metareq;

static void send_metadata(tk_worker *w, struct evhttp_request *req, tk_reqinfo *ri)
{
	tk_server *srv = w->srv;
	pthread_mutex_lock(&srv->meta_mu);
	char *body = srv->meta_body ? strdup(srv->meta_body) : NULL;
	pthread_mutex_unlock(&srv->meta_mu);
	if (!body) {
		evhttp_add_header(evhttp_request_get_output_headers(req), "Retry-After", "1");
		static const char unav[] = "{\"error\":\"temporarily_unavailable\"}";
		return tk_http_reply(w, req, ri, 503, "application/json", unav, sizeof(unav) - 1);
	}
	evhttp_add_header(evhttp_request_get_output_headers(req), "Cache-Control", "public, max-age=60");
	tk_http_reply(w, req, ri, 200, "application/json", body, strlen(body));
	free(body);
}

static void scopes_done(tk_dbjob *job)
{
	metareq *mr = job->arg;
	tk_server *srv = mr->w->srv;
	if (job->status == TK_DBJOB_OK && job->text) {
		char *body = build_metadata(srv, mr->w->keys->signer, job->text);
		if (body) {
			pthread_mutex_lock(&srv->meta_mu);
			free(srv->meta_body);
			srv->meta_body = body;
			pthread_mutex_unlock(&srv->meta_mu);
			if (mr->w->keys_gen != atomic_load(&srv->keys_gen))
				atomic_store(&srv->meta_stale, 1);   /* keys changed meanwhile: build again */
		}
	} else {
		atomic_store(&srv->meta_stale, 1);
	}
	free(job->text);
	send_metadata(mr->w, mr->req, &mr->ri);
	free(mr);
}

void tk_metadata_handle(tk_worker *w, struct evhttp_request *req, tk_reqinfo *ri)
{
	if (!get_only(w, req, ri))
		return;
	tk_server *srv = w->srv;
	if (!atomic_exchange(&srv->meta_stale, 0))
		return send_metadata(w, req, ri);
	metareq *mr = calloc(1, sizeof(*mr));
	if (!mr)
		return send_metadata(w, req, ri);
	mr->w = w;
	mr->req = req;
	mr->ri = *ri;
	mr->job.kind = TK_DBJOB_SCOPES;
	mr->job.done = scopes_done;
	mr->job.reply = w->mbox;
	mr->job.arg = mr;
	if (tk_dbpool_submit(srv->db, &mr->job) != 0) {
		atomic_store(&srv->meta_stale, 1);
		free(mr);
		return send_metadata(w, req, ri);
	}
}
