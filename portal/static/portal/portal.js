// Small behaviours without inline scripts, so the Content Security Policy can forbid them.
document.addEventListener("click", (event) => {
  const button = event.target.closest("button[data-copy]");
  if (!button) return;
  const source = document.querySelector(button.dataset.copy);
  if (!source) return;
  const text = source.value ?? source.textContent;
  navigator.clipboard.writeText(text.trim()).then(() => {
    const label = button.textContent;
    button.textContent = "Copied";
    setTimeout(() => { button.textContent = label; }, 1500);
  });
});

document.addEventListener("submit", (event) => {
  const form = event.target.closest("form[data-confirm]");
  if (form && !window.confirm(form.dataset.confirm)) event.preventDefault();
});

// The busy spinner of forms that wait for an application is uikit/forms.js.

// Close other open menus when one opens.
document.addEventListener("toggle", (event) => {
  const opened = event.target;
  if (!(opened instanceof HTMLDetailsElement) || !opened.open || !opened.classList.contains("menu")) return;
  document.querySelectorAll("details.menu[open]").forEach((d) => { if (d !== opened) d.open = false; });
}, true);

// The processflow designer. Picking a sample field inserts its reference into the text box
// that last had the focus; after htmx renders the designer again, the element the server
// names (data-focus) gets the focus, so keyboard users stay where they were.
let lastPickable = null;
document.addEventListener("focusin", (event) => {
  if (event.target.matches && event.target.matches(".pickable")) lastPickable = event.target;
});
document.addEventListener("click", (event) => {
  const button = event.target.closest("button.pick");
  if (!button) return;
  const target = lastPickable && document.body.contains(lastPickable) ? lastPickable : null;
  if (!target) {
    const help = document.getElementById("pick-help");
    if (help) help.classList.add("attention");
    return;
  }
  const text = button.dataset.pick;
  const start = target.selectionStart ?? target.value.length;
  const end = target.selectionEnd ?? target.value.length;
  target.value = target.value.slice(0, start) + text + target.value.slice(end);
  target.focus();
  target.setSelectionRange(start + text.length, start + text.length);
  target.dispatchEvent(new Event("input", { bubbles: true }));
});
document.addEventListener("htmx:afterSettle", (event) => {
  const designer = document.getElementById("designer");
  if (!designer || !designer.dataset.focus) return;
  const element = document.getElementById(designer.dataset.focus);
  if (element) element.focus();
  delete designer.dataset.focus;
});
