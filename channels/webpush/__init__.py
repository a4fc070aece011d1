"""Web push: residents subscribe in their browser and receive warnings for their area.

- :mod:`~channels.webpush.channel`: the channel plugin (entry point ``webpush``);
- :mod:`~channels.webpush.webapp`: the subscription page, service worker and ack endpoint;
- :mod:`~channels.webpush.enrolment`: subscriptions as registry targets;
- :mod:`~channels.webpush.payload`: the message and its ``TTL``/``Urgency``/``Topic``;
- :mod:`~channels.webpush.client`: posting to push services and mapping their answers;
- :mod:`~channels.webpush.ece`: RFC 8291 payload encryption;
- :mod:`~channels.webpush.vapid`: RFC 8292 VAPID keys and tokens.
"""

from channels.webpush.channel import WebPushChannel, WebPushChannelConfig

__all__ = ["WebPushChannel", "WebPushChannelConfig"]
