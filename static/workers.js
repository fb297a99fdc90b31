// Workers: who is alive, on which device, running what.
import { api, el, fmtAgo, fmtDateTime } from "/static/common.js";

async function refresh() {
  const workers = await api("/api/workers");
  const body = document.querySelector("#workers-table tbody");
  body.replaceChildren(...workers.map((w) => el("tr", {},
    el("td", {}, w.id), el("td", {}, w.host), el("td", {}, w.device), el("td", {}, w.version),
    el("td", {}, el("span", { class: `badge status-${w.alive ? "running" : "cancelled"}` }, w.alive ? "alive" : (w.stopped_at ? "stopped" : "lost"))),
    el("td", {}, w.current_job_id ? el("a", { href: `/jobs/${w.current_job_id}` }, `job ${w.current_job_id}`) : "idle"),
    el("td", {}, fmtAgo(w.last_heartbeat)), el("td", {}, fmtDateTime(w.started_at)))));
  if (!workers.length) body.append(el("tr", {}, el("td", { colspan: 8, class: "muted" }, "No worker has registered yet: start one with `embedlab worker` or `embedlab serve --workers N`.")));
  document.getElementById("live").textContent = `${workers.filter((w) => w.alive).length} alive`;
}

refresh();
setInterval(refresh, 3000);
