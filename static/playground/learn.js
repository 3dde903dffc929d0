// Enter in a guess sends that question's prediction. Without this, the browser would press the
// form's first button (Run), showing the truth before any guess was checked.
document.addEventListener("keydown", (event) => {
  const field = event.target.closest?.(".question input, .question select");
  if (event.key !== "Enter" || !field) return;
  event.preventDefault();
  field.closest(".question").querySelector("button.predict")?.click();
});
