// Recordings on the compose page, for languages no synthesiser speaks: record with the
// microphone (MediaRecorder) or choose a file; either is sent to the server, which normalises
// and stores it, and the player then plays the stored copy (listen back, re-record, remove).
// The hidden <lang>.recording field carries the stored URI with the form.
"use strict";
(function () {
  const data = JSON.parse(document.getElementById("compose-data").textContent);
  const form = document.getElementById("compose");
  const csrf = form.querySelector("input[name=csrf_token]").value;
  const text = window.consoleText;
  const players = {};

  function setStatus(box, zh, en) {
    box.querySelector(".record-status").replaceChildren(text.words(zh, en));
  }

  function show(box, uri, url) {
    box.querySelector(".recording-uri").value = uri;
    const player = box.querySelector(".record-player");
    player.hidden = !url;
    if (url) {
      player.src = url;
      player.load();
      players[box.dataset.lang] = url;
    } else {
      player.removeAttribute("src");
      delete players[box.dataset.lang];
    }
    box.querySelector(".record-clear").hidden = !uri;
    box.dataset.ready = uri ? "1" : "";
  }

  async function upload(box, blob) {
    setStatus(box, "正在处理录音…", "processing the recording…");
    const type = (blob.type || "audio/webm").split(";")[0];
    const response = await fetch(`${data.prefix}/compose/recording?lang=${encodeURIComponent(box.dataset.lang)}`, {
      method: "POST",
      body: blob,
      headers: { "X-CSRF-Token": csrf, "Content-Type": type.startsWith("audio/") ? type : "audio/webm", Accept: "application/json" },
      credentials: "same-origin",
    });
    // A refusal before the console answered (a body over the size limit) is not JSON.
    const body = (response.headers.get("Content-Type") || "").startsWith("application/json")
      ? await response.json()
      : { error: `the server refused the recording (${response.status})` };
    if (response.status !== 201) {
      setStatus(box, body.error_zh || "录音未能保存", body.error || "the recording was not kept");
      return;
    }
    show(box, body.uri, body.url);
    setStatus(box, `已保存 ${body.duration_s} 秒（音量已标准化）`, `kept: ${body.duration_s} s (loudness normalised)`);
  }

  function setUp(box) {
    const start = box.querySelector(".record-start");
    const stop = box.querySelector(".record-stop");
    let recorder = null;
    start.addEventListener("click", async () => {
      if (!navigator.mediaDevices || !window.MediaRecorder) {
        setStatus(box, "此浏览器不能录音，请上传文件", "this browser cannot record: upload a file");
        return;
      }
      let stream;
      try {
        stream = await navigator.mediaDevices.getUserMedia({ audio: true });
      } catch (error) {
        setStatus(box, "无法使用麦克风，请上传文件", "the microphone is not available: upload a file");
        return;
      }
      const chunks = [];
      recorder = new MediaRecorder(stream);
      recorder.addEventListener("dataavailable", (event) => { if (event.data.size) chunks.push(event.data); });
      recorder.addEventListener("stop", () => {
        for (const track of stream.getTracks()) track.stop();
        upload(box, new Blob(chunks, { type: recorder.mimeType }));
      });
      recorder.start();
      start.disabled = true;
      stop.disabled = false;
      box.dataset.recording = "1";
      box.dataset.ready = "";
      setStatus(box, "正在录音…", "recording…");
    });
    stop.addEventListener("click", () => {
      if (recorder && recorder.state !== "inactive") recorder.stop();
      start.disabled = false;
      stop.disabled = true;
      box.dataset.recording = "";
    });
    box.querySelector(".record-file").addEventListener("change", (event) => {
      const file = event.target.files[0];
      if (file) upload(box, file);
      event.target.value = "";
    });
    box.querySelector(".record-clear").addEventListener("click", () => {
      show(box, "", "");
      setStatus(box, "录音已删除", "recording removed");
    });
  }

  // The preview lists the recordings of the languages the alert has, each with a player.
  function preview() {
    const list = document.getElementById("preview-recording-list");
    list.replaceChildren();
    for (const box of form.querySelectorAll(".recorder")) {
      const lang = box.dataset.lang;
      const fieldset = box.closest("fieldset");
      if (!players[lang] || (fieldset && fieldset.hidden)) continue;
      const item = document.createElement("li");
      item.append(`${lang}: `);
      const player = document.createElement("audio");
      player.controls = true;
      player.preload = "metadata";
      player.dataset.lang = lang;
      player.src = players[lang];
      item.appendChild(player);
      list.appendChild(item);
    }
    document.getElementById("preview-recordings").hidden = list.children.length === 0;
  }

  const saved = (data.initial && data.initial.recordings) || {};
  for (const box of form.querySelectorAll(".recorder")) {
    setUp(box);
    const uri = saved[box.dataset.lang];
    if (uri) show(box, uri, `${data.prefix}/recordings/${uri.split("/").pop()}`);
  }
  document.getElementById("preview-button").addEventListener("click", preview);
})();
