// Calls to the UI's JSON API: the session cookie rides along, writes carry the CSRF token, and every error
// becomes an ApiError whose message is the server's own explanation.

const csrfToken = () => document.querySelector('meta[name="csrf-token"]')?.content ?? "";

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

const FRIENDLY = {
  401: "Your session has ended; please log in again.",
  403: "Not allowed",
  409: "Still busy",
  413: "The file is too large",
  415: "This file type is not supported",
  429: "Too many requests; wait a moment and try again",
};

async function errorFrom(response) {
  let detail = "";
  try {
    const body = await response.json();
    detail = typeof body.error === "string" ? body.error : JSON.stringify(body.error ?? body);
  } catch {
    detail = response.statusText;
  }
  const prefix = FRIENDLY[response.status];
  const text = prefix && detail && !detail.toLowerCase().startsWith(prefix.toLowerCase()) ? `${prefix}: ${detail}`
    : detail || prefix || `Request failed (${response.status})`;
  return new ApiError(response.status, text);
}

export async function api(method, path, body) {
  const init = { method, credentials: "same-origin", headers: {} };
  if (method !== "GET") init.headers["X-CSRF-Token"] = csrfToken();
  if (body instanceof FormData) {
    init.body = body;
  } else if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch {
    throw new ApiError(0, "The server cannot be reached; check your connection.");
  }
  if (response.status === 401) location.assign("/login"); // the session ended (logout elsewhere, disabled)
  if (!response.ok) throw await errorFrom(response);
  if (response.status === 204 || response.status === 202 && !response.headers.get("content-type")?.includes("json")) {
    return null;
  }
  return response.json();
}
