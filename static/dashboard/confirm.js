// A form with data-confirm asks before it is sent (the Content Security Policy allows no
// inline onsubmit handler).
document.addEventListener("submit", function (event) {
  var question = event.target.dataset && event.target.dataset.confirm;
  if (question && !window.confirm(question)) event.preventDefault();
});
