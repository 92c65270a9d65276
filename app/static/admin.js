// What the admin pages (the review inbox and the operator console) share: the admin token kept for
// the browser tab, the page's status line, and JSON calls under the page's path that carry the
// token. admin.html loads this before the page's own script, which calls adminPage once.
// Text from the server is only ever set with textContent.

// The helpers for the page whose elements' ids start with `prefix` ("review", "console").
function adminPage(prefix) {
  "use strict";

  const TOKEN_KEY = "chatbot-admin-token";
  const BASE = location.pathname.replace(/\/$/, "") + "/"; // the JSON calls live under the page's path
  const status = document.getElementById(prefix + "-status");
  const login = document.getElementById(prefix + "-login");
  const tokenInput = document.getElementById(prefix + "-token");

  function token() {
    return sessionStorage.getItem(TOKEN_KEY) || "";
  }

  function say(message, isError) {
    status.textContent = message;
    status.classList.toggle("review-error", Boolean(isError));
  }

  // The JSON body of a call, or an Error carrying the server's message and the HTTP status.
  async function call(path, options) {
    const response = await fetch(BASE + path, {
      ...options,
      headers: { Authorization: "Bearer " + token(), "Content-Type": "application/json" },
    });
    const body = await response.json().catch(() => ({}));
    if (!response.ok) {
      const message = body.error ? body.error.message : "HTTP " + response.status;
      throw Object.assign(new Error(message), { status: response.status });
    }
    return body;
  }

  // Shows why opening the page failed; a refused token is forgotten so the form asks again.
  function failedToOpen(error) {
    if (error.status === 401) {
      sessionStorage.removeItem(TOKEN_KEY);
    }
    say(error.message, true);
  }

  // Keeps the token typed into the form (never in the field itself), then runs `open`.
  function onSignIn(open) {
    login.addEventListener("submit", (event) => {
      event.preventDefault();
      sessionStorage.setItem(TOKEN_KEY, tokenInput.value);
      tokenInput.value = "";
      open();
    });
  }

  return { login, token, say, call, failedToOpen, onSignIn };
}
