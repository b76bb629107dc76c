// Admin: users. Approve, change role, disable or enable, reset a password.
"use strict";
(() => {
  const { request, showError, el } = ember;
  const body = document.querySelector("#users tbody");

  async function act(work) {
    showError(null);
    try { await work(); await load(); } catch (error) { showError(error); }
  }

  const patch = (name, change) => request("PATCH", `/ui/api/admin/users/${encodeURIComponent(name)}`, change);

  function row(user) {
    const name = user.name;
    const role = el("select", { "aria-label": `Role of ${name}`, onchange: (e) => act(() => patch(name, { role: e.target.value })) });
    for (const value of ["admin", "user", "pending"]) {
      role.append(el("option", { value, selected: value === user.role, text: value }));
    }
    const status = user.disabled ? el("span", { class: "badge disabled", text: "disabled" })
      : user.role === "pending" ? el("span", { class: "badge pending", text: "pending" })
      : el("span", { class: "badge", text: "active" });
    const actions = el("div", { class: "actions" });
    if (user.role === "pending") {
      actions.append(el("button", { class: "primary", text: "Approve", "aria-label": `Approve ${name}`,
        onclick: () => act(() => patch(name, { role: "user" })) }));
    }
    actions.append(el("button", { class: user.disabled ? "" : "danger", text: user.disabled ? "Enable" : "Disable",
      "aria-label": `${user.disabled ? "Enable" : "Disable"} ${name}`,
      onclick: () => act(() => patch(name, { disabled: !user.disabled })) }));
    actions.append(el("button", { text: "Reset password", "aria-label": `Reset the password of ${name}`,
      onclick: () => {
        const password = prompt(`New password for ${name} (at least 8 characters):`);
        if (password) act(() => request("POST", `/ui/api/admin/users/${encodeURIComponent(name)}/password`, { password }));
      } }));
    return el("tr", { "data-user": name },
      el("td", { "data-label": "Name", text: name }), el("td", { "data-label": "Role" }, role),
      el("td", { "data-label": "Status" }, status),
      el("td", { "data-label": "Created", text: new Date(user.created_at).toLocaleDateString() }),
      el("td", {}, actions));
  }

  async function load() {
    const data = await request("GET", "/ui/api/admin/users");
    body.replaceChildren(...data.users.map(row));
  }

  load().catch(showError);
})();
