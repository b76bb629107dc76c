// Admin: the audit log, newest first, in pages. The filters live in the page's query string so a view can be
// shared. Paging pins "until" to the server's time when the filter ran, so newer requests do not shift pages.
"use strict";
(() => {
  const { request, showError, el } = ember;
  const body = document.querySelector("#audit tbody");
  const form = document.getElementById("filters");
  const count = document.getElementById("count");
  const newer = document.getElementById("newer");
  const older = document.getElementById("older");
  const FIELDS = ["user", "model", "route", "status", "since", "until", "limit"];
  let offset = 0;
  let nextOffset = null;
  let pinnedUntil = null;
  let pageSize = 100;

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
    pageSize = Number(params.get("limit") || 100);
    history.replaceState(null, "", params.toString() ? `?${params}` : location.pathname);
    if (offset > 0) params.set("offset", String(offset));
    if (!params.has("until") && pinnedUntil) params.set("until", pinnedUntil);
    try {
      const data = await request("GET", `/ui/api/admin/audit?${params}`);
      body.replaceChildren(...data.events.map(row));
      nextOffset = data.next_offset;
      pinnedUntil = pinnedUntil || data.until;
      const n = data.events.length;
      const first = n ? `${offset + 1}–${offset + n}` : "none";
      count.textContent = `${n} request${n === 1 ? "" : "s"} (${first}), newest first.`;
    } catch (error) { showError(error); nextOffset = null; }
    newer.disabled = offset === 0;
    older.disabled = nextOffset === null;
  }

  function fromTheTop() {
    offset = 0;
    pinnedUntil = null;  // the server's "now" on this first page becomes the pin
    load();
  }

  const initial = new URLSearchParams(location.search);
  for (const name of FIELDS) if (initial.has(name)) form.elements[name].value = initial.get(name);
  form.addEventListener("submit", (event) => { event.preventDefault(); fromTheTop(); });
  older.addEventListener("click", () => { if (nextOffset !== null) { offset = nextOffset; load(); } });
  newer.addEventListener("click", () => { offset = Math.max(0, offset - pageSize); load(); });
  fromTheTop();
})();
