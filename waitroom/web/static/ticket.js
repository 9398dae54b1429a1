// The ticket status page: warns when the turn approaches (a notification and a vibration where the browser
// allows them, only after the citizen pressed the button: never asked on load), polls a remote ticket's
// reservation and follows it to the ticket's live page once checked in. No libraries, nothing personal.
// Notifications go through a service worker (static/notify-worker.js) where the browser has them: Chrome on
// Android shows no other; elsewhere, or until the worker runs, through the page's Notification.
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

  var worker = null;  // a promise of the notification worker's active registration
  function workerReady() {
    if (!box.dataset.worker || !("serviceWorker" in navigator) || !window.Promise) {
      return null;
    }
    if (!worker) {
      worker = navigator.serviceWorker.register(box.dataset.worker).then(function (reg) {
        if (reg.active) { return reg; }
        return new Promise(function (resolve, reject) {
          var w = reg.installing || reg.waiting;
          if (!w) { reject(new Error("no worker")); return; }
          w.addEventListener("statechange", function () {
            if (w.state === "activated") { resolve(reg); } else if (w.state === "redundant") { reject(w); }
          });
        });
      });
      worker.catch(function () { worker = null; });  // (no https, storage off): the page's Notification
    }
    return worker;
  }
  function notify(text) {
    var title = box.dataset.notifyTitle || document.title;
    var opts = {body: text, tag: "waitroom-ticket", data: {page: window.location.pathname}};
    function direct() {
      try { new Notification(title, opts); } catch (e) {}  // (Chrome on Android: only the vibration)
    }
    var ready = workerReady();
    if (!ready) { direct(); return; }
    ready.then(function (reg) { return reg.showNotification(title, opts); }).catch(direct);
  }
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
    if (canNotify && Notification.permission === "granted") { notify(text); }
    if (canVibrate) { navigator.vibrate([300, 150, 300]); }
    box.dataset.notified = key;
  }

  if (btn && (canNotify || canVibrate)) {
    btn.parentNode.hidden = false;
    btn.addEventListener("click", function () {
      function done(permission) {
        if (permission !== "denied") { store("localStorage", KEY, "1"); }
        if (canNotify && permission === "granted") { workerReady(); }  // running before the first warning
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
  if (enabled() && canNotify && Notification.permission === "granted") { workerReady(); }
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
