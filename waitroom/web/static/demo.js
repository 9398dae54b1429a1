// The demo page: virtual button presses (published on the node's sim topic) and the newest ticket previews
// and display screenshots.
(function () {
  "use strict";
  var status = document.getElementById("sim-status");
  document.addEventListener("click", function (ev) {
    var b = ev.target.closest("button.sim");
    if (!b) { return; }
    window.waitroom.post("/demo/press/" + b.dataset.node, {button: b.dataset.button, action: b.dataset.action})
      .then(function (r) { return r.json(); })
      .then(function (j) {
        status.textContent = j.ok ? (b.dataset.node + ": " + b.dataset.button + " (" + b.dataset.action + ")")
                                  : (j.error && j.error.message);
      })
      .catch(function (e) { status.textContent = String(e); });
  });
  var box = document.getElementById("tickets");
  function show(el, items) {
    if (!items.length) { return; }
    var html = items.map(function (i) {
      return '<figure><img src="' + i.url + '" alt="' + i.name + '" loading="lazy"><figcaption>' + i.name +
        "</figcaption></figure>";
    }).join("");
    if (el._html !== html) { el._html = html; el.innerHTML = html; }
  }
  function poll() {
    fetch(box.dataset.src, {credentials: "same-origin"}).then(function (r) { return r.json(); })
      .then(function (j) { show(box, j.tickets); show(document.getElementById("screens"), j.screens); })
      .catch(function () {});
  }
  poll();
  setInterval(poll, 2000);
})();
