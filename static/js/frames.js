// One step of a program drawn as Python Tutor draws it, and what a PyTorch learner needs on top:
// the call stack frame by frame (a step names each running call's variables `name@depth`, depth 1
// the outermost call, as in its `stack`: API.md "Programs"), objects that two names hold marked as
// one object (`ref`), a module as its layer tree, an optimizer as its parameter groups and state,
// a dataset with its length and first item, a DataLoader with its batches. Shared by the
// playground and the Tensors lesson. Learner text only ever goes in through textContent.
import { el, fmt } from "./dom.js";
import { describe, valueCard } from "./values.js";

const REF_COLOURS = ["#8172b3", "#c44e52", "#55a868", "#dd8452", "#4c72b0", "#937860"];
const GRID_SHOWN = 48; // a tensor with more elements shows its grid on request

// What the page drawing the frames adds: buttons beside a value, and how a tensor's card is made.
let context = { actions: () => [], card: tensorCard };

// Split `name@depth` keys into frames: [globals, call 1, call 2, ...].
function framesOf(variables, stack) {
  const frames = [{ title: "Global frame", line: null, variables: [] }];
  (stack || []).slice(1).forEach((frame) => frames.push({ title: frame.function, line: frame.line, variables: [] }));
  for (const [key, value] of variables) {
    const at = key.lastIndexOf("@");
    const depth = at > 0 ? Number(key.slice(at + 1)) : 0;
    const frame = frames[depth] || frames[0];
    frame.variables.push({ key, name: at > 0 ? key.slice(0, at) : key, value });
  }
  return frames;
}

// Refs (object names) held by two or more names at this step: shown as the same object.
function sharedRefs(variables) {
  const holders = new Map();
  const visit = (value, path) => {
    if (!value || typeof value !== "object") return;
    if (value.ref) {
      if (!holders.has(value.ref)) holders.set(value.ref, []);
      holders.get(value.ref).push(path);
    }
    if (value.kind === "object" && value.attributes) {
      for (const [name, inner] of Object.entries(value.attributes)) visit(inner, `${path}.${name}`);
    }
    if ((value.kind === "list" || value.kind === "tuple") && value.items) {
      value.items.forEach((item, i) => visit(item, `${path}[${i}]`));
    }
  };
  for (const [key, value] of variables) visit(value, displayName(key));
  return new Map([...holders].filter(([, names]) => names.length > 1));
}

export function displayName(key) {
  const at = key.lastIndexOf("@");
  return at > 0 ? key.slice(0, at) : key;
}

const refColour = (ref) => REF_COLOURS[(Number(String(ref).replace(/\D/g, "")) || 0) % REF_COLOURS.length];


function chip(text, className = "") {
  return el("span", `badge-chip ${className}`.trim(), text);
}

function refChip(value, shared, name) {
  const others = (shared.get(value.ref) || []).filter((n) => n !== name);
  const ref = chip(others.length ? `same object as ${others.join(", ")}` : `object ${value.ref}`, others.length ? "same-object" : "");
  ref.dataset.ref = value.ref;
  ref.style.borderColor = refColour(value.ref);
  ref.style.color = refColour(value.ref);
  ref.title = others.length
    ? `${name} and ${others.join(", ")} are names for one object (${value.ref}): change it through one and the other sees it`
    : `This object is ${value.ref}`;
  return ref;
}

function table(headers, rows) {
  const t = el("table", "mini-table");
  const head = el("tr");
  for (const h of headers) head.append(el("th", "", h));
  const body = el("tbody");
  for (const row of rows) {
    const tr = el("tr");
    for (const cell of row) tr.append(cell instanceof Node ? wrapCell(cell) : el("td", "", String(cell)));
    body.append(tr);
  }
  const thead = el("thead");
  thead.append(head);
  t.append(thead, body);
  return t;
}

function wrapCell(node) {
  const td = el("td");
  td.append(node);
  return td;
}

