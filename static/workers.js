// Workers: who is alive, on which device(s), running what; and the room left on EMBEDLAB_HOME's disk.
import { api, el, fmtAgo, fmtDateTime } from "/static/common.js";

/** 31200000 -> "31.2 MB" (decimal units, as `df -H` and the server's messages). */
function fmtBytes(n) {
  const units = ["B", "KB", "MB", "GB", "TB"];
  let i = 0;
  while (Math.abs(n) >= 1000 && i < units.length - 1) { n /= 1000; i += 1; }
  return i === 0 ? `${n} B` : `${n.toFixed(1)} ${units[i]}`;
}

function showDisk(disk) {
  const node = document.getElementById("home-disk");
  node.textContent = `EMBEDLAB_HOME: ${fmtBytes(disk.free_bytes)} free of ${fmtBytes(disk.total_bytes)}`
    + (disk.low ? " — low: jobs that write image caches or checkpoints may fail with “disk full”" : "");
  node.className = disk.low ? "error-box" : "muted";
}

/** What one data-parallel job may use on this worker (`embedlab worker --devices N`). */
function devicesText(w) {
  if (w.devices === 1) return "1";
  return w.device.startsWith("cuda") ? `${w.devices} GPUs from ${w.device}` : `${w.devices} CPU processes`;
}

/** The jobs a worker runs now, each with the devices it holds: "job 4 on cpu, job 5 on cpu", "job 6 on cuda:0,1". */
function runningParts(running) {
  return running.flatMap((r, i) => [
    ...(i ? [", "] : []),
    el("a", { href: `/jobs/${r.job_id}` }, `job ${r.job_id}`),
    ` on ${r.run_device}`,
  ]);
}

async function refresh() {
  const [workers, disk] = await Promise.all([api("/api/workers"), api("/api/workers/disk")]);
  showDisk(disk);
  const body = document.querySelector("#workers-table tbody");
  body.replaceChildren(...workers.map((w) => el("tr", {},
    el("td", {}, w.id), el("td", {}, w.host), el("td", {}, w.device), el("td", {}, devicesText(w)), el("td", {}, w.version),
    el("td", {}, el("span", { class: `badge status-${w.alive ? "running" : "cancelled"}` }, w.alive ? "alive" : (w.stopped_at ? "stopped" : "lost"))),
    el("td", {}, ...(w.running.length ? runningParts(w.running) : ["idle"])),
    el("td", {}, fmtAgo(w.last_heartbeat)), el("td", {}, fmtDateTime(w.started_at)))));
  if (!workers.length) body.append(el("tr", {}, el("td", { colspan: 9, class: "muted" }, "No worker has registered yet: start one with `embedlab worker` or `embedlab serve --workers N`.")));
  document.getElementById("live").textContent = `${workers.filter((w) => w.alive).length} alive`;
}

refresh();
setInterval(refresh, 3000);
