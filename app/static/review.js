// The review inbox page: asks for the admin token, then loads the inbox and charts as JSON with
// it and sends each decision (the token, status line and calls: admin.js). Text from the server
// is only ever set with textContent or value.
(function () {
  "use strict";

  const { login, token, say, call, failedToOpen, onSignIn } = adminPage("review");

  function describe(group) {
    const when = group.latest.replace("T", " ").replace("Z", " UTC");
    const guess = group.guess + " " + Math.round(group.confidence * 100) + "%";
    return group.count + (group.count === 1 ? " message" : " messages") + ", latest " + when +
      ", " + group.fallbacks + " fell back; best guess " + guess;
  }

  function option(value, label) {
    const element = document.createElement("option");
    element.value = value;
    element.textContent = label;
    return element;
  }

  function renderGroup(group, intents) {
    const item = document.getElementById("review-group").content.firstElementChild.cloneNode(true);
    item.dataset.group = group.id;
    item.querySelector(".review-text").textContent = group.text;
    item.querySelector(".review-meta").textContent = describe(group);
    const form = item.querySelector("form");
    form.elements.phrase.value = group.text;
    const select = form.elements.decision;
    for (const intent of intents) {
      select.append(option("intent:" + intent, "Add to intent " + intent));
    }
    select.append(option("new", "Create a new intent…"), option("out_of_scope", "Out of scope"));
    select.value = intents.includes(group.guess) ? "intent:" + group.guess : "out_of_scope";
    select.addEventListener("change", () => {
      for (const label of item.querySelectorAll(".review-new")) {
        label.hidden = select.value !== "new";
      }
    });
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      decide(group, form, item);
    });
    return item;
  }

  async function decide(group, form, item) {
    const decision = form.elements.decision.value;
    const body = { phrase: form.elements.phrase.value };
    if (decision === "new") {
      Object.assign(body, { action: "new_intent", intent: form.elements.tag.value, response: form.elements.response.value });
    } else if (decision === "out_of_scope") {
      body.action = "out_of_scope";
    } else {
      Object.assign(body, { action: "assign", intent: decision.slice("intent:".length) });
    }
    const button = form.querySelector("button");
    button.disabled = true;
    try {
      const result = await call("groups/" + group.id, { method: "POST", body: JSON.stringify(body) });
      say(result.message, false);
      item.remove();
      loadStats();
    } catch (error) {
      say(error.message, true);
    } finally {
      button.disabled = false;
    }
  }

  async function loadInbox() {
    const data = await call("inbox", { method: "GET" });
    const list = document.getElementById("review-groups");
    list.replaceChildren(...data.groups.map((group) => renderGroup(group, data.intents)));
    document.getElementById("review-heading").textContent =
      data.total ? "Messages to review (" + data.total + " groups)" : "Nothing to review";
    document.getElementById("review-inbox").hidden = false;
  }

  async function loadStats() {
    const data = await call("stats", { method: "GET" });
    for (const [name, url] of Object.entries(data.charts)) {
      document.getElementById("chart-" + name.replaceAll("_", "-")).src = url;
    }
    document.getElementById("review-charts").hidden = false;
  }

  async function open() {
    try {
      await loadInbox();
      await loadStats();
      login.hidden = true;
      say("", false);
    } catch (error) {
      failedToOpen(error);
    }
  }

  onSignIn(open);

  if (token()) {
    open();
  }
})();
