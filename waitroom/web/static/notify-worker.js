// The ticket page's notification worker. Chrome on Android shows a page's notifications only through a
// service worker, so the ticket page (static/ticket.js) registers this one when the citizen switches the
// warning on. It caches nothing and sees no requests (no fetch handler, scope /static/); a tap on the
// notification brings the ticket page back to the front.
"use strict";
self.addEventListener("install", function () { self.skipWaiting(); });
self.addEventListener("activate", function (event) { event.waitUntil(self.clients.claim()); });
self.addEventListener("notificationclick", function (event) {
  event.notification.close();
  var page = (event.notification.data || {}).page;
  event.waitUntil(self.clients.matchAll({type: "window", includeUncontrolled: true}).then(function (list) {
    for (var i = 0; i < list.length; i++) {
      if (page && list[i].url.indexOf(page) !== -1 && "focus" in list[i]) { return list[i].focus(); }
    }
    if (page && self.clients.openWindow) { return self.clients.openWindow(page); }
    return undefined;
  }));
});
