// The new-job form: the server rendered one input per JobSpec field; this sends them as JSON
// and puts each refusal of the API next to the field it names.
import { api, el, fmtInt } from "/static/common.js";

const form = document.getElementById("job-form");
const formError = document.getElementById("form-error");
const submitButton = document.getElementById("submit");
const submitState = document.getElementById("submit-state");
const datasetSelect = document.getElementById("f-dataset");
const datasetPath = document.getElementById("f-dataset_path");
const lossSelect = document.getElementById("f-loss");
// getAttribute, not form.dataset: a form's named inputs shadow its properties (there is an input named "dataset").
const lossParams = JSON.parse(form.getAttribute("data-loss-params"));
const marginLosses = new Set(JSON.parse(form.getAttribute("data-margin-losses")));
const FOLDER = "folder:"; // dataset option values that stand for one image folder

class FieldError extends Error {
  constructor(field, reason) {
    super(reason);
    this.field = field;
  }
}

function inputValue(input) {
  const name = input.name;
  switch (input.dataset.kind) {
    case "checkbox":
      return input.checked;
    case "number": {
      const text = input.value.trim();
      if (text === "") {
        // An empty optional number is null; an empty required one goes as null too, and the API says why not.
        if (input.validity.badInput) throw new FieldError(name, "not a number");
        return null;
      }
      return Number(text);
    }
    case "json": {
      const text = input.value.trim();
      if (!text) return {};
      let value;
      try {
        value = JSON.parse(text);
      } catch {
        throw new FieldError(name, 'not valid JSON; write an object such as {"swap": true}');
      }
      if (value === null || typeof value !== "object" || Array.isArray(value)) throw new FieldError(name, "must be a JSON object");
      return value;
    }
    case "text":
      return input.value === "" && input.dataset.optional ? null : input.value;
    default:
      return input.value;
  }
}

/** The job spec as the API takes it: every field, so a clone reproduces its source exactly. */
function specFromForm() {
  const spec = {};
  for (const input of form.querySelectorAll("[data-kind]")) spec[input.name] = inputValue(input);
  if (spec.dataset.startsWith(FOLDER)) {
    spec.dataset_path = spec.dataset.slice(FOLDER.length);
    spec.dataset = "imagefolder";
  } else if (spec.dataset !== "imagefolder") {
    spec.dataset_path = null;
  }
  return spec;
}

function clearErrors() {
  formError.hidden = true;
  for (const node of form.querySelectorAll(".field-error")) {
    node.hidden = true;
    node.textContent = "";
  }
  for (const row of form.querySelectorAll(".field.invalid")) row.classList.remove("invalid");
}

/** Show one refusal next to its field ("loss_params.swap" belongs to loss_params); the rest above the button. */
function showError(field, reason) {
  let top = String(field).split(".")[0];
  if (top === "dataset_path" && datasetSelect.value.startsWith(FOLDER)) top = "dataset"; // the folder was picked in the list
  const row = document.getElementById(`row-${top}`);
  const message = document.getElementById(`err-${top}`);
  if (!row || !message || row.hidden) {
    formError.hidden = false;
    formError.textContent = `${formError.textContent ? formError.textContent + "\n" : ""}${field === "body" ? "" : field + ": "}${reason}`;
    return formError;
  }
  row.classList.add("invalid");
  message.hidden = false;
  message.textContent = message.textContent ? `${message.textContent}; ${reason}` : reason;
  return row;
}

function showErrors(errors) {
  formError.textContent = "";
  const shown = errors.map(({ field, reason }) => showError(field, reason));
  const first = shown[0];
  if (first) {
    first.scrollIntoView({ block: "center", behavior: "smooth" });
    const input = first.querySelector && first.querySelector("[data-kind]");
    if (input) input.focus({ preventScroll: true });
  }
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  clearErrors();
  let spec;
  try {
    spec = specFromForm();
  } catch (err) {
    if (err instanceof FieldError) return showErrors([{ field: err.field, reason: err.message }]);
    throw err;
  }
  submitButton.disabled = true;
  submitState.textContent = "submitting…";
  try {
    const job = await api("/api/jobs", { method: "POST", body: spec });
    submitState.textContent = `job ${job.id} queued`;
    window.location.href = `/jobs/${job.id}`;
  } catch (err) {
    submitButton.disabled = false;
    submitState.textContent = "";
    const detail = err.detail;
    if (Array.isArray(detail)) showErrors(detail.map((d) => ({ field: d.field || (d.loc || []).slice(1).join(".") || "body", reason: d.reason || d.msg })));
    else showErrors([{ field: "body", reason: err.message }]);
  }
});

// A field's error goes away as soon as it is edited.
form.addEventListener("input", (event) => {
  const row = event.target.closest(".field");
  if (row && row.classList.contains("invalid")) {
    row.classList.remove("invalid");
    const message = row.querySelector(".field-error");
    message.hidden = true;
    message.textContent = "";
  }
});

// -- the dataset: catalog sizes from the API, image folders under the data roots --

function syncDatasetPath() {
  const folder = datasetSelect.value.startsWith(FOLDER);
  document.getElementById("row-dataset_path").hidden = datasetSelect.value !== "imagefolder";
  if (folder) datasetPath.value = datasetSelect.value.slice(FOLDER.length);
}

function describe(d) {
  const parts = [];
  if (d.classes !== null) parts.push(`${fmtInt(d.classes)} classes`);
  if (d.images !== null) parts.push(`${fmtInt(d.images)} images`);
  if (d.image_size) parts.push(`${d.image_size}×${d.image_size}`);
  return parts.join(", ");
}

async function loadDatasets() {
  let catalog;
  try {
    catalog = await api("/api/datasets");
  } catch (err) {
    document.getElementById("hint-dataset").textContent = `Could not list the datasets: ${err.message}`;
    return;
  }
  for (const d of catalog.datasets) {
    const option = [...datasetSelect.options].find((o) => o.value === d.name);
    if (!option) continue;
    const size = describe(d);
    option.textContent = d.name === "imagefolder" ? "imagefolder (type a path below)" : `${d.name}: ${size}`;
    option.title = d.description;
  }
  if (catalog.folders.length) {
    const group = el("optgroup", { label: "Image folders under the data roots" });
    for (const f of catalog.folders) group.append(el("option", { value: FOLDER + f.name, title: f.name }, `${f.name.split(/[\\/]/).pop()}: ${describe(f)}`));
    datasetSelect.append(group);
    // A cloned imagefolder job: pick its folder when it is one of the listed ones.
    if (datasetSelect.value === "imagefolder" && catalog.folders.some((f) => f.name === datasetPath.value)) {
      datasetSelect.value = FOLDER + datasetPath.value;
    }
  }
  document.getElementById("hint-dataset").textContent = catalog.roots.length
    ? `Image folders are found under ${catalog.roots.join(", ")} (set EMBEDLAB_DATA_ROOTS for more).`
    : "";
  syncDatasetPath();
}

// -- the loss: which extra parameters it takes, whether the margin matters --

function syncLossHints() {
  const loss = lossSelect.value;
  const params = Object.entries(lossParams[loss] || {});
  document.getElementById("hint-loss_params").textContent = params.length
    ? `${loss} takes ${params.map(([k, t]) => `${k} (${t})`).join(", ")}.`
    : `${loss} takes no extra parameters.`;
  document.getElementById("hint-margin").textContent = marginLosses.has(loss) ? "" : `${loss} ignores the margin.`;
}

datasetSelect.addEventListener("change", syncDatasetPath);
lossSelect.addEventListener("change", syncLossHints);
syncDatasetPath();
syncLossHints();
loadDatasets();
