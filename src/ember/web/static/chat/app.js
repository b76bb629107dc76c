// The chat page: chat list, the chat on screen, the composer, streaming, settings and documents.
// Generation runs on the server; the page only follows /ui/api/messages/{id}/stream, so a reload or a second
// tab picks an answer up where it is.

import { api } from "./api.js";
import { Attachments, showSource } from "./documents.js";
import { MessageView } from "./messages.js";
import { Settings } from "./settings.js";
import { Sidebar } from "./sidebar.js";
import { Tree } from "./tree.js";

const $ = (id) => document.getElementById(id);
const emptyNote = $("empty");
const TITLE_RECHECK_MS = 5000;

const state = {
  chat: null, // the chat object on screen, or null for a new chat not yet created
  tree: new Tree(),
  models: [],
  streams: new Map(), // message id -> EventSource
};

function showError(error) {
  const box = $("alert");
  box.textContent = error.message ?? String(error);
  box.hidden = false;
  clearTimeout(showError.timer);
  showError.timer = setTimeout(() => { box.hidden = true; }, 12000);
}

function clearError() {
  $("alert").hidden = true;
}

const view = new MessageView($("messages"), {
  navigate: (message) => run(() => switchBranch(message)),
  edit: (message, text) => run(() => submitEdit(message, text)),
  regenerate: (message) => run(() => regenerate(message)),
  showSource: (citation) => showSource($("source-dialog"), citation, showError),
  busy: () => generating(),
  tree: () => state.tree,
});
const attachments = new Attachments($("attachments"), () => updateComposer(), showError);
const settings = new Settings({ onError: showError, getChat: () => state.chat, getModels: () => state.models,
  save: (fields) => saveChat(fields) });
const sidebar = new Sidebar({ open: (id) => run(() => openChat(id, true)), current: () => state.chat?.id,
  rename: (id, title) => api("PATCH", `/ui/api/chats/${id}`, { title }), remove: (id) => removeChat(id),
  onError: showError, listed: (chats) => retitle(chats) });

// A title made by the model in the background (or a rename) shows up with the next chat list.
function retitle(chats) {
  const listed = state.chat && chats.find((c) => c.id === state.chat.id);
  if (!listed || listed.title === state.chat.title) return;
  state.chat.title = listed.title;
  $("chat-title").textContent = listed.title || "New chat";
  document.title = `${listed.title || "New chat"} · Ember`;
}

async function run(work) {
  clearError();
  try {
    await work();
  } catch (error) {
    showError(error);
  }
}

// ---- the chat on screen -------------------------------------------------------------------------------

function path() {
  return state.tree.branch(state.chat?.leaf_id);
}

function generating() {
  return path().some((m) => m.status === "streaming");
}

function draw() {
  const shown = path();
  view.render(state.tree, shown);
  if (shown.length === 0) $("messages").append(emptyNote); // the hint for a new chat
  $("chat-title").textContent = state.chat?.title || "New chat";
  document.title = `${state.chat?.title || "New chat"} · Ember`;
  for (const message of shown) if (message.status === "streaming") follow(message.id);
  updateComposer();
  updateChatMenu();
  const box = $("messages");
  box.scrollTop = box.scrollHeight;
}

function updateComposer() {
  const busy = generating();
  const indexing = attachments.indexing();
  $("send").hidden = busy;
  $("stop").hidden = !busy;
  $("send").disabled = indexing;
  $("send").title = indexing ? "Wait until the attached documents are indexed" : "";
}

function updateChatMenu() {
  const id = state.chat?.id;
  $("chat-menu").hidden = !id;
  if (id) {
    $("export-json").href = `/ui/api/chats/${id}/export?format=json`;
    $("export-md").href = `/ui/api/chats/${id}/export?format=markdown`;
  }
}