function moduleView(key, value) {
  const box = el("div", "module-view");
  const rows = (value.layers || []).map((layer) => [
    layer.name || "(the model)",
    layer.type,
    layer.parameters ? layer.parameters.toLocaleString("en") : "–",
    layer.requires_grad === null || layer.requires_grad === undefined ? "–" : layer.requires_grad ? "yes" : "no",
  ]);
  box.append(el("p", "muted", `${value.class || "Module"} · ${(value.parameter_count || 0).toLocaleString("en")} parameters · ${value.training ? "training" : "eval"} mode`));
  box.append(table(["layer", "type", "parameters", "requires_grad"], rows));
  const params = Object.entries(value.parameters || {});
  if (params.length) {
    const details = el("details", "module-params");
    details.append(el("summary", "", `Parameter values (${params.length})`));
    for (const [name, tensor] of params) {
      const card = tensorCard(`${displayName(key)}.${name}`, tensor);
      card.querySelector(".value-head").append(...context.actions(key, tensor, name));
      details.append(card);
    }
    box.append(details);
  }
  if (value.attributes) box.append(attributesView(key, value.attributes, new Map()));
  return box;
}

function optimizerView(value) {
  const box = el("div", "optimizer-view");
  const rows = value.groups.map((group, i) => [
    String(i),
    `${group.parameters} tensors (${group.elements.toLocaleString("en")} numbers)`,
    Object.entries(group.settings)
      .filter(([, v]) => v !== null && v !== false)
      .map(([k, v]) => `${k}=${Array.isArray(v) ? `(${v.map((x) => fmt(x)).join(", ")})` : typeof v === "number" ? fmt(v) : v}`)
      .join(", "),
  ]);
  box.append(table(["group", "parameters", "settings"], rows));
  const st = value.state;
  box.append(el("p", "muted", st.parameters ? `State kept for ${st.parameters} parameters: ${st.keys.join(", ")}` : "No state yet (it appears after the first step())."));
  return box;
}

function datasetView(key, value, shared) {
  const box = el("div", "dataset-view");
  const length = value.length === null || value.length === undefined ? "its length is its own __len__" : `${value.length.toLocaleString("en")} items`;
  box.append(el("p", "muted", `${value.class} · ${length}`));
  if (value.first) {
    box.append(el("p", "muted", "Its first item, dataset[0]:"));
    box.append(valueList(`${key}[0]`, value.first, shared, `${displayName(key)}[0]`));
  }
  return box;
}

function loaderView(key, value, shared) {
  const box = el("div", "loader-view");
  const parts = [`batch_size=${value.batch_size}`, value.shuffle ? "shuffle=True (a new order each epoch)" : "in order"];
  if (value.drop_last) parts.push("drop_last=True");
  if (value.batches !== null && value.batches !== undefined) parts.push(`${value.batches} batches per epoch`);
  box.append(el("p", "muted", parts.join(" · ")));
  if (value.dataset) {
    const inner = el("div", "loader-dataset");
    inner.append(el("span", "muted", "dataset: "), valueNode(`${key}.dataset`, value.dataset, shared, `${displayName(key)}.dataset`));
    box.append(inner);
  }
  return box;
}

// A tuple or list of tensors (a batch, a dataset item) as one card each.
function valueList(key, value, shared, name) {
  if ((value.kind === "tuple" || value.kind === "list") && (value.items || []).some((item) => item.kind === "tensor")) {
    const box = el("div", "value-list");
    value.items.forEach((item, i) => box.append(valueNode(`${key}[${i}]`, item, shared, `${name}[${i}]`)));
    return box;
  }
  return valueNode(key, value, shared, name);
}

function attributesView(key, attributes, shared) {
  const list = el("dl", "attributes");
  for (const [name, value] of Object.entries(attributes)) {
    list.append(el("dt", "", `.${name}`));
    const dd = el("dd");
    dd.append(valueNode(`${key}.${name}`, value, shared, `${displayName(key)}.${name}`));
    list.append(dd);
  }
  return list;
}

// A Value as the frames panel draws it (objects and modules as Python Tutor's boxes).
function valueNode(key, value, shared, name = displayName(key)) {
  if (value.kind === "tensor" || value.kind === "ndarray") return tensorCard(name, value);
  if (value.kind === "object") {
    const box = el("div", "object-view");
    const head = el("div", "value-head");
    head.append(chip(`${value.class} instance`), refChip(value, shared, name));
    box.style.borderLeftColor = refColour(value.ref);
    box.append(head, attributesView(key, value.attributes || {}, shared));
    if (value.attributes_truncated) box.append(el("p", "muted", "more attributes not shown"));
    return box;
  }
  if (value.kind === "dataset" || value.kind === "dataloader") {
    const box = el("div", "object-view");
    const head = el("div", "value-head");
    head.append(chip(value.class), refChip(value, shared, name));
    box.append(head, value.kind === "dataset" ? datasetView(key, value, shared) : loaderView(key, value, shared));
    return box;
  }
  if ((value.kind === "tuple" || value.kind === "list") && (value.items || []).some((item) => item.kind === "tensor")) {
    return valueList(key, value, shared, name);
  }
  const text = el("code", "value-text", describe(value));
  if (value.ref && (shared.get(value.ref) || []).length > 1) {
    const wrap = el("span");
    wrap.append(text, " ", refChip(value, shared, name));
    return wrap;
  }
  return text;
}


