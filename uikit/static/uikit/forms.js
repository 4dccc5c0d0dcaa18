// Behaviours the portal and the agent share, without inline scripts (the Content Security
// Policy forbids them).

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
document.addEventListener("submit", (event) => {
  const form = event.target.closest("form[data-confirm]");
  if (form && !window.confirm(form.dataset.confirm)) event.preventDefault();
});
