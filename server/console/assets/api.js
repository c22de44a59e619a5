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
	accessible(document.getElementById('swagger-ui'));
});

// Accessibility (found by axe-core): Swagger UI renders selects and the dialog's
// close button without an accessible name, buttons whose name omits their
// visible text, and scrollable code samples the keyboard cannot reach. Fixed
// as Swagger UI renders them.
function accessible(root) {
	const fix = () => {
		for (const sel of root.querySelectorAll('select:not([aria-label]):not([aria-labelledby])')) {
			const row = sel.closest('tr[data-param-name]');
			const name = sel.id === 'servers' ? 'Server'
				: row ? `Value of parameter ${row.dataset.paramName}`
				: sel.closest('.content-type-wrapper, .response-control-media-type') ? 'Media type'
				: 'Choice';
			sel.setAttribute('aria-label', name);
		}
		for (const pre of root.querySelectorAll('pre.microlight:not([tabindex]), .highlight-code > pre:not([tabindex])')) {
			pre.setAttribute('tabindex', '0');
		}
		for (const b of root.querySelectorAll('button.close-modal:not([aria-label])'))
			b.setAttribute('aria-label', 'Close');
		// A button's accessible name must contain its visible text ("Authorize"
		// is labelled "Apply credentials"): both, visible text first.
		for (const b of root.querySelectorAll('button[aria-label]')) {
			const text = b.textContent.trim();
			const label = b.getAttribute('aria-label');
			if (text && !label.toLowerCase().includes(text.toLowerCase()))
				b.setAttribute('aria-label', `${text} (${label})`);
		}
	};
	new MutationObserver(fix).observe(root, {
		childList: true, subtree: true, attributes: true, attributeFilter: ['aria-label'],
	});
	fix();
}
