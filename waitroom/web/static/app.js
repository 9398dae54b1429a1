// waitroom web: live fragments over server-sent events, CSRF for fetch, keyboard shortcuts. No libraries.
(function () {
  "use strict";
  var csrf = document.querySelector('meta[name="csrf-token"]');
  window.waitroom = {
    csrf: csrf ? csrf.content : "",
    post: function (url, body) {
      return fetch(url, {method: "POST", credentials: "same-origin",
        headers: {"Content-Type": "application/json", "X-CSRFToken": window.waitroom.csrf},
        body: JSON.stringify(body || {})});
    }
  };

  // Elements with data-live-fragment are re-rendered from that URL when a live event arrives
  // (data-live-events, default "state"; data-live-src, default /api/stream). At most one fetch at a time.
  var streams = {};
  function refresh(el) {
    if (el._busy) { el._again = true; return; }
    el._busy = true;
    fetch(el.dataset.liveFragment, {credentials: "same-origin", headers: {"Accept": "text/html"}})
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        if (html !== null && !el.contains(document.activeElement)) { el.innerHTML = html; }
        else if (html !== null) { el._again = true; setTimeout(function () { refresh(el); }, 1500); }
      })
      .catch(function () {})
      .finally(function () {
        el._busy = false;
        if (el._again) { el._again = false; setTimeout(function () { refresh(el); }, 300); }
      });
  }
  document.querySelectorAll("[data-live-fragment]").forEach(function (el) {
    var src = el.dataset.liveSrc || "/api/stream";
    var names = (el.dataset.liveEvents || "state").split(",");
    if (!streams[src]) {
      streams[src] = new EventSource(src);
      streams[src].onopen = function () { document.body.classList.remove("disconnected"); };
      streams[src].onerror = function () { document.body.classList.add("disconnected"); };
    }
    var first = true;
    names.forEach(function (name) {
      streams[src].addEventListener(name, function () {
        if (first && name === "state") { first = false; return; }  // the page was rendered with this state
        refresh(el);
      });
    });
  });

  // Keyboard shortcuts: a key presses the button with data-key="<key>" (not while typing in a field).
  document.addEventListener("keydown", function (ev) {
    if (ev.ctrlKey || ev.metaKey || ev.altKey) { return; }
    var tag = (ev.target.tagName || "").toLowerCase();
    if (tag === "input" || tag === "select" || tag === "textarea") { return; }
    var btn = document.querySelector('[data-key="' + ev.key.toLowerCase() + '"]');
    if (btn) { ev.preventDefault(); btn.click(); }
  });
})();
