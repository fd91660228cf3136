// Airlock dashboard: live updates, countdowns and notifications. Every page works without this
// script; it only saves reloads. Content comes from the server as HTML it rendered and escaped.
(function () {
  "use strict";


  function timeLeft(seconds) {
    if (seconds <= 0) return "expired";
    if (seconds < 60) return seconds + " s left";
    if (seconds < 3600) return Math.floor(seconds / 60) + " min " + (seconds % 60) + " s left";
    return Math.floor(seconds / 3600) + " h " + Math.floor((seconds % 3600) / 60) + " min left";
  }

  function tickCountdowns() {
    var now = Date.now();
    document.querySelectorAll("[data-expires]").forEach(function (el) {
      var at = Date.parse(el.getAttribute("data-expires"));
      if (isNaN(at)) return;
      var seconds = Math.round((at - now) / 1000);
      el.textContent = timeLeft(seconds);
      el.classList.toggle("soon", seconds > 0 && seconds < 60);
    });
  }

  // --- the queue page ---------------------------------------------------------------------
  var queue = document.querySelector('[data-live="queue"]');
  var known = null;

  function queueIds(root) {
    var ids = {};
    root.querySelectorAll("tr[data-call-id]").forEach(function (tr) { ids[tr.getAttribute("data-call-id")] = tr; });
    return ids;
  }

  function setTitle(count) {
    var base = document.title.replace(/^\(\d+\) /, "");
    document.title = (count > 0 ? "(" + count + ") " : "") + base;
  }

  function announce(rows) {
    if (!("Notification" in window) || Notification.permission !== "granted") return;
    rows.forEach(function (tr) {
      var tool = tr.querySelector(".tool");
      var n = new Notification("Airlock: a call waits for you", { body: tool ? tool.textContent : "", tag: tr.getAttribute("data-call-id") });
      n.onclick = function () { window.focus(); window.location.href = "/calls/" + tr.getAttribute("data-call-id"); };
    });
  }

  function refreshQueue() {
    fetch(queue.getAttribute("data-src"), { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (r) { if (!r.ok) throw new Error(r.status); return r.text(); })
      .then(function (html) {
        var doc = new DOMParser().parseFromString(html, "text/html");
        var fresh = doc.querySelector(".queue-rows");
        if (!fresh) return;
        var ids = queueIds(fresh);
        var added = Object.keys(ids).filter(function (id) { return known && !known[id]; });
        queue.replaceChildren(document.adoptNode(fresh));
        known = ids;
        setTitle(parseInt(fresh.getAttribute("data-count"), 10) || 0);
        tickCountdowns();
        if (added.length) announce(added.map(function (id) { return ids[id]; }));
      })
      .catch(function () { /* the next event tries again */ });
  }

  // --- the call page ----------------------------------------------------------------------
  var call = document.querySelector('[data-live="call"]');
  // A reload while the decision form is being sent would cancel the decision's own page.
  var submitting = false;
  document.querySelectorAll("form").forEach(function (form) {
    form.addEventListener("submit", function () { submitting = true; });
  });

  function checkCall() {
    fetch(call.getAttribute("data-src"), { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (status) {
        var reason = document.getElementById("reason");
        var typing = reason && reason.value.trim() !== "";
        if (status && status !== call.getAttribute("data-status") && !typing && !submitting) window.location.reload();
      })
      .catch(function () {});
  }

  // --- the live feed ----------------------------------------------------------------------
  var status = document.getElementById("live-status");
  if ((queue || call) && "EventSource" in window) {
    var source = new EventSource("/events");
    source.addEventListener("queue", function () {
      if (queue) refreshQueue();
      if (call) checkCall();
    });
    source.onerror = function () { if (status) status.textContent = "Live updates paused; retrying…"; };
    source.onopen = function () { if (status) status.textContent = "Newest first. This page updates itself as calls arrive and leave."; };
  }
  if (queue) {
    known = queueIds(queue);
    var refresh = document.getElementById("refresh");
    if (refresh) refresh.hidden = true;
    var toggle = document.getElementById("notify-toggle");
    if (toggle && "Notification" in window && Notification.permission === "default") {
      toggle.hidden = false;
      toggle.addEventListener("click", function () {
        Notification.requestPermission().then(function () { toggle.hidden = true; });
      });
    }
  }

  tickCountdowns();
  setInterval(tickCountdowns, 1000);
})();
