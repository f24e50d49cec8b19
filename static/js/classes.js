// A class page for its teachers (/classes/<id>): the table of every member's runs kept live from
// GET /api/classes/<id> every 2 s (not while the tab is hidden), runs ticked to compare in the
// Tracking lesson (kept in the URL as ?runs=), and Cancel through POST /api/runs/<id>/cancel.
// Names and class names are people's text: they only ever go in as textContent.

import { el, fmt, showError } from "./dom.js";

const data = JSON.parse(document.getElementById("class-data").textContent);
const FINAL = new Set(data.final_statuses);
const POLL_MS = 2000;

const table = document.getElementById("class-runs");
const body = table.tBodies[0];
const noRuns = document.getElementById("no-runs");
const members = document.getElementById("members");
const memberCount = document.getElementById("member-count");
const storedText = document.getElementById("stored-text");
const uncounted = document.getElementById("uncounted");
const uncountedCount = document.getElementById("uncounted-count");
const compare = document.getElementById("compare");
const compareNote = document.getElementById("compare-note");
const classError = document.getElementById("class-error");

// -- picking runs to compare ---------------------------------------------------------------

function picked() {
  return [...body.querySelectorAll(".compare-pick:checked")].map((box) => box.value);
}

// The ticked runs in the compare link and in this page's URL (?runs=a,b), so a reload or a
// shared link keeps them.
function updateCompare() {
  const ids = picked();
  const params = new URLSearchParams(location.search);
  if (ids.length) params.set("runs", ids.join(","));
  else params.delete("runs");
  const query = params.toString().replaceAll("%2C", ",");
  history.replaceState(null, "", query ? `${location.pathname}?${query}` : location.pathname);
  const tooMany = ids.length > data.max_compare;
  if (ids.length && !tooMany) {
    compare.href = `${compare.dataset.base}?runs=${ids.map(encodeURIComponent).join(",")}`;
    compare.removeAttribute("aria-disabled");
  } else {
    compare.href = compare.dataset.base;
    compare.setAttribute("aria-disabled", "true");
  }
  if (tooMany) {
    compareNote.textContent = `${ids.length} selected: the Tracking lesson overlays at most ${data.max_compare} (setting tracking_max_runs); untick some.`;
  } else if (ids.length) {
    compareNote.textContent = `${ids.length} selected.`;
  } else {
    compareNote.textContent = `Tick runs to overlay their curves in the Tracking lesson (at most ${data.max_compare}).`;
  }
}

compare.addEventListener("click", (event) => {
  if (compare.getAttribute("aria-disabled") === "true") event.preventDefault();
});

// -- the table -----------------------------------------------------------------------------

function progressText(run) {
  const place = run.position ? ` · #${run.position} in line` : "";
  return `${Math.round(run.progress * 100)}%${place}`;
}

function cancelButton(run) {
  const button = el("button", "cancel-run", "Cancel");
  button.type = "button";
  button.dataset.run = run.id;
  button.setAttribute("aria-label", `Cancel run ${run.id} of ${run.owner_name}`);
  return button;
}

function cell(className, field, ...children) {
  const td = el("td", className);
  if (field) td.dataset.field = field;
  td.append(...children); // strings become text nodes
  return td;
}

// A new row, with the cells the server renders (templates/classes/class.html).
function newRow(run) {
  const row = el("tr");
  row.dataset.run = run.id;
  const pick = el("input", "compare-pick");
  pick.type = "checkbox";
  pick.value = run.id;
  pick.setAttribute("aria-label", `Compare run ${run.id} of ${run.owner_name}`);
  const link = el("a");
  link.href = `/runs/${encodeURIComponent(run.id)}`;
  link.append(el("code", "", run.id));
  const badge = el("span", "status-badge", run.status);
  badge.dataset.field = "status";
  const time = el("time", "", run.created_text);
  time.dateTime = run.created_at;
  row.append(
    cell("", "", pick),
    cell("who-cell", "who"),
    cell("", "", link),
    cell("", "", run.task),
    cell("", "", badge),
    cell("", "progress"),
    cell("", "best"),
    cell("", "", time),
    cell("config-cell", "", run.config_text),
    cell("", "actions"),
  );
  return row;
}

