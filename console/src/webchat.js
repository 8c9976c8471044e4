/** The web chat inbox's embed code: one script tag served by this hub (docs/channels/webchat.md). */

/** @param {string} inboxId @returns {string} */
export function embedSnippet(inboxId) {
  const src = `${location.origin}/widget/widget.js`;
  return `<script src="${src}" data-inbox="${inboxId}" async></script>`;
}
