// Form builder: edits the elements JSON through a visual editor with drag-and-drop and
// keyboard reordering, and shows a live preview. The server validates on save.
const root = document.querySelector("[data-form-builder]");
const jsonBox = root.querySelector("#f-elements");
const list = root.querySelector("[data-element-list]");
const preview = root.querySelector("[data-preview]");
const status = root.querySelector("[data-builder-status]");

const TYPE_LABELS = {
  "text-field": "Text field", textarea: "Text area", number: "Number", date: "Date", checkbox: "Checkbox",
  dropdown: "Dropdown", radio: "Radio buttons", "multi-select": "Multi-select", "file-upload": "File upload",
  "text-panel": "Text panel",
};
const CHOICE = new Set(["dropdown", "radio", "multi-select"]);
const TEXTY = new Set(["text-field", "textarea"]);
const OPS = [["eq", "equals"], ["neq", "does not equal"], ["in", "is one of"], ["notIn", "is none of"], ["filled", "is filled"]];

let elements;
try {
  elements = JSON.parse(jsonBox.value || "[]");
  if (!Array.isArray(elements)) elements = [];
} catch {
  elements = null; // keep the raw JSON editor: the server will explain what is wrong
}
let serverErrors = [];
const errorBox = document.querySelector("[data-builder-errors]");
if (errorBox) serverErrors = JSON.parse(errorBox.dataset.builderErrors);

const uid = () => Math.random().toString(36).slice(2, 10);

function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === false || value === null || value === undefined) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key in node && typeof value !== "string") node[key] = value;
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) if (child !== null && child !== undefined) node.append(child);
  return node;
}

function announce(text) {
  status.textContent = text;
}

function sync() {
  jsonBox.value = JSON.stringify(elements, null, 2);
  renderPreview();
}

function uniqueName(base) {
  const taken = new Set(elements.map((e) => e.name));
  let n = elements.length + 1;
  while (taken.has(`${base}_${n}`)) n += 1;
  return `${base}_${n}`;
}

function newElement(type) {
  const el = { id: uid(), type, name: type === "text-panel" ? "" : uniqueName(type.replace("-", "_")) };
  if (type === "text-panel") el.content = "Some **helpful** text.";
  else {
    el.label = TYPE_LABELS[type];
    el.required = false;
  }
  if (type === "text-field") el.format = "text";
  if (CHOICE.has(type)) el.options = [{ id: uid(), label: "Option 1", value: "option1" }];
  return el;
}

function labelled(id, text, control, extraClass = "") {
  return h("div", { class: `field ${extraClass}` }, h("label", { for: id, text }), control);
}

function textInput(el, key, id, label, { type = "text", numeric = false, cls = "" } = {}) {
  const input = h("input", { id, type, value: el[key] ?? "" });
  input.addEventListener("input", () => {
    const raw = input.value;
    if (raw === "") delete el[key];
    else el[key] = numeric ? Number(raw) : raw;
    if (key === "label" || key === "name") refreshSummary(el);
    sync();
  });
  return labelled(id, label, input, cls);
}

function refreshSummary(el) {
  const item = list.querySelector(`[data-id="${CSS.escape(el.id)}"] .element-summary`);
  if (item) item.textContent = summaryText(el);
}

function summaryText(el) {
  if (el.type === "text-panel") return (el.content || "").slice(0, 60) || "Text panel";
  return `${el.label || "(no label)"} · ${el.name || "(no name)"}`;
}

function optionsEditor(el, base) {
  const wrap = h("div", { class: "span-all" }, h("p", { class: "field-label", text: "Options" }));
  const rows = h("div");
  const draw = () => {
    rows.replaceChildren(
      ...el.options.map((option, i) => {
        const lid = `${base}-opt-${i}-label`;
        const vid = `${base}-opt-${i}-value`;
        const label = h("input", { id: lid, type: "text", value: option.label });
        label.addEventListener("input", () => {
          option.label = label.value;
          sync();
        });
        const value = h("input", { id: vid, type: "text", value: option.value });
        value.addEventListener("input", () => {
          option.value = value.value;
          sync();
        });
        const remove = h("button", {
          type: "button", class: "btn btn-ghost btn-small", text: "Remove",
          "aria-label": `Remove option ${i + 1}`, disabled: el.options.length <= 1,
          onclick: () => {
            el.options.splice(i, 1);
            draw();
            sync();
          },
        });
        return h("div", { class: "option-row" },
          labelled(lid, `Option ${i + 1} label`, label), labelled(vid, `Option ${i + 1} value`, value), remove);
      }),
    );
  };
  draw();
  const add = h("button", {
    type: "button", class: "btn btn-secondary btn-small", text: "+ Add option",
    onclick: () => {
      const n = el.options.length + 1;
      el.options.push({ id: uid(), label: `Option ${n}`, value: `option${n}` });
      draw();
      sync();
      rows.querySelector(".option-row:last-child input")?.focus();
    },
  });
  wrap.append(rows, add);
  return wrap;
}

