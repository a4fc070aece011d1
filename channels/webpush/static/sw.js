// Service worker of the web push channel: shows each warning, acknowledges it to the server
// (that ack confirms the delivery) and opens the alert's page when the notification is clicked.
"use strict";

const ACK_URL = new URL("ack", self.registration.scope).href;

self.addEventListener("install", () => self.skipWaiting());
self.addEventListener("activate", (event) => event.waitUntil(self.clients.claim()));

function notificationOf(message) {
  const texts = Array.isArray(message.texts) && message.texts.length ? message.texts : [
    { lang: "zh-CN", title: "预警信息 Warning", area: "", body: "" },
  ];
  const [first, ...others] = texts;
  const body = [first.area, first.body, ...others.map((text) => text.title)]
    .filter(Boolean).join("\n");
  return {
    title: first.title,
    options: {
      body,
      lang: first.lang,
      tag: message.topic || message.alert,
      renotify: true,
      requireInteraction: message.level === "red" || message.level === "orange",
      timestamp: Date.now(),
      data: { url: message.url, alert: message.alert, delivery: message.delivery },
    },
  };
}

async function acknowledge(message) {
  const body = JSON.stringify({
    alert: message.alert, delivery: message.delivery, sub: message.sub, ack: message.ack,
  });
  await fetch(ACK_URL, { method: "POST", headers: { "Content-Type": "application/json" }, body });
}

self.addEventListener("push", (event) => {
  let message = {};
  try {
    message = event.data ? event.data.json() : {};
  } catch (error) {
    message = {};
  }
  const { title, options } = notificationOf(message);
  event.waitUntil((async () => {
    await self.registration.showNotification(title, options);
    if (message.ack) await acknowledge(message);
  })());
});

// The browser replaced the subscription: move it on the server, keeping its area.
self.addEventListener("pushsubscriptionchange", (event) => {
  const old = event.oldSubscription;
  if (!old) return;
  event.waitUntil((async () => {
    const renewed = event.newSubscription
      || await self.registration.pushManager.subscribe(old.options);
    await fetch(new URL("renew", self.registration.scope).href, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ old_endpoint: old.endpoint, subscription: renewed.toJSON() }),
    });
  })());
});

self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  const url = event.notification.data && event.notification.data.url;
  if (url) event.waitUntil(self.clients.openWindow(url));
});
