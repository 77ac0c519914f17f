// The console's own script: confirm before destructive forms (no inline handlers: CSP).
(function () {
  "use strict";
  document.addEventListener("submit", function (event) {
    const button = event.submitter;
    if (button && button.classList.contains("danger") && !window.confirm(button.textContent.trim() + "?")) {
      event.preventDefault();
    }
  });

  // The room page's live meeting follows the room's events (SSE) instead of polling.
  const live = document.getElementById("live-meeting");
  if (live && live.dataset.events && window.EventSource && window.htmx) {
    const source = new EventSource(live.dataset.events);
    source.onopen = function () { document.body.dataset.live = "open"; };
    ["MeetingStarted", "ParticipantJoined", "ParticipantLeft", "ParticipantRoleChanged",
      "ParticipantEvicted", "MeetingEnded"].forEach(function (type) {
      source.addEventListener(type, function () {
        htmx.trigger(document.getElementById("live-meeting"), "refresh");
      });
    });
  }
})();
