// lbp-cds console: answers to a card are posted without leaving the preview. Without
// JavaScript the same forms post normally and a result page is shown.
"use strict";
document.addEventListener("submit", async (event) => {
  const form = event.target;
  if (!(form instanceof HTMLFormElement) || !form.classList.contains("feedback")) return;
  event.preventDefault();
  const card = form.closest("article.card");
  const status = card ? card.querySelector(".status") : null;
  const buttons = form.querySelectorAll("button");
  buttons.forEach((b) => { b.disabled = true; });
  try {
    const response = await fetch(form.action, {
      method: "POST",
      headers: { "Accept": "application/json", "Content-Type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams(new FormData(form)),
      credentials: "same-origin",
    });
    let message = "HTTP " + response.status;
    try { message = (await response.json()).message || message; } catch (_) { /* not JSON */ }
    if (status) {
      status.textContent = message;
      status.classList.toggle("error", !response.ok);
    }
    if (card && response.ok) card.dataset.answered = "true";
  } catch (error) {
    if (status) status.textContent = "Not sent: " + error;
  } finally {
    buttons.forEach((b) => { b.disabled = false; });
  }
});
// Choosing a stored request or typing a request selects that source.
document.addEventListener("change", (event) => {
  if (event.target.id === "fixture") document.getElementById("source-fixture").checked = true;
});
document.addEventListener("input", (event) => {
  if (event.target.id === "pasted") document.getElementById("source-paste").checked = true;
});
