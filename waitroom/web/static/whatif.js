// What-if job page: poll the job's status, move the progress bar, open the result when it is done.
(function () {
  "use strict";
  var box = document.getElementById("whatif-job");
  if (!box) { return; }
  var bar = document.getElementById("whatif-progress");
  var label = document.getElementById("whatif-progress-text");
  function poll() {
    fetch(box.dataset.statusUrl, {credentials: "same-origin", headers: {"Accept": "application/json"}})
      .then(function (r) { return r.json(); })
      .then(function (st) {
        if (st.state === "done" || st.state === "failed" || st.ok === false) {
          window.location.replace(box.dataset.resultUrl);
          return;
        }
        if (st.total) { bar.max = st.total; }
        bar.value = st.done || 0;
        if (st.text) { label.textContent = st.text; }
        setTimeout(poll, 400);
      })
      .catch(function () { setTimeout(poll, 1500); });
  }
  setTimeout(poll, 300);
})();
