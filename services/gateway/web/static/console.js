// The console's own script: confirm before destructive forms (no inline handlers: CSP).
(function () {
  "use strict";
  document.addEventListener("submit", function (event) {
    const button = event.submitter;
    if (button && button.classList.contains("danger") && !window.confirm(button.textContent.trim() + "?")) {
      event.preventDefault();
    }
  });
})();
