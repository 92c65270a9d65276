/*
 * Chat widget for the chatbot's /api/v1/chat endpoint. Any page embeds it with one tag:
 *
 *   <script src="https://BOT-HOST/static/widget.js" data-bot-url="https://BOT-HOST"
 *           data-title="Ask us" defer></script>
 *
 * data-bot-url  where the bot answers (default: the URL the script was loaded from, less /static/)
 * data-title    the heading of the chat panel (default "Chat")
 * data-welcome  the first bubble, shown but never sent (default below; "" for none)
 * data-mode     "launcher" (default: a button that opens a floating panel) or "inline"
 * data-container  with data-mode="inline": the id of the element the panel fills
 * data-lang     the language of the widget's texts, e.g. "de" (its lang attribute)
 * data-strings  JSON of texts in the bot's language, keyed as in STRINGS below; or one data-*
 *               attribute per text (data-placeholder, data-error-timeout...). English by default.
 *               Messages carry dir="auto", so Arabic or Hebrew text reads right to left.
 *
 * The widget lives in a shadow root so that the host page's CSS and its own never mix. Bot text is
 * only ever written with textContent: it is shown as text and never parsed as HTML. The session id
 * and the transcript are kept in sessionStorage, per bot URL, so a reload keeps the conversation.
 */
