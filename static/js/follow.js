// Following training runs live from a lesson page: the runs still training are listed in a
// readout's data-live attribute; each gets an event stream, and news from any of them asks the
// lesson for an in-place update at most once a second. Once every followed run has ended, the
// page reloads: what a finished run adds (images, precision/recall) are new parts of the page.

const FINAL = new Set(["completed", "failed", "cancelled", "interrupted"]);

export function followRuns(form, readoutId) {
  const update = () => form.dispatchEvent(new CustomEvent("lesson:update", { detail: { force: true } }));
  const navigate = () => form.dispatchEvent(new CustomEvent("lesson:navigate"));
  const streams = new Map(); // run id -> EventSource
  const ended = new Set();
  let pending = null;

  function soon() {
    if (pending) return;
    pending = setTimeout(() => {
      pending = null;
      if (streams.size && [...streams.keys()].every((id) => ended.has(id))) navigate();
      else update();
    }, 1000);
  }

  function follow() {
    const readout = document.getElementById(readoutId);
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
}

// POST /api/runs; the new run's id, or an Error with the server's message.
export async function launchRun(task, config) {
  const response = await fetch("/api/runs", {
    method: "POST",
    headers: { "Content-Type": "application/json", Accept: "application/json" },
    body: JSON.stringify({ task, config }),
  });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.detail || `The server answered ${response.status}.`);
  return body.id;
}
