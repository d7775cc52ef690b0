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
  // Operators' controls (review forms, retry buttons) depend on who is looking, so they are
  // not in the shared fragments: when a job enters or leaves a status that has controls, an
  // operator's page fetches itself again to draw the ones that now apply.
  var withControls = ["waiting", "failed", "cancelled"];
  var shownStatus = null;
  document.addEventListener("DOMContentLoaded", function () {
    var header = document.getElementById("job-header");
    if (header) shownStatus = header.dataset.status;
  });
  document.addEventListener("htmx:wsAfterMessage", function () {
    var header = document.getElementById("job-header");
    if (!header || !document.body.classList.contains("can-operate")) return;
    var status = header.dataset.status;
    if (status === shownStatus) return;
    var controlsChanged = withControls.indexOf(status) >= 0 ||
      withControls.indexOf(shownStatus) >= 0;
    shownStatus = status;
    if (controlsChanged) refetch();
  });
  document.addEventListener("DOMContentLoaded", function () {
    if (!document.querySelector("[ws-connect]")) {
      var badge = document.getElementById("connection");
      if (badge) badge.hidden = true;
    }
  });
})();
