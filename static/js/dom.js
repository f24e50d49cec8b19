// Small helpers the lesson scripts share: build elements (text only through textContent), format
// numbers as the server does, draw a figure with the app's Plotly settings, show a page's error
// banner, bind a lesson's arrow keys, and write the controls form into the URL.

/** The Plotly options of every figure the app draws. */
export const PLOT_CONFIG = Object.freeze({
  responsive: true,
  displaylogo: false,
  modeBarButtonsToRemove: ["lasso2d", "select2d"],
});

/** A new element with a class and text; text goes in through textContent, never as markup. */
export function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

// What follows the kept digits when a value lies exactly halfway between two roundings.
const HALFWAY = /^50*$/;
// Enough further digits to tell an exact tie from its nearest doubles (their gap is ~1e-16
// relative), within the 100 digits toFixed and toExponential allow.
const EXTRA_DIGITS = 25;

// JavaScript rounds exact ties away from zero, Python's format to even: these two give Python's
// digits for a magnitude `a` (>= 0), reading the exact value's further digits to spot a tie.
function fixed(a, places) {
  const rounded = a.toFixed(places);
  const exact = a.toFixed(Math.min(places + EXTRA_DIGITS, 100));
  const cut = exact.indexOf(".") + 1 + places;
  if (!HALFWAY.test(exact.slice(cut))) return rounded;
  const down = exact.slice(0, places ? cut : cut - 1);
  return Number(down.at(-1)) % 2 === 0 ? down : rounded;
}

function scientific(a, places) {
  let text = a.toExponential(places);
  const [mantissa, exponent] = a.toExponential(Math.min(places + EXTRA_DIGITS, 100)).split("e");
  const cut = 2 + places; // "d." and the kept digits
  if (HALFWAY.test(mantissa.slice(cut)) && Number(mantissa[cut - 1]) % 2 === 0) {
    text = `${mantissa.slice(0, cut)}e${exponent}`;
  }
  return text.replace(/e([+-])(\d)$/, "e$10$2"); // Python writes at least two exponent digits
}

/** The string app/web/templating.py fmt(value, digits) gives: fixed digits without trailing
 * zeros, scientific when tiny or huge, "nan", "inf" and "-inf" spelled out, "-0" kept. */
export function fmt(value, digits = 4) {
  const v = Number(value);
  if (Number.isNaN(v)) return "nan";
  if (!Number.isFinite(v)) return v > 0 ? "inf" : "-inf";
  const sign = v < 0 || Object.is(v, -0) ? "-" : "";
  const a = Math.abs(v);
  // Number("1e-4") is the double nearest 10^-4, as Python's 10.0**-4 is (JS's 10 ** -4 is not).
  if (a !== 0 && (a >= 1e6 || a < Number(`1e-${digits}`))) {
    return sign + scientific(a, Math.max(digits - 1, 1));
  }
  const text = fixed(a, digits);
  return sign + (text.includes(".") && digits > 2 ? text.replace(/0+$/, "").replace(/\.$/, "") : text);
}

/** Show `message` in a page's error banner, or hide the banner when the message is empty. */
export function showError(banner, message) {
  banner.textContent = message;
  banner.hidden = !message;
}

// Where the arrow keys belong to the field itself: typing in text, a number or a list. A lesson
// whose sliders and radios step with the arrows of their own passes FIELDS instead.
export const TYPING = "input[type=text], input[type=number], textarea, select";
export const FIELDS = "input, textarea, select, [contenteditable]";

/** Bind a lesson's keys: `handlers` maps an event's key ("ArrowLeft", "Home") to a function of
 * the event that returns true when it used the key (the browser's own action is then prevented).
 * Keys pressed with Alt, Ctrl or Meta, and keys pressed in a field matching `ignore`, are left
 * to the browser. */
export function bindKeys(handlers, { ignore = TYPING } = {}) {
  document.addEventListener("keydown", (event) => {
    if (event.altKey || event.ctrlKey || event.metaKey) return;
    if (event.target.closest?.(ignore)) return;
    const handler = handlers[event.key];
    if (handler && handler(event)) event.preventDefault();
  });
}

/** Check the next (delta 1) or previous (-1) radio of group `name`, wrapping around; null when
 * the form has no such group. Setting `checked` fires no event: the caller asks for the update. */
export function stepRadio(form, name, delta) {
  const radios = [...form.querySelectorAll(`input[type=radio][name="${name}"]`)];
  if (!radios.length) return null;
  const index = radios.findIndex((r) => r.checked);
  const next = radios[(index + delta + radios.length) % radios.length];
  next.checked = true;
  return next;
}

/** Move a range input by `delta` steps within its bounds and fire its "input" event, as a drag
 * would; false when there is no such input. */
export function stepRange(input, delta) {
  if (!input) return false;
  const step = Number(input.step) || 1;
  const value = Math.min(Number(input.max), Math.max(Number(input.min), Number(input.value) + delta * step));
  input.value = String(value);
  input.dispatchEvent(new Event("input", { bubbles: true }));
  return true;
}

/** The form's fields as a query string (values trimmed). */
export function formQuery(form) {
  const params = new URLSearchParams();
  for (const [key, value] of new FormData(form)) params.append(key, String(value).trim());
  return params.toString();
}

/** Put the form's state in the URL (no reload), and keep the JSON-twin link in step with it. */
export function writeUrl(form) {
  const query = formQuery(form);
  history.replaceState(null, "", `${location.pathname}?${query}`);
  const twin = document.getElementById("json-twin");
  if (twin) twin.href = `${twin.pathname}?${query}`;
  return query;
}
