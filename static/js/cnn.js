// Convolutional neural networks: move the sliding window in the browser, and filter pictures.
// lesson.js updates the page from the controls form (the server's partial replaces the parts
// marked data-slot). This file steps the window through the positions the server embedded (no
// request per step), and sends the picture, uploaded or a sample, to POST /lessons/cnn/image,
// which answers with the picture panel's markup. The state lives in the URL, except an uploaded
// picture, which cannot: a reload shows the sample named there. Learner text never reaches
// innerHTML; only the server's own rendered markup does.

import { bindKeys, el, FIELDS, fmt, PLOT_CONFIG, showError, writeUrl as writeFormUrl } from "./dom.js";

const form = document.getElementById("controls");
const output = document.getElementById("lesson-output");
const $ = (id) => document.getElementById(id);

const writeUrl = () => writeFormUrl(form);

// --- 1. the sliding window ------------------------------------------------------------------------

let win = null; // the server's steps: {steps, output, output_shape, kernel, stride, padding, dilation, step}

function readWindow() {
  const node = $("window-data");
  win = node ? JSON.parse(node.textContent) : null;
}

function inWindow(r, c, step) {
  const kh = win.kernel.length;
  const kw = win.kernel[0].length;
  const d = win.dilation;
  const dr = r - step.top;
  const dc = c - step.left;
  return dr >= 0 && dc >= 0 && dr % d === 0 && dc % d === 0 && dr / d < kh && dc / d < kw;
}

function renderWindow() {
  if (!win) return;
  const total = win.steps.length;
  const step = win.steps[win.step - 1];
  for (const td of $("window-input").querySelectorAll("td")) {
    td.classList.toggle("in-window", inWindow(Number(td.dataset.r), Number(td.dataset.c), step));
  }
  const products = step.products.flat();
  $("window-products").querySelectorAll("td").forEach((td, i) => (td.textContent = fmt(products[i])));
  const cells = win.output.flat();
  for (const td of $("window-output").querySelectorAll("td")) {
    const i = Number(td.dataset.i);
    td.textContent = i < win.step ? fmt(cells[i]) : "·";
    td.classList.toggle("current", i === win.step - 1);
    td.classList.toggle("pending", i >= win.step);
  }
  const kernel = win.kernel.flat();
  const terms = step.window.flat().map((v, i) => `${fmt(v)}×${fmt(kernel[i])}`).join(" + ");
  const sum = el("strong", "", fmt(step.sum));
  sum.id = "window-sum-value";
  $("window-sum").replaceChildren(`${terms} = `, sum, ` → output[${step.row}][${step.col}]`);
  const slider = $("window-slider");
  slider.max = String(total);
  slider.value = String(win.step);
  $("window-label").textContent = `Step ${win.step} of ${total}`;
  $("window-first").disabled = $("window-prev").disabled = win.step <= 1;
  $("window-next").disabled = $("window-last").disabled = win.step >= total;
  $("step-field").value = String(win.step);
}

function goTo(step) {
  if (!win) return;
  const next = Math.min(Math.max(step, 1), win.steps.length);
  if (next === win.step) return;
  win.step = next;
  renderWindow();
  writeUrl();
}

// The stepper sits inside a part of the page that lesson.js replaces: listen above it.
output.addEventListener("click", (event) => {
  const button = event.target.closest("button");
  if (!button || !win) return;
  const moves = {
    "window-first": () => 1,
    "window-prev": () => win.step - 1,
    "window-next": () => win.step + 1,
    "window-last": () => win.steps.length,
  };
  if (moves[button.id]) goTo(moves[button.id]());
});
output.addEventListener("input", (event) => {
  if (event.target.id === "window-slider") goTo(Number(event.target.value));
});

// The keys move the window (while the page has one); inputs, its slider too, keep theirs.
const moveWindow = (to) => () => Boolean(win) && (goTo(to()), true);
bindKeys(
  {
    ArrowLeft: moveWindow(() => win.step - 1),
    ArrowRight: moveWindow(() => win.step + 1),
    Home: moveWindow(() => 1),
    End: moveWindow(() => win.steps.length),
  },
  { ignore: FIELDS },
);

document.addEventListener("lesson:updated", () => {
  readWindow();
  renderWindow();
});

// --- 2. the picture -------------------------------------------------------------------------------

