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

// A form whose submit waits for an application (Save checks the credential): show its
// spinner with the form's busy text and disable its buttons until the page changes.
document.addEventListener("submit", (event) => {
  const form = event.target;
  if (event.defaultPrevented || !(form instanceof HTMLFormElement) || !form.dataset.busy) return;
  const spinner = form.querySelector(".spinner");
  if (spinner) spinner.textContent = form.dataset.busy;
  form.classList.add("busy");
  setTimeout(() => form.querySelectorAll("button").forEach((b) => { b.disabled = true; }), 0);
});

// Close other open menus when one opens.
document.addEventListener("toggle", (event) => {
  const opened = event.target;
  if (!(opened instanceof HTMLDetailsElement) || !opened.open || !opened.classList.contains("menu")) return;
  document.querySelectorAll("details.menu[open]").forEach((d) => { if (d !== opened) d.open = false; });
}, true);
