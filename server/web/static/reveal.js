// Takes a revealed identity off the screen: after data-seconds, on leaving the page, and when
// the page comes back from the back-forward cache. The nodes are removed, not hidden, so the
// page's HTML no longer holds the identity. Served by nigraan (no inline script: the reveal
// page's Content-Security-Policy allows only 'self').
(function () {
  "use strict";
  function removeIdentity() {
    var box = document.getElementById("identity");
    if (box) box.parentNode.removeChild(box);
    var gone = document.getElementById("identity-gone");
    if (gone) gone.hidden = false;
  }
  function start() {
    var box = document.getElementById("identity");
    if (!box) return;
    var seconds = parseInt(box.getAttribute("data-seconds"), 10);
    window.setTimeout(removeIdentity, (seconds > 0 ? seconds : 60) * 1000);
  }
  window.addEventListener("pagehide", removeIdentity);
  window.addEventListener("pageshow", function (event) {
    if (event.persisted) removeIdentity();
  });
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
