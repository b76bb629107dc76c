// Model output to safe HTML: marked renders markdown, DOMPurify strips anything active (script, on* handlers,
// javascript: links), highlight.js colours code, and each code block gets a Copy button.

const PURIFY = { USE_PROFILES: { html: true }, FORBID_TAGS: ["style", "form", "input", "button", "textarea"],
  FORBID_ATTR: ["style"] };

let configured = false;

function configure() {
  if (configured) return;
  configured = true;
  window.marked.setOptions({ gfm: true, breaks: false });
  // Links from the model open in a new tab and never get the opener.
  window.DOMPurify.addHook("afterSanitizeAttributes", (node) => {
    if (node.tagName === "A") {
      node.setAttribute("target", "_blank");
      node.setAttribute("rel", "noopener noreferrer");
    }
  });
}

export function renderMarkdown(target, text) {
  configure();
  const html = window.marked.parse(text ?? "");
  target.replaceChildren(window.DOMPurify.sanitize(html, { ...PURIFY, RETURN_DOM_FRAGMENT: true }));
  for (const code of target.querySelectorAll("pre > code")) decorateCode(code);
}

function decorateCode(code) {
  if (window.hljs) {
    try {
      window.hljs.highlightElement(code);
    } catch { /* an unknown language stays plain */ }
  }
  const pre = code.parentElement;
  const copy = document.createElement("button");
  copy.type = "button";
  copy.className = "copy-code";
  copy.textContent = "Copy";
  copy.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(code.textContent);
      copy.textContent = "Copied";
    } catch {
      copy.textContent = "Copy failed";
    }
    setTimeout(() => { copy.textContent = "Copy"; }, 1500);
  });
  pre.classList.add("has-copy");
  pre.append(copy);
}

// Repaints a growing text at most once per animation frame, however fast deltas arrive.
export class Painter {
  constructor(target) {
    this.target = target;
    this.text = "";
    this.pending = false;
  }

  set(text) {
    this.text = text;
    if (this.pending) return;
    this.pending = true;
    requestAnimationFrame(() => {
      this.pending = false;
      // Follow the growing answer only if the reader is at the bottom, not while they scroll back up.
      const scroller = this.target.closest(".messages");
      const atBottom = scroller && scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 40;
      renderMarkdown(this.target, this.text);
      if (atBottom) scroller.scrollTop = scroller.scrollHeight;
    });
  }
}
