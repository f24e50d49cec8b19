// Tracking lesson: choosing runs, a metric, a run to describe or a class reloads the page (its
// panels depend on them); smoothing and the threshold update in place through lesson.js. Runs
// still training are followed live: their event streams trigger an in-place update at most once
// a second, so the charts grow while you watch.

const form = document.getElementById("controls");
const banner = document.getElementById("lesson-error");
// The controls are unchanged but the runs have news: force lesson.js to ask again.
const update = () => form.dispatchEvent(new CustomEvent("lesson:update", { detail: { force: true } }));
const navigate = () => form.dispatchEvent(new CustomEvent("lesson:navigate"));
const FINAL = new Set(["completed", "failed", "cancelled", "interrupted"]);
const EXAMPLE_RATES = [0.01, 0.05, 0.2];
const EXAMPLE_EPOCHS = 6;

for (const id of ["metric", "focus", "cls"]) {
  document.getElementById(id)?.addEventListener("change", navigate);
}
document.getElementById("runs").addEventListener("change", () => {
  const focus = document.getElementById("focus");
  if (focus) focus.value = "0"; // another set of runs: describe the first
  navigate();
});

function showError(message) {
  banner.textContent = message;
  banner.hidden = !message;
}

async function launch(learningRate) {
  const response = await fetch("/api/runs", {
    method: "POST",
    headers: { "Content-Type": "application/json", Accept: "application/json" },
    body: JSON.stringify({ task: "digits-cnn", config: { learning_rate: learningRate, epochs: EXAMPLE_EPOCHS } }),
  });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.detail || `The server answered ${response.status}.`);
  return body.id;
}

document.getElementById("train-three").addEventListener("click", async (event) => {
  const button = event.currentTarget;
  button.disabled = true;
  showError("");
  try {
    const ids = [];
    for (const rate of EXAMPLE_RATES) ids.push(await launch(rate));
    document.getElementById("runs").value = ids.join(",");
    document.getElementById("focus").value = "0";
    navigate();
  } catch (error) {
    showError(error.message);
    button.disabled = false;
  }
});

// --- live runs --------------------------------------------------------------------------------

const streams = new Map(); // run id -> EventSource
const ended = new Set();
let pending = null;

function soon() {
  if (pending) return;
  pending = setTimeout(() => {
    pending = null;
    // Once every followed run has ended, reload: the panels a finished run adds (images,
    // precision/recall) are new parts of the page, not updates of parts already there.
    if (streams.size && [...streams.keys()].every((id) => ended.has(id))) navigate();
    else update();
  }, 1000);
}

function follow() {
  const readout = document.getElementById("runs-readout");
  const live = (readout?.dataset.live || "").split(",").filter(Boolean);
  for (const id of live) {
    if (streams.has(id)) continue;
    const source = new EventSource(`/api/runs/${encodeURIComponent(id)}/events`);
    source.addEventListener("metric", soon);
    source.addEventListener("status", (event) => {
      if (FINAL.has(JSON.parse(event.data).status)) {
        source.close(); // no reconnect after the end
        ended.add(id);
      }
      soon();
    });
    source.onerror = () => {
      if (source.readyState === EventSource.CLOSED) streams.delete(id);
    };
    streams.set(id, source);
  }
}

document.addEventListener("lesson:updated", follow);
follow();
