// Shared by the admin pages: JSON requests with the session's CSRF token, and visible errors.
"use strict";
const ember = (() => {
  const csrf = () => document.querySelector('meta[name="csrf-token"]')?.content || "";

  async function request(method, url, body) {
    const headers = { "X-CSRF-Token": csrf() };
    const init = { method, headers, credentials: "same-origin" };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const response = await fetch(url, init);
    if (response.status === 401) { location.href = "/login"; throw new Error("logged out"); }
    if (!response.ok) {
      let message = `${response.status} ${response.statusText}`;
      try {
        const data = await response.json();
        message = typeof data.error === "string" ? data.error : data.error?.message || message;
      } catch { /* not JSON: keep the status line */ }
      throw new Error(message);
    }
    const text = await response.text();  // some gateway routes (DELETE /api/delete) answer 200 with no body
    return text ? JSON.parse(text) : null;
  }

  function showError(error) {
    const box = document.getElementById("admin-error");
    if (!box) return;
    box.textContent = error ? String(error.message || error) : "";
    box.hidden = !error;
  }

  function el(tag, attributes = {}, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes)) {
      if (name === "text") node.textContent = value;
      else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
      else if (value === true) node.setAttribute(name, "");
      else if (value !== false && value != null) node.setAttribute(name, value);
    }
    for (const child of children) node.append(child);
    return node;
  }

  return { request, showError, el, csrf };
})();
