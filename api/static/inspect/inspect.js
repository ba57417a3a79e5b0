// The dialogd inspector: conversations, their timelines, a chat box and the model,
// all read through dialogd's own HTTP API (same origin: any worker of any instance
// answers). No framework and no build step. Everything a conversation holds came
// from a client, so it is only ever written as text (textContent), never as HTML.
"use strict";

const state = {
  token: sessionStorage.getItem("dialogd-token") || "",
  cursor: null,
  cid: null,
  templates: {},
  busy: false,
};

const $ = (id) => document.getElementById(id);

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

function showError(message) {
  const box = $("error");
  box.textContent = message;
  box.hidden = !message;
}

class AuthNeeded extends Error {}

async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  if (state.token) headers.Authorization = `Bearer ${state.token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const reply = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = await reply.json().catch(() => null);
  if (reply.status === 401 || reply.status === 403) {
    $("login").hidden = false;
    throw new AuthNeeded((data && data.message) || "this needs admin credentials");
  }
  if (!reply.ok) {
    throw new Error((data && data.message) || `${method} ${path}: HTTP ${reply.status}`);
  }
  return data;
}

const enc = encodeURIComponent;

// ---- the model and the domain ---------------------------------------------------

async function loadModel() {
  const status = await api("GET", "/status");
  $("model-name").textContent = status.model || "?";
  $("model-fingerprint").textContent = status.model_fingerprint || "";
  const models = $("models");
  models.replaceChildren();
  try {
    for (const model of await api("GET", "/models")) {
      const item = element("li", model.active ? "active" : "", model.name);
      item.title = model.fingerprint || "";
      models.append(item);
    }
  } catch (err) {
    if (err instanceof AuthNeeded) throw err;
    models.append(element("li", "", "(no model registry)"));
  }
  const domain = await api("GET", "/domain");
  state.templates = domain.templates || domain.responses || {};
  const facts = $("domain");
  facts.replaceChildren();
  for (const [label, value] of [
    ["intents", (domain.intents || []).length],
    ["entities", (domain.entities || []).length],
    ["slots", Object.keys(domain.slots || {}).length],
    ["actions", (domain.actions || []).length],
    ["responses", Object.keys(state.templates).length],
  ]) {
    facts.append(element("dt", "", label), element("dd", "", value));
  }
}

// ---- the list of conversations ------------------------------------------------------

async function loadConversations(reset) {
  if (reset) {
    state.cursor = null;
    $("conversations").replaceChildren();
  }
  let path = "/conversations?limit=50";
  if (state.cursor) path += `&cursor=${enc(state.cursor)}`;
  const page = await api("GET", path);
  const shown = new Set(
    [...$("conversations").children].map((item) => item.dataset.cid),
  );
  for (const cid of page.conversations.sort()) {
    if (!shown.has(cid)) $("conversations").append(conversationItem(cid));
  }
  state.cursor = page.next_cursor;
  $("more").hidden = !state.cursor;
}

function conversationItem(cid) {
  const item = element("li", cid === state.cid ? "selected" : "", cid);
  item.dataset.cid = cid;
  item.addEventListener("click", () => openConversation(cid).catch(report));
  return item;
}

// ---- one conversation ------------------------------------------------------------------

async function openConversation(cid) {
  state.cid = cid;
  for (const item of $("conversations").children) {
    item.classList.toggle("selected", item.dataset.cid === cid);
  }
  $("cid").textContent = cid;
  $("chat").hidden = false;
  await showTimeline();
}

async function showTimeline() {
  const tracker = await api(
    "GET",
    `/conversations/${enc(state.cid)}/tracker?include_events=ALL`,
  );
  const timeline = $("timeline");
  timeline.replaceChildren(...(tracker.events || []).map(eventItem));
  timeline.scrollTop = timeline.scrollHeight;
}

function when(event) {
  return event.timestamp ? new Date(event.timestamp * 1000).toLocaleTimeString() : "";
}

function percent(confidence) {
  return typeof confidence === "number" ? ` ${(confidence * 100).toFixed(1)}%` : "";
}

function eventItem(event) {
  const kind = event.event;
  if (kind === "user") {
    const item = element("li", "event user", event.text);
    const parse = event.parse_data || {};
    const meta = element("span", "meta");
    const intent = parse.intent || {};
    meta.append(element("span", "intent", `${intent.name || "?"}${percent(intent.confidence)}`));
    const entities = (parse.entities || []).map((e) => `${e.entity}=${JSON.stringify(e.value)}`);
    if (entities.length) meta.append(" ", element("span", "entities", entities.join(" ")));
    meta.append(` · ${when(event)}`);
    item.append(meta);
    return item;
  }
  if (kind === "bot") {
    const item = element("li", "event bot", event.text);
    item.append(element("span", "meta", when(event)));
    return item;
  }
  if (kind === "action") {
    const listen = event.name === "action_listen";
    const item = element("li", `event action${listen ? " listen" : ""}`, event.name);
    const chosen = event.policy ? `${event.policy}${percent(event.confidence)}` : "";
    if (!listen || chosen) item.append(element("span", "meta", [chosen, when(event)].filter(Boolean).join(" · ")));
    return item;
  }
  if (kind === "slot") {
    return element("li", "event slot", `${event.name} = ${JSON.stringify(event.value)}`);
  }
  if (kind === "restart" || kind === "session_started") {
    return element("li", "event boundary", kind === "restart" ? "restart" : "session started");
  }
  const { event: _, timestamp: __, ...rest } = event;
  return element("li", "event other", `${kind} ${JSON.stringify(rest)}`);
}

// ---- the chat box ---------------------------------------------------------------------------

// The chat box is a client of Rasa's REST channel: the server runs the bot (its
// responses, its action server, its forms) and the page shows the timeline after.
const RestChannel = {
  async send(cid, text) {
    await api("POST", "/webhooks/rest/webhook", { sender: cid, message: text });
  },
};

const channel = RestChannel;

async function sendMessage(submit) {
  submit.preventDefault();
  const input = $("chat-input");
  const text = input.value.trim();
  if (!text || !state.cid || state.busy) return;
  state.busy = true;
  $("chat-send").disabled = true;
  try {
    await channel.send(state.cid, text);
    input.value = "";
    await showTimeline();
  } finally {
    state.busy = false;
    $("chat-send").disabled = false;
  }
}

// ---- wiring --------------------------------------------------------------------------------

function report(err) {
  showError(err instanceof AuthNeeded ? `${err.message} Give a token above.` : String(err.message || err));
}

async function start() {
  showError("");
  await loadModel();
  await loadConversations(true);
  $("login").hidden = true;
}

document.addEventListener("DOMContentLoaded", () => {
  $("token").value = state.token;
  $("login").addEventListener("submit", (submit) => {
    submit.preventDefault();
    state.token = $("token").value.trim();
    sessionStorage.setItem("dialogd-token", state.token);
    start().catch(report);
  });
  $("refresh").addEventListener("click", () => loadConversations(true).catch(report));
  $("more").addEventListener("click", () => loadConversations(false).catch(report));
  $("new-conversation").addEventListener("submit", (submit) => {
    submit.preventDefault();
    const cid = $("new-cid").value.trim();
    if (!cid) return;
    $("new-cid").value = "";
    if (![...$("conversations").children].some((item) => item.dataset.cid === cid)) {
      $("conversations").prepend(conversationItem(cid));
    }
    openConversation(cid).catch(report);
  });
  $("chat").addEventListener("submit", (submit) => sendMessage(submit).catch(report));
  start().catch(report);
});
