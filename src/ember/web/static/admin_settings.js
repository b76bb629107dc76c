// Admin: run-time settings (sign-up mode, the embedding model for documents).
"use strict";
(() => {
  const { request, showError, el } = ember;
  const form = document.getElementById("settings");
  const signup = document.getElementById("signup");
  const model = document.getElementById("embed-model");
  const saved = document.getElementById("saved");

  async function load() {
    const [settings, tags] = await Promise.all([request("GET", "/ui/api/admin/settings"), request("GET", "/api/tags")]);
    signup.value = settings.signup;
    const names = tags.models.map((m) => m.name);
    if (!names.includes(settings.embed_model)) names.unshift(settings.embed_model);
    model.replaceChildren(...names.map((name) => el("option", { value: name, selected: name === settings.embed_model, text: name })));
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    showError(null);
    saved.hidden = true;
    try {
      await request("PUT", "/ui/api/admin/settings", { signup: signup.value, embed_model: model.value });
      saved.hidden = false;
    } catch (error) { showError(error); }
  });

  load().catch(showError);
})();