async function openChat(id, push) {
  closeStreams();
  if (!id) {
    state.chat = null;
    state.tree = new Tree();
  } else {
    const chat = await api("GET", `/ui/api/chats/${encodeURIComponent(id)}`);
    state.tree = new Tree(chat.messages);
    delete chat.messages;
    state.chat = chat;
    selectModel(chat.model);
  }
  const url = id ? `/?chat=${encodeURIComponent(id)}` : "/";
  if (push && location.pathname + location.search !== url) history.pushState({ chat: id }, "", url);
  sidebar.highlight(id);
  sidebar.close();
  draw();
  settings.show(); // not on every redraw: that would undo what is being typed in the panel
  await attachments.load(id);
}

async function ensureChat() {
  if (state.chat) return state.chat;
  const body = { model: $("model").value, ...settings.pending() };
  state.chat = await api("POST", "/ui/api/chats", body);
  history.pushState({ chat: state.chat.id }, "", `/?chat=${state.chat.id}`);
  attachments.chatId = state.chat.id;
  await sidebar.refresh();
  sidebar.highlight(state.chat.id);
  return state.chat;
}

async function saveChat(fields) {
  if (!state.chat) return false; // a new chat keeps its settings until it is created
  state.chat = { ...state.chat, ...(await api("PATCH", `/ui/api/chats/${state.chat.id}`, fields)) };
  return true;
}

async function removeChat(id) {
  await api("DELETE", `/ui/api/chats/${id}`);
  if (state.chat?.id === id) await openChat(null, true);
}

// ---- sending, branches ---------------------------------------------------------------------------------

function added(messages, leafId) {
  for (const message of messages) state.tree.put(message);
  state.chat.leaf_id = leafId;
  draw();
}

async function send() {
  const input = $("input");
  const content = input.value.trim();
  if (!content || generating()) return;
  if (attachments.indexing()) throw new Error("Wait until the attached documents are indexed.");
  const chat = await ensureChat();
  const reply = await api("POST", `/ui/api/chats/${chat.id}/messages`, { content });
  input.value = "";
  autosize();
  added([reply.user, reply.assistant], reply.assistant.id);
}

async function regenerate(message) {
  if (generating()) return;
  const reply = await api("POST", `/ui/api/chats/${state.chat.id}/messages/${message.id}/regenerate`);
  added([reply.assistant], reply.assistant.id);
}

async function submitEdit(message, text) {
  if (!text.trim() || generating()) return;
  const reply = await api("POST", `/ui/api/chats/${state.chat.id}/messages/${message.id}/edit`, { content: text });
  added([reply.user, reply.assistant], reply.assistant.id);
}

async function switchBranch(message) {
  if (!message) return;
  const leafId = state.tree.deepestLatest(message.id);
  await saveChat({ leaf_id: leafId });
  draw();
}

async function stop() {
  const streaming = path().filter((m) => m.status === "streaming");
  await Promise.all(streaming.map((m) => api("POST", `/ui/api/messages/${m.id}/stop`)));
}

// ---- streaming -----------------------------------------------------------------------------------------

function follow(messageId) {
  if (state.streams.has(messageId)) return;
  const source = new EventSource(`/ui/api/messages/${messageId}/stream`);
  state.streams.set(messageId, source);
  let text = state.tree.get(messageId)?.content ?? "";
  const grow = (content) => {
    text = content;
    const message = state.tree.get(messageId);
    if (message) message.content = text; // a redraw meanwhile (branch switch, new chat list) keeps the text
    view.show(messageId, text);
  };
  source.addEventListener("snapshot", (event) => grow(JSON.parse(event.data).content ?? ""));
  source.addEventListener("delta", (event) => grow(text + (JSON.parse(event.data).content ?? "")));
  source.addEventListener("done", (event) => {
    source.close();
    state.streams.delete(messageId);
    const message = JSON.parse(event.data);
    state.tree.put(message);
    if (message.status === "failed") showError(new Error(`The answer failed: ${message.error ?? "unknown error"}`));
    draw();
    // The model may be writing a title in the background: look again a little later.
    sidebar.refresh().then(() => setTimeout(() => sidebar.refresh().catch(() => {}), TITLE_RECHECK_MS), showError);
  });
  source.addEventListener("error", () => {
    // EventSource retries by itself (and gets a fresh snapshot); a closed one was refused for good.
    if (source.readyState === EventSource.CLOSED) {
      state.streams.delete(messageId);
      showError(new Error("Lost the answer's stream; reload the page to follow it again."));
    }
  });
}

