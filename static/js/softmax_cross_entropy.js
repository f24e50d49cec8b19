// Softmax lesson: the logit sliders write the typed "logits" field; +/- class reload the page;
// the arrow keys choose the true class (left, right) and raise or lower its logit (up, down).
// lesson.js does the updating: this file only asks for it, with events on the form.

import { bindKeys, fmt, stepRadio, stepRange } from "./dom.js";

const form = document.getElementById("controls");
const update = () => form.dispatchEvent(new CustomEvent("lesson:update"));
const navigate = () => form.dispatchEvent(new CustomEvent("lesson:navigate"));
const typed = document.getElementById("logits");
const sliders = [...form.querySelectorAll("input[data-logit]")];

function fromSliders() {
  typed.value = sliders.map((s) => Number(s.value)).join(", ");
}

for (const slider of sliders) {
  slider.addEventListener("input", () => {
    const out = form.querySelector(`output[data-for="${slider.id}"]`);
    if (out) out.textContent = fmt(slider.value, 2); // as the page first wrote it
    fromSliders();
    update();
  });
}

// A new number of classes changes the page's structure: reload it. Anything else, including a
// value that is not a number, goes through the in-place update, which shows the server's message.
typed.addEventListener("change", () => {
  const parts = typed.value.split(",").filter((p) => p.trim());
  const numbers = parts.every((p) => Number.isFinite(Number(p)));
  if (numbers && parts.length !== sliders.length) navigate();
});

document.getElementById("add-class")?.addEventListener("click", () => {
  typed.value = `${typed.value}, 0`;
  navigate();
});

document.getElementById("remove-class")?.addEventListener("click", () => {
  const values = typed.value.split(",").filter((p) => p.trim());
  if (values.length <= 2) return;
  values.pop();
  typed.value = values.join(",");
  const target = form.querySelector('input[name="target"]:checked');
  if (target && Number(target.value) >= values.length) {
    form.querySelector('input[name="target"][value="0"]').checked = true;
  }
  navigate();
});

function chooseTarget(delta) {
  if (!stepRadio(form, "target", delta)) return false;
  form.dispatchEvent(new CustomEvent("lesson:update", { detail: { delay: 0 } }));
  return true;
}

// One key press moves the true class's logit slider five of its steps.
function stepTargetLogit(delta) {
  const target = form.querySelector('input[name="target"]:checked')?.value ?? "0";
  return stepRange(form.querySelector(`input[data-logit="${target}"]`), delta * 5);
}

bindKeys({
  ArrowLeft: () => chooseTarget(-1),
  ArrowRight: () => chooseTarget(1),
  ArrowUp: () => stepTargetLogit(1),
  ArrowDown: () => stepTargetLogit(-1),
});
