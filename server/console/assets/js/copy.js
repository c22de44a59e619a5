// Copy to the clipboard through navigator.clipboard.writeText, saying on the button
// whether it worked.
import { announce } from "./dom.js";

export async function copyText(text, button) {
	const label = button ? button.textContent : "";
	try {
		await navigator.clipboard.writeText(text);
		if (button)
			button.textContent = "Copied";
		announce("Copied to the clipboard");
	} catch (e) {
		if (button)
			button.textContent = "Copy failed";
		announce("Copy failed: select the text and copy it by hand");
	}
	if (button)
		setTimeout(() => { if (button.isConnected) button.textContent = label; }, 1500);
}
