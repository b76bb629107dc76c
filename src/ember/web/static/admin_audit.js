// Admin: the audit log, newest first. The filters live in the page's query string so a view can be shared.
"use strict";
(() => {
  const { request, showError, el } = ember;
  const body = document.querySelector("#audit tbody");
  const form = document.getElementById("filters");
  const count = document.getElementById("count");
  const FIELDS = ["user", "model", "status", "since", "limit"];

  const dash = (value) => (value === null || value === undefined || value === "" ? "–" : String(value));

  function row(event) {
    const duration = event.duration_ms === null ? "–" : `${Math.round(event.duration_ms)} ms`;
    const failed = event.status >= 400;
    return el("tr", { "data-status": String(event.status) },
      el("td", { text: new Date(event.time).toLocaleString() }), el("td", { text: dash(event.user_name) }),
      el("td", { text: dash(event.key_name) }), el("td", { class: "mono", text: `${event.method} ${event.route}` }),
      el("td", { text: dash(event.model) }),
      el("td", {}, el("span", { class: failed ? "badge disabled" : "badge", text: String(event.status) })),
      el("td", { text: `${dash(event.prompt_tokens)} / ${dash(event.completion_tokens)}` }), el("td", { text: duration }),
      el("td", { class: "wrap", text: event.error || "" }));
  }

  function query() {
    const params = new URLSearchParams();
    for (const name of FIELDS) {
      const value = form.elements[name].value.trim();
      if (value) params.set(name, value);
    }
    return params;
  }

  async function load() {
    showError(null);
    const params = query();
    history.replaceState(null, "", params.toString() ? `?${params}` : location.pathname);
    try {
      const data = await request("GET", `/ui/api/admin/audit?${params}`);
      body.replaceChildren(...data.events.map(row));
      count.textContent = `${data.events.length} request${data.events.length === 1 ? "" : "s"}, newest first.`;
    } catch (error) { showError(error); }
  }

  const initial = new URLSearchParams(location.search);
  for (const name of FIELDS) if (initial.has(name)) form.elements[name].value = initial.get(name);
  form.addEventListener("submit", (event) => { event.preventDefault(); load(); });
  load();
})();
