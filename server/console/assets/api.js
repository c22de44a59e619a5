// The admin API documentation (/console/api): Swagger UI from the npm package
// swagger-ui-dist (pinned by server/console/package-lock.json, embedded at
// build time) rendering tokend's own OpenAPI description. No inline script:
// this file is the bootstrap. "Authorize" uses the description's oauth2
// clientCredentials scheme against /oauth2/token on this origin; the token
// stays in this page's memory (persistAuthorization off: never localStorage).
'use strict';

window.addEventListener('DOMContentLoaded', () => {
	/* global SwaggerUIBundle */
	window.ui = SwaggerUIBundle({
		url: '/admin/v1/openapi.yaml',
		dom_id: '#swagger-ui',
		presets: [SwaggerUIBundle.presets.apis],
		layout: 'BaseLayout',
		deepLinking: false,
		persistAuthorization: false,
		validatorUrl: null,
		withCredentials: false,
		defaultModelsExpandDepth: 0,
	});
});
