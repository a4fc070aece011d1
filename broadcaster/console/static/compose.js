// The compose page: template prefill, area tree and map polygon, preview and audio, inline
// problems. Data comes from the JSON block #compose-data; requests carry the CSRF token.
"use strict";
(function () {
  const data = JSON.parse(document.getElementById("compose-data").textContent);
  const form = document.getElementById("compose");
  const csrf = form.querySelector("input[name=csrf_token]").value;
  const hazards = Object.fromEntries(data.hazards.map((h) => [h.code, h]));
  const frame = data.map;
  const $ = (id) => document.getElementById(id);
  const text = window.consoleText;
  let drawing = false;
  let corners = [];
  // The name of the drawn area, from the counties it covers (asked of the server).
  let drawnName = "";

  function pad(n) { return String(n).padStart(2, "0"); }
  // Times are entered in the deployment's zone, whose offset the server put in tz_offset.
  function localInput(date) {
    const shifted = new Date(date.getTime() + parseInt($("tz_offset").value, 10) * 60000);
    return `${shifted.getUTCFullYear()}-${pad(shifted.getUTCMonth() + 1)}-${pad(shifted.getUTCDate())}T${pad(shifted.getUTCHours())}:${pad(shifted.getUTCMinutes())}`;
  }

  function setField(name, value) {
    const el = form.elements.namedItem(name);
    if (el && value !== undefined && value !== null) el.value = value;
  }

  function showLanguage(lang, on) {
    const box = $("lang-" + lang);
    if (box) box.checked = on;
    const set = form.querySelector(`fieldset[data-lang="${lang}"]`);
    if (set) set.hidden = !on;
  }

  function areaName() {
    const names = [];
    for (const box of form.querySelectorAll("input[name=division]:checked")) {
      names.push(box.parentElement.textContent.trim());
    }
    if (corners.length >= 3 && drawnName) names.push(drawnName);
    // No name at all: the template keeps {area}, and the officer types where the warning is.
    return names.join("、") || "{area}";
  }

  // Values the template last wrote: a change of area rewrites only fields still holding them,
  // never what the officer typed.
  const filled = {};

  function fill(name, value, force) {
    const el = form.elements.namedItem(name);
    if (!el) return;
    if (force || el.value === "" || el.value === filled[name]) {
      el.value = value;
      filled[name] = value;
    }
  }

  function applyTemplate(force) {
    const hazard = hazards[$("hazard").value];
    const level = $("level_value").value;
    $("hazard_value").value = $("hazard").value;
    for (const b of document.querySelectorAll(".levels button")) {
      b.classList.toggle("on", b.dataset.level === level);
      b.setAttribute("aria-pressed", String(b.dataset.level === level));
    }
    if (!hazard || !level) return;
    const prefill = hazard.levels[level];
    for (const name of ["category", "response", "severity", "urgency", "certainty"]) {
      fill(name, prefill[name], force);
    }
    const area = areaName();
    for (const [lang, text] of Object.entries(prefill.texts)) {
      for (const [name, value] of Object.entries(text)) {
        fill(`${lang}.${name}`, value.replaceAll("{area}", area), force);
      }
    }
  }

  function prefix(code) {
    if (code.endsWith("00000000")) return code.slice(0, 4);
    if (code.endsWith("000000")) return code.slice(0, 6);
    if (code.endsWith("000")) return code.slice(0, 9);
    return code;
  }

  function highlight() {
    const chosen = [...form.querySelectorAll("input[name=division]:checked")].map((b) => prefix(b.value));
    for (const dot of document.querySelectorAll("#map .dots circle")) {
      dot.classList.toggle("sel", chosen.some((p) => dot.dataset.code.startsWith(p)));
    }
  }

  function toLatLon(event) {
    const svg = $("map");
    const point = svg.createSVGPoint();
    point.x = event.clientX;
    point.y = event.clientY;
    const local = point.matrixTransform(svg.getScreenCTM().inverse());
    const lon = frame.minLon + (local.x / frame.width) * (frame.maxLon - frame.minLon);
    const lat = frame.maxLat - (local.y / frame.height) * (frame.maxLat - frame.minLat);
    return [lat.toFixed(4), lon.toFixed(4), local.x, local.y];
  }

  function drawPolygon() {
    $("drawn").setAttribute("points", corners.map((c) => `${c[2]},${c[3]}`).join(" "));
    $("polygon").value = corners.map((c) => `${c[0]},${c[1]}`).join(" ");
  }

  function setPolygonFromText(text) {
    corners = [];
    for (const pair of (text || "").split(/\s+/).filter(Boolean)) {
      const [lat, lon] = pair.split(",").map(parseFloat);
      const x = ((lon - frame.minLon) / (frame.maxLon - frame.minLon)) * frame.width;
      const y = ((frame.maxLat - lat) / (frame.maxLat - frame.minLat)) * frame.height;
      corners.push([lat, lon, x, y]);
    }
    drawPolygon();
  }

  function showProblems(problems) {
    const list = $("problem-list");
    list.innerHTML = "";
    for (const el of form.querySelectorAll(".field-problem")) el.textContent = "";
    for (const el of form.querySelectorAll(".invalid")) el.classList.remove("invalid");
    for (const p of problems) {
      const li = document.createElement("li");
      li.className = p.severity;
      li.dataset.path = p.path;
      li.appendChild(text.words(p.message_zh || p.message, p.message));
      list.appendChild(li);
      const holder = form.querySelector(`[data-field="${CSS.escape(p.path)}"]`);
      if (holder) {
        holder.classList.add("invalid");
        const slot = holder.querySelector(".field-problem");
        if (slot) slot.replaceChildren(text.words(p.message_zh || p.message, p.message));
      }
    }
    list.hidden = problems.length === 0;
  }

  async function nameDrawnArea() {
    if (corners.length < 3) { applyTemplate(false); return; }
    const drawn = $("polygon").value;
    const [code, body] = await post("/compose/area");
    if (drawn !== $("polygon").value) return;  // a later corner asks again
    drawnName = code === 200 ? body.name : "";
    $("polygon").dataset.named = drawnName ? "1" : "0";
    applyTemplate(false);
  }

  async function post(path) {
    const response = await fetch(data.prefix + path, {
      method: "POST",
      body: new FormData(form),
      headers: { "X-CSRF-Token": csrf, Accept: "application/json" },
      credentials: "same-origin",
    });
    return [response.status, await response.json()];
  }

  function cell(row, text) {
    const td = document.createElement("td");
    td.textContent = text;
    row.appendChild(td);
  }

  // Labels of the content fields the channels report (see each channel's content()).
  const FIELDS = {
    language: ["语言", "Language"], text: ["短信正文", "SMS text"], segments: ["条数", "Segments"],
    encoding: ["编码", "Encoding"], ps: ["PS", "PS"], rt: ["RT", "RT"], pty: ["PTY", "PTY"],
    audio: ["音频", "Audio"], duration_s: ["时长（秒）", "Duration (s)"], priority: ["优先级", "Priority"],
    volume: ["音量", "Volume"], repeat: ["重复次数", "Repeats"], texts: ["文本", "Texts"],
    lang: ["语言", "Language"], title: ["标题", "Title"], area: ["地区", "Area"], body: ["正文", "Body"],
    event: ["事件", "Event"], headline: ["标题", "Headline"], description: ["描述", "Description"],
    instruction: ["防御指引", "Instruction"], sender_name: ["发布单位", "Issued by"],
    area_desc: ["地区", "Area"], severity: ["严重程度", "Severity"], urgency: ["紧迫程度", "Urgency"],
    marker: ["标记", "Marker"],
  };
  // Fields whose values are CAP codes: shown in the officer's language.
  const CODED = new Set(["severity", "urgency"]);

  function bilingual(el, zh, en) {
    el.appendChild(text.words(zh, en));
    return el;
  }

  function contentList(content) {
    const list = document.createElement("dl");
    list.className = "content";
    for (const [key, value] of Object.entries(content)) {
      const [zh, en] = FIELDS[key] || [key, key];
      const term = bilingual(document.createElement("dt"), zh, en);
      const detail = document.createElement("dd");
      detail.className = "field-" + key;
      if (Array.isArray(value)) {
        for (const item of value) {
          detail.appendChild(typeof item === "object" && item ? contentList(item) : document.createTextNode(String(item)));
        }
      } else if (CODED.has(key)) {
        detail.appendChild(text.label(String(value)));
      } else {
        const shown = document.createElement(typeof value === "string" && value.length > 40 ? "pre" : "code");
        shown.textContent = value === null ? "—" : String(value);
        detail.appendChild(shown);
      }
      list.append(term, detail);
    }
    return list;
  }

  function renderPreview(p) {
    $("preview-body").hidden = false;
    $("preview-marker").textContent = p.marker || "";
    const targets = $("preview-targets");
    targets.innerHTML = "";
    for (const [channel, preview] of Object.entries(p.channels)) {
      const row = document.createElement("tr");
      row.dataset.channel = channel;
      row.appendChild(document.createElement("td")).appendChild(text.channel(channel));
      cell(row, String(preview.targets));
      row.appendChild(bilingual(document.createElement("td"), preview.unit_name.zh, preview.unit_name.en));
      targets.appendChild(row);
    }
    const channels = $("preview-channels");
    channels.innerHTML = "";
    for (const [channel, preview] of Object.entries(p.channels)) {
      const box = document.createElement("article");
      box.className = "channel-preview";
      box.dataset.channel = channel;
      const title = document.createElement("h4");
      title.append(text.channel(channel), `: ${preview.targets} `);
      bilingual(title, preview.unit_name.zh, preview.unit_name.en);
      box.appendChild(title);
      for (const content of preview.contents) box.appendChild(contentList(content));
      for (const note of preview.notes) box.appendChild(rawNote("渠道提示：", "channel note: ", note));
      channels.appendChild(box);
    }
  }

  async function preview() {
    $("preview-button").disabled = true;
    try {
      const [, body] = await post("/compose/preview");
      showProblems(body.problems);
      renderPreview(body);
      audio();
    } finally {
      $("preview-button").disabled = false;
    }
  }

  // One player per language a channel's devices will speak: the very file they will get (its
  // SHA-256 shown, as the deliveries report it), played from where that language starts to
  // where it ends; and the whole programme, attention signal included.
  function player(url, type, fragment) {
    const el = document.createElement("audio");
    el.controls = true;
    el.preload = "metadata";
    const source = document.createElement("source");
    source.src = url + fragment;
    source.type = type;
    el.appendChild(source);
    return el;
  }

  // A channel's own words (text cut, content it could not make, a language it left out):
  // evidence shown as received (data-raw), after the label of what it is.
  function rawNote(zh, en, raw) {
    const item = bilingual(document.createElement("p"), zh, en);
    item.className = "hint";
    const span = document.createElement("span");
    span.className = "raw";
    span.dataset.raw = "";
    span.textContent = raw;
    item.appendChild(span);
    return item;
  }

  function programme(p) {
    const box = document.createElement("article");
    box.className = "programme";
    box.dataset.channel = p.channel;
    box.dataset.sha256 = p.sha256;
    const title = document.createElement("h4");
    title.append(text.channel(p.channel), `: ${p.targets} `);
    bilingual(title, p.unit_name.zh, p.unit_name.en);
    title.append(` · ${p.duration_s} `);
    bilingual(title, "秒", "s");
    title.append(` · ${p.engine}`);
    if (p.marker) title.append(" · ", text.words("含测试/演练提示", "marker spoken"));
    box.appendChild(title);
    const list = document.createElement("ul");
    list.className = "languages";
    for (const part of p.languages) {
      const item = document.createElement("li");
      item.dataset.lang = part.language;
      bilingual(item, part.name.zh, part.name.en);
      item.append(` (${part.start_s}–${part.end_s} `);
      bilingual(item, "秒）", "s)");
      const heard = player(p.url, p.type, `#t=${part.start_s},${part.end_s}`);
      heard.className = "language-audio";
      heard.dataset.lang = part.language;
      heard.dataset.sha256 = p.sha256;
      item.appendChild(heard);
      list.appendChild(item);
    }
    box.appendChild(list);
    const whole = bilingual(document.createElement("p"), "完整节目（含提示音）：", "whole programme (with the attention signal): ");
    const all = player(p.url, p.type, "");
    all.className = "programme-audio";
    all.dataset.sha256 = p.sha256;
    whole.appendChild(all);
    box.appendChild(whole);
    box.appendChild(rawNote("音频 SHA-256：", "audio SHA-256: ", p.sha256));
    for (const warning of p.warnings) box.appendChild(rawNote("缺少的语言：", "language left out: ", warning));
    return box;
  }

  async function audio() {
    const status = $("audio-status");
    const list = $("preview-audio");
    delete status.dataset.ready;
    list.replaceChildren();
    status.replaceChildren(text.words("正在合成语音…", "rendering audio…"));
    const [code, body] = await post("/compose/audio");
    if (code !== 200) {
      status.replaceChildren(text.words(body.error_zh || "无法合成语音", body.error || "no audio"));
      return;
    }
    for (const p of body.programmes) list.appendChild(programme(p));
    if (body.programmes.length === 0) {
      status.replaceChildren(text.words("所选渠道没有可试听的语音", "the chosen channels offer no audio to hear"));
    } else {
      const languages = new Set(body.programmes.flatMap((p) => p.languages.map((l) => l.language)));
      status.replaceChildren(text.words(
        `${body.programmes.length} 段节目，${languages.size} 种语言`,
        `${body.programmes.length} programme(s), ${languages.size} language(s)`,
      ));
    }
    status.dataset.ready = "1";
  }

  function restore(initial) {
    if (initial.update_of) {
      $("update_of").value = initial.update_of;
      $("update-note").hidden = false;
    }
    if (initial.hazard) $("hazard").value = initial.hazard;
    if (initial.level) $("level_value").value = initial.level;
    if (!initial.texts) { applyTemplate(true); return; }
    $("hazard_value").value = initial.hazard || "";
    for (const name of ["category", "response", "severity", "urgency", "certainty", "effective", "expires"]) {
      setField(name, initial[name]);
    }
    for (const radio of form.querySelectorAll("input[name=status]")) radio.checked = radio.value === initial.status;
    for (const [lang, text] of Object.entries(initial.texts)) {
      if (lang !== "zh-CN") showLanguage(lang, true);
      for (const [name, value] of Object.entries(text)) setField(`${lang}.${name}`, value);
    }
    const wanted = new Set(initial.divisions || []);
    for (const box of form.querySelectorAll("input[name=division]")) box.checked = wanted.has(box.value);
    if (initial.channels) {
      const channels = new Set(initial.channels);
      for (const box of form.querySelectorAll("input[name=channel]")) box.checked = channels.has(box.value);
    }
    setPolygonFromText(initial.polygon);
    for (const b of document.querySelectorAll(".levels button")) b.classList.toggle("on", b.dataset.level === initial.level);
    highlight();
  }

  const now = new Date();
  $("effective").value = localInput(now);
  $("expires").value = localInput(new Date(now.getTime() + 6 * 3600 * 1000));
  $("hazard").addEventListener("change", () => applyTemplate(true));
  for (const b of document.querySelectorAll(".levels button")) {
    b.addEventListener("click", () => { $("level_value").value = b.dataset.level; applyTemplate(true); });
  }
  for (const lang of ["en", "mn"]) {
    $("lang-" + lang).addEventListener("change", (e) => showLanguage(lang, e.target.checked));
  }
  $("tree").addEventListener("change", () => { highlight(); applyTemplate(false); });
  $("draw").addEventListener("click", () => {
    drawing = !drawing;
    $("draw").classList.toggle("on", drawing);
  });
  $("clear-polygon").addEventListener("click", () => {
    corners = [];
    drawPolygon();
    drawnName = "";
    applyTemplate(false);
  });
  $("map").addEventListener("click", (event) => {
    if (!drawing) return;
    corners.push(toLatLon(event));
    drawPolygon();
    nameDrawnArea();
  });
  $("preview-button").addEventListener("click", preview);
  // One click, one alert: a second submit while the first is on its way is ignored.
  form.addEventListener("submit", (event) => {
    if (form.dataset.sent) event.preventDefault();
    form.dataset.sent = "1";
    $("submit").disabled = true;
  });
  restore(data.initial);
  if (data.problems.length) showProblems(data.problems);
})();
