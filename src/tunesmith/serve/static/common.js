// What every page's scripts share: calls to the /v1 API with the sign-in cookie, errors as messages.
"use strict";
window.tunesmith = {
  async api(path, options = {}) {
    const response = await fetch(path, {credentials: "same-origin", ...options});
    const text = await response.text();
    let body = null;
    try { body = text ? JSON.parse(text) : null; } catch (_) { body = null; }
    if (!response.ok) {
      const message = body && body.error ? body.error.message : `${response.status} ${response.statusText}`;
      throw new Error(message);
    }
    return body;
  },
  when(seconds) {
    if (!seconds) return "–";
    const d = new Date(seconds * 1000), pad = (n) => String(n).padStart(2, "0");
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
      `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  },
  element(tag, text, className) {
    const node = document.createElement(tag);
    if (text !== undefined) node.textContent = text;  // never innerHTML: names and answers stay text
    if (className) node.className = className;
    return node;
  },
};
