// The connection indicator and the catch-up after a reconnect: the only hand-written script.
// htmx's ws extension swaps the server-rendered fragments that arrive.
(function () {
  function show(state, text) {
    var badge = document.getElementById("connection");
    if (!badge) return;
    badge.dataset.state = state;
    badge.textContent = text;
  }

  // Operators' controls (review forms, cancel and retry buttons) depend on who is looking, so
  // they are not in the shared fragments: the job header names the controls that apply
  // (data-controls, from the job's properties), and when that set changes an operator's page
  // fetches itself again to draw them.
  var shownControls = null;
  function controls() {
    var header = document.getElementById("job-header");
    return header ? header.dataset.controls : null;
  }

  // Re-render the page's content (#page, inside the <main> that holds the socket): after a
  // reconnect, as fragments may have been missed, and on filtered pages, where a pushed card
  // may not match the filters.
  var pending = null;
  function refetch() {
    if (pending) return;
    pending = setTimeout(function () {
      pending = null;
      htmx.ajax("GET", window.location.href, { target: "#page", select: "#page", swap: "outerHTML" })
        .then(afterRefetch);
    }, 250);
  }

  // What the reader opened (a subtask, a call's trace) stays open across a re-fetch.
  var opened = [];
  function detailsKey(details) {
    return details.id || details.parentElement.id;
  }
  document.addEventListener("htmx:beforeSwap", function (event) {
    if (event.detail.target.id !== "page") return;
    opened = Array.prototype.map.call(document.querySelectorAll("#page details[open]"), detailsKey);
  });
  function afterRefetch() {
    document.querySelectorAll("#page details").forEach(function (details) {
      var key = detailsKey(details);
      if (key && opened.indexOf(key) >= 0) details.open = true;
    });
    shownControls = controls();
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
  document.addEventListener("DOMContentLoaded", function () {
    shownControls = controls();
  });
  document.addEventListener("htmx:wsAfterMessage", function () {
    if (!document.body.classList.contains("can-operate")) return;
    var now = controls();
    if (now === null || now === shownControls) return;
    shownControls = now;
    refetch();
  });
  document.addEventListener("DOMContentLoaded", function () {
    if (!document.querySelector("[ws-connect]")) {
      var badge = document.getElementById("connection");
      if (badge) badge.hidden = true;
    }
  });
})();
