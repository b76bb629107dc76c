// Admin: models. Pull with progress, delete, and the loaded models with their queue. Everything goes through
// the gateway's own /api/* routes as this admin (session cookie + CSRF token), so it is limited and audited.
"use strict";
(() => {
  const { request, showError, el, csrf } = ember;
  const installed = document.querySelector("#installed tbody");
  const loaded = document.querySelector("#loaded tbody");
  const form = document.getElementById("pull");
  const input = document.getElementById("pull-model");
  const button = document.getElementById("pull-button");
  const progress = document.getElementById("pull-progress");
  const bar = document.getElementById("pull-bar");
  const status = document.getElementById("pull-status");

  function bytes(n) {
    if (!Number.isFinite(n) || n <= 0) return "";
    const units = ["B", "KB", "MB", "GB", "TB"];
    const i = Math.min(units.length - 1, Math.floor(Math.log(n) / Math.log(1000)));
    return `${(n / 1000 ** i).toFixed(i ? 1 : 0)} ${units[i]}`;
  }

  function when(iso) {
    const time = new Date(iso);
    return Number.isNaN(time.getTime()) ? "" : time.toLocaleString();
  }

  async function remove(name) {
    if (!confirm(`Delete ${name} from every engine? Chats using it stop working until it is pulled again.`)) return;
    showError(null);
    try { await request("DELETE", "/api/delete", { model: name }); } catch (error) { showError(error); }
    await refresh();
  }

  function installedRow(model) {
    const details = model.details || {};
    return el("tr", { "data-model": model.name },
      el("td", { text: model.name }), el("td", { text: details.parameter_size || "" }),
      el("td", { text: details.quantization_level || "" }), el("td", { text: bytes(model.size) }),
      el("td", { text: when(model.modified_at) }),
      el("td", {}, el("div", { class: "actions" }, el("button", { class: "danger", text: "Delete",
        "aria-label": `Delete ${model.name}`, onclick: () => remove(model.name) }))));
  }

  function loadedRow(model) {
    const queued = model.queued || 0;
    return el("tr", { "data-model": model.name },
      el("td", { text: model.name }), el("td", { text: String(model.active || 0) }),
      el("td", {}, el("span", { class: queued ? "badge pending" : "badge", text: String(queued) })),
      el("td", { text: String(model.slots ?? "") }), el("td", { text: String(model.context_length ?? "") }),
      el("td", { text: bytes(model.size) }), el("td", { text: when(model.expires_at) }));
  }

  function fill(body, empty, rows) {
    body.replaceChildren(...rows);
    document.getElementById(empty).hidden = rows.length > 0;
  }

  async function refreshLoaded() {
    const ps = await request("GET", "/api/ps");
    fill(loaded, "loaded-empty", ps.models.map(loadedRow));
  }

  async function refresh() {
    try {
      const [tags] = await Promise.all([request("GET", "/api/tags"), refreshLoaded()]);
      fill(installed, "installed-empty", tags.models.map(installedRow));
    } catch (error) { showError(error); }
  }

  // One NDJSON progress line: {"status", "total"?, "completed"?} or {"error"}.
  function show(line) {
    if (line.error) throw new Error(line.error);
    const total = Number(line.total) || 0;
    const done = Number(line.completed) || 0;
    if (total > 0) { bar.max = total; bar.value = done; } else { bar.removeAttribute("value"); }
    const amount = total > 0 ? ` ${bytes(done) || "0 B"} of ${bytes(total)} (${Math.floor((100 * done) / total)}%)` : "";
    status.textContent = `${line.node ? `${line.node}: ` : ""}${line.status || ""}${amount}`;
  }

  async function readLines(response) {
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffered = "";
    let last = null;
    for (;;) {
      const { value, done } = await reader.read();
      buffered += decoder.decode(value || new Uint8Array(), { stream: !done });
      const lines = buffered.split("\n");
      buffered = done ? "" : lines.pop();
      for (const text of lines) {
        if (!text.trim()) continue;
        last = JSON.parse(text);
        show(last);
      }
      if (done) return last;
    }
  }

  async function pull(name) {
    const response = await fetch("/api/pull", {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf() },
      body: JSON.stringify({ model: name, stream: true }),
    });
    if (response.status === 401) { location.href = "/login"; return; }
    if (!response.ok) {
      let message = `${response.status} ${response.statusText}`;
      try { const data = await response.json(); message = data.error?.message || data.error || message; } catch { /* keep */ }
      throw new Error(`Pull of ${name} failed: ${message}`);
    }
    const last = await readLines(response);
    if (!last || last.status !== "success") throw new Error(`Pull of ${name} ended without success`);
    bar.max = 1; bar.value = 1;
    status.textContent = `${name}: pulled.`;
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const name = input.value.trim();
    if (!name) return;
    showError(null);
    progress.hidden = false;
    bar.max = 1; bar.removeAttribute("value");
    status.textContent = `${name}: starting…`;
    button.disabled = true;
    try {
      await pull(name);
    } catch (error) {
      status.textContent = `${name}: failed.`;
      showError(error.message.startsWith("Pull of") ? error : new Error(`Pull of ${name} failed: ${error.message}`));
    } finally {
      button.disabled = false;
      await refresh();
    }
  });

  refresh();
  // The queue changes by the second; a light poll of /api/ps keeps the loaded table current while the page is
  // visible (every poll is a row in the audit log, hence not faster).
  setInterval(() => { if (!document.hidden) refreshLoaded().catch(showError); }, 10000);
})();