function coerce(raw, target) {
  if (!target) return raw;
  if (target.type === "number" && raw.trim() !== "" && !Number.isNaN(Number(raw))) return Number(raw);
  if (target.type === "checkbox") return raw === "true";
  return raw;
}

const PRIORITIES = [["low", "Low"], ["normal", "Normal"], ["high", "High"], ["urgent", "Urgent"]];

// "Sets priority": the answer becomes the ticket's priority (mapsTo), so the options must be
// priorities; checking it offers the four when the options are anything else.
function mapsToEditor(el, base) {
  const box = h("input", { type: "checkbox", id: `${base}-mapsTo`, checked: el.mapsTo === "priority" });
  box.addEventListener("change", () => {
    if (box.checked) {
      el.mapsTo = "priority";
      const known = new Set(PRIORITIES.map(([v]) => v));
      if (!el.options.every((o) => known.has(o.value))) {
        el.options = PRIORITIES.map(([value, label]) => ({ id: uid(), label, value }));
      }
    } else {
      delete el.mapsTo;
    }
    render();
    sync();
    document.getElementById(`${base}-mapsTo`)?.focus();
  });
  return h("div", { class: "field field-check" }, box,
    h("label", { for: `${base}-mapsTo`, text: "Sets priority (options: low, normal, high, urgent)" }));
}

function showIfEditor(el, index, base) {
  const earlier = elements.slice(0, index).filter((e) => e.type !== "text-panel" && e.name);
  const fieldSel = h("select", { id: `${base}-sif-field` },
    h("option", { value: "", text: "Always shown" }),
    ...earlier.map((e) => h("option", { value: e.name, text: e.label || e.name, selected: el.showIf?.field === e.name })));
  const opSel = h("select", { id: `${base}-sif-op` },
    ...OPS.map(([op, text]) => h("option", { value: op, text, selected: (el.showIf?.op || "eq") === op })));
  const current = el.showIf?.value;
  const valueInput = h("input", {
    id: `${base}-sif-value`, type: "text",
    value: Array.isArray(current) ? current.join(", ") : current === undefined || current === null ? "" : String(current),
    placeholder: "value (comma-separated for lists)",
  });
  const update = () => {
    if (!fieldSel.value) {
      delete el.showIf;
    } else {
      const target = elements.find((e) => e.name === fieldSel.value);
      const rule = { field: fieldSel.value, op: opSel.value };
      if (rule.op === "in" || rule.op === "notIn") {
        rule.value = valueInput.value.split(",").map((v) => v.trim()).filter(Boolean).map((v) => coerce(v, target));
      } else if (rule.op !== "filled") {
        rule.value = coerce(valueInput.value, target);
      }
      el.showIf = rule;
    }
    opSel.disabled = valueInput.disabled = !fieldSel.value;
    valueInput.hidden = opSel.value === "filled";
    sync();
  };
  fieldSel.addEventListener("change", update);
  opSel.addEventListener("change", update);
  valueInput.addEventListener("input", update);
  opSel.disabled = valueInput.disabled = !fieldSel.value;
  valueInput.hidden = opSel.value === "filled";
  return h("div", { class: "span-all row" },
    labelled(`${base}-sif-field`, "Show only if", fieldSel),
    labelled(`${base}-sif-op`, "Condition", opSel),
    labelled(`${base}-sif-value`, "Condition value", valueInput, "field-grow"));
}