function showRun(row, run) {
  row.dataset.status = run.status;
  const badge = row.querySelector('[data-field="status"]');
  badge.textContent = run.status;
  badge.className = `status-badge status-${run.status}`;
  row.querySelector('[data-field="progress"]').textContent = progressText(run);
  row.querySelector('[data-field="best"]').textContent = run.best_accuracy == null ? "–" : fmt(run.best_accuracy, 3);
  row.querySelector('[data-field="who"]').textContent = run.owner_name;
  const actions = row.querySelector('[data-field="actions"]');
  const button = actions.querySelector(".cancel-run");
  if (FINAL.has(run.status)) button?.remove();
  else if (!button) actions.replaceChildren(cancelButton(run));
}

// Rows follow the answer's order (newest first). A row that stays is never moved unless it must
// be, so the focus (on a checkbox, a Cancel button) stays where the keyboard left it.
function showRuns(runs) {
  const wanted = new Set(runs.map((run) => run.id));
  let unpicked = false;
  for (const row of [...body.rows]) {
    if (!wanted.has(row.dataset.run)) {
      unpicked ||= Boolean(row.querySelector(".compare-pick:checked"));
      row.remove();
    }
  }
  const rows = new Map([...body.rows].map((row) => [row.dataset.run, row]));
  runs.forEach((run, index) => {
    const row = rows.get(run.id) ?? newRow(run);
    showRun(row, run);
    if (body.rows[index] !== row) body.insertBefore(row, body.rows[index] ?? null);
  });
  noRuns.hidden = runs.length > 0;
  if (unpicked) updateCompare();
}

function showMembers(list) {
  members.replaceChildren(
    ...list.map((member) => {
      const item = el("li");
      item.append(el("span", "member-name", member.name), " ", el("span", `role-chip role-${member.role}`, member.role));
      return item;
    }),
  );
  memberCount.textContent = String(list.length);
}

function showClass(view) {
  showMembers(view.members);
  showRuns(view.runs);
  storedText.textContent = view.stored_text;
  uncountedCount.textContent = `${view.uncounted} run${view.uncounted === 1 ? "" : "s"}`;
  uncounted.hidden = view.uncounted === 0;
}

// -- polling, only while the tab is shown --------------------------------------------------

let timer = null;
let busy = false; // a poll is in flight
let again = false; // and another was asked for meanwhile (after a cancel)

async function poll() {
  clearTimeout(timer);
  timer = null;
  if (busy) {
    again = true;
    return;
  }
  busy = true;
  let follow = true;
  try {
    const response = await fetch(`/api/classes/${encodeURIComponent(data.id)}`, {
      headers: { Accept: "application/json" },
    });
    if (response.ok) {
      showClass(await response.json());
    } else if (response.status === 403 || response.status === 404) {
      const answer = await response.json().catch(() => ({}));
      showError(classError, answer.detail ?? `The server answered ${response.status}.`);
      follow = false; // no longer this class's teacher: nothing more to follow
    }
  } catch {
    // The next poll tries again; the table keeps what it last knew.
  } finally {
    busy = false;
  }
  if (!follow) return;
  if (again) {
    again = false;
    poll();
  } else if (!document.hidden) {
    timer = setTimeout(poll, POLL_MS);
  }
}

document.addEventListener("visibilitychange", () => {
  if (document.hidden) {
    clearTimeout(timer);
    timer = null;
  } else if (timer === null && !busy) {
    poll();
  }
});

async function cancel(button) {
  button.disabled = true;
  try {
    const response = await fetch(`/api/runs/${encodeURIComponent(button.dataset.run)}/cancel`, {
      method: "POST",
      headers: { Accept: "application/json" },
    });
    const answer = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(answer.detail ?? `the server answered ${response.status}`);
    showError(classError, "");
    poll();
  } catch (error) {
    showError(classError, `Could not cancel: ${error.message}`);
    button.disabled = false;
  }
}

body.addEventListener("change", (event) => {
  if (event.target.matches(".compare-pick")) updateCompare();
});
body.addEventListener("click", (event) => {
  const button = event.target.closest(".cancel-run");
  if (button) cancel(button);
});

updateCompare();
if (!document.hidden) timer = setTimeout(poll, POLL_MS);
