"""The typed configuration of a ``gateway-sms`` channel instance and the driver's from it.

One ``[channels.<name>]`` table with ``type = "gateway-sms"``: the operator's gateway
(``protocol`` SMPP 3.4 or CMPP 2.0/3.0, ``host``, ``port``, the account), how hard to drive it
(``binds``, ``window``, ``submit_rate_per_second`` per bind, the throttling pause), and the SMS
text settings every SMS channel shares (``channels.smstext.templates``). Validated once at
load: an invalid value names its key and nothing is opened.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from broadcaster.config import SecretValue
from channels.smstext import SmsTextConfig
from drivers.cmpp import CmppClientConfig
from drivers.smpp import SmppClientConfig
from drivers.smsgw.errors import GatewayConfigError


class GatewaySmsChannelConfig(SmsTextConfig):
    """``[channels.<name>]`` of ``type = "gateway-sms"``."""

    protocol: Literal["smpp", "cmpp"]
    host: str = Field(min_length=1, description="the operator's gateway")
    port: int = Field(ge=1, le=65535, description="SMPP usually 2775, CMPP 7890")
    system_id: str = Field("", max_length=15, description="SMPP: the ESME account")
    password: SecretValue | None = Field(None, description="SMPP: the account's password")
    system_type: str = Field("", description="SMPP: if the operator asks for one")
    source_addr: str = Field("", description="SMPP: the sender shown to recipients")
    source_ton: int = Field(0, ge=0, le=255)
    source_npi: int = Field(0, ge=0, le=255)
    service_type: str = Field("", description="SMPP: passed through as the operator requires")
    sp_id: str = Field("", max_length=6, description="CMPP: 企业代码")
    shared_secret: SecretValue | None = Field(None, description="CMPP: the authenticator secret")
    version: Literal["2.0", "3.0"] = Field("3.0", description="CMPP: the gateway's version")
    service_id: str = Field("", max_length=10, description="CMPP: 业务代码")
    src_id: str = Field("", max_length=21, description="CMPP: the source number (106…)")
    coding: Literal["ucs2", "gbk"] = Field("ucs2", description="CMPP: Msg_Fmt 8 or 15")
    binds: int = Field(1, ge=1, le=64, description="connections kept to the gateway")
    window: int = Field(16, ge=1, le=1024, description="submits outstanding per bind")
    submit_rate_per_second: float = Field(
        0.0, ge=0, description="segments per second per bind (0: no limit); under the contract"
    )
    request_timeout_seconds: float = Field(10.0, gt=0)
    connect_timeout_seconds: float = Field(10.0, gt=0)
    keepalive_interval_seconds: float = Field(30.0, gt=0)
    reconnect_min_seconds: float = Field(1.0, gt=0)
    reconnect_max_seconds: float = Field(60.0, gt=0)
    throttle_pause_seconds: float = Field(
        0.5, gt=0, description="a throttled bind rests this long, doubling while throttled"
    )
    throttle_pause_max_seconds: float = Field(10.0, gt=0)
    throttle_retries: int = Field(
        20, ge=0, description="throttled submits of one segment retried in place, then the core's"
    )
    batch_submit_seconds: float = Field(
        10.0,
        gt=0,
        description="how long a batch's segments may wait for room in the binds' windows;"
        " deliveries not submitted by then are retried",
    )
    fallback: str | None = Field(
        None, min_length=1, description="the sms channel that takes numbers the gateway cannot"
    )
    fallback_after_seconds: float = Field(
        120.0, gt=0, description="with no bind up this long, new deliveries go to fallback"
    )

    @model_validator(mode="after")
    def _check_account(self) -> GatewaySmsChannelConfig:
        if self.protocol == "smpp" and (not self.system_id or self.password is None):
            raise ValueError("smpp needs system_id and password")
        if self.protocol == "cmpp" and (not self.sp_id or self.shared_secret is None):
            raise ValueError("cmpp needs sp_id and shared_secret")
        try:
            self.client_config().client_settings()
        except GatewayConfigError as exc:
            raise ValueError(str(exc)) from exc
        return self

    def client_config(self) -> SmppClientConfig | CmppClientConfig:
        """The driver's configuration of this gateway."""
        tuning: dict[str, Any] = {
            "binds": self.binds,
            "window": self.window,
            "rate_per_second": self.submit_rate_per_second,
            "request_timeout": self.request_timeout_seconds,
            "throttle_pause": self.throttle_pause_seconds,
            "throttle_pause_max": self.throttle_pause_max_seconds,
            "keepalive_interval": self.keepalive_interval_seconds,
            "connect_timeout": self.connect_timeout_seconds,
            "reconnect_min": self.reconnect_min_seconds,
            "reconnect_max": max(self.reconnect_min_seconds, self.reconnect_max_seconds),
            "max_segments": self.segment_limit,
        }
        if self.protocol == "smpp":
            assert self.password is not None
            return SmppClientConfig(
                host=self.host,
                port=self.port,
                system_id=self.system_id,
                password=self.password.reveal(),
                system_type=self.system_type,
                source_addr=self.source_addr,
                source_ton=self.source_ton,
                source_npi=self.source_npi,
                service_type=self.service_type,
                **tuning,
            )
        assert self.shared_secret is not None
        return CmppClientConfig(
            host=self.host,
            port=self.port,
            sp_id=self.sp_id,
            shared_secret=self.shared_secret.reveal(),
            service_id=self.service_id,
            src_id=self.src_id,
            version=self.version,
            coding=self.coding,
            **tuning,
        )
