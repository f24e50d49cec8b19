// Small helpers the lesson scripts share: build elements (text only through textContent), format
// numbers as the server does, and write the controls form into the URL.

/** A new element with a class and text; text goes in through textContent, never as markup. */
export function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

/** As app/web/templating.py fmt(v, 4): fixed digits, trailing zeros dropped, tiny or huge in
 * e-notation. */
export function fmt(value) {
  const v = Number(value);
  if (!Number.isFinite(v)) return String(v);
  if (v !== 0 && (Math.abs(v) >= 1e6 || Math.abs(v) < 1e-4)) return v.toExponential(3);
  const text = v.toFixed(4).replace(/0+$/, "").replace(/\.$/, "");
  return text === "-0" ? "0" : text;
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
