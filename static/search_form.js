// The new-search form (templates/search_form.html, on the searches page and the sweeps page): post the JSON spec, open the search.
import { api } from "/static/common.js";

const form = document.getElementById("search-form");
const error = document.getElementById("search-error");

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  error.hidden = true;
  let body;
  try {
    body = JSON.parse(document.getElementById("search-spec").value);
  } catch (e) {
    error.textContent = `The search spec is not valid JSON: ${e.message}`;
    error.hidden = false;
    return;
  }
  try {
    const created = await api("/api/searches", { method: "POST", body });
    location.href = `/searches/${created.id}`;
  } catch (e) {
    error.textContent = e.message; // ApiError: "field: reason; ..."
    error.hidden = false;
  }
});
