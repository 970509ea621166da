// The login page's silent step: if the device can be checked by its operator, open the check
// link (the operator sends the device back to this page); otherwise say why, so the user can
// turn WiFi off or ask for a code. After a match, continue the login at once. Without
// JavaScript the page offers the same two buttons.
(function () {
  "use strict";
  var done = document.getElementById("silent-continue");
  if (done) {
    done.submit();
    return;
  }
  var go = document.getElementById("silent-go");
  var status = document.getElementById("silent-status");
  if (!go || !status) return;
  fetch("/api/coverage", { credentials: "same-origin", headers: { accept: "application/json" } })
    .then(function (r) { return r.ok ? r.json() : { available: true }; })
    .then(function (c) {
      if (c.available) {
        status.textContent = status.dataset.checking;
        window.setTimeout(function () { window.location.assign(go.href); }, 600);
      } else {
        status.textContent = c.reason === "wifi" ? status.dataset.wifi : status.dataset.uncovered;
      }
    })
    .catch(function () { /* the buttons still work */ });
})();