function move(index, delta, focusSelector) {
  const target = index + delta;
  if (target < 0 || target >= elements.length) return;
  const [item] = elements.splice(index, 1);
  elements.splice(target, 0, item);
  render();
  sync();
  announce(`Moved ${summaryText(item)} to position ${target + 1} of ${elements.length}.`);
  if (focusSelector) {
    // Keep the keyboard where it was; at either end the other move button takes over.
    const card = list.children[target];
    const preferred = card.querySelector(focusSelector);
    (preferred && !preferred.disabled ? preferred : card.querySelector("[data-move]:not([disabled])"))?.focus();
  }
}

function card(el, index) {
  const base = `el-${el.id}`;
  const up = h("button", {
    type: "button", class: "btn btn-ghost btn-small icon-btn", "data-move": "up", "aria-label": `Move ${summaryText(el)} up`,
    disabled: index === 0, text: "↑", onclick: () => move(index, -1, "[data-move=up]"),
  });
  const down = h("button", {
    type: "button", class: "btn btn-ghost btn-small icon-btn", "data-move": "down", "aria-label": `Move ${summaryText(el)} down`,
    disabled: index === elements.length - 1, text: "↓", onclick: () => move(index, 1, "[data-move=down]"),
  });
  const remove = h("button", {
    type: "button", class: "btn btn-ghost btn-small", text: "Remove", "aria-label": `Remove ${summaryText(el)}`,
    onclick: () => {
      elements.splice(index, 1);
      render();
      sync();
      announce(`Removed ${summaryText(el)}.`);
    },
  });
  const head = h("div", { class: "element-head" },
    h("span", { class: "drag-handle", "aria-hidden": "true", text: "⠿", title: "Drag to reorder" }),
    h("span", { class: "badge badge-role element-type", text: TYPE_LABELS[el.type] || el.type }),
    h("span", { class: "element-summary", text: summaryText(el) }), up, down, remove);
  const body = h("div", { class: "element-body" });
  if (el.type === "text-panel") {
    const content = h("textarea", { id: `${base}-content`, rows: 3 });
    content.value = el.content || "";
    content.addEventListener("input", () => {
      el.content = content.value;
      refreshSummary(el);
      sync();
    });
    body.append(labelled(`${base}-content`, "Content (Markdown)", content, "span-all"));
  } else {
    body.append(textInput(el, "label", `${base}-label`, "Label"), textInput(el, "name", `${base}-name`, "Name (answer key)"));
    const req = h("input", { type: "checkbox", id: `${base}-required`, checked: !!el.required });
    req.addEventListener("change", () => {
      el.required = req.checked;
      sync();
    });
    body.append(h("div", { class: "field field-check" }, req, h("label", { for: `${base}-required`, text: "Required" })));
    if (TEXTY.has(el.type) || el.type === "number") body.append(textInput(el, "placeholder", `${base}-placeholder`, "Placeholder"));
    if (el.type === "text-field") {
      const fmt = h("select", { id: `${base}-format` },
        h("option", { value: "text", text: "Text", selected: el.format !== "email" }),
        h("option", { value: "email", text: "E-mail", selected: el.format === "email" }));
      fmt.addEventListener("change", () => {
        el.format = fmt.value;
        sync();
      });
      body.append(labelled(`${base}-format`, "Format", fmt));
    }
    if (TEXTY.has(el.type)) {
      body.append(
        textInput(el, "minLength", `${base}-minLength`, "Min length", { type: "number", numeric: true }),
        textInput(el, "maxLength", `${base}-maxLength`, "Max length", { type: "number", numeric: true }),
        textInput(el, "pattern", `${base}-pattern`, "Pattern (regular expression)"),
      );
    }
    if (el.type === "number") {
      body.append(
        textInput(el, "min", `${base}-min`, "Minimum", { type: "number", numeric: true }),
        textInput(el, "max", `${base}-max`, "Maximum", { type: "number", numeric: true }),
      );
    }
    if (el.type === "dropdown" || el.type === "radio") body.append(mapsToEditor(el, base));
    if (CHOICE.has(el.type)) body.append(optionsEditor(el, base));
    body.append(showIfEditor(el, index, base));
  }
  const errs = serverErrors.filter((e) => e.index === index);
  for (const e of errs) body.append(h("p", { class: "field-error", text: `${e.key}: ${e.message}` }));
  const item = h("li", { class: `element-item${errs.length ? " has-error" : ""}`, "data-id": el.id, "data-index": index }, head, body);
  head.draggable = true;
  head.addEventListener("dragstart", (event) => {
    event.dataTransfer.effectAllowed = "move";
    event.dataTransfer.setData("text/plain", String(index));
    item.classList.add("dragging");
  });
  head.addEventListener("dragend", () => item.classList.remove("dragging"));
  item.addEventListener("dragover", (event) => {
    event.preventDefault();
    item.classList.add("drop-target");
  });
  item.addEventListener("dragleave", () => item.classList.remove("drop-target"));
  item.addEventListener("drop", (event) => {
    event.preventDefault();
    item.classList.remove("drop-target");
    const from = Number(event.dataTransfer.getData("text/plain"));
    if (!Number.isNaN(from) && from !== index) move(from, index - from, null);
  });
  return item;
}

