// The room's recordings page: copy a share link, delete (the API, with the link's member token).
(function () {
  "use strict";
  const app = document.getElementById("recordings-app");
  if (!app) return;
  const api = app.dataset.api;
  const token = app.dataset.memberToken;
  const message = document.getElementById("recordings-message");
  history.replaceState(null, "", location.pathname);

  async function call(method, path) {
    const response = await fetch(api + path, {
      method: method,
      headers: { "X-Room-Member-Token": token },
    });
    const body = await response.json().catch(function () { return {}; });
    if (!response.ok) throw new Error(body.message || response.statusText);
    return body;
  }

  app.addEventListener("click", async function (event) {
    const button = event.target.closest("button");
    if (!button) return;
    const id = button.dataset.recordingId;
    try {
      if (button.classList.contains("copy-share")) {
        const answer = await call("GET", "/recordings/" + encodeURIComponent(id) + "/url");
        message.textContent = "Share link: " + answer.url;
        message.dataset.url = answer.url;
        if (navigator.clipboard) await navigator.clipboard.writeText(answer.url).catch(function () {});
      } else if (button.classList.contains("delete-recording")) {
        if (!window.confirm("Delete this recording? This cannot be undone.")) return;
        await call("DELETE", "/recordings/" + encodeURIComponent(id));
        button.closest("li").remove();
        message.textContent = "Recording deleted.";
      }
    } catch (error) {
      message.textContent = error.message;
    }
  });
})();
