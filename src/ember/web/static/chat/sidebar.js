// The chat list: newest first, search over titles and contents, rename in place, delete; it slides in over
// the page on narrow screens.

import { api } from "./api.js";
import { button, el } from "./messages.js";

const $ = (id) => document.getElementById(id);
const SEARCH_DELAY_MS = 250;

export class Sidebar {
  // hooks: open(id), current() -> id, rename(id, title), remove(id), onError(error), listed(chats)
  constructor(hooks) {
    this.hooks = hooks;
    this.chats = [];
    $("search").addEventListener("input", () => {
      clearTimeout(this.searchTimer);
      this.searchTimer = setTimeout(() => this.refresh().catch(hooks.onError), SEARCH_DELAY_MS);
    });
    $("open-sidebar").addEventListener("click", () => this.toggle(true));
    $("close-sidebar").addEventListener("click", () => this.toggle(false));
    $("scrim").addEventListener("click", () => this.toggle(false));
  }

  toggle(open) {
    document.body.classList.toggle("sidebar-open", open);
    $("scrim").hidden = !open;
    $("open-sidebar").setAttribute("aria-expanded", String(open));
  }

  close() {
    this.toggle(false);
  }

  async refresh() {
    const q = $("search").value.trim();
    const { chats } = await api("GET", `/ui/api/chats${q ? `?q=${encodeURIComponent(q)}` : ""}`);
    this.chats = chats;
    this.draw();
    this.hooks.listed?.(chats);
  }

  draw() {
    const current = this.hooks.current();
    const items = this.chats.map((chat) => {
      const item = el("li", { className: "chat-item" });
      item.dataset.id = chat.id;
      const open = button(chat.title || "New chat", () => this.hooks.open(chat.id), { className: "chat-open" });
      if (chat.id === current) open.setAttribute("aria-current", "page");
      item.append(open,
        button("✎", () => this.startRename(chat.id), { className: "icon chat-rename", ariaLabel: `Rename ${chat.title || "chat"}` }),
        button("×", () => this.confirmDelete(chat.id), { className: "icon chat-delete", ariaLabel: `Delete ${chat.title || "chat"}` }));
      return item;
    });
    if (items.length === 0) {
      items.push(el("li", { className: "chat-none", textContent: $("search").value ? "No chats match." : "No chats yet." }));
    }
    $("chat-list").replaceChildren(...items);
  }

  highlight(id) {
    for (const item of $("chat-list").querySelectorAll(".chat-open")) {
      if (item.parentElement.dataset.id === id) item.setAttribute("aria-current", "page");
      else item.removeAttribute("aria-current");
    }
  }

  startRename(id) {
    const item = $("chat-list").querySelector(`[data-id="${CSS.escape(id)}"]`);
    const chat = this.chats.find((c) => c.id === id);
    if (!item || !chat) return;
    this.toggle(true);
    const input = el("input", { type: "text", value: chat.title, className: "rename-box", ariaLabel: "Chat title" });
    const finish = async (save) => {
      if (finish.done) return;
      finish.done = true;
      try {
        if (save && input.value.trim() && input.value !== chat.title) {
          await this.hooks.rename(id, input.value.trim());
          if (this.hooks.current() === id) $("chat-title").textContent = input.value.trim();
        }
        await this.refresh();
      } catch (error) {
        this.hooks.onError(error);
        this.draw();
      }
    };
    input.addEventListener("keydown", (event) => {
      if (event.key === "Enter") finish(true);
      if (event.key === "Escape") finish(false);
    });
    input.addEventListener("blur", () => finish(true));
    item.replaceChildren(input);
    input.select();
  }

  async confirmDelete(id) {
    const chat = this.chats.find((c) => c.id === id);
    if (!window.confirm(`Delete "${chat?.title || "this chat"}" and its documents?`)) return;
    try {
      await this.hooks.remove(id);
      await this.refresh();
    } catch (error) {
      this.hooks.onError(error);
    }
  }
}
