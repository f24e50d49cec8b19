// Render the sandbox's Values (API.md "Programs") as HTML: tensors and arrays as grids of numbers
// with their shape, dtype, stride and storage; everything else as text. Shared by the Tensors and
// Autograd lessons. No innerHTML with learner data: every string goes in through textContent.

import { el } from "./dom.js";

const STORAGE_COLOURS = ["#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3", "#8c8c8c"];

/** A stable colour for a storage token such as "s3", so shared memory shows as one colour. */
export function storageColour(token) {
  const n = Number(String(token).replace(/\D/g, "")) || 0;
  return STORAGE_COLOURS[(n - 1 + STORAGE_COLOURS.length) % STORAGE_COLOURS.length];
}

/** A number for a cell: up to 4 significant decimals; "nan"/"inf" strings pass through. */
export function formatNumber(v) {
  if (typeof v === "string") return v;
  if (typeof v === "boolean") return v ? "True" : "False";
  if (Number.isInteger(v)) return String(v);
  const a = Math.abs(v);
  if (a !== 0 && (a < 1e-3 || a >= 1e5)) return v.toExponential(2);
  return String(Number(v.toFixed(4)));
}

/** A 0-, 1- or 2-d nested list as a table; higher dimensions as labelled 2-d slices. */
export function grid(values, shape, label = "") {
  if (shape.length > 2) {
    const wrap = el("div", "slices");
    values.forEach((slice, i) => {
      const part = el("div", "slice");
      part.append(el("div", "slice-label", `${label}[${i}]`), grid(slice, shape.slice(1), `${label}[${i}]`));
      wrap.append(part);
    });
    return wrap;
  }
  const rows = shape.length === 2 ? values : [shape.length === 1 ? values : [values]];
  const table = el("table", "grid");
  const body = el("tbody");
  for (const row of rows) {
    const tr = el("tr");
    for (const v of shape.length === 0 ? row : row) tr.append(el("td", "", formatNumber(v)));
    body.append(tr);
  }
  table.append(body);
  return table;
}

function badge(text, className = "") {
  return el("span", `badge-chip ${className}`.trim(), text);
}

/**
 * A card for one variable. Options: changed (highlight it), previous (its Value one step
 * earlier, to mark changed cells is left to the caller).
 */
export function valueCard(name, value, { changed = false } = {}) {
  const card = el("div", `value-card kind-${value.kind}${changed ? " changed" : ""}`);
  card.dataset.variable = name;
  const head = el("div", "value-head");
  head.append(el("code", "value-name", name));
  if (value.kind === "tensor" || value.kind === "ndarray") {
    head.append(badge(`${value.kind === "tensor" ? "tensor" : "ndarray"} ${JSON.stringify(value.shape)}`));
    head.append(badge(value.dtype));
    head.append(badge(`stride ${JSON.stringify(value.stride)}`));
    const storage = badge(`storage ${value.storage}`, "storage");
    storage.style.borderColor = storageColour(value.storage);
    storage.style.color = storageColour(value.storage);
    storage.title = "Variables with the same storage share memory: change one and the other changes";
    head.append(storage);
    if (value.requires_grad) head.append(badge("requires_grad", "grad"));
    if (value.grad_fn) head.append(badge(`grad_fn=${value.grad_fn}`, "grad"));
    if (value.kind === "tensor" && value.requires_grad) head.append(badge(value.is_leaf ? "leaf" : "not a leaf"));
    if (value.version) head.append(badge(`version ${value.version}`));
    card.append(head);
    card.style.borderLeftColor = storageColour(value.storage);
    if (value.values === null || value.values === undefined) {
      const count = value.shape.reduce((a, b) => a * b, 1);
      card.append(el("p", "muted", `${count} elements: too many to show`));
    } else {
      card.append(grid(value.values, value.shape));
    }
    if (value.grad !== null && value.grad !== undefined) {
      card.append(el("div", "grad-label", ".grad"));
      card.append(grid(value.grad, Array.isArray(value.grad) ? value.shape : []));
    }
    return card;
  }
  card.append(head);
  card.append(el("div", "value-text", describe(value)));
  return card;
}

/** Any non-tensor Value as Python would print it. */
export function describe(value) {
  switch (value.kind) {
    case "number":
    case "bool":
      return formatNumber(value.value);
    case "str":
      return JSON.stringify(value.value);
    case "none":
      return "None";
    case "list":
    case "tuple": {
      const inner = (value.items || []).map(describe).join(", ");
      const more = value.truncated ? ", …" : "";
      return value.kind === "list" ? `[${inner}${more}]` : `(${inner}${more})`;
    }
    case "dtype":
      return `torch.${value.value}`;
    case "size":
      return `torch.Size([${value.value.join(", ")}])`;
    case "grad_fn":
      return `<${value.name}>`;
    default:
      return value.repr ?? value.value ?? value.kind;
  }
}
