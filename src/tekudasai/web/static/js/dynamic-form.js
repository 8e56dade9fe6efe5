// Ticket forms: showIf conditions, validation hints worded like the server's, uploads with progress.
// The server stays the judge; this only saves a round trip.
import { toast } from "./app.js";

const form = document.querySelector("[data-dynamic-form]");
const fields = [...form.querySelectorAll("[data-element]")];

function isEmpty(value) {
  if (value === null || value === undefined) return true;
  if (typeof value === "string") return value.trim() === "";
  if (Array.isArray(value)) return value.length === 0;
  return false;
}

// The answer of one field as the server would clean it (null when empty).
function valueOf(field) {
  const type = field.dataset.type;
  const inputs = [...field.querySelectorAll("input[name], select[name], textarea[name]")];
  if (type === "multi-select") return inputs.filter((i) => i.checked).map((i) => i.value);
  if (type === "radio") return inputs.find((i) => i.checked)?.value ?? null;
  if (type === "checkbox") return inputs[0].checked;
  const raw = inputs[0]?.value ?? "";
  if (type === "number") return raw.trim() === "" || Number.isNaN(Number(raw)) ? raw : Number(raw);
  return raw;
}

function same(a, b) {
  return a === b;
}

function holds(rule, values) {
  const current = values[rule.field];
  if (rule.op === "filled") {
    const filled = !isEmpty(current);
    return rule.value === undefined || rule.value === null ? filled : filled === rule.value;
  }
  if (rule.op === "eq" || rule.op === "neq") {
    const equal = same(current, rule.value) || (Array.isArray(current) && current.some((c) => same(c, rule.value)));
    return rule.op === "eq" ? equal : !equal;
  }
  const options = Array.isArray(rule.value) ? rule.value : [];
  const items = Array.isArray(current) ? current : [current];
  const member = items.some((item) => options.some((o) => same(item, o)));
  return rule.op === "in" ? member : !member;
}

// Evaluate in order: an element sees only the answers of visible elements before it.
function applyShowIf() {
  const values = {};
  for (const field of fields) {
    const rule = field.dataset.showIf ? JSON.parse(field.dataset.showIf) : null;
    const visible = !rule || holds(rule, values);
    field.hidden = !visible;
    for (const control of field.querySelectorAll("input, select, textarea")) control.disabled = !visible;
    if (visible && field.dataset.type !== "text-panel") {
      const value = valueOf(field);
      if (!isEmpty(value) || field.dataset.type === "checkbox") values[field.dataset.element] = value;
    }
  }
}

function messageFor(control) {
  const v = control.validity;
  if (v.valueMissing) return control.type === "checkbox" ? "Must be checked" : "This field is required";
  if (v.tooShort) return `Must be at least ${control.minLength} characters`;
  if (v.tooLong) return `Must be at most ${control.maxLength} characters`;
  if (v.typeMismatch && control.type === "email") return "Must be a valid e-mail address";
  if (v.patternMismatch) return "Does not have the required format";
  if (v.badInput || (v.typeMismatch && control.type === "number")) return "Must be a number";
  if (v.rangeUnderflow) return `Must be at least ${control.min}`;
  if (v.rangeOverflow) return `Must be at most ${control.max}`;
  return control.validationMessage;
}

function showError(field, message) {
  const slot = field.querySelector("[data-error-for]");
  if (!slot) return;
  slot.textContent = message || "";
  slot.hidden = !message;
  for (const control of field.querySelectorAll("input, select, textarea, fieldset")) {
    if (message) control.setAttribute("aria-invalid", "true");
    else control.removeAttribute("aria-invalid");
  }
}

function checkField(field) {
  if (field.hidden) return null;
  const type = field.dataset.type;
  if (type === "multi-select") {
    const required = field.querySelector("[data-group-required]")?.dataset.groupRequired === "true";
    return required && valueOf(field).length === 0 ? "This field is required" : null;
  }
  if (type === "file-upload") {
    const picker = field.querySelector("input[type=file]");
    const hidden = field.querySelector("input[type=hidden]");
    if (field.dataset.uploading) return "Wait for the upload to finish";
    return picker.dataset.required === "true" && !hidden.value ? "This field is required" : null;
  }
  for (const control of field.querySelectorAll("input, select, textarea")) {
    if (!control.checkValidity()) return messageFor(control);
  }
  return null;
}

function upload(field, picker) {
  const file = picker.files[0];
  const hidden = document.getElementById(picker.dataset.uploadFor);
  const progress = field.querySelector("progress");
  const status = field.querySelector(".upload-status");
  if (!file) return;
  const body = new FormData();
  body.append("file", file);
  const xhr = new XMLHttpRequest();
  xhr.open("POST", "/api/uploads");
  xhr.responseType = "json";
  field.dataset.uploading = "1";
  progress.hidden = false;
  progress.value = 0;
  status.textContent = `Uploading ${file.name}…`;
  xhr.upload.addEventListener("progress", (event) => {
    if (event.lengthComputable) progress.value = Math.round((event.loaded / event.total) * 100);
  });
  xhr.addEventListener("loadend", () => {
    delete field.dataset.uploading;
    const data = xhr.response?.data;
    if (xhr.status === 200 && data?.filename) {
      hidden.value = data.filename;
      progress.value = 100;
      status.textContent = `Attached: ${data.originalName}`;
      showError(field, null);
    } else {
      hidden.value = "";
      picker.value = "";
      progress.hidden = true;
      const message = xhr.response?.message || "The upload failed.";
      status.textContent = "";
      showError(field, message);
      toast(message, "error");
    }
  });
  xhr.send(body);
}

for (const picker of form.querySelectorAll("input[type=file][data-upload-for]")) {
  picker.addEventListener("change", () => upload(picker.closest("[data-element]"), picker));
}

// Errors appear on submit and clear while the user corrects them ("reward early, punish
// late"); nothing changes on blur, so the layout never shifts under a click.
function recheck(event) {
  applyShowIf();
  const field = event.target.closest("[data-element]");
  if (field && field.querySelector("[data-error-for]:not([hidden])")) showError(field, checkField(field));
}
form.addEventListener("input", recheck);
form.addEventListener("change", recheck);
form.addEventListener("submit", (event) => {
  applyShowIf();
  let first = null;
  for (const field of fields) {
    const message = checkField(field);
    showError(field, message);
    if (message && !first) first = field;
  }
  const summary = form.querySelector("[name=summary]");
  if (summary && !summary.checkValidity()) first = first || summary.closest(".field");
  if (first) {
    event.preventDefault();
    first.querySelector("input:not([type=hidden]), select, textarea")?.focus();
    toast("Please correct the marked fields.", "error");
  }
});
form.noValidate = true;
applyShowIf();
