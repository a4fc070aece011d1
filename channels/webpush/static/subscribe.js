// Subscription page: registers the service worker, subscribes with the server's VAPID key
// and posts the subscription with the chosen county or township and languages.
"use strict";

const config = JSON.parse(document.getElementById("config").textContent);
const countySelect = document.getElementById("county");
const townshipSelect = document.getElementById("township");
const unsubscribeButton = document.getElementById("unsubscribe");
const statusLine = document.getElementById("status");
const STORAGE_KEY = "broadcaster.webpush";

// A status in Chinese with its English beside it (lang="en"), and what the browser or server
// said, as it said it (data-raw: evidence of the failure, not translated).
function show(state, zh = "", en = "", detail = "") {
  document.body.dataset.state = state;
  const parts = [zh];
  if (en) {
    const english = document.createElement("span");
    english.lang = "en";
    english.textContent = en;
    parts.push(" ", english);
  }
  if (detail) {
    const raw = document.createElement("span");
    raw.className = "raw";
    raw.dataset.raw = "";
    raw.textContent = detail;
    parts.push(" ", raw);
  }
  statusLine.replaceChildren(...parts);
}

function option(value, label) {
  const element = document.createElement("option");
  element.value = value;
  element.textContent = label;
  return element;
}

function fillTownships() {
  townshipSelect.replaceChildren(option("", "全旗县"));
  const county = config.areas.find((area) => area.code === countySelect.value);
  for (const township of county ? county.townships : []) {
    townshipSelect.append(option(township.code, township.name));
  }
}

function keyBytes(base64url) {
  const base64 = (base64url + "=".repeat((4 - (base64url.length % 4)) % 4))
    .replace(/-/g, "+").replace(/_/g, "/");
  return Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
}

function sameKey(subscription) {
  const key = subscription.options && subscription.options.applicationServerKey;
  if (!key) return true;
  const given = new Uint8Array(key);
  const wanted = keyBytes(config.publicKey);
  return given.length === wanted.length && given.every((b, i) => b === wanted[i]);
}

async function pushSubscription(registration) {
  let subscription = await registration.pushManager.getSubscription();
  if (subscription && !sameKey(subscription)) {
    await subscription.unsubscribe();
    subscription = null;
  }
  return subscription || registration.pushManager.subscribe({
    userVisibleOnly: true,
    applicationServerKey: keyBytes(config.publicKey),
  });
}

async function post(path, body) {
  const response = await fetch(path, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  const answer = await response.json();
  if (!response.ok) throw new Error(answer.error || `HTTP ${response.status}`);
  return answer;
}

async function subscribe(event) {
  event.preventDefault();
  const division = townshipSelect.value || countySelect.value;
  if (!division) {
    show("error", "请选择旗县。", "Please choose a county.");
    return;
  }
  const languages = [...document.querySelectorAll("input[name=language]:checked")]
    .map((input) => input.value);
  try {
    show("working", "正在订阅…", "Subscribing…");
    if (await Notification.requestPermission() !== "granted") {
      show("error", "通知被禁止，请在浏览器设置中允许。", "Notifications are blocked for this site.");
      return;
    }
    const registration = await navigator.serviceWorker.ready;
    const subscription = await pushSubscription(registration);
    const answer = await post("subscribe", { subscription: subscription.toJSON(), division, languages });
    localStorage.setItem(STORAGE_KEY, JSON.stringify({ county: countySelect.value, division, languages }));
    unsubscribeButton.hidden = false;
    show("subscribed", `已订阅：${answer.area}。`, `Subscribed: ${answer.area}.`);
  } catch (error) {
    show("error", "订阅失败：", "Subscription failed:", error.message);
  }
}

async function unsubscribe() {
  try {
    const registration = await navigator.serviceWorker.ready;
    const subscription = await registration.pushManager.getSubscription();
    if (subscription) {
      await post("unsubscribe", { endpoint: subscription.endpoint });
      await subscription.unsubscribe();
    }
    localStorage.removeItem(STORAGE_KEY);
    unsubscribeButton.hidden = true;
    show("unsubscribed", "已取消订阅。", "Unsubscribed.");
  } catch (error) {
    show("error", "取消失败：", "Could not unsubscribe:", error.message);
  }
}

function restoreChoice() {
  const saved = JSON.parse(localStorage.getItem(STORAGE_KEY) || "null");
  if (!saved) return false;
  countySelect.value = saved.county;
  fillTownships();
  townshipSelect.value = saved.division === saved.county ? "" : saved.division;
  for (const input of document.querySelectorAll("input[name=language]")) {
    input.checked = saved.languages.includes(input.value);
  }
  return true;
}

async function start() {
  for (const area of config.areas) countySelect.append(option(area.code, area.name));
  countySelect.addEventListener("change", fillTownships);
  document.getElementById("subscribe-form").addEventListener("submit", subscribe);
  unsubscribeButton.addEventListener("click", unsubscribe);
  if (!("serviceWorker" in navigator) || !("PushManager" in window)) {
    show("error", "此浏览器不支持推送通知。", "This browser cannot receive push notifications.");
    return;
  }
  try {
    await navigator.serviceWorker.register("sw.js");
    const registration = await navigator.serviceWorker.ready;
    const existing = await registration.pushManager.getSubscription();
    if (existing && restoreChoice()) {
      unsubscribeButton.hidden = false;
      show(
        "subscribed",
        "本设备已订阅，可更改地区后再次订阅。",
        "This device is subscribed; choose another area to change it.",
      );
    } else {
      show("ready");
    }
  } catch (error) {
    show("error", "无法注册推送服务：", "Cannot register the service worker:", error.message);
  }
}

start();
