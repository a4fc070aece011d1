"""CMPP result codes (CMPP_SUBMIT_RESP Result, CMPP_CONNECT_RESP Status) and their retry sense.

SUBMIT_RESP (§7.4.3.2): 0 正确, 1 消息结构错, 2 命令字错, 3 消息序号重复, 4 消息长度错,
5 资费代码错, 6 超过最大信息长, 7 业务代码错, 8 流量控制错, 9 本网关不负责服务此计费号码
(3.0), 10 Src_Id 错, 11 Msg_src 错, 12 Fee_terminal_Id 错, 13 Dest_terminal_Id 错.
Flow control (8) asks for the same segment later; a duplicate sequence (3) is a passing
fault of this connection; codes above 13 are gateway-specific and treated as passing. The
rest describe the segment or the account and will not change with a retry.

CONNECT_RESP (§7.4.1.2): 0 正确, 1 消息结构错, 2 非法源地址, 3 认证错, 4 版本太高, 5+ 其他错误.
"""

from __future__ import annotations

from drivers.smsgw.errors import (
    GatewayBindError,
    GatewayRejectedError,
    GatewayStatusError,
    GatewayThrottledError,
    GatewayTransientError,
)

RESULT_OK = 0
RESULT_FLOW_CONTROL = 8
SUBMIT_RESULTS = {
    0: "正确 (accepted)",
    1: "消息结构错 (message structure)",
    2: "命令字错 (command id)",
    3: "消息序号重复 (duplicate sequence)",
    4: "消息长度错 (message length)",
    5: "资费代码错 (fee code)",
    6: "超过最大信息长 (message too long)",
    7: "业务代码错 (service id)",
    8: "流量控制错 (flow control)",
    9: "本网关不负责服务此计费号码 (fee number not served here)",
    10: "Src_Id 错 (source id)",
    11: "Msg_src 错 (SP id)",
    12: "Fee_terminal_Id 错 (fee terminal)",
    13: "Dest_terminal_Id 错 (destination)",
}
CONNECT_STATUSES = {
    0: "正确 (accepted)",
    1: "消息结构错 (message structure)",
    2: "非法源地址 (invalid source address)",
    3: "认证错 (authentication failed)",
    4: "版本太高 (version too high)",
}
PERMANENT_RESULTS = frozenset({1, 2, 4, 5, 6, 7, 9, 10, 11, 12, 13})


def submit_error(result: int) -> GatewayStatusError:
    """The exception for a CMPP_SUBMIT_RESP Result other than 0."""
    name = SUBMIT_RESULTS.get(result, "gateway-specific")
    if result == RESULT_FLOW_CONTROL:
        return GatewayThrottledError("CMPP", result, name, "CMPP_SUBMIT")
    if result in PERMANENT_RESULTS:
        return GatewayRejectedError("CMPP", result, name, "CMPP_SUBMIT")
    return GatewayTransientError("CMPP", result, name, "CMPP_SUBMIT")


def connect_error(status: int) -> GatewayStatusError:
    """The exception for a CMPP_CONNECT_RESP Status other than 0."""
    name = CONNECT_STATUSES.get(status, "其他错误 (other)")
    if status in CONNECT_STATUSES:
        return GatewayBindError("CMPP", status, name, "CMPP_CONNECT")
    return GatewayTransientError("CMPP", status, name, "CMPP_CONNECT")
