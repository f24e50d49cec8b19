// A lesson page: draw its Plotly figures, and redraw them in place as the controls change.
// The controls form is the lesson's state: every change is written to the URL (so a shared link
// opens the same view) and sent to the server, which answers with the changed part of the page.

import { formQuery, writeUrl } from "./dom.js";

const form = document.getElementById("controls");
const output = document.getElementById("lesson-output");
const banner = document.getElementById("lesson-error");
const PLOT_CONFIG = { responsive: true, displaylogo: false, modeBarButtonsToRemove: ["lasso2d", "select2d"] };

function draw(wrap, target = wrap) {
  const data = JSON.parse(wrap.querySelector("script.plot-data").textContent);
  const div = target.querySelector(".plot");
  return window.Plotly.react(div, data.data, data.layout, PLOT_CONFIG);
}

function drawAll(root) {
  return Promise.all([...root.querySelectorAll(".plot-wrap")].map((wrap) => draw(wrap)));
}

const queryString = () => formQuery(form);

function showError(message) {
  banner.textContent = message;
  banner.hidden = !message;
}

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
      showError(doc.querySelector(".detail")?.textContent || `The server answered ${response.status}.`);
      return;
    }
    showError("");
    const template = document.createElement("template");
    template.innerHTML = await response.text();
    patch(template.content);
    document.dispatchEvent(new CustomEvent("lesson:updated", { detail: { query } }));
  } catch (error) {
    if (ticket === latest) {
      sent = null; // let the same view be asked for again
      showError(`Could not reach the server: ${error.message}`);
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
// detail.force: ask again even if the controls did not change (the data behind them did).
form.addEventListener("lesson:update", (event) => update(60, Boolean(event.detail?.force)));
form.addEventListener("lesson:navigate", () => navigate());
form.addEventListener("submit", (event) => {
  event.preventDefault();
  update(0);
});

// Arrow keys step each lesson's main control. A handler returns true when it used the key.

function stepRadio(form, name, delta) {
  const radios = [...form.querySelectorAll(`input[type=radio][name="${name}"]`)];
  if (!radios.length) return null;
  const index = radios.findIndex((r) => r.checked);
  const next = radios[(index + delta + radios.length) % radios.length];
  next.checked = true;
  return next;
}

function stepRange(input, delta) {
  if (!input) return false;
  const step = Number(input.step) || 1;
  const value = Math.min(Number(input.max), Math.max(Number(input.min), Number(input.value) + delta * step));
  input.value = String(value);
  input.dispatchEvent(new Event("input", { bubbles: true }));
  return true;
}

function softmaxLogit(form, delta) {
  const target = form.querySelector('input[name="target"]:checked')?.value ?? "0";
  const slider = form.querySelector(`input[data-logit="${target}"]`);
  if (!slider) return false;
  return stepRange(slider, delta * 5);
}

const keyHandlers = {
  "softmax-cross-entropy": {
    ArrowLeft: ({ form, update }) => (stepRadio(form, "target", -1) ? (update(0), true) : false),
    ArrowRight: ({ form, update }) => (stepRadio(form, "target", 1) ? (update(0), true) : false),
    ArrowUp: ({ form }) => softmaxLogit(form, 1),
    ArrowDown: ({ form }) => softmaxLogit(form, -1),
  },
  tracking: {
    ArrowLeft: ({ form }) => stepRange(form.querySelector("#smoothing"), -5),
    ArrowRight: ({ form }) => stepRange(form.querySelector("#smoothing"), 5),
    ArrowUp: ({ form }) => stepRange(form.querySelector("#threshold"), 5),
    ArrowDown: ({ form }) => stepRange(form.querySelector("#threshold"), -5),
  },
  "transfer-learning": {
    ArrowLeft: ({ form }) => stepRange(form.querySelector("#examples"), -1),
    ArrowRight: ({ form }) => stepRange(form.querySelector("#examples"), 1),
    ArrowUp: ({ form }) => stepRange(form.querySelector("#epochs"), 1),
    ArrowDown: ({ form }) => stepRange(form.querySelector("#epochs"), -1),
  },
  activations: {
    ArrowLeft: ({ form, update }) => (stepRadio(form, "name", -1) ? (update(0), true) : false),
    ArrowRight: ({ form, update }) => (stepRadio(form, "name", 1) ? (update(0), true) : false),
    ArrowUp: ({ form }) => stepRange(form.querySelector("#depth"), 1),
    ArrowDown: ({ form }) => stepRange(form.querySelector("#depth"), -1),
  },
};

const handlers = keyHandlers[document.querySelector(".lesson")?.dataset.lesson];
document.addEventListener("keydown", (event) => {
  if (!handlers || event.altKey || event.ctrlKey || event.metaKey) return;
  const typing = event.target.closest("input[type=text], input[type=number], textarea, select");
  if (typing) return;
  const handler = handlers[event.key];
  if (handler && handler({ form, update, navigate })) event.preventDefault();
});

// A module runs once the document is parsed, after the deferred plotly.js: draw once, now.
drawAll(output);
