// Sign in with a name and password (or an API token); the server sets an HttpOnly session cookie.
import { api } from "/static/common.js";

const form = document.getElementById("login-form");
if (form) {
  const error = document.getElementById("login-error");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.hidden = true;
    const data = new FormData(form);
    const token = data.get("token");
    const body = token ? { token } : { name: data.get("name"), password: data.get("password") };
    try {
      await api("/api/session", { method: "POST", body, csrf: false });
      window.location.href = form.getAttribute("data-next") || "/";
    } catch (err) {
      error.hidden = false;
      if (err.status === 401) error.textContent = "Wrong name, password or token.";
      // 429: the server's sentence names the wait ("too many failed sign-ins ...: try again in 4 min 10 s").
      else if (err.status === 429) error.textContent = `${err.message.charAt(0).toUpperCase()}${err.message.slice(1)}.`;
      else error.textContent = err.message;
    }
  });
}