// A tensor with many elements shows its values on request: the frames stay readable.
export function tensorCard(name, value, options) {
  const card = valueCard(name, value, options);
  const count = (value.shape || []).reduce((a, b) => a * b, 1);
  if (count > GRID_SHOWN) {
    const details = el("details", "tensor-values");
    details.append(el("summary", "", `values (${count.toLocaleString("en")} elements)`));
    for (const node of [...card.children].filter((child) => !child.classList.contains("value-head"))) details.append(node);
    card.append(details);
  }
  return card;
}

function variableRow(entry, shared, changed) {
  const { key, name, value } = entry;
  const row = el("div", `frame-var${changed ? " changed" : ""}`);
  row.dataset.key = key;
  const actions = el("span", "value-actions");
  // The final state is no step: nothing to plot or graph there.
  if (!key.startsWith("final:")) actions.append(...context.actions(key, value, null));
  if (value.kind === "tensor" || value.kind === "ndarray") {
    const card = context.card(name, value, { changed, key });
    if (value.ref && shared.has(value.ref)) card.querySelector(".value-head").append(refChip(value, shared, name));
    card.querySelector(".value-head").append(actions);
    row.append(card);
    return row;
  }
  const head = el("div", "value-head");
  head.append(el("code", "value-name", name));
  if (value.kind === "module") head.append(chip(value.class || "Module"), refChip(value, shared, name));
  if (value.kind === "optimizer") head.append(chip(value.class), refChip(value, shared, name));
  head.append(actions);
  row.append(head);
  if (value.kind === "module") row.append(moduleView(key, value));
  else if (value.kind === "optimizer") row.append(optimizerView(value));
  else row.append(valueNode(key, value, shared, name));
  return row;
}

/**
 * Draw one step's frames into `box`, as Python Tutor does: the global frame, then each running
 * call (from `stack`) with its own variables, the `name@depth` keys of the trace; objects two
 * names hold marked as one (`ref`); modules, optimizers, datasets and loaders as their parts.
 * Options: `changed` (a Set of the keys the step changed), `final` (the variables the program
 * ended with, shown after the frames), `actions(key, value, param)` (buttons beside a value) and
 * `card(name, value, {changed, key})` (a tensor's card; values.js valueCard by default).
 */
export function drawFrames(box, variables, stack, { changed = new Set(), final = null, actions, card } = {}) {
  context = { actions: actions || (() => []), card: card || tensorCard };
  const shared = sharedRefs(variables);
  const frames = framesOf(variables, stack);
  box.replaceChildren(
    ...frames.map((frame, depth) => {
      const section = el("section", `frame${depth === frames.length - 1 ? " active" : ""}`);
      section.dataset.depth = String(depth);
      const title = el("h3", "frame-title", frame.title);
      if (frame.line) title.append(el("span", "muted", ` · line ${frame.line}`));
      section.append(title);
      const shown = frame.variables.filter((v) => !isDefinition(v.value));
      if (!shown.length) section.append(el("p", "muted", "no variables yet"));
      for (const entry of shown) section.append(variableRow(entry, shared, changed.has(entry.key)));
      return section;
    }),
  );
  if (final) {
    const section = el("section", "frame final");
    section.append(el("h3", "frame-title", "When the program ended (after the recorded steps)"));
    const finalVariables = new Map(Object.entries(final));
    const finalShared = sharedRefs(finalVariables);
    for (const [key, value] of finalVariables) {
      if (!isDefinition(value)) section.append(variableRow({ key: `final:${key}`, name: key, value }, finalShared, false));
    }
    box.append(section);
  }
}

// A function or class the program defined: shown in the listing, not as a variable.
const isDefinition = (value) => value.kind === "other" && /^<(function|class) /.test(value.repr || "");
