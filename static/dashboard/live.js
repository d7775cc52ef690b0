// The connection indicator: the only hand-written script. htmx's ws extension does the rest.
(function () {
  function show(state, text) {
    var badge = document.getElementById("connection");
    if (!badge) return;
    badge.dataset.state = state;
    badge.textContent = text;
  }
  var everOpen = false;
  document.addEventListener("htmx:wsOpen", function () {
    // After a reconnect the page may have missed fragments: re-fetch it in place.
    if (everOpen) {
      htmx.ajax("GET", window.location.href, { target: "main", select: "main", swap: "outerHTML" });
    }
    everOpen = true;
    show("live", "live");
  });
  document.addEventListener("htmx:wsClose", function () { show("disconnected", "disconnected"); });
  document.addEventListener("htmx:wsError", function () { show("disconnected", "disconnected"); });
  document.addEventListener("DOMContentLoaded", function () {
    if (!document.querySelector("[ws-connect]")) {
      var badge = document.getElementById("connection");
      if (badge) badge.hidden = true;
    }
  });
})();
