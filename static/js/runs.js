// The runs page: launch a run (POST /api/runs, then go to its page), pick runs to compare in the
// Tracking lesson, cancel queued or running ones, delete finished ones (a second click confirms),
// and keep the tables' statuses current.

import { showError } from "./dom.js";

const { final_statuses: finalStatuses } = JSON.parse(document.getElementById("runs-data").textContent);
const FINAL = new Set(finalStatuses);
const POLL_MS = 2000;

const form = document.getElementById("launcher");
const taskSelect = document.getElementById("task");
const launchButton = document.getElementById("launch");
const launchError = document.getElementById("launch-error");
const runsError = document.getElementById("runs-error");
const tables = [...document.querySelectorAll("table.runs-table")];
const compare = document.getElementById("compare");
const compareNote = document.getElementById("compare-note");

function fieldsets() {
  return [...form.querySelectorAll("fieldset.task-fields")];
}

function currentFieldset() {
  return form.querySelector(`fieldset.task-fields[data-task="${CSS.escape(taskSelect.value)}"]`);
}

// The launcher's state in the URL: ?task=...&<field>=..., so a shared link opens the same form.
function writeUrl() {
  const params = new URLSearchParams({ task: taskSelect.value });
  for (const input of currentFieldset()?.querySelectorAll("input, select") ?? []) {
    params.set(input.name, input.value.trim());
  }
  history.replaceState(null, "", `${location.pathname}?${params}`);
}

function selectTask() {
  for (const fieldset of fieldsets()) {
    const shown = fieldset.dataset.task === taskSelect.value;
    fieldset.hidden = !shown;
    fieldset.disabled = !shown;
  }
  showError(launchError, "");
  writeUrl();
}

// A field's value in its schema type; an empty field is left out (the task's default applies).
function typed(input) {
  const text = input.value.trim();
  if (text === "") return undefined;
  if (input.dataset.type === "integer" || input.dataset.type === "number") {
    const number = Number(text);
    return Number.isFinite(number) ? number : text; // the server names a non-number
  }
  return text;
}

function config() {
  const out = {};
  for (const input of currentFieldset()?.querySelectorAll("input, select") ?? []) {
    input.removeAttribute("aria-invalid");
    const value = typed(input);
    if (value !== undefined) out[input.name] = value;
  }
  return out;
}

function markField(field) {
  if (!field) return;
  const input = currentFieldset()?.querySelector(`[name="${CSS.escape(String(field).split(".").pop())}"]`);
  if (!input) return;
  input.setAttribute("aria-invalid", "true");
  input.focus();
}

async function launch(event) {
  event.preventDefault();
  showError(launchError, "");
  launchButton.disabled = true;
  try {
    const response = await fetch(form.dataset.api, {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify({ task: taskSelect.value, config: config() }),
    });
    const body = await response.json().catch(() => ({}));
    if (response.status === 202 && body.id) {
      location.assign(`/runs/${encodeURIComponent(body.id)}`);
      return;
    }
    let message = body.detail ?? `The server answered ${response.status}.`;
    if (typeof message !== "string") message = JSON.stringify(message);
    const retry = response.headers.get("Retry-After");
    if (response.status === 429 && retry) message += ` Try again in ${retry} s.`;
    showError(launchError, message);
    markField(body.field);
  } catch (error) {
    showError(launchError, `Could not reach the server: ${error.message}`);
  } finally {
    launchButton.disabled = false;
  }
}

taskSelect.addEventListener("change", selectTask);
form.addEventListener("input", (event) => {
  if (event.target !== taskSelect) writeUrl();
});
form.addEventListener("submit", launch);

// -- the table -----------------------------------------------------------------------------

function picked() {
  return [...document.querySelectorAll("table.runs-table .compare-pick:checked")].map((box) => box.value);
}

