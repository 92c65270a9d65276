// The operator console: asks for the admin token and the operator's name, lists the conversations
// handed to a person, and long-polls the inbox's events to stay live (a fetch can carry the token;
// an EventSource cannot). The token, status line and calls come from admin.js. Text from the server
// is only ever set with textContent.
(function () {
  "use strict";

  const { login, token, say, call, failedToOpen, onSignIn } = adminPage("console");
  const NAME_KEY = "chatbot-operator-name";
  const RETRY_MS = 2000; // after a failed long poll, so a down server is not hammered
  const desk = document.getElementById("console-desk");
  const list = document.getElementById("console-list");
  const empty = document.getElementById("console-empty");
  const panel = document.getElementById("console-conversation");
  const transcript = document.getElementById("console-transcript");
  const claimButton = document.getElementById("console-claim");
  const releaseButton = document.getElementById("console-release");
  const replyForm = document.getElementById("console-reply");
  const replyText = document.getElementById("console-text");
  let openSession = null;
  let polling = false;

  function operator() {
    return sessionStorage.getItem(NAME_KEY) || "";
  }

  function post(path, fields) {
    return call(path, { method: "POST", body: JSON.stringify({ operator: operator(), ...fields }) });
  }

  function sessionPath(sessionId) {
    return "conversations/" + encodeURIComponent(sessionId);
  }

  function describe(conversation) {
    const since = new Date(conversation.started_at * 1000).toLocaleTimeString();
    const who = conversation.operator ? "claimed by " + conversation.operator : "waiting";
    return conversation.channel + ", since " + since + ", " + who;
  }

  async function loadList() {
    const data = await call("conversations", { method: "GET" });
    list.replaceChildren(
      ...data.conversations.map((conversation) => {
        const item = document.getElementById("console-item").content.firstElementChild.cloneNode(true);
        item.dataset.session = conversation.session_id;
        const button = item.querySelector(".console-open");
        button.textContent = conversation.session_id;
        button.addEventListener("click", () => openConversation(conversation.session_id));
        item.querySelector(".review-meta").textContent = describe(conversation);
        return item;
      }),
    );
    empty.hidden = data.conversations.length > 0;
    return data.cursor;
  }

  function line(entry) {
    const role = entry.author.startsWith("operator:") ? "operator" : entry.author;
    const item = document.createElement("li");
    item.className = "console-line console-line-" + role;
    const author = document.createElement("span");
    author.className = "console-author";
    author.textContent = role === "operator" ? entry.author.slice("operator:".length) : role;
    const text = document.createElement("span");
    text.className = "console-line-text";
    text.textContent = entry.text;
    item.append(author, text);
    return item;
  }

  async function openConversation(sessionId) {
    openSession = sessionId;
    try {
      const data = await call(sessionPath(sessionId), { method: "GET" });
      document.getElementById("console-session").textContent = "Conversation " + sessionId;
      const holder = data.conversation.operator;
      document.getElementById("console-holder").textContent = describe(data.conversation);
      transcript.replaceChildren(...data.transcript.map(line));
      transcript.scrollTop = transcript.scrollHeight;
      claimButton.hidden = holder === operator();
      claimButton.disabled = holder !== null && holder !== operator();
      replyForm.hidden = holder !== operator();
      releaseButton.disabled = holder !== null && holder !== operator();
      panel.hidden = false;
    } catch (error) {
      if (error.status === 404) {
        panel.hidden = true; // given back or gone meanwhile
        openSession = null;
        return;
      }
      say(error.message, true);
    }
  }

  async function act(work) {
    try {
      await work();
      say("", false);
    } catch (error) {
      say(error.message, true);
    }
    await loadList().catch(() => null);
    if (openSession) {
      await openConversation(openSession);
    }
  }

  claimButton.addEventListener("click", () => act(() => post(sessionPath(openSession) + "/claim", {})));
  releaseButton.addEventListener("click", () =>
    act(async () => {
      await post(sessionPath(openSession) + "/release", {});
      say("Given back to the bot.", false);
    }),
  );
  replyForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = replyText.value.trim();
    if (!text) {
      return;
    }
    act(async () => {
      await post(sessionPath(openSession) + "/reply", { text: text });
      replyText.value = "";
    });
  });

  async function poll(cursor) {
    polling = true;
    while (true) {
      try {
        const data = await call("events?cursor=" + encodeURIComponent(cursor), { method: "GET" });
        cursor = data.cursor;
        if (data.events.length) {
          await loadList();
          if (openSession) {
            await openConversation(openSession);
          }
        }
      } catch (error) {
        say(error.message, true);
        await new Promise((resolve) => setTimeout(resolve, RETRY_MS));
        cursor = await loadList().catch(() => cursor);
      }
    }
  }

  async function open() {
    try {
      const cursor = await loadList();
      login.hidden = true;
      desk.hidden = false;
      say("Signed in as " + operator() + ".", false);
      if (!polling) {
        poll(cursor);
      }
    } catch (error) {
      failedToOpen(error);
    }
  }

  onSignIn(() => {
    sessionStorage.setItem(NAME_KEY, document.getElementById("console-operator").value.trim());
    open();
  });

  if (token() && operator()) {
    open();
  }
})();
