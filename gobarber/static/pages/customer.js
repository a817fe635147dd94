// The appointments page: follow each cancellation mail still queued until it is sent,
// fails or is held, and show it without a reload. The page works without this script;
// only the status is then as it was when the page loaded.
(function () {
  "use strict";

  var FIRST_DELAY_MS = 1000;
  var LONGEST_DELAY_MS = 15000;
  // Polled every second for a minute (a mail usually goes in a second or two), then
  // less and less often: a queued mail may be waiting out an SMTP outage for hours.
  var PATIENT_FOR_MS = 60000;

  // The page's notices for a mail that failed or is held, with a slot for the name.
  var notices = document.getElementById("mail-notices");

  function show(item, answer) {
    var status = item.querySelector("[data-mail-status]");
    status.textContent = answer.label;
    status.className = "status " + answer.status;
    item.setAttribute("data-status", answer.status);
    var notice = notices.content.querySelector('[data-notice="' + answer.status + '"]');
    if (notice && !item.querySelector("[data-notice]")) {
      var copy = notice.cloneNode(true);
      copy.querySelectorAll("[data-provider]").forEach(function (slot) {
        slot.textContent = item.getAttribute("data-provider");
      });
      // Inside the item's live region: a screen reader reads it out.
      item.querySelector(".mail").appendChild(copy);
    }
  }

  function follow(item) {
    var url = item.getAttribute("data-mail-url");
    var started = Date.now();
    var delay = FIRST_DELAY_MS;

    function later() {
      if (Date.now() - started > PATIENT_FOR_MS) {
        delay = Math.min(delay * 2, LONGEST_DELAY_MS);
      }
      window.setTimeout(poll, delay);
    }

    function poll() {
      fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" })
        .then(function (response) {
          var type = response.headers.get("Content-Type") || "";
          // Signed out meanwhile (the sign-in page) or gone: stop following.
          if (!response.ok || type.indexOf("application/json") !== 0) {
            return null;
          }
          return response.json();
        })
        .then(function (answer) {
          if (answer === null) {
            return;
          }
          show(item, answer);
          if (answer.status === "queued") {
            later();
          }
        })
        .catch(later); // the network failed: try again
    }

    later();
  }

  document.querySelectorAll('[data-mail-url][data-status="queued"]').forEach(follow);
})();