function closeStreams() {
  for (const source of state.streams.values()) source.close();
  state.streams.clear();
}

// ---- models ----------------------------------------------------------------------------------------------

function selectModel(name) {
  const select = $("model");
  if (![...select.options].some((o) => o.value === name)) {
    select.append(new Option(`${name} (not available)`, name));
  }
  select.value = name;
}

async function loadModels() {
  const { models } = await api("GET", "/ui/api/models");
  state.models = models;
  const select = $("model");
  select.replaceChildren(...models.map((m) => {
    const option = new Option(m.name, m.name);
    const defaults = Object.entries(m.defaults ?? {}).map(([k, v]) => `${k}=${v}`).join(", ");
    option.title = [defaults && `Admin defaults: ${defaults}`, m.locked?.length && `Locked: ${m.locked.join(", ")}`]
      .filter(Boolean).join(" · ");
    return option;
  }));
  if (models.length === 0) showError(new Error("No models are available to you; ask an admin to pull one."));
}

// ---- wiring --------------------------------------------------------------------------------------------

function autosize() {
  const input = $("input");
  input.style.height = "auto";
  input.style.height = `${Math.min(input.scrollHeight, 240)}px`;
}

function wire() {
  $("composer").addEventListener("submit", (event) => {
    event.preventDefault();
    run(send);
  });
  $("input").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      if (!$("send").disabled && !$("send").hidden) run(send);
    }
  });
  $("input").addEventListener("input", autosize);
  $("stop").addEventListener("click", () => run(stop));
  $("new-chat").addEventListener("click", () => run(() => openChat(null, true)));
  $("model").addEventListener("change", () => run(async () => {
    await saveChat({ model: $("model").value });
    settings.show();
  }));
  for (const link of document.querySelectorAll("#chat-menu a")) {
    link.addEventListener("click", () => { $("chat-menu").open = false; });
  }
  $("rename-chat").addEventListener("click", () => {
    $("chat-menu").open = false;
    sidebar.startRename(state.chat.id);
  });
  $("delete-chat").addEventListener("click", () => {
    $("chat-menu").open = false;
    sidebar.confirmDelete(state.chat.id);
  });
  $("attach").addEventListener("change", (event) => run(async () => {
    const files = [...event.target.files];
    event.target.value = "";
    if (files.length === 0) return;
    const chat = await ensureChat();
    await Promise.all(files.map((file) => attachments.upload(chat.id, file)));
  }));
  $("import-file").addEventListener("change", (event) => run(async () => {
    const file = event.target.files[0];
    event.target.value = "";
    if (!file) return;
    let data;
    try {
      data = JSON.parse(await file.text());
    } catch {
      throw new Error(`${file.name} is not JSON; import takes an Ember chat export (.json).`);
    }
    const chat = await api("POST", "/ui/api/chats/import", data);
    await sidebar.refresh();
    await openChat(chat.id, true);
  }));
  window.addEventListener("popstate", () => run(() => openChat(chatFromUrl(), false)));
}

function chatFromUrl() {
  return new URLSearchParams(location.search).get("chat");
}

async function boot() {
  wire();
  await run(loadModels);
  await run(() => sidebar.refresh());
  await run(() => openChat(chatFromUrl(), false));
  document.body.dataset.ready = "true";
}

if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", boot);
else boot();
