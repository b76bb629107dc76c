// Documents attached to the chat: upload, a chip per document with its indexing progress (polled until ready
// or failed), and the cited text of a source in a dialog.

import { api } from "./api.js";
import { button, el } from "./messages.js";

const POLL_MS = 700;

export class Attachments {
  // onChange(): the set of documents (or their states) changed; onError(error): show it.
  constructor(list, onChange, onError) {
    this.list = list;
    this.onChange = onChange;
    this.onError = onError;
    this.documents = new Map();
    this.timer = null;
    this.chatId = null;
  }

  indexing() {
    return [...this.documents.values()].some((d) => d.status === "indexing" || d.status === "uploading");
  }

  async load(chatId) {
    this.chatId = chatId;
    this.documents.clear();
    this.draw();
    if (!chatId) return;
    try {
      const { documents } = await api("GET", `/ui/api/documents?chat_id=${encodeURIComponent(chatId)}`);
      if (this.chatId !== chatId) return;
      for (const doc of documents) this.documents.set(doc.id, doc);
    } catch (error) {
      if (error.status !== 404 && error.status !== 405) this.onError(error);
    }
    this.draw();
    this.poll();
  }

  async upload(chatId, file) {
    const placeholder = { id: `upload-${Math.random()}`, name: file.name, status: "uploading", chunks_done: 0,
      chunks_total: 0 };
    this.documents.set(placeholder.id, placeholder);
    this.draw();
    const form = new FormData();
    form.append("chat_id", chatId);
    form.append("file", file, file.name);
    try {
      const doc = await api("POST", "/ui/api/documents", form);
      this.documents.delete(placeholder.id);
      this.documents.set(doc.id, doc);
    } catch (error) {
      this.documents.delete(placeholder.id);
      this.onError(new Error(`${file.name}: ${error.message}`));
    }
    this.draw();
    this.poll();
  }

  poll() {
    clearTimeout(this.timer);
    const waiting = [...this.documents.values()].filter((d) => d.status === "indexing");
    if (waiting.length === 0) return;
    this.timer = setTimeout(async () => {
      const chatId = this.chatId;
      for (const doc of waiting) {
        try {
          const fresh = await api("GET", `/ui/api/documents/${doc.id}`);
          if (this.chatId !== chatId) return;
          this.documents.set(fresh.id, fresh);
          if (fresh.status === "failed") this.onError(new Error(`${fresh.name}: ${fresh.error ?? "indexing failed"}`));
        } catch (error) {
          if (error.status === 404) this.documents.delete(doc.id);
          else this.onError(error);
        }
      }
      this.draw();
      this.poll();
    }, POLL_MS);
  }

  async remove(doc) {
    try {
      if (!doc.id.startsWith("upload-")) await api("DELETE", `/ui/api/documents/${doc.id}`);
      this.documents.delete(doc.id);
      this.draw();
    } catch (error) {
      this.onError(error);
    }
  }

  draw() {
    const chips = [...this.documents.values()].map((doc) => {
      const chip = el("li", { className: `chip ${doc.status}` });
      chip.dataset.status = doc.status;
      chip.append(el("span", { className: "chip-name", textContent: doc.name }));
      chip.append(el("span", { className: "chip-state", textContent: stateText(doc) }));
      if (doc.status === "indexing") {
        chip.append(el("progress", { max: Math.max(doc.chunks_total || 1, 1), value: doc.chunks_done || 0,
          ariaLabel: `Indexing ${doc.name}` }));
      }
      chip.append(button("×", () => this.remove(doc), { className: "chip-remove", ariaLabel: `Remove ${doc.name}` }));
      if (doc.error) chip.title = doc.error;
      return chip;
    });
    this.list.replaceChildren(...chips);
    this.list.hidden = chips.length === 0;
    this.onChange();
  }
}

function stateText(doc) {
  switch (doc.status) {
    case "uploading": return "uploading…";
    case "indexing": return doc.chunks_total ? `indexing ${doc.chunks_done}/${doc.chunks_total}` : "indexing…";
    case "ready": return "ready";
    case "failed": return `failed: ${doc.error ?? "unknown error"}`;
    default: return doc.status;
  }
}

export async function showSource(dialog, citation, onError) {
  try {
    const chunk = await api("GET", `/ui/api/documents/${citation.document_id}/chunks/${citation.ordinal}`);
    dialog.querySelector("#source-title").textContent = `[${citation.n}] ${chunk.name} · part ${chunk.ordinal + 1}`;
    dialog.querySelector("#source-text").textContent = chunk.text;
    dialog.showModal();
  } catch (error) {
    onError(error);
  }
}
