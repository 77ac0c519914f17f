// The room link's page: join view → device view → meeting view → end view.
// Every action is a call to meetplane's public API: joining with the link's secret,
// everything else with the room member token the page was rendered with.
(function () {
  "use strict";
  const app = document.getElementById("room-app");
  if (!app) return;
  const roomId = app.dataset.roomId;
  const api = app.dataset.api;
  const memberToken = app.dataset.memberToken;
  const backend = app.dataset.mediaBackend;
  const permissions = JSON.parse(app.dataset.permissions || "{}");

  // The secret stays in memory only: remove it from the address bar (and history).
  const secret = new URLSearchParams(location.search).get("secret") || "";
  history.replaceState(null, "", location.pathname);
  const roomLink = location.pathname + "?secret=" + encodeURIComponent(secret);
  const recordingsLink = document.getElementById("recordings-link");
  if (recordingsLink) {
    recordingsLink.href = location.pathname + "/recordings?secret=" + encodeURIComponent(secret);
  }

  const $ = function (id) { return document.getElementById(id); };
  const views = ["join-view", "device-view", "meeting-view", "end-view"];
  function show(view) {
    views.forEach(function (id) { $(id).hidden = id !== view; });
    app.dataset.view = view;
  }

  async function call(method, path, body, credential) {
    const headers = { "Content-Type": "application/json" };
    if (credential !== "none") headers["X-Room-Member-Token"] = memberToken;
    const response = await fetch(api + path, {
      method: method,
      headers: headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const answer = await response.json().catch(function () { return {}; });
    if (!response.ok) {
      const error = new Error(answer.message || response.statusText);
      error.status = response.status;
      error.code = answer.error;
      throw error;
    }
    return answer;
  }

  // ---- join view: the nickname, checked like the API checks it (1 to 50 characters) ----
  let nickname = "";
  const joinForm = $("join-form");
  if (joinForm) {
    joinForm.addEventListener("submit", function (event) {
      event.preventDefault();
      const value = $("nickname").value.trim();
      const error = $("nickname-error");
      if (!value) {
        error.textContent = "Please enter your name.";
      } else if (value.length > 50) {
        error.textContent = "Your name can have at most 50 characters.";
      } else {
        error.textContent = "";
        nickname = value;
        openDevices();
        return;
      }
      $("nickname").setAttribute("aria-invalid", "true");
      $("nickname").focus();
    });
  }

  // ---- device view: preview, choose devices, mute before entering -----------------------
  let stream = null;
  let cameraOn = true;
  let micOn = true;
  const missing = [];

  function stopStream() {
    if (stream) stream.getTracks().forEach(function (t) { t.stop(); });
    stream = null;
  }

  async function getMedia(video, audio) {
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      throw new Error("no media devices");
    }
    return navigator.mediaDevices.getUserMedia({ video: video, audio: audio });
  }

  async function startPreview() {
    stopStream();
    missing.length = 0;
    const cam = $("camera-select").value;
    const mic = $("mic-select").value;
    const video = cam ? { deviceId: { exact: cam } } : true;
    const audio = mic ? { deviceId: { exact: mic } } : true;
    try {
      stream = await getMedia(video, audio);
    } catch (both) {
      // Try each alone: one of them may be denied or absent.
      const parts = [];
      try { parts.push(...(await getMedia(video, false)).getTracks()); } catch (e) { missing.push("camera"); }
      try { parts.push(...(await getMedia(false, audio)).getTracks()); } catch (e) { missing.push("microphone"); }
      stream = parts.length ? new MediaStream(parts) : null;
    }
    $("preview").srcObject = stream;
    applyMute();
    const note = $("device-note");
    note.textContent = missing.length
      ? "No access to your " + missing.join(" or ") + ": you will join without it. " +
        "You can allow access in your browser's site settings."
      : "";
    app.dataset.previewTracks = stream ? String(stream.getTracks().length) : "0";
  }

  async function listDevices() {
    if (!navigator.mediaDevices || !navigator.mediaDevices.enumerateDevices) return;
    const devices = await navigator.mediaDevices.enumerateDevices();
    [["videoinput", "camera-select"], ["audioinput", "mic-select"]].forEach(function (pair) {
      const select = $(pair[1]);
      const current = select.value;
      select.textContent = "";
      devices.filter(function (d) { return d.kind === pair[0]; }).forEach(function (d, i) {
        const option = document.createElement("option");
        option.value = d.deviceId;
        option.textContent = d.label || (pair[0] === "videoinput" ? "Camera " : "Microphone ") + (i + 1);
        select.appendChild(option);
      });
      if (!select.options.length) {
        const option = document.createElement("option");
        option.value = "";
        option.textContent = "None available";
        select.appendChild(option);
      }
      if (current) select.value = current;
    });
  }

  function applyMute() {
    if (stream) {
      stream.getVideoTracks().forEach(function (t) { t.enabled = cameraOn; });
      stream.getAudioTracks().forEach(function (t) { t.enabled = micOn; });
    }
    const hasVideo = !!(stream && stream.getVideoTracks().length);
    const hasAudio = !!(stream && stream.getAudioTracks().length);
    $("preview-off").hidden = hasVideo && cameraOn;
    [["toggle-camera", "meeting-camera"], ["toggle-mic", "meeting-mic"]].forEach(function (ids, i) {
      const on = i === 0 ? cameraOn : micOn;
      const has = i === 0 ? hasVideo : hasAudio;
      ids.forEach(function (id) {
        const button = $(id);
        button.disabled = !has;
        button.setAttribute("aria-pressed", String(!on));
        button.textContent = i === 0
          ? (on ? "Turn camera off" : "Turn camera on")
          : (on ? "Mute microphone" : "Unmute microphone");
      });
    });
    if (lkRoom) {
      lkRoom.localParticipant.setCameraEnabled(cameraOn && hasVideo).catch(function () {});
      lkRoom.localParticipant.setMicrophoneEnabled(micOn && hasAudio).catch(function () {});
    }
  }

  async function openDevices() {
    show("device-view");
    await startPreview();
    await listDevices();
  }

  $("camera-select").addEventListener("change", startPreview);
  $("mic-select").addEventListener("change", startPreview);
  $("toggle-camera").addEventListener("click", function () { cameraOn = !cameraOn; applyMute(); });
  $("toggle-mic").addEventListener("click", function () { micOn = !micOn; applyMute(); });
  $("meeting-camera").addEventListener("click", function () { cameraOn = !cameraOn; applyMute(); });
  $("meeting-mic").addEventListener("click", function () { micOn = !micOn; applyMute(); });

  // ---- meeting view ------------------------------------------------------------------
  let joined = null;
  let lkRoom = null;
  let poll = null;
  let recordingId = null;

  $("enter-meeting").addEventListener("click", async function () {
    const button = $("enter-meeting");
    button.disabled = true;
    $("join-error").textContent = "";
    try {
      joined = await call("POST", "/rooms/" + roomId + "/join",
        { secret: secret, participantName: nickname }, "none");
    } catch (error) {
      button.disabled = false;
      if (error.status === 409 && /closed/i.test(error.message)) {
        end("The room was closed before you could join.", true);
      } else if (error.status === 404) {
        end("This room no longer exists.", false);
      } else {
        $("join-error").textContent = "Could not join: " + error.message;
      }
      return;
    }
    enterMeeting();
  });

  async function enterMeeting() {
    show("meeting-view");
    app.dataset.identity = joined.identity;
    $("self-video").srcObject = stream;
    $("share-screen").hidden = !permissions.canShareScreen || backend !== "livekit";
    $("end-meeting").hidden = !permissions.canEndMeeting;
    $("record-start").hidden = !permissions.canRecord;
    if (backend === "livekit" && window.LivekitClient) {
      await connectLiveKit();
    } else {
      $("local-note").hidden = false;
    }
    refresh();
    follow();
  }

  // ---- live updates: the room's events (SSE); polling only while the stream is down ----
  const END_REASONS = {
    ended_by_admin: "A moderator ended the meeting.",
    room_deleted: "The room was deleted.",
    auto_deleted: "The room was deleted automatically: its auto-deletion date came.",
    room_closed: "The room was closed.",
    empty_timeout: "The meeting ended because it was left empty.",
    media_server_shutdown: "The media server shut down.",
    livekit: "The media server ended the meeting.",
  };
  let source = null;

  function follow() {
    if (!window.EventSource) { poll = setInterval(refresh, 1500); return; }
    source = new EventSource(location.pathname + "/events");
    source.onopen = function () {
      app.dataset.live = "open";
      if (poll) { clearInterval(poll); poll = null; }
      refresh();  // whatever happened while the stream was connecting
    };
    source.onerror = function () {
      app.dataset.live = "down";
      if (!poll && joined) poll = setInterval(refresh, 1500);
    };
    function on(type, handler) {
      source.addEventListener(type, function (event) {
        if (joined) handler(JSON.parse(event.data));
      });
    }
    on("ParticipantEvicted", function (data) {
      if (data.identity === joined.identity) end("A moderator removed you from the meeting.", false);
      else refresh();
    });
    on("MeetingEnded", function (data) {
      if (data.meetingId !== joined.meetingId) return;
      const gone = data.reason === "room_deleted" || data.reason === "auto_deleted";
      end(END_REASONS[data.reason] || "The meeting has ended.", !gone);
    });
    on("RoomDeleted", function () { end("The room was deleted.", false); });
    ["ParticipantJoined", "ParticipantLeft", "ParticipantRoleChanged", "RecordingStarted",
      "RecordingActivated", "RecordingStopped", "RecordingReady", "RecordingFailed",
      "RoomStatusChanged"].forEach(function (type) { on(type, refresh); });
  }

  async function connectLiveKit() {
    const LK = window.LivekitClient;
    lkRoom = new LK.Room({ adaptiveStream: true, dynacast: true });
    lkRoom.on(LK.RoomEvent.TrackSubscribed, function (track, publication, participant) {
      if (track.kind !== "video" && track.kind !== "audio") return;
      const element = track.attach();
      if (track.kind === "video") {
        const figure = document.createElement("figure");
        figure.className = "tile";
        figure.dataset.sid = track.sid;
        const caption = document.createElement("figcaption");
        caption.textContent = participant.name || participant.identity;
        figure.appendChild(element);
        figure.appendChild(caption);
        $("tiles").appendChild(figure);
      } else {
        element.hidden = true;
        document.body.appendChild(element);
      }
    });
    lkRoom.on(LK.RoomEvent.TrackUnsubscribed, function (track) {
      track.detach().forEach(function (el) {
        const figure = el.closest("figure");
        (figure || el).remove();
      });
    });
    lkRoom.on(LK.RoomEvent.Disconnected, function () { if (joined) refresh(); });
    try {
      await lkRoom.connect(joined.url, joined.token);
      app.dataset.livekit = "connected";
      applyMute();
    } catch (error) {
      app.dataset.livekit = "failed";
      $("meeting-error").textContent = "Could not connect to the media server: " + error.message;
    }
  }

  $("share-screen").addEventListener("click", async function () {
    if (!lkRoom) return;
    const on = !lkRoom.localParticipant.isScreenShareEnabled;
    try {
      await lkRoom.localParticipant.setScreenShareEnabled(on);
      $("share-screen").textContent = on ? "Stop sharing" : "Share screen";
    } catch (error) {
      $("meeting-error").textContent = "Screen sharing failed: " + error.message;
    }
  });

  function participantItem(p) {
    const item = document.createElement("li");
    item.dataset.identity = p.identity;
    const name = document.createElement("span");
    name.textContent = p.name + (p.identity === joined.identity ? " (you)" : "");
    const role = document.createElement("span");
    role.className = "badge";
    role.textContent = p.role;
    item.appendChild(name);
    item.appendChild(role);
    if (p.identity !== joined.identity) {
      if (permissions.canMakeModerator) {
        const promote = document.createElement("button");
        promote.type = "button";
        promote.className = "small change-role";
        promote.dataset.identity = p.identity;
        promote.dataset.role = p.role === "moderator" ? "speaker" : "moderator";
        promote.textContent = p.role === "moderator" ? "Make speaker" : "Make moderator";
        promote.setAttribute("aria-label", promote.textContent + ": " + p.name);
        item.appendChild(promote);
      }
      if (permissions.canKickParticipants) {
        const evict = document.createElement("button");
        evict.type = "button";
        evict.className = "small danger evict";
        evict.dataset.identity = p.identity;
        evict.textContent = "Remove";
        evict.setAttribute("aria-label", "Remove " + p.name + " from the meeting");
        item.appendChild(evict);
      }
    }
    return item;
  }

  async function refresh() {
    if (!joined) return;
    let meeting;
    try {
      meeting = await call("GET", "/meetings/" + roomId);
    } catch (error) {
      if (error.status === 404) return ended();
      return;
    }
    if (meeting.meetingId !== joined.meetingId || meeting.status !== "active") return ended();
    if ((meeting.evicted || []).indexOf(joined.identity) >= 0) {
      return end("A moderator removed you from the meeting.", false);
    }
    const list = $("participants");
    list.textContent = "";
    meeting.participants.filter(function (p) { return p.present; }).forEach(function (p) {
      list.appendChild(participantItem(p));
    });
    if (permissions.canRecord) refreshRecording();
  }

  async function refreshRecording() {
    try {
      // The room's newest recording (a member token sees its own room's only).
      const page = await call("GET", "/recordings?maxItems=1&sortField=startDate&sortOrder=desc");
      const active = (page.recordings || []).filter(function (r) {
        return r.roomId === roomId && (r.status === "active" || r.status === "starting");
      })[0];
      recordingId = active ? active.recordingId : null;
    } catch (error) { /* the list is a nicety: keep the buttons as they are */ }
    showRecording();
  }

  function showRecording() {
    $("record-start").hidden = !permissions.canRecord || !!recordingId;
    $("record-stop").hidden = !permissions.canRecord || !recordingId;
    $("recording-badge").hidden = !recordingId;
  }

  async function ended() {
    // Why did the meeting end?  A room that is gone was deleted; otherwise it ended.
    try {
      await call("GET", "/rooms/" + roomId);
    } catch (error) {
      if (error.status === 404) return end("The room was deleted.", false);
    }
    end("The meeting has ended.", true);
  }

  function end(reason, canRejoin) {
    if (poll) clearInterval(poll);
    poll = null;
    if (source) { source.close(); source = null; }
    joined = null;
    if (lkRoom) { lkRoom.disconnect(); lkRoom = null; }
    stopStream();
    $("end-title").textContent = "The meeting is over for you";
    $("end-reason").textContent = reason;
    const again = $("join-again");
    again.hidden = !canRejoin;
    again.href = roomLink;
    show("end-view");
  }

  $("participants").addEventListener("click", async function (event) {
    const button = event.target.closest("button");
    if (!button) return;
    const identity = button.dataset.identity;
    try {
      if (button.classList.contains("evict")) {
        await call("DELETE", "/meetings/" + roomId + "/participants/" + encodeURIComponent(identity));
      } else if (button.classList.contains("change-role")) {
        await call("PUT", "/meetings/" + roomId + "/participants/" + encodeURIComponent(identity) + "/role",
          { role: button.dataset.role });
      }
      refresh();
    } catch (error) {
      $("meeting-error").textContent = error.message;
    }
  });

  $("record-start").addEventListener("click", async function () {
    try {
      const recording = await call("POST", "/recordings", { roomId: roomId });
      recordingId = recording.recordingId;
      showRecording();
    } catch (error) {
      $("meeting-error").textContent = "Could not start recording: " + error.message;
    }
  });

  $("record-stop").addEventListener("click", async function () {
    if (!recordingId) return;
    try {
      await call("POST", "/recordings/" + encodeURIComponent(recordingId) + "/stop");
      recordingId = null;
      showRecording();
    } catch (error) {
      $("meeting-error").textContent = "Could not stop recording: " + error.message;
    }
  });

  $("end-meeting").addEventListener("click", async function () {
    if (!window.confirm("End the meeting for everyone?")) return;
    try {
      await call("DELETE", "/meetings/" + roomId);
      end("You ended the meeting for everyone.", true);
    } catch (error) {
      $("meeting-error").textContent = error.message;
    }
  });

  $("leave").addEventListener("click", async function () {
    const identity = joined && joined.identity;
    try {
      if (identity) {
        await call("POST", "/meetings/" + roomId + "/participants/" + encodeURIComponent(identity) + "/leave");
      }
    } catch (error) { /* leaving anyway */ }
    end("You left the meeting.", true);
  });

  show("join-view");
})();
