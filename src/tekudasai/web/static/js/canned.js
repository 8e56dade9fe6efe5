// Canned responses in the agent's reply box: choosing one fills the message in place (its
// placeholders were filled by the server). Without JavaScript the picker is a GET form that
// brings the page back with the message filled in.
const form = document.querySelector("[data-canned-form]");
const picker = form?.querySelector("[data-canned]");
const box = document.getElementById("f-body");
if (form && picker && box) {
  form.querySelector("[data-canned-insert]")?.setAttribute("hidden", "");
  picker.addEventListener("change", () => {
    const body = picker.selectedOptions[0]?.dataset.body;
    if (!body) return;
    const current = box.value.trimEnd();
    box.value = current ? `${current}\n\n${body}` : body;
    box.dispatchEvent(new Event("input", { bubbles: true }));
    picker.value = "";
    box.focus();
  });
  form.addEventListener("submit", (event) => event.preventDefault());
}
