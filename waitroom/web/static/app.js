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

  // Elements with data-live-fragment are kept current from a live stream (data-live-src, default
  // /api/stream; data-live-events, default "state"). An event whose data carries "html" (ticket streams) is
  // swapped in directly; otherwise the fragment URL is fetched again, at most one fetch at a time. An element
  // with data-seq (staff panel) skips state messages it already shows (seq not newer) - never the first
  // message blindly: the state may have changed between the page render and the stream's start. The admin
  // page's alarms are merged into the page instead of swapped (mergeAlarms).
  var streams = {};
  function swap(el, html) {
    if (el.contains(document.activeElement) && document.activeElement !== document.body) {
      el._pending = html;  // do not pull a field away from under the user's hands
      setTimeout(function () { if (el._pending === html) { swap(el, html); } }, 1500);
      return;
    }
    el._pending = null;
    el.innerHTML = html;
  }
  // The admin page's alarms (data-live-merge="alarms"): merged, never swapped. Each alarm is a
  // role="alert" element, so a screen reader says it once when it appears: the alert is announced when the
  // element is inserted (no live region needs to be in place before; the container itself is not live, so
  // nothing else in it is read out). An alarm already shown stays the same node and is changed in place,
  // quietly: changing the text inside a role="alert" would say it again in some screen readers (the clock
  // alarm's "behind" changes while it lasts), so before the first change the node stops being an alert
  // (removing the role says nothing; it was said when the alarm appeared or was read with the page). An
  // ended alarm is removed (removals are not announced). Focus stays where it is; only when it was inside
  // an alarm that ended does it move to the start of the main content. Without JavaScript the page shows the
  // alarms of its load, as alerts.
  function quiet(node) { node.removeAttribute("role"); }
  function setText(alarm, node, text) {
    if (node.textContent !== text) { quiet(alarm); node.textContent = text; }
  }
  function updateAlarm(old, fresh) {
    setText(old, old.querySelector("p"), fresh.querySelector("p").textContent);
    var od = old.querySelector("details"), nd = fresh.querySelector("details");
    if (od && nd) {
      setText(old, od.querySelector("code"), nd.querySelector("code").textContent);
    } else if (nd) {
      quiet(old); old.appendChild(nd);
    } else if (od) {
      quiet(old); dropAlarm(od);
    }
  }
  function dropAlarm(node) {
    var main = document.getElementById("main");
    var hadFocus = node.contains(document.activeElement);
    node.remove();
    if (hadFocus && main) { main.focus(); }
  }
  // The staff page shows a few alarms and counts the rest ("+2 weitere", an element without a role whose
  // data-rest names them): an alarm that was counted and comes up when one above it ends is not new, and is
  // inserted quietly. The admin page shows every alarm: there the alarms going are the ones shown.
  function going(root) {
    var ids = {};
    Array.prototype.slice.call(root.children).forEach(function (node) {
      ids[node.id] = true;
      (node.dataset.rest || "").split(" ").forEach(function (id) { if (id) { ids[id] = true; } });
    });
    return ids;
  }
  function mergeAlarms(el, html) {
    var tpl = document.createElement("template");
    tpl.innerHTML = html;
    var root = tpl.content.getElementById(el.id);
    if (!root) { return; }  // not the fragment (e.g. the login page after the session ended): keep what is shown
    var keep = {}, prev = null, before = el._going || going(el);
    el._going = going(root);
    Array.prototype.slice.call(root.children).forEach(function (fresh) {
      keep[fresh.id] = true;
      var old = document.getElementById(fresh.id);
      if (old && old.parentNode === el) {
        updateAlarm(old, fresh);
        prev = old;
        return;
      }
      if (before[fresh.id]) { quiet(fresh); }  // going on, not shown until now: not said again
      el.insertBefore(fresh, prev ? prev.nextSibling : el.firstChild);  // a new alarm: said once, here
      prev = fresh;
    });
    Array.prototype.slice.call(el.children).forEach(function (old) {
      if (!keep[old.id]) { dropAlarm(old); }
    });
  }
  function apply(el, html) {
    if (el.dataset.liveMerge === "alarms") { mergeAlarms(el, html); } else { swap(el, html); }
  }
  function refresh(el) {
    // data-live-min-ms: at most one fetch in that time (the staff page's alarms need no tenth of a second,
    // and every clerk's page would fetch them on every state); the last event of a burst is fetched late
    var min = Number(el.dataset.liveMinMs || 0), since = Date.now() - (el._last || 0);
    if (min && since < min) {
      if (!el._later) { el._later = setTimeout(function () { el._later = null; refresh(el); }, min - since); }
      return;
    }
    if (el._busy) { el._again = true; return; }
    el._busy = true;
    el._last = Date.now();
    fetch(el.dataset.liveFragment, {credentials: "same-origin", headers: {"Accept": "text/html"}})
      .then(function (r) {
        if (!r.ok) { return null; }
        var seq = r.headers.get("X-Waitroom-Seq");
        return r.text().then(function (html) { return {html: html, seq: seq}; });
      })
      .then(function (res) {
        if (res === null) { return; }
        if (res.seq !== null && el.dataset.seq !== undefined && Number(res.seq) < Number(el.dataset.seq)) {
          return;  // an older copy (another worker behind): keep what is shown, the next event refreshes
        }
        if (res.seq !== null) { el.dataset.seq = res.seq; }
        apply(el, res.html);
      })
      .catch(function () {})
      .finally(function () {
        el._busy = false;
        if (el._again) { el._again = false; setTimeout(function () { refresh(el); }, 100); }
      });
  }
  function onEvent(el, name, ev) {
    var data = null;
    try { data = JSON.parse(ev.data); } catch (e) { data = null; }
    if (data && typeof data.html === "string") { apply(el, data.html); return; }
    if (name === "state" && data && typeof data.seq === "number" && el.dataset.seq !== undefined &&
        data.seq <= Number(el.dataset.seq)) {
      return;  // this element already shows that state
    }
    refresh(el);
  }
  document.querySelectorAll("[data-live-fragment]").forEach(function (el) {
    var src = el.dataset.liveSrc || "/api/stream";
    var names = (el.dataset.liveEvents || "state").split(",");
    if (!streams[src]) {
      streams[src] = new EventSource(src);
      streams[src].onopen = function () { document.body.classList.remove("disconnected"); };
      streams[src].onerror = function () { document.body.classList.add("disconnected"); };
    }
    names.forEach(function (name) {
      streams[src].addEventListener(name, function (ev) { onEvent(el, name, ev); });
    });
  });

  // The staff page asks before closing or pausing the last open counter of a service with citizens waiting:
  // a form with data-ask (the sentences, one a line; data-ask-question, data-ask-yes) opens the modal dialog
  // #ask instead of posting (focus in the dialog on "cancel", Escape cancels, focus back on the button).
  // Yes posts the fields as they were at the click with confirmed=1, from a form of its own: the live
  // stream may have replaced the panel meanwhile. Without the dialog element the server asks (a page).
  var ask = document.getElementById("ask");
  if (ask && typeof ask.showModal === "function") {
    document.addEventListener("submit", function (ev) {
      var form = ev.target;
      if (!form.dataset || !form.dataset.ask) { return; }
      ev.preventDefault();
      var action = form.getAttribute("action"), data = new FormData(form);
      var text = document.getElementById("ask-text");
      text.textContent = "";
      form.dataset.ask.split("\n").concat([form.dataset.askQuestion]).forEach(function (line) {
        var p = document.createElement("p");
        p.textContent = line;
        text.appendChild(p);
      });
      document.getElementById("ask-yes").textContent = form.dataset.askYes;
      ask.returnValue = "";
      ask.onclose = function () {
        ask.onclose = null;
        if (ask.returnValue !== "yes") {
          var again = document.querySelector('form[action="' + action + '"] button[type="submit"]');
          if (again) { again.focus(); }
          return;
        }
        var post = document.createElement("form");
        post.method = "post";
        post.action = action;
        data.append("confirmed", "1");
        data.forEach(function (value, name) {
          var field = document.createElement("input");
          field.type = "hidden";
          field.name = name;
          field.value = value;
          post.appendChild(field);
        });
        document.body.appendChild(post);
        post.submit();
      };
      ask.showModal();
    });
  }

  // Keyboard shortcuts: a key presses the button with data-key="<key>" (not while typing in a field), once
  // per press: a key held down repeats its keydown, which sent the form again and again.
  document.addEventListener("keydown", function (ev) {
    if (ev.ctrlKey || ev.metaKey || ev.altKey) { return; }
    if (document.querySelector("dialog[open]")) { return; }  // a question is open: no key acts behind it
    var tag = (ev.target.tagName || "").toLowerCase();
    if (tag === "input" || tag === "select" || tag === "textarea") { return; }
    var btn = document.querySelector('[data-key="' + ev.key.toLowerCase() + '"]');
    if (btn) { ev.preventDefault(); if (!ev.repeat) { btn.click(); } }
  });
})();