const panel = $("image-panel");
const fileInput = $("image-file");
const sampleSelect = $("image-sample");
const presetSelect = $("image-preset");
const valuesBox = $("image-values");
const kernelField = $("image-kernel");
const original = $("image-original");
const presetTexts = JSON.parse($("cnn-presets").textContent);

let uploaded = null; // the learner's File while it is the picture shown
let shownUrl = null; // its object URL, revoked when replaced
let ticket = 0;
let timer = null;

function drawImageFigure() {
  const wrap = $("image-result").querySelector(".plot-wrap");
  if (!wrap || !window.Plotly) return;
  const data = JSON.parse(wrap.querySelector("script.plot-data").textContent);
  window.Plotly.react(wrap.querySelector(".plot"), data.data, data.layout, PLOT_CONFIG);
}

function imageRequest(file) {
  const body = new FormData();
  if (file) body.append("file", file, file.name || "picture");
  else body.append("sample", sampleSelect.value);
  body.append("kernel", kernelField.value);
  body.append("stride", $("image-stride").value);
  body.append("padding", $("image-padding").value);
  body.append("pool", $("image-pool").value);
  body.append("pool_size", $("image-pool-size").value);
  return body;
}

function showPicture(file) {
  if (shownUrl) URL.revokeObjectURL(shownUrl);
  shownUrl = file ? URL.createObjectURL(file) : null;
  original.src = shownUrl || `/api/images/samples/${encodeURIComponent(sampleSelect.value)}.png`;
  $("upload-note").hidden = !file;
}

// Send the picture and the filter; `file` is a newly chosen upload (null: keep the current one).
async function refreshImage(file = null) {
  const mine = ++ticket;
  const sending = file || uploaded;
  panel.classList.add("busy");
  const result = $("image-result");
  try {
    const response = await fetch("/lessons/cnn/image", {
      method: "POST",
      body: imageRequest(sending),
      headers: { Accept: "text/html" },
    });
    const text = await response.text();
    if (mine !== ticket) return; // a newer request was sent: its answer wins
    if (!response.ok) {
      const doc = new DOMParser().parseFromString(text, "text/html");
      showError($("image-error"), doc.querySelector(".detail")?.textContent || `The server answered ${response.status}.`);
      if (file) fileInput.value = ""; // the new file was refused: the old picture stays
      return;
    }
    showError($("image-error"), "");
    if (file) {
      uploaded = file;
      showPicture(file);
    }
    const template = document.createElement("template");
    template.innerHTML = text; // the server's own markup for this panel
    result.replaceChildren(template.content);
    result.dataset.source = uploaded ? `upload:${uploaded.name}` : `sample:${sampleSelect.value}`;
    drawImageFigure();
    writeUrl();
  } catch (error) {
    if (mine === ticket) showError($("image-error"), `Could not reach the server: ${error.message}`);
  } finally {
    if (mine === ticket) panel.classList.remove("busy");
  }
}

function scheduleImage(delay = 150) {
  clearTimeout(timer);
  timer = setTimeout(() => refreshImage(), delay);
}

fileInput.addEventListener("change", () => {
  const file = fileInput.files && fileInput.files[0];
  if (file) refreshImage(file);
});

sampleSelect.addEventListener("change", () => {
  uploaded = null;
  fileInput.value = "";
  showPicture(null);
  scheduleImage(0);
});

presetSelect.addEventListener("change", () => {
  const name = presetSelect.value;
  if (name !== "typed") {
    kernelField.value = name;
    valuesBox.value = presetTexts[name];
  } else {
    kernelField.value = valuesBox.value.replace(/\s+/g, " ").trim();
  }
  scheduleImage(0);
});

valuesBox.addEventListener("change", () => {
  const text = valuesBox.value.trim();
  const preset = Object.keys(presetTexts).find((name) => presetTexts[name] === text);
  presetSelect.value = preset || "typed";
  kernelField.value = preset || text.replace(/\s+/g, " ");
  scheduleImage(0);
});

for (const id of ["image-stride", "image-padding", "image-pool", "image-pool-size"]) {
  $(id).addEventListener("input", () => scheduleImage());
}

readWindow();
renderWindow();
$("image-result").dataset.source = `sample:${sampleSelect.value}`;
form.dataset.ready = "true";
