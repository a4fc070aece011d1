// The delivery board: live counts and map colours from server-sent events, the filtered
// target list, and each target's history.
"use strict";
(function () {
  const data = JSON.parse(document.getElementById("board-data").textContent);
  const base = `${data.prefix}/alerts/${data.alert_id}`;
  const states = ["queued", "sending", "accepted", "confirmed", "failed", "expired", "cancelled"];
  const $ = (id) => document.getElementById(id);
  let filter = "all";

  const text = window.consoleText;

  function cell(row, content, cls) {
    const td = document.createElement("td");
    if (typeof content === "string") td.textContent = content;
    else td.appendChild(content);
    if (cls) td.className = cls;
    row.appendChild(td);
    return td;
  }

  function render(snapshot) {
    // Approved while this page showed where the alert would go: load the real deliveries.
    if (document.querySelector("circle.st-planned") && Object.keys(snapshot.states).length) {
      location.reload();
      return;
    }
    const body = $("counts").querySelector("tbody");
    body.innerHTML = "";
    for (const [channel, counts] of Object.entries(snapshot.summary)) {
      const row = document.createElement("tr");
      row.dataset.channel = channel;
      cell(row, text.channel(channel));
      for (const s of states) cell(row, String(counts[s] || 0), "n state-" + s).dataset.state = s;
      body.appendChild(row);
      const p = (snapshot.progress || {})[channel];
      if (p) body.appendChild(progressRow(channel, p));
    }
    $("complete").hidden = !snapshot.complete;
    document.body.dataset.complete = snapshot.complete ? "1" : "0";
    const badge = $("alert-state").querySelector(".badge");
    badge.replaceChildren(text.label(snapshot.alert_state));
    badge.className = "badge state-" + snapshot.alert_state.replaceAll(" ", "-");
    badge.dataset.state = snapshot.alert_state;
    document.body.dataset.alertState = snapshot.alert_state;
    for (const [id, state] of Object.entries(snapshot.states)) {
      const dot = document.getElementById("d-" + id);
      if (dot) dot.setAttribute("class", "st-" + state);
    }
    const followers = $("followers");
    followers.innerHTML = "";
    for (const f of snapshot.followers) {
      const li = document.createElement("li");
      const a = document.createElement("a");
      a.href = `${data.prefix}/alerts/${f.id}`;
      a.dataset.msgType = f.msg_type;
      a.appendChild(text.label(f.msg_type));
      li.append(a, ` ${f.headline || ""} (`, text.label(f.state), ")");
      followers.appendChild(li);
    }
  }

  // A long send's figures since the channel started (SMS gateway: segments and rates).
  function progressRow(channel, p) {
    const row = document.createElement("tr");
    row.className = "progress";
    row.dataset.progress = channel;
    const up = Math.round(p.submitted_per_second || 0);
    const back = Math.round(p.receipted_per_second || 0);
    const td = cell(row, text.words(
      `已提交 ${p.submitted} 段（${up}/秒），已回执 ${p.receipted} 段（${back}/秒），${p.awaiting_receipts} 条待回执`,
      `${p.submitted} segments submitted (${up}/s), ${p.receipted} receipted (${back}/s), ${p.awaiting_receipts} awaiting receipts`,
    ));
    td.colSpan = states.length + 1;
    return row;
  }

  async function loadTargets() {
    const response = await fetch(`${base}/deliveries?filter=${filter}`, { headers: { Accept: "application/json" } });
    const body = await response.json();
    const tbody = $("targets").querySelector("tbody");
    tbody.innerHTML = "";
    for (const d of body.deliveries.slice(0, 500)) {
      const row = document.createElement("tr");
      row.dataset.delivery = d.id;
      cell(row, d.name);
      cell(row, text.channel(d.channel));
      cell(row, text.label(d.state), "state-" + d.state).dataset.state = d.state;
      cell(row, String(d.attempts));
      cell(row, d.last_error_zh ? text.words(d.last_error_zh, d.last_error) : d.last_error || "");
      cell(row, d.warning || "", d.warning ? "delivery-warning" : undefined);
      row.addEventListener("click", () => loadEvents(d));
      tbody.appendChild(row);
      if (d.report_text) {
        const report = document.createElement("tr");
        report.className = "node-report";
        report.dataset.report = d.id;
        const done = d.report.complete ? text.words("已完成", "complete") : text.words("进行中", "in progress");
        const td = cell(report, "");
        td.colSpan = 6;
        td.append(text.words("县级节点回报", "County node report"), " (", done, "): ", d.report_text);
        tbody.appendChild(report);
      }
    }
  }

  async function loadEvents(d) {
    const response = await fetch(`${data.prefix}/deliveries/${d.id}/events`, { headers: { Accept: "application/json" } });
    const body = await response.json();
    $("events").hidden = false;
    $("events-title").replaceChildren(`${d.name} (`, text.channel(d.channel), ")");
    const list = $("events").querySelector("ol");
    list.innerHTML = "";
    for (const e of body.events) {
      const li = document.createElement("li");
      li.append(`${e.at_text} `, e.from_state ? text.label(e.from_state) : "—", " → ", text.label(e.to_state), ` ${e.detail || ""}`);
      list.appendChild(li);
    }
  }

  for (const button of document.querySelectorAll(".filters button")) {
    button.addEventListener("click", () => {
      filter = button.dataset.filter;
      for (const b of document.querySelectorAll(".filters button")) b.classList.toggle("on", b === button);
      loadTargets();
    });
  }

  render(data.snapshot);
  loadTargets();
  let pending = null;
  const source = new EventSource(`${base}/stream`);
  source.addEventListener("state", (event) => {
    render(JSON.parse(event.data));
    if (!pending) pending = setTimeout(() => { pending = null; loadTargets(); }, 1000);
  });
  window.addEventListener("beforeunload", () => source.close());
})();