function render() {
  list.replaceChildren(...elements.map(card));
  if (!elements.length) list.append(h("li", { class: "muted", text: "No elements yet: add one below." }));
}

function previewControl(el, id) {
  const req = !!el.required;
  switch (el.type) {
    case "textarea":
      return h("textarea", { id, rows: 3, placeholder: el.placeholder || "", required: req });
    case "number":
      return h("input", { id, type: "number", min: el.min ?? false, max: el.max ?? false, required: req });
    case "date":
      return h("input", { id, type: "date", required: req });
    case "dropdown":
      return h("select", { id, required: req }, h("option", { value: "", text: "Choose…" }),
        ...(el.options || []).map((o) => h("option", { value: o.value, text: o.label })));
    case "file-upload":
      return h("input", { id, type: "file" });
    default:
      return h("input", { id, type: el.format === "email" ? "email" : "text", placeholder: el.placeholder || "", required: req });
  }
}

function renderPreview() {
  const nodes = elements.map((el, i) => {
    const id = `pv-${i}`;
    const note = el.showIf ? h("p", { class: "showif-note", text: `Shown only if ${el.showIf.field} ${el.showIf.op} ${JSON.stringify(el.showIf.value ?? "")}` }) : null;
    const cls = `field preview-field${el.showIf ? " conditional" : ""}`;
    const star = el.required ? h("span", { class: "req", "aria-hidden": "true", text: " *" }) : null;
    if (el.type === "text-panel") return h("div", { class: cls }, h("div", { class: "plain-text", text: el.content || "" }), note);
    if (el.type === "checkbox") {
      return h("div", { class: cls }, h("div", { class: "field-check" }, h("input", { type: "checkbox", id }), h("label", { for: id }, el.label || "", star)), note);
    }
    if (el.type === "radio" || el.type === "multi-select") {
      const type = el.type === "radio" ? "radio" : "checkbox";
      return h("fieldset", { class: cls }, h("legend", {}, el.label || "", star),
        h("div", { class: "choices" }, ...(el.options || []).map((o) => h("label", { class: "choice" }, h("input", { type, name: id, value: o.value }), ` ${o.label}`))), note);
    }
    return h("div", { class: cls }, h("label", { for: id }, el.label || "", star), previewControl(el, id), note);
  });
  preview.replaceChildren(...(nodes.length ? nodes : [h("p", { class: "muted", text: "Nothing to preview yet." })]));
  for (const control of preview.querySelectorAll("input, select, textarea")) {
    control.tabIndex = -1;
    // Not part of the builder's form: preview inputs are never submitted or validated.
    control.setAttribute("form", "preview-only");
  }
  preview.inert = true;
}

if (elements !== null) {
  serverErrors = serverErrors.filter((e) => e.index !== undefined && e.index !== null);
  root.querySelector("[data-json-fallback]").hidden = true;
  list.hidden = false;
  root.querySelector("[data-add-bar]").hidden = false;
  root.querySelector("[data-preview-card]").hidden = false;
  for (const button of root.querySelectorAll("[data-add]")) {
    button.addEventListener("click", () => {
      const el = newElement(button.dataset.add);
      elements.push(el);
      render();
      sync();
      announce(`Added ${TYPE_LABELS[el.type]}.`);
      list.lastElementChild.querySelector("input, textarea")?.focus();
    });
  }
  render();
  sync();
}
