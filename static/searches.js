// Searches: the list (the new-search form is static/search_form.js).
import { api, el } from "/static/common.js";

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
