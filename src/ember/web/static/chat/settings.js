// The per-chat system prompt and options, with the chosen model's admin defaults as placeholders; what the
// model's policy locks is shown but disabled (admins may still override it, as the server allows them).

import { el } from "./messages.js";

const OPTIONS = [
  { name: "temperature", label: "Temperature", step: "0.05", min: "0", max: "2" },
  { name: "top_p", label: "Top p", step: "0.05", min: "0", max: "1" },
  { name: "top_k", label: "Top k", step: "1", min: "0" },
  { name: "num_ctx", label: "Context (num_ctx)", step: "256", min: "256" },
  { name: "num_predict", label: "Max tokens (num_predict)", step: "1", min: "-2" },
  { name: "repeat_penalty", label: "Repeat penalty", step: "0.05", min: "0" },
  { name: "seed", label: "Seed", step: "1" },
];

const $ = (id) => document.getElementById(id);

export class Settings {
  // hooks: getChat(), getModels(), save(fields) -> Promise<bool saved>, onError(error)
  constructor(hooks) {
    this.hooks = hooks;
    this.draft = { system: "", options: {} }; // for a chat not created yet
    this.isAdmin = $("app").dataset.userRole === "admin";
    this.inputs = new Map();
    for (const option of OPTIONS) {
      const input = el("input", { type: "number", step: option.step, id: `opt-${option.name}` });
      if (option.min) input.min = option.min;
      if (option.max) input.max = option.max;
      input.dataset.option = option.name;
      const label = el("label", { className: "option" }, el("span", { textContent: option.label }), input);
      this.inputs.set(option.name, { input, label, spec: option });
      $("options").append(label);
    }
    $("settings-toggle").addEventListener("click", () => this.toggle());
    $("save-settings").addEventListener("click", () => this.submit());
  }

  toggle(open = $("settings").hidden) {
    $("settings").hidden = !open;
    $("settings-toggle").setAttribute("aria-expanded", String(open));
    if (open) this.show();
  }

  model() {
    const name = $("model").value;
    return this.hooks.getModels().find((m) => m.name === name) ?? { name, defaults: {}, locked: [], system: null };
  }

  // A new chat starts with what was set before it existed.
  pending() {
    const options = Object.fromEntries(Object.entries(this.draft.options).filter(([, v]) => v !== undefined));
    return { ...(this.draft.system ? { system: this.draft.system } : {}), options };
  }

  show() {
    const chat = this.hooks.getChat();
    const model = this.model();
    const locked = new Set(model.locked ?? []);
    const values = chat ? chat.options ?? {} : this.draft.options;
    for (const [name, { input, label }] of this.inputs) {
      const isLocked = locked.has(name);
      const fallback = model.defaults?.[name];
      input.placeholder = fallback === undefined ? "default" : String(fallback);
      input.value = values[name] ?? (isLocked && fallback !== undefined ? fallback : "");
      input.disabled = isLocked && !this.isAdmin;
      label.classList.toggle("locked", isLocked);
      label.title = isLocked ? `Locked by the admin for ${model.name}` : "";
      label.querySelector("span").textContent = this.inputs.get(name).spec.label + (isLocked ? " (locked)" : "");
    }
    const system = $("system");
    const systemLocked = locked.has("system");
    system.value = (chat ? chat.system : this.draft.system) ?? "";
    system.placeholder = model.system ? `Model default: ${model.system}` : "(none)";
    system.disabled = systemLocked && !this.isAdmin;
    const notes = [];
    if (locked.size) notes.push(`Locked by the admin for ${model.name}: ${[...locked].join(", ")}.`);
    if (Object.keys(model.defaults ?? {}).length) {
      notes.push(`Admin defaults: ${Object.entries(model.defaults).map(([k, v]) => `${k}=${v}`).join(", ")}.`);
    }
    $("settings-hint").textContent = notes.join(" ");
  }

  read() {
    const options = {};
    const locked = new Set(this.model().locked ?? []);
    for (const [name, { input }] of this.inputs) {
      if (input.value === "" || (locked.has(name) && !this.isAdmin)) continue;
      const number = Number(input.value);
      if (!Number.isFinite(number)) throw new Error(`${name} must be a number`);
      options[name] = number;
    }
    const system = $("system").disabled ? null : $("system").value;
    return { system, options };
  }

  async submit() {
    try {
      const fields = this.read();
      const saved = await this.hooks.save(fields);
      if (!saved) this.draft = { system: fields.system ?? "", options: fields.options };
      this.toggle(false);
    } catch (error) {
      this.hooks.onError(error);
    }
  }
}
