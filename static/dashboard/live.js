// The connection indicator and the catch-up after a reconnect: the only hand-written script.
// htmx's ws extension swaps the server-rendered fragments that arrive.
(function () {
  function show(state, text) {
    var badge = document.getElementById("connection");
    if (!badge) return;
    badge.dataset.state = state;
    badge.textContent = text;
  }

  // Re-render the page's content (#page, inside the <main> that holds the socket): after a
  // reconnect, as fragments may have been missed, and on filtered pages, where a pushed card
  // may not match the filters.
  var pending = null;
  function refetch() {
    if (pending) return;
    pending = setTimeout(function () {
      pending = null;
      htmx.ajax("GET", window.location.href, { target: "#page", select: "#page", swap: "outerHTML" });
    }, 250);
  }

  var everOpen = false;
  document.addEventListener("htmx:wsOpen", function () {
    if (everOpen) refetch();
    everOpen = true;
    show("live", "live");
  });
  document.addEventListener("htmx:wsClose", function () { show("disconnected", "disconnected"); });
  document.addEventListener("htmx:wsError", function () { show("disconnected", "disconnected"); });
  document.addEventListener("htmx:wsBeforeMessage", function (event) {
    var main = document.querySelector("main");
    if (main && main.dataset.refetch) {
      event.preventDefault();
      refetch();
    }
  });
  // A job that now awaits plan review: the review forms depend on who is looking, so they
  // are not in the shared fragment; an operator's page fetches them.
  document.addEventListener("htmx:wsAfterMessage", function () {
    var header = document.getElementById("job-header");
    if (header && header.dataset.status === "waiting" &&
        document.body.classList.contains("can-operate") &&
        !document.querySelector(".review") && header.dataset.review === "true") {
      refetch();
    }
  });
  document.addEventListener("DOMContentLoaded", function () {
    if (!document.querySelector("[ws-connect]")) {
      var badge = document.getElementById("connection");
      if (badge) badge.hidden = true;
    }
  });
})();