function updateCompare() {
  if (!compare) return;
  const ids = picked();
  if (ids.length) {
    compare.href = `${compare.dataset.base}?runs=${ids.map(encodeURIComponent).join(",")}`;
    compare.removeAttribute("aria-disabled");
    compareNote.textContent = `${ids.length} selected.`;
  } else {
    compare.href = compare.dataset.base;
    compare.setAttribute("aria-disabled", "true");
    compareNote.textContent = "Tick runs to overlay their curves in the Tracking lesson.";
  }
}

compare?.addEventListener("click", (event) => {
  if (compare.getAttribute("aria-disabled") === "true") event.preventDefault();
});

function rowOf(id) {
  return document.querySelector(`table.runs-table tr[data-run="${CSS.escape(id)}"]`);
}

function showRow(run) {
  const row = rowOf(run.id);
  if (!row) return;
  row.dataset.status = run.status;
  const badge = row.querySelector('[data-field="status"]');
  badge.textContent = run.status;
  badge.className = `status-badge status-${run.status}`;
  const place = run.position ? ` · #${run.position} in line` : "";
  row.querySelector('[data-field="progress"]').textContent = `${Math.round(run.progress * 100)}%${place}`;
  const cancelButton = row.querySelector(".cancel-run");
  if (FINAL.has(run.status) && cancelButton) {
    const remove = document.createElement("button");
    remove.type = "button";
    remove.className = "delete-run";
    remove.dataset.run = run.id;
    remove.textContent = "Delete";
    remove.setAttribute("aria-label", `Delete run ${run.id.slice(0, 8)}`);
    cancelButton.replaceWith(remove);
  }
}

// A first click asks, a second (within a few seconds) deletes: a run and its files are gone for good.
const CONFIRM_MS = 4000;

async function remove(button) {
  if (button.dataset.confirm !== "yes") {
    button.dataset.confirm = "yes";
    button.textContent = "Really delete?";
    setTimeout(() => {
      if (button.isConnected && button.dataset.confirm === "yes") {
        button.dataset.confirm = "";
        button.textContent = "Delete";
      }
    }, CONFIRM_MS);
    return;
  }
  button.disabled = true;
  try {
    const id = button.dataset.run;
    const response = await fetch(`/api/runs/${encodeURIComponent(id)}`, {
      method: "DELETE",
      headers: { Accept: "application/json" },
    });
    const body = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(body.detail ?? `the server answered ${response.status}`);
    showError(runsError, "");
    rowOf(id)?.remove();
    updateCompare();
  } catch (error) {
    showError(runsError, `Could not delete: ${error.message}`);
    button.disabled = false;
  }
}

async function cancel(button) {
  button.disabled = true;
  try {
    const id = button.dataset.run;
    const response = await fetch(`/api/runs/${encodeURIComponent(id)}/cancel`, {
      method: "POST",
      headers: { Accept: "application/json" },
    });
    const body = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(body.detail ?? `the server answered ${response.status}`);
    showError(runsError, "");
    poll();
  } catch (error) {
    showError(runsError, `Could not cancel: ${error.message}`);
    button.disabled = false;
  }
}

for (const table of tables) {
  table.addEventListener("change", (event) => {
    if (event.target.matches(".compare-pick")) updateCompare();
  });
  table.addEventListener("click", (event) => {
    const cancelButton = event.target.closest(".cancel-run");
    if (cancelButton) cancel(cancelButton);
    const deleteButton = event.target.closest(".delete-run");
    if (deleteButton) remove(deleteButton);
  });
}

function unfinished() {
  return [...document.querySelectorAll("table.runs-table tr[data-run]")].some((row) => !FINAL.has(row.dataset.status));
}

let timer = null;

async function poll() {
  clearTimeout(timer);
  try {
    const response = await fetch("/api/runs", { headers: { Accept: "application/json" } });
    if (response.ok) {
      for (const run of (await response.json()).runs) showRow(run);
    }
  } catch {
    // The next poll tries again; the table keeps what it last knew.
  }
  if (unfinished()) timer = setTimeout(poll, POLL_MS);
}

updateCompare();
if (unfinished()) timer = setTimeout(poll, POLL_MS);
