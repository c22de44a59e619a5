// "Use this key": ready-to-run snippets for a new key, filled in with its key ID and the
// server's real token URL. Only the .env snippet carries the secret; the others read it
// from the environment (TOKEND_CLIENT_SECRET), so a snippet pasted into code holds none.

function q(s) {
	return JSON.stringify(s);
}

// -> [{id, label, text}]
export function snippets({ clientId, secret, tokenUrl, issuer }) {
	const insecure = tokenUrl.startsWith("http:");
	return [
		{
			id: "curl", label: "curl",
			text: [
				"# after: set -a; . ./.env; set +a",
				`curl -s -u "${clientId}:$TOKEND_CLIENT_SECRET" \\`,
				"  -d grant_type=client_credentials \\",
				`  ${tokenUrl}`,
			].join("\n"),
		},
		{
			id: "env", label: ".env",
			text: [
				`TOKEND_TOKEN_URL=${tokenUrl}`,
				`TOKEND_CLIENT_ID=${clientId}`,
				`TOKEND_CLIENT_SECRET=${secret}`,
			].join("\n"),
		},
		{
			id: "python", label: "Python",
			text: [
				"# pip install requests-oauthlib",
				"import os",
				"from oauthlib.oauth2 import BackendApplicationClient",
				"from requests_oauthlib import OAuth2Session",
				"",
				`client = BackendApplicationClient(client_id=${q(clientId)})`,
				"session = OAuth2Session(client=client)",
				"token = session.fetch_token(",
				`    token_url=${q(tokenUrl)},`,
				`    client_id=${q(clientId)},`,
				"    client_secret=os.environ[\"TOKEND_CLIENT_SECRET\"],",
				")",
				"print(token[\"expires_in\"])",
			].join("\n"),
		},
		{
			id: "node", label: "Node",
			text: [
				"// npm install openid-client",
				"import * as client from \"openid-client\";",
				"",
				"const config = new client.Configuration(",
				`  { issuer: ${q(issuer)}, token_endpoint: ${q(tokenUrl)} },`,
				`  ${q(clientId)},`,
				"  undefined,",
				"  client.ClientSecretBasic(process.env.TOKEND_CLIENT_SECRET),",
				");",
				insecure ? "client.allowInsecureRequests(config); // plain http: a local server only" : null,
				"const tokens = await client.clientCredentialsGrant(config);",
				"console.log(tokens.expires_in);",
			].filter((l) => l !== null).join("\n"),
		},
		{
			id: "go", label: "Go",
			text: [
				"// go get golang.org/x/oauth2",
				"package main",
				"",
				"import (",
				"\t\"context\"",
				"\t\"fmt\"",
				"\t\"os\"",
				"",
				"\t\"golang.org/x/oauth2/clientcredentials\"",
				")",
				"",
				"func main() {",
				"\tcfg := clientcredentials.Config{",
				`\t\tClientID:     ${q(clientId)},`,
				"\t\tClientSecret: os.Getenv(\"TOKEND_CLIENT_SECRET\"),",
				`\t\tTokenURL:     ${q(tokenUrl)},`,
				"\t}",
				"\ttok, err := cfg.Token(context.Background())",
				"\tif err != nil {",
				"\t\tpanic(err)",
				"\t}",
				"\tfmt.Println(tok.Expiry)",
				"}",
			].join("\n"),
		},
	];
}
