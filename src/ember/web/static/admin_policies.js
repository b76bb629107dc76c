// Admin: per-model policies. Default system prompt and options, and which of them callers may not change.
"use strict";
(() => {
  const { request, showError, el } = ember;
  const body = document.querySelector("#policies tbody");
  const form = document.getElementById("editor");
  const model = document.getElementById("policy-model");
  const system = document.getElementById("policy-system");
  const lockSystem = document.getElementById("lock-system");
  const rows = document.getElementById("option-rows");
  const saved = document.getElementById("saved");
  let optionTypes = {};

  const url = (name) => `/ui/api/admin/policies/${encodeURIComponent(name)}`;

  // What the admin typed, as the JSON the server checks: numbers, booleans and lists parse; anything else
  // (a keep_alive such as "10m", a stop word) stays a string.
  function parseValue(text) {
    const trimmed = text.trim();
    if (trimmed === "") return null;
    try { return JSON.parse(trimmed); } catch { return trimmed; }
  }

  const showValue = (value) => (typeof value === "string" ? value : JSON.stringify(value));

  function optionRow(name = "", value = null, locked = false) {
    const select = el("select", { "aria-label": "Option" });
    select.append(el("option", { value: "", text: "choose…" }));
    for (const [option, type] of Object.entries(optionTypes)) {
      select.append(el("option", { value: option, selected: option === name, text: `${option} (${type})` }));
    }
    const input = el("input", { "aria-label": "Value", placeholder: "default value (empty: none)",
      value: value === null || value === undefined ? "" : showValue(value) });
    const lock = el("input", { type: "checkbox", "aria-label": "Locked", checked: locked });
    const remove = el("button", { type: "button", text: "Remove", "aria-label": "Remove option",
      onclick: () => { for (const node of group) node.remove(); } });
    const group = [select, input, el("label", {}, lock, "Locked", " ", remove)];
    rows.append(...group);
    return group;
  }

  function readOptions() {
    const defaults = {};
    const locked = [];
    const cells = [...rows.children];
    for (let i = 0; i < cells.length; i += 3) {
      const name = cells[i].value;
      if (!name) continue;
      const value = parseValue(cells[i + 1].value);
      if (value !== null) defaults[name] = value;
      if (cells[i + 2].querySelector("input").checked) locked.push(name);
    }
    if (lockSystem.checked) locked.push("system");
    return { defaults, locked };
  }

  function edit(policy) {
    form.reset();
    model.value = policy.model;
    system.value = policy.system || "";
    lockSystem.checked = policy.locked.includes("system");
    rows.replaceChildren();
    const names = new Set([...Object.keys(policy.defaults), ...policy.locked.filter((n) => n !== "system")]);
    for (const name of names) optionRow(name, policy.defaults[name], policy.locked.includes(name));
    model.focus();
  }

  async function remove(name) {
    if (!confirm(`Delete the policy of ${name}? Its defaults and locks stop applying at once.`)) return;
    showError(null);
    try { await request("DELETE", url(name)); } catch (error) { showError(error); }
    await load();
  }

  function row(policy) {
    const defaults = Object.entries(policy.defaults).map(([k, v]) => `${k}=${showValue(v)}`).join(", ");
    return el("tr", { "data-model": policy.model },
      el("td", { text: policy.model }), el("td", { class: "wrap", text: policy.system || "" }),
      el("td", { class: "wrap mono", text: defaults }), el("td", { class: "wrap mono", text: policy.locked.join(", ") }),
      el("td", {}, el("div", { class: "actions" },
        el("button", { text: "Edit", "aria-label": `Edit the policy of ${policy.model}`, onclick: () => edit(policy) }),
        el("button", { class: "danger", text: "Delete", "aria-label": `Delete the policy of ${policy.model}`,
          onclick: () => remove(policy.model) }))));
  }

  async function load() {
    const data = await request("GET", "/ui/api/admin/policies");
    optionTypes = data.options;
    body.replaceChildren(...data.policies.map(row));
    document.getElementById("policies-empty").hidden = data.policies.length > 0;
  }

  async function loadModels() {
    const tags = await request("GET", "/api/tags");
    document.getElementById("installed-models").replaceChildren(
      ...tags.models.map((m) => el("option", { value: m.name })));
  }

  document.getElementById("add-option").addEventListener("click", () => optionRow()[0].focus());
  form.addEventListener("reset", () => { rows.replaceChildren(); saved.hidden = true; });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    showError(null);
    saved.hidden = true;
    const name = model.value.trim();
    try {
      const policy = await request("PUT", url(name), { system: system.value.trim() || null, ...readOptions() });
      saved.textContent = `Saved the policy of ${policy.model}.`;
      saved.hidden = false;
      await load();
    } catch (error) { showError(error); }
  });

  load().catch(showError);
  loadModels().catch(showError);
})();
