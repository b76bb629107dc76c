// Drawing the branch on screen: one <article data-role=...> per message, markdown for answers, plain text for
// what the user typed, branch navigation, Edit / Regenerate, and sources under cited answers.

import { Painter, renderMarkdown } from "./markdown.js";

const el = (tag, props = {}, ...children) => {
  const node = document.createElement(tag);
  Object.assign(node, props);
  node.append(...children);
  return node;
};

export function button(label, onClick, props = {}) {
  const node = el("button", { type: "button", textContent: label, ...props });
  node.addEventListener("click", onClick);
  return node;
}

// actions: {navigate(message, delta), edit(message, text), regenerate(message), showSource(citation), busy()}
export class MessageView {
  constructor(container, actions) {
    this.container = container;
    this.actions = actions;
    this.painters = new Map(); // message id -> Painter of its body while it streams
  }

  render(tree, path) {
    this.painters.clear();
    const nodes = path.map((message) => this.article(tree, message));
    this.container.replaceChildren(...nodes);
    this.container.classList.toggle("is-empty", path.length === 0);
  }

  article(tree, message) {
    const node = el("article", { className: `message ${message.role}`, id: `m-${message.id}` });
    node.dataset.role = message.role;
    node.dataset.id = message.id;
    node.dataset.status = message.status;
    const body = el("div", { className: "body" });
    if (message.role === "assistant") {
      if (message.thinking) node.append(el("details", { className: "thinking" }, el("summary", { textContent: "Thinking" }),
        el("div", { className: "thinking-text", textContent: message.thinking })));
      renderMarkdown(body, message.content);
      if (message.status === "streaming") {
        body.classList.add("streaming");
        this.painters.set(message.id, new Painter(body));
      }
    } else {
      body.textContent = message.content;
    }
    node.append(body);
    const note = statusNote(message);
    if (note) node.append(note);
    if (message.citations?.length) node.append(this.sources(message.citations));
    node.append(this.toolbar(tree, message));
    return node;
  }

  toolbar(tree, message) {
    const bar = el("div", { className: "message-actions" });
    const siblings = tree.children(message.parent_id);
    if (siblings.length > 1) {
      const at = siblings.findIndex((m) => m.id === message.id);
      const nav = el("span", { className: "branches" });
      nav.append(
        button("<", () => this.actions.navigate(siblings[at - 1]), { disabled: at === 0,
          ariaLabel: "Previous branch", className: "branch-prev" }),
        el("span", { className: "branch-pos", textContent: `${at + 1}/${siblings.length}` }),
        button(">", () => this.actions.navigate(siblings[at + 1]), { disabled: at === siblings.length - 1,
          ariaLabel: "Next branch", className: "branch-next" }),
      );
      bar.append(nav);
    }
    if (message.role === "user") {
      bar.append(button("Edit", () => this.startEdit(message), { className: "edit" }));
    } else if (message.status !== "streaming") {
      bar.append(button("Regenerate", () => this.actions.regenerate(message), { className: "regenerate" }));
      bar.append(button("Copy", (event) => copyText(event.target, message.content), { className: "copy" }));
    }
    return bar;
  }

  startEdit(message) {
    if (this.actions.busy()) return;
    const node = document.getElementById(`m-${message.id}`);
    const box = el("textarea", { className: "edit-box", value: message.content, rows: 3, ariaLabel: "Edit message" });
    const save = button("Save & submit", () => this.actions.edit(message, box.value), { className: "primary" });
    const cancel = button("Cancel", () => node.replaceWith(this.article(this.actions.tree(), message)));
    node.replaceChildren(box, el("div", { className: "message-actions" }, save, cancel));
    box.focus();
  }

  sources(citations) {
    const list = el("div", { className: "sources" }, el("span", { textContent: "Sources:" }));
    for (const citation of citations) {
      list.append(button(`[${citation.n}] ${citation.name ?? ""}`.trim(), () => this.actions.showSource(citation), {
        className: "source", title: citation.snippet ?? "" }));
    }
    return list;
  }

  // Streaming: text so far (snapshot) or more of it (delta); painted once per frame.
  show(messageId, content) {
    this.painters.get(messageId)?.set(content);
  }
}

function statusNote(message) {
  if (message.status === "stopped") return el("p", { className: "status-note", textContent: "Stopped." });
  if (message.status === "failed") {
    return el("p", { className: "status-note error", textContent: `Failed: ${message.error ?? "unknown error"}` });
  }
  return null;
}

async function copyText(target, text) {
  try {
    await navigator.clipboard.writeText(text);
    target.textContent = "Copied";
  } catch {
    target.textContent = "Copy failed";
  }
  setTimeout(() => { target.textContent = "Copy"; }, 1500);
}

export { el };
