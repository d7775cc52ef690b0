// The connection indicator and the catch-up after a reconnect or a missed message: the only
// hand-written script. htmx's ws extension swaps the server-rendered fragments that arrive.
(function () {
  // The server beats every 2 s (dashboard.live.HEARTBEAT_S): a page that heard nothing for
  // three beats has lost its group (Redis restarted or flushed) and joins again.
  var OVERDUE_MS = 6000;
  // A beat can overtake the message whose number it carries, by a few milliseconds.
  var IN_FLIGHT_MS = 1000;
  // Each message starts with its group's epoch and number: "<!--live e n-->" before a
  // fragment, "<!--beat e n-->" alone (the number of the group's last message).
  var MARK = /^<!--(live|beat) (\w+) (\d+)-->/;

  function show(state, text) {
    var badge = document.getElementById("connection");
    if (!badge) return;
    badge.dataset.state = state;
    badge.textContent = text;
  }

  // Operators' controls (review forms, cancel and retry buttons) depend on who is looking, so
  // they are not in the shared fragments: the job header names the job's controls that apply
  // (data-controls, from the job's properties), and when that set changes an operator's page
  // fetches itself again to draw them.
  var shownControls = null;
  function jobStatus() {
    var header = document.getElementById("job-header");
    return header ? header.dataset.status || "" : "";
  }
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
        .then(afterRefetch, function () { syncFailed = syncing; });
    }, 250);
  }

  // The page may have missed a message: say so until it has re-fetched itself.
  var connected = false, syncing = false, syncFailed = false;
  function resync() {
    syncing = true;
    syncFailed = false;
    show("stale", "re-syncing…");
    refetch();
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
    if (syncing && connected) {
      syncing = false;
      show("live", "live");
    }
  }

  // What the page has heard: the epoch and number of its group's last message.
  var epoch = null, last = null, behind = 0;
  function onFragment(e, seq) {
    var missed = epoch !== null && (e !== epoch || seq !== last + 1);
    last = e === epoch ? Math.max(last, seq) : seq;
    epoch = e;
    if (missed) resync();
  }
  function onBeat(e, seq) {
    if (syncFailed) resync();
    if (epoch !== e) {
      var renewed = epoch !== null;
      epoch = e;
      last = seq;
      if (renewed) resync();
      return;
    }
    if (seq > last) {
      setTimeout(function () {
        if (epoch === e && last < seq) {
          last = seq;
          resync();
        }
      }, IN_FLIGHT_MS);
    }
    // Behind once is a beat overtaken by a message; twice running, the numbers started again.
    behind = seq < last ? behind + 1 : 0;
    if (behind >= 2) {
      behind = 0;
      last = seq;
      resync();
    }
  }

  // The socket open now; the one given up for silence, whose close is no news.
  var wrapper = null, current = null, abandoned = null, heardAt = 0, everOpen = false;
  setInterval(function () {
    if (!connected || Date.now() - heardAt < OVERDUE_MS) return;
    connected = false;
    abandoned = current;
    show("stale", "reconnecting…");
    wrapper.reconnect();
  }, 1000);

  document.addEventListener("htmx:wsOpen", function (event) {
    wrapper = event.detail.socketWrapper;
    current = event.detail.event.target;
    connected = true;
    heardAt = Date.now();
    epoch = last = null;
    if (everOpen) {
      resync();
    } else {
      show("live", "live");
      // A running job's page: what changed between its render and its socket joining the
      // group was sent to nobody (only watched groups get messages), and a quick job may end
      // in that time. Fetched once, now that the socket listens.
      if (/^(queued|planning|waiting|working|synthesizing)$/.test(jobStatus())) refetch();
    }
    everOpen = true;
  });
  function lost(socket) {
    if (socket === abandoned) return;
    connected = false;
    show("disconnected", "disconnected");
  }
  document.addEventListener("htmx:wsClose", function (event) { lost(event.detail.event.target); });
  document.addEventListener("htmx:wsError", function (event) { lost(event.detail.error.target); });
  // A running subtask's text so far, "<!--text id-->" then the text (unnumbered: each one
  // holds all of it): set as text, never parsed as HTML, where the page shows it running.
  var TEXT = /^<!--text (\d+)-->/;
  function onText(message) {
    var mark = TEXT.exec(message);
    if (!mark) return false;
    var box = document.getElementById("live-text-" + mark[1]);
    if (box) {
      box.textContent = message.slice(mark[0].length);
      box.hidden = false;
      box.scrollTop = box.scrollHeight;
    }
    return true;
  }

  document.addEventListener("htmx:wsBeforeMessage", function (event) {
    heardAt = Date.now();
    if (onText(event.detail.message)) {
      event.preventDefault();  // nothing to swap
      return;
    }
    var mark = MARK.exec(event.detail.message);
    if (mark && mark[1] === "beat") {
      event.preventDefault();  // nothing to swap
      onBeat(mark[2], Number(mark[3]));
      return;
    }
    if (mark) onFragment(mark[2], Number(mark[3]));
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
    // A shared fragment left out controls that depend on who looks (a step's approval forms,
    // retry and re-run links; templates/dashboard/live/job.html marks their places): the page
    // fetches itself to draw them.
    if (document.querySelector("#page .approval[data-forms-missing], #page [data-controls-missing]")) {
      refetch();
      return;
    }
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
