// Searches: start one from a JSON spec, list them.
import { api, el } from "/static/common.js";

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

async function refresh() {
  const data = await api("/api/searches?limit=200");
  const body = document.querySelector("#searches-table tbody");
  body.replaceChildren(...data.searches.map((s) => el("tr", {},
    el("td", {}, el("a", { href: `/searches/${s.id}` }, String(s.id))), el("td", {}, el("a", { href: `/searches/${s.id}` }, s.name)),
    el("td", {}, s.status), el("td", {}, s.space.join(", ")), el("td", {}, s.sampler), el("td", {}, s.pruner),
    el("td", {}, String(s.trials)), el("td", {}, Object.entries(s.status_counts).map(([k, v]) => `${v} ${k}`).join(", ")), el("td", {}, s.owner))));
}

refresh();
setInterval(refresh, 5000);
