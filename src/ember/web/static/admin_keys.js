// Admin: the gateway's API keys. The list shows hints only; a new key's secret is shown once, here.
"use strict";
(() => {
  const { request, showError, el } = ember;
  const body = document.querySelector("#keys tbody");
  const form = document.getElementById("create");
  const owner = document.getElementById("key-user");
  const created = document.getElementById("created");
  const secretBox = document.getElementById("created-secret");

  const dash = (value) => (value === null || value === undefined ? "–" : String(value));

  async function revoke(name) {
    if (!confirm(`Revoke the key ${name}? Clients using it get 401 at once.`)) return;
    showError(null);
    try { await request("DELETE", `/ui/api/admin/keys/${encodeURIComponent(name)}`); } catch (error) { showError(error); }
    await load();
  }

  function row(key) {
    const limits = `rpm ${dash(key.rpm)} · tpm ${dash(key.tpm)} · conc ${dash(key.concurrency)}`;
    const badge = key.status === "active" ? "badge" : "badge disabled";
    const actions = el("div", { class: "actions" });
    if (!key.revoked_at) {
      actions.append(el("button", { class: "danger", text: "Revoke", "aria-label": `Revoke ${key.name}`,
        onclick: () => revoke(key.name) }));
    }
    return el("tr", { "data-key": key.name },
      el("td", { text: key.name }), el("td", { class: "mono", text: key.hint }), el("td", { text: key.user }),
      el("td", { text: key.scopes.join(", ") }), el("td", { class: "wrap", text: key.models ? key.models.join(", ") : "all" }),
      el("td", { class: "mono", text: limits }),
      el("td", { text: key.expires_at ? new Date(key.expires_at).toLocaleDateString() : "never" }),
      el("td", {}, el("span", { class: badge, text: key.status })), el("td", {}, actions));
  }

  async function load() {
    const data = await request("GET", "/ui/api/admin/keys");
    body.replaceChildren(...data.keys.map(row));
    document.getElementById("keys-empty").hidden = data.keys.length > 0;
  }

  async function loadUsers() {
    const data = await request("GET", "/ui/api/admin/users");
    owner.replaceChildren(...data.users.filter((u) => !u.disabled && u.role !== "pending")
      .map((u) => el("option", { value: u.name, text: `${u.name} (${u.role})` })));
  }

  const number = (value) => (value.trim() === "" ? null : Number(value));

  function payload(data) {
    const models = data.get("models").split(",").map((m) => m.trim()).filter(Boolean);
    const expires = data.get("expires");
    return {
      name: data.get("name").trim(), user: data.get("user"), scopes: data.getAll("scopes"),
      models: models.length ? models : null, rpm: number(data.get("rpm")), tpm: number(data.get("tpm")),
      concurrency: number(data.get("concurrency")),
      // The end of the chosen day, in the admin's own time zone.
      expires_at: expires ? new Date(`${expires}T23:59:59`).toISOString() : null,
    };
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    showError(null);
    created.hidden = true;
    try {
      const answer = await request("POST", "/ui/api/admin/keys", payload(new FormData(form)));
      document.getElementById("created-name").textContent = answer.key.name;
      secretBox.textContent = answer.secret;
      created.hidden = false;
      form.querySelector("#key-name").value = "";
      await load();
    } catch (error) { showError(error); }
  });

  document.getElementById("copy-secret").addEventListener("click", async () => {
    try { await navigator.clipboard.writeText(secretBox.textContent); } catch {
      getSelection().selectAllChildren(secretBox);  // no clipboard over plain HTTP: select it for Ctrl+C
    }
  });

  load().catch(showError);
  loadUsers().catch(showError);
})();