(function () {
  "use strict";

  const script = document.currentScript;
  if (!script || !script.src) {
    return; // settings come from the script's own tag: loaded as a module or copied inline, it has none
  }

  const REQUEST_TIMEOUT_MS = 10000;
  const MAX_STORED_MESSAGES = 100;
  const MAX_MESSAGE_CHARS = 1000; // the server's default CHATBOT_MAX_MESSAGE_CHARS
  const SVG_NS = "http://www.w3.org/2000/svg";
  const ICONS = {
    chat: "M4 4h16a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H9l-5 4v-4a2 2 0 0 1-2-2V6a2 2 0 0 1 2-2z",
    close: "M6 6l12 12M18 6L6 18",
    send: "M4 12l16-8-6 16-2.5-6.5z",
    restart: "M4 12a8 8 0 1 0 2.3-5.6M4 4v4h4",
  };

  // Every text the widget shows, in English; "{status}" and "{detail}" are filled in.
  const STRINGS = {
    title: "Chat",
    welcome: "Hi! Ask me a question to get started.",
    subtitle: "Typically replies instantly",
    handoff_subtitle: "A person will reply",
    handoff_notice: "A person from our team will answer here. You can add details meanwhile.",
    placeholder: "Type a message…",
    send: "Send",
    restart: "Start a new conversation",
    close: "Close chat",
    conversation: "Conversation",
    typing: "The bot is typing",
    suggested: "Suggested replies",
    retry: "Try again",
    you_said: "You said: ",
    bot_said: "The bot said: ",
    message_to: "Message to ",
    error_timeout: "The chat service took too long to answer. Please try again.",
    error_network: "Can't reach the chat service right now. Check your connection, then try again.",
    error_invalid: "The chat service sent an answer this page can't read. Please try again.",
    error_http: "The chat service had a problem (error {status}). Please try again in a moment.",
    error_rejected: "The message could not be answered: {detail}.",
  };

  const scriptUrl = new URL(script.src, document.baseURI);
  const data = script.dataset;
  const givenStrings = readStrings(data.strings);

  function readStrings(json) {
    try {
      const parsed = JSON.parse(json || "{}");
      return parsed && typeof parsed === "object" ? parsed : {};
    } catch (error) {
      return {}; // a broken data-strings attribute leaves the English texts
    }
  }

  // A text of the widget: its own data-* attribute, else data-strings, else English.
  function phrase(key, values) {
    const attribute = key.replace(/_([a-z])/g, (match, letter) => letter.toUpperCase());
    let value = data[attribute];
    if (value === undefined) {
      value = typeof givenStrings[key] === "string" ? givenStrings[key] : STRINGS[key];
    }
    return value.replace(/\{(\w+)\}/g, (match, name) => (values && name in values ? values[name] : match));
  }

  const settings = {
    botUrl: (data.botUrl || new URL("..", scriptUrl).href).replace(/\/+$/, ""),
    title: phrase("title") || STRINGS.title,
    welcome: phrase("welcome"),
    lang: data.lang || "",
    inline: data.mode === "inline",
    container: data.container || "",
    stylesheet: new URL("widget.css", scriptUrl).href,
  };
  const storageKey = "chatbot-widget:" + settings.botUrl;

  /* ---- state kept in sessionStorage ---- */

  function emptyState() {
    return { sessionId: null, messages: [], quickReplies: [], open: false, handoff: false, eventCursor: null };
  }

  function isText(value) {
    return typeof value === "string" && value.trim() !== "";
  }

  function loadState() {
    let stored = null;
    try {
      stored = JSON.parse(window.sessionStorage.getItem(storageKey) || "null");
    } catch (error) {
      return emptyState(); // storage blocked or its content corrupt: start a new conversation
    }
    if (!stored || !Array.isArray(stored.messages)) {
      return emptyState();
    }
    return {
      sessionId: typeof stored.sessionId === "string" ? stored.sessionId : null,
      messages: stored.messages.filter(
        (message) => message && (message.role === "user" || message.role === "bot") && isText(message.text),
      ),
      quickReplies: Array.isArray(stored.quickReplies) ? stored.quickReplies.filter(isText) : [],
      open: stored.open === true,
      handoff: stored.handoff === true,
      eventCursor: typeof stored.eventCursor === "string" ? stored.eventCursor : null,
    };
  }

  function saveState(state) {
    state.messages = state.messages.slice(-MAX_STORED_MESSAGES);
    try {
      window.sessionStorage.setItem(storageKey, JSON.stringify(state));
    } catch (error) {
      // Storage full or blocked: the conversation still works, it just will not survive a reload.
    }
  }

  /* ---- DOM helpers: elements and text only, never HTML strings ---- */

  function el(tag, attributes, children) {
    const element = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes || {})) {
      if (name === "text") {
        element.textContent = value;
      } else if (value === true) {
        element.setAttribute(name, "");
      } else if (value !== false && value !== null && value !== undefined) {
        element.setAttribute(name, String(value));
      }
    }
    for (const child of children || []) {
      element.appendChild(child);
    }
    return element;
  }

  function icon(name) {
    const svg = document.createElementNS(SVG_NS, "svg");
    svg.setAttribute("viewBox", "0 0 24 24");
    svg.setAttribute("aria-hidden", "true");
    svg.setAttribute("focusable", "false");
    svg.setAttribute("class", "cb-icon cb-icon-" + name);
    const path = document.createElementNS(SVG_NS, "path");
    path.setAttribute("d", ICONS[name]);
    svg.appendChild(path);
    return svg;
  }

  /* ---- talking to the bot ---- */

  class ChatError extends Error {
    constructor(kind, status, detail) {
      super(kind);
      this.kind = kind; // "network", "timeout", "http" or "invalid"
      this.status = status || 0;
      this.detail = detail || "";
    }

    get retryable() {
      return this.kind !== "http" || this.status === 429 || this.status >= 500;
    }

    describe() {
      switch (this.kind) {
        case "timeout":
          return phrase("error_timeout");
        case "network":
          return phrase("error_network");
        case "invalid":
          return phrase("error_invalid");
        default:
          if (!this.retryable && this.detail) {
            return phrase("error_rejected", { detail: this.detail.replace(/\.+$/, "") });
          }
          return phrase("error_http", { status: this.status });
      }
    }
  }

  // The browser's IANA time zone, so "tomorrow at 5 pm" means the customer's tomorrow; null when
  // the browser names none, or once the server has said it does not know the one named.
  let timeZone = browserTimeZone();

  function browserTimeZone() {
    try {
      const zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
      return typeof zone === "string" && zone ? zone : null;
    } catch (error) {
      return null;
    }
  }

  async function postMessage(text, sessionId) {
    try {
      return await postOnce(text, sessionId);
    } catch (error) {
      // A zone the server's database lacks must not stop the chat: ask again without it (the bot's zone).
      if (error.code === "unknown_time_zone" && timeZone !== null) {
        timeZone = null;
        return postOnce(text, sessionId);
      }
      throw error;
    }
  }

  async function postOnce(text, sessionId) {
    const controller = new AbortController();
    const timer = window.setTimeout(() => controller.abort(), REQUEST_TIMEOUT_MS);
    const payload = sessionId ? { session_id: sessionId, message: text } : { message: text };
    if (timeZone) {
      payload.time_zone = timeZone;
    }
    try {
      let response;
      try {
        response = await fetch(settings.botUrl + "/api/v1/chat", {
          method: "POST",
          mode: "cors",
          credentials: "omit",
          cache: "no-store",
          headers: { "Content-Type": "application/json", Accept: "application/json" },
          body: JSON.stringify(payload),
          signal: controller.signal,
        });
      } catch (error) {
        // A refused connection, a CORS refusal and a dropped network all look the same from here.
        throw new ChatError(controller.signal.aborted ? "timeout" : "network");
      }
      let body = null;
      try {
        body = await response.json();
      } catch (error) {
        if (controller.signal.aborted) {
          throw new ChatError("timeout");
        }
      }
      if (!response.ok) {
        const detail = body && body.error && typeof body.error.message === "string" ? body.error.message : "";
        const failure = new ChatError("http", response.status, detail);
        failure.code = body && body.error && typeof body.error.code === "string" ? body.error.code : "";
        throw failure;
      }
      if (!body || typeof body.response !== "string" || typeof body.session_id !== "string") {
        throw new ChatError("invalid", response.status);
      }
      return body;
    } finally {
      window.clearTimeout(timer);
    }
  }

  /* ---- the widget ---- */

  function createWidget(host) {
    const state = loadState();
    let busy = false;
    let failed = null; // the text whose sending failed, while its "Try again" button is shown
    let listener = null; // the EventSource of a handed-over conversation

    const root = host.attachShadow({ mode: "open" });
    const stylesheet = el("link", { rel: "stylesheet", href: settings.stylesheet });
    root.appendChild(stylesheet);

    const heading = el("h2", { class: "cb-title", id: "cb-title", text: settings.title });
    const restartButton = el("button", {
      type: "button",
      class: "cb-icon-button",
      "aria-label": phrase("restart"),
      title: phrase("restart"),
    }, [icon("restart")]);
    const closeButton = settings.inline ? null : el("button", {
      type: "button",
      class: "cb-icon-button",
      "aria-label": phrase("close"),
      title: phrase("close"),
    }, [icon("close")]);
    const subtitle = el("p", { class: "cb-subtitle" });
    const header = el("header", { class: "cb-header" }, [
      el("span", { class: "cb-avatar", "aria-hidden": "true" }, [icon("chat")]),
      el("div", { class: "cb-heading" }, [heading, subtitle]),
      restartButton,
      ...(closeButton ? [closeButton] : []),
    ]);

    const log = el("div", {
      class: "cb-log",
      role: "log",
      "aria-live": "polite",
      "aria-relevant": "additions",
      "aria-label": phrase("conversation"),
    });
    const typing = el("div", { class: "cb-row cb-row-bot cb-typing", role: "status", hidden: true }, [
      el("div", { class: "cb-bubble" }, [
        el("span", { class: "cb-sr", text: phrase("typing") }),
        el("span", { class: "cb-dot", "aria-hidden": "true" }),
        el("span", { class: "cb-dot", "aria-hidden": "true" }),
        el("span", { class: "cb-dot", "aria-hidden": "true" }),
      ]),
    ]);
    const quickReplies = el("div", {
      class: "cb-quick-replies",
      role: "group",
      "aria-label": phrase("suggested"),
      hidden: true,
    });
    // While a person has the conversation (handoff), the bot stays silent and this says who answers.
    const handoffNotice = el("p", {
      class: "cb-handoff",
      role: "status",
      hidden: true,
      text: phrase("handoff_notice"),
    });
    const scroller = el("div", { class: "cb-scroller" }, [log, typing, quickReplies, handoffNotice]);

    const input = el("input", {
      id: "cb-input",
      class: "cb-input",
      type: "text",
      name: "message",
      autocomplete: "off",
      enterkeyhint: "send",
      maxlength: MAX_MESSAGE_CHARS,
      placeholder: phrase("placeholder"),
      dir: "auto",
    });
    const sendButton = el("button", { type: "submit", class: "cb-send", "aria-label": phrase("send"), title: phrase("send") }, [
      icon("send"),
    ]);
    const form = el("form", { class: "cb-form" }, [
      el("label", { for: "cb-input", class: "cb-sr", text: phrase("message_to") + settings.title }),
      input,
      sendButton,
    ]);

    const panel = el("section", {
      class: "cb-panel",
      id: "cb-panel",
      role: settings.inline ? "region" : "dialog",
      "aria-labelledby": "cb-title",
      lang: settings.lang || null,
      hidden: !settings.inline && !state.open,
    }, [header, scroller, form]);

    const launcher = settings.inline ? null : el("button", {
      type: "button",
      class: "cb-launcher",
      "aria-label": settings.title,
      "aria-haspopup": "dialog",
      "aria-controls": "cb-panel",
      "aria-expanded": String(state.open),
      title: settings.title,
    }, [icon("chat"), icon("close")]);

    const frame = el("div", { class: settings.inline ? "cb-frame cb-inline" : "cb-frame cb-floating" }, [
      panel,
      ...(launcher ? [launcher] : []),
    ]);
    // Shown once its stylesheet has loaded, so the page never flashes unstyled widget parts.
    frame.hidden = true;
    const reveal = () => {
      frame.hidden = false;
      scrollToEnd();
    };
    stylesheet.addEventListener("load", reveal);
    stylesheet.addEventListener("error", reveal);
    root.appendChild(frame);

    function scrollToEnd() {
      scroller.scrollTop = scroller.scrollHeight;
    }

    function bubble(role, message, extraClass) {
      const speaker = phrase(role === "user" ? "you_said" : "bot_said");
      // dir="auto": each message takes the direction of its first strong letter (Arabic: right to
      // left). The prefix that only screen readers hear has its own dir, so the message alone decides.
      const body = el("div", { class: "cb-bubble", dir: "auto" }, [
        el("span", { class: "cb-sr", dir: "auto", text: speaker }),
      ]);
      body.appendChild(document.createTextNode(message)); // text, never markup
      return el("div", { class: "cb-row cb-row-" + role + (extraClass ? " " + extraClass : "") }, [body]);
    }

    function renderQuickReplies() {
      quickReplies.replaceChildren(
        ...state.quickReplies.map((label) => {
          const button = el("button", { type: "button", class: "cb-quick-reply", text: label });
          button.addEventListener("click", () => send(label));
          return button;
        }),
      );
      quickReplies.hidden = state.quickReplies.length === 0 || busy;
    }

    function render() {
      log.replaceChildren();
      if (settings.welcome) {
        log.appendChild(bubble("bot", settings.welcome, "cb-welcome"));
      }
      for (const message of state.messages) {
        log.appendChild(bubble(message.role, message.text));
      }
      renderQuickReplies();
      renderHandoff();
      updateSendButton();
      scrollToEnd();
    }

    function renderHandoff() {
      handoffNotice.hidden = !state.handoff;
      subtitle.textContent = phrase(state.handoff ? "handoff_subtitle" : "subtitle");
      if (state.handoff) {
        listen();
      } else {
        stopListening();
      }
    }

    // While a person has the conversation, their replies arrive as Server-Sent Events; the server
    // ends each stream after 30 s and the browser reconnects, resuming after the last event.
    function listen() {
      if (listener || !state.sessionId || typeof EventSource === "undefined") {
        return;
      }
      const after = state.eventCursor ? "?cursor=" + encodeURIComponent(state.eventCursor) : "";
      listener = new EventSource(
        settings.botUrl + "/api/v1/sessions/" + encodeURIComponent(state.sessionId) + "/events" + after,
      );
      listener.addEventListener("message", (event) => {
        let data = null;
        try {
          data = JSON.parse(event.data);
        } catch (error) {
          return; // not ours: ignore it
        }
        state.eventCursor = event.lastEventId || state.eventCursor;
        if (data && data.type === "reply" && isText(data.text)) {
          addMessage("bot", data.text);
        } else if (data && data.type === "released") {
          state.handoff = false;
          saveState(state);
          renderHandoff();
        }
      });
    }

    function stopListening() {
      if (listener) {
        listener.close();
        listener = null;
      }
    }

    function addMessage(role, text) {
      state.messages.push({ role: role, text: text });
      saveState(state);
      log.appendChild(bubble(role, text));
      scrollToEnd();
    }

    function clearError() {
      failed = null;
      for (const notice of log.querySelectorAll(".cb-row-error")) {
        notice.remove();
      }
    }

    function showError(error, text) {
      const notice = el("div", { class: "cb-row cb-row-error", role: "alert" }, [
        el("p", { class: "cb-error-text", dir: "auto", text: error.describe() }),
      ]);
      if (error.retryable) {
        failed = text;
        const retry = el("button", { type: "button", class: "cb-retry", text: phrase("retry") });
        retry.addEventListener("click", () => {
          const again = failed;
          clearError();
          input.focus();
          send(again, true);
        });
        notice.appendChild(retry);
      } else if (!input.value) {
        input.value = text; // let the user shorten or reword it
      }
      log.appendChild(notice);
      scrollToEnd();
    }

    function setBusy(value) {
      busy = value;
      typing.hidden = !value;
      renderQuickReplies();
      updateSendButton();
      scrollToEnd();
    }

    function updateSendButton() {
      sendButton.disabled = busy || !input.value.trim();
    }

    async function send(rawText, isRetry) {
      const text = String(rawText || "").trim();
      if (!text || busy) {
        return false; // nothing to send, or an answer is still on its way
      }
      clearError();
      if (!isRetry) {
        addMessage("user", text);
      }
      state.quickReplies = [];
      saveState(state);
      setBusy(true);
      try {
        const answer = await postMessage(text, state.sessionId);
        state.sessionId = answer.session_id;
        state.quickReplies = Array.isArray(answer.quick_replies) ? answer.quick_replies.filter(isText) : [];
        state.handoff = answer.handoff === true;
        if (isText(answer.response)) {
          addMessage("bot", answer.response); // empty while a person has the conversation
        } else {
          saveState(state);
        }
        renderHandoff();
      } catch (error) {
        showError(error instanceof ChatError ? error : new ChatError("invalid"), text);
      } finally {
        setBusy(false);
      }
      return true;
    }

    function open() {
      panel.hidden = false;
      launcher.setAttribute("aria-expanded", "true");
      state.open = true;
      saveState(state);
      scrollToEnd();
      input.focus();
    }

    function close() {
      const hadFocus = root.activeElement !== null;
      panel.hidden = true;
      launcher.setAttribute("aria-expanded", "false");
      state.open = false;
      saveState(state);
      if (hadFocus) {
        launcher.focus();
      }
    }

    form.addEventListener("submit", (event) => {
      event.preventDefault();
      if (!busy && input.value.trim()) {
        const text = input.value;
        input.value = "";
        send(text, false);
      }
    });
    input.addEventListener("input", updateSendButton);
    restartButton.addEventListener("click", () => {
      if (busy) {
        return;
      }
      Object.assign(state, emptyState(), { open: state.open });
      saveState(state);
      clearError();
      render();
      input.focus();
    });
    if (launcher) {
      launcher.addEventListener("click", () => (panel.hidden ? open() : close()));
      closeButton.addEventListener("click", close);
      panel.addEventListener("keydown", (event) => {
        if (event.key === "Escape") {
          event.stopPropagation();
          close();
        }
      });
    }

    render();
  }

  function mount() {
    if (document.querySelector('[data-chatbot-widget="' + CSS.escape(settings.botUrl) + '"]')) {
      return; // the snippet was pasted twice: one widget per bot
    }
    let parent = document.body;
    if (settings.inline) {
      const container = document.getElementById(settings.container);
      if (container) {
        parent = container;
      } else {
        console.warn("chat widget: no element with id " + JSON.stringify(settings.container) + "; showing a launcher");
        settings.inline = false;
      }
    }
    const host = el("div", {
      class: settings.inline ? "chatbot-widget chatbot-widget-inline" : "chatbot-widget",
      "data-chatbot-widget": settings.botUrl,
    });
    parent.appendChild(host);
    createWidget(host);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", mount, { once: true });
  } else {
    mount();
  }
})();
