// The ticket status page: warns when the turn approaches (a notification and a vibration where the browser
// allows them, only after the citizen pressed the button: never asked on load), polls a remote ticket's
// reservation and follows it to the ticket's live page once checked in. No libraries, nothing personal.
(function () {
  "use strict";
  var box = document.getElementById("ticket");
  if (!box) { return; }
  var KEY = "waitroom-notify";
  var btn = document.getElementById("notify");
  var stateEl = document.getElementById("notify-state");
  var canNotify = "Notification" in window;
  var canVibrate = typeof navigator.vibrate === "function";

  function store(area, key, value) {
    try {
      if (value === undefined) { return window[area].getItem(key); }
      window[area].setItem(key, value);
    } catch (e) { return null; }  // storage off (private mode): the warning on the page remains
    return value;
  }
  function enabled() { return store("localStorage", KEY) === "1"; }
  function showState() {
    if (!stateEl) { return; }
    if (canNotify && Notification.permission === "denied") {
      stateEl.textContent = stateEl.dataset.denied;
    } else {
      stateEl.textContent = enabled() ? stateEl.dataset.on : "";
    }
  }

  function check() {
    var sec = box.querySelector("[data-state]");
    if (!sec) { return; }
    if (sec.dataset.goto) { window.location.replace(sec.dataset.goto); return; }
    var text = sec.dataset.warn, key = sec.dataset.warnKey;
    if (!text || !enabled() || store("sessionStorage", KEY + "-last") === key) { return; }
    store("sessionStorage", KEY + "-last", key);  // once per state of the ticket
    if (canNotify && Notification.permission === "granted") {
      try {
        new Notification(box.dataset.notifyTitle || document.title, {body: text, tag: "waitroom-ticket"});
      } catch (e) {}  // Chrome on Android shows notifications only from a service worker: vibration remains
    }
    if (canVibrate) { navigator.vibrate([300, 150, 300]); }
    box.dataset.notified = key;
  }

  if (btn && (canNotify || canVibrate)) {
    btn.parentNode.hidden = false;
    btn.addEventListener("click", function () {
      function done(permission) {
        if (permission !== "denied") { store("localStorage", KEY, "1"); }
        showState();
        check();
      }
      if (canNotify && Notification.permission === "default") {
        var asked = Notification.requestPermission(done);  // the callback form for older Safari
        if (asked && asked.then) { asked.then(done); }
      } else {
        done(canNotify ? Notification.permission : "granted");
      }
    });
    showState();
  }
  new MutationObserver(check).observe(box, {childList: true});
  check();

  var poll = box.dataset.poll;
  if (poll) {
    setInterval(function () {
      fetch(poll, {credentials: "same-origin", headers: {"Accept": "text/html"}})
        .then(function (r) { return r.ok ? r.text() : null; })
        .then(function (html) { if (html !== null) { box.innerHTML = html; } })
        .catch(function () {});
    }, Number(box.dataset.pollS || 30) * 1000);
  }
})();
