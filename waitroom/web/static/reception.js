// The reception's result page: "Drucken" prints the ticket (the print stylesheet shows nothing else). A
// file of its own: the Content-Security-Policy allows no inline script.
(function () {
  "use strict";
  document.querySelectorAll("[data-print]").forEach(function (btn) {
    btn.hidden = false;
    btn.addEventListener("click", function () { window.print(); });
  });
})();
