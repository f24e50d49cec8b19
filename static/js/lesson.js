// A lesson page: draw its Plotly figures, and redraw them in place as the controls change.
// The controls form is the lesson's state: every change is written to the URL (so a shared link
// opens the same view) and sent to the server, which answers with the changed part of the page.

import { formQuery, PLOT_CONFIG, showError, writeUrl } from "./dom.js";

const form = document.getElementById("controls");
const output = document.getElementById("lesson-output");
const banner = document.getElementById("lesson-error");

function draw(wrap, target = wrap) {
  const data = JSON.parse(wrap.querySelector("script.plot-data").textContent);
  const div = target.querySelector(".plot");
  return window.Plotly.react(div, data.data, data.layout, PLOT_CONFIG);
}

function drawAll(root) {
  return Promise.all([...root.querySelectorAll(".plot-wrap")].map((wrap) => draw(wrap)));
}

const queryString = () => formQuery(form);

// Swap each changed slot of the page for the server's new one; figures are redrawn in place.
function patch(fragment) {
  // Text outside slots (headings and paragraphs that name a value) is matched by position, so
  // take both lists before any slot is swapped in.
  const pairs = ["section > h2", "section > p:not([data-slot])"].flatMap((selector) => {
    const mine = [...output.querySelectorAll(selector)];
    return [...fragment.querySelectorAll(selector)].map((fresh, i) => [mine[i], fresh]);
  });
  for (const [mine, fresh] of pairs) {
    if (mine && mine.innerHTML !== fresh.innerHTML) mine.innerHTML = fresh.innerHTML;
  }
  for (const fresh of fragment.querySelectorAll("[data-slot]")) {
    const current = output.querySelector(`[data-slot="${fresh.dataset.slot}"]`);
    if (!current) continue;
    if (fresh.classList.contains("plot-wrap")) {
      current.querySelector("script.plot-data").textContent = fresh.querySelector("script.plot-data").textContent;
      draw(current);
    } else if (current.outerHTML !== fresh.outerHTML) {
      current.replaceWith(fresh.cloneNode(true));
    }
  }
}

let pending = null;
let latest = 0;
let sent = null; // the query of the newest request: a second event with nothing changed sends none

async function refresh(force = false) {
  const query = queryString();
  if (query === sent && !force) return; // nothing changed (an input and a change event, say)
  sent = query;
  writeUrl(form);
  const ticket = ++latest;
  output.classList.add("busy");
  try {
    const response = await fetch(`${form.dataset.partial}?${query}`, { headers: { Accept: "text/html" } });
    if (ticket !== latest) return; // a newer request has been sent: its answer wins
    if (!response.ok) {
      const text = await response.text();
      const doc = new DOMParser().parseFromString(text, "text/html");
      showError(banner, doc.querySelector(".detail")?.textContent || `The server answered ${response.status}.`);
      return;
    }
    showError(banner, "");
    const template = document.createElement("template");
    template.innerHTML = await response.text();
    patch(template.content);
    document.dispatchEvent(new CustomEvent("lesson:updated", { detail: { query } }));
  } catch (error) {
    if (ticket === latest) {
      sent = null; // let the same view be asked for again
      showError(banner, `Could not reach the server: ${error.message}`);
    }
  } finally {
    if (ticket === latest) output.classList.remove("busy");
  }
}

function update(delay = 60, force = false) {
  clearTimeout(pending);
  pending = setTimeout(() => refresh(force), delay);
}

// Changes that alter the page's structure (the number of classes) reload the whole page.
function navigate() {
  location.assign(`${location.pathname}?${queryString()}`);
}

function syncOutputs() {
  for (const out of form.querySelectorAll("output[data-for]")) {
    const input = document.getElementById(out.dataset.for);
    if (input) out.textContent = input.value;
  }
}

form.addEventListener("input", (event) => {
  syncOutputs();
  if (event.target.hasAttribute("data-structural")) return; // applied on change
  update();
});
form.addEventListener("change", (event) => {
  if (event.target.hasAttribute("data-structural")) update(0);
});
// Lesson-specific scripts ask for an update or a reload through events on the form.
// detail.force: ask again even if the controls did not change (the data behind them did);
// detail.delay: how long to wait for more changes first, in ms (a key press: none).
form.addEventListener("lesson:update", (event) => update(event.detail?.delay ?? 60, Boolean(event.detail?.force)));
form.addEventListener("lesson:navigate", () => navigate());
form.addEventListener("submit", (event) => {
  event.preventDefault();
  update(0);
});

// A module runs once the document is parsed, after the deferred plotly.js: draw once, now.
drawAll(output);
