"""EBD XML files: byte-exact vectors for every element and code table the platforms agree on,
tolerant reading (namespaces, order, the 2016 heartbeat), and clear errors naming the element."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.ebd import (
    Auxiliary,
    AuxiliaryType,
    BrdStateCode,
    ConnectionCheck,
    Coverage,
    DeviceEntry,
    DeviceInfo,
    Dispatch,
    Ebd,
    EbdFormatError,
    EbdResponse,
    EbdType,
    EbmStateRequest,
    EbmStateResponse,
    MsgType,
    OmdRequest,
    PlatformEntry,
    PlatformInfo,
    ResourceState,
    ResourceStateCode,
    ResourceStateEntry,
    ResultCode,
    Severity,
    area_code,
    make_ebdid,
    make_ebmid,
    read_ebd,
    write_ebd,
)
from drivers.ebd.codes import check_ebdid, check_event_type, ebdid_source
from drivers.ebd.testing import (
    COUNTY_PLATFORM_EBRID,
    WARNING_SOURCE_EBRID,
    fixed_time,
    sample_ebm,
)

T = fixed_time()
EBDID = "10" + WARNING_SOURCE_EBRID + "2024060100000001"
EBMID = WARNING_SOURCE_EBRID + "202406010001"

EBM_VECTOR = f"""<?xml version='1.0' encoding='UTF-8'?>
<EBD>
  <EBDVersion>1.0</EBDVersion>
  <EBDID>{EBDID}</EBDID>
  <EBDType>EBM</EBDType>
  <SRC>
    <EBRID>{WARNING_SOURCE_EBRID}</EBRID>
    <URL>http://127.0.0.1:8080/ebd</URL>
  </SRC>
  <DEST>
    <EBRID>{COUNTY_PLATFORM_EBRID}</EBRID>
  </DEST>
  <EBDTime>2024-06-01 10:00:00</EBDTime>
  <EBM>
    <EBMVersion>1</EBMVersion>
    <EBMID>{EBMID}</EBMID>
    <RelatedInfo>
      <EBMID>{WARNING_SOURCE_EBRID}202405310007</EBMID>
    </RelatedInfo>
    <MsgBasicInfo>
      <MsgType>2</MsgType>
      <SenderName>预警中心</SenderName>
      <SenderCode>{WARNING_SOURCE_EBRID}</SenderCode>
      <SendTime>2024-06-01 10:00:00</SendTime>
      <EventType>11B03</EventType>
      <Severity>2</Severity>
      <StartTime>2024-06-01 10:01:00</StartTime>
      <EndTime>2024-06-01 12:00:00</EndTime>
    </MsgBasicInfo>
    <MsgContent>
      <LanguageCode>zho</LanguageCode>
      <MsgTitle>暴雨橙色预警</MsgTitle>
      <MsgDesc>注意防范</MsgDesc>
      <AreaCode>150902000000,150921100201</AreaCode>
      <ProgramNum>1</ProgramNum>
      <Auxiliary>
        <AuxiliaryType>2</AuxiliaryType>
        <AuxiliaryDesc>EBDR_warning.mp3</AuxiliaryDesc>
        <Size>1234</Size>
      </Auxiliary>
    </MsgContent>
  </EBM>
</EBD>
""".encode()


def vector_ebd() -> Ebd:
    ebm = sample_ebm(
        ebmid=EBMID,
        msg_type=MsgType.CANCEL,
        sender_name="预警中心",
        send_time=T,
        severity=Severity.ORANGE,
        start_time=datetime(2024, 6, 1, 10, 1),
        end_time=datetime(2024, 6, 1, 12, 0),
        title="暴雨橙色预警",
        description="注意防范",
        area_codes=("150902000000", "150921100201"),
        related_ebmid=WARNING_SOURCE_EBRID + "202405310007",
        program_num="1",
        auxiliaries=(Auxiliary(AuxiliaryType.MP3, "EBDR_warning.mp3", 1234),),
    )
    return Ebd(
        ebdid=EBDID,
        src_ebrid=WARNING_SOURCE_EBRID,
        time=T,
        body=ebm,
        dest_ebrid=COUNTY_PLATFORM_EBRID,
        src_url="http://127.0.0.1:8080/ebd",
    )


def test_ebm_is_written_byte_exact_and_read_back() -> None:
    ebd = vector_ebd()
    assert write_ebd(ebd) == EBM_VECTOR
    assert read_ebd(EBM_VECTOR) == ebd


DISPATCH_VECTOR = f"""    </MsgContent>
    <Dispatch>
      <LanguageCode>zho</LanguageCode>
      <EBRPS>
        <EBRID>{COUNTY_PLATFORM_EBRID}</EBRID>
      </EBRPS>
      <EBRBS>
        <BrdSysType>0301</BrdSysType>
        <BrdSysInfo>(050232032200000001,3,80)</BrdSysInfo>
      </EBRBS>
    </Dispatch>
    <Dispatch>
      <EBRAS>
        <EBRID>{WARNING_SOURCE_EBRID}</EBRID>
      </EBRAS>
    </Dispatch>
  </EBM>""".encode()


def test_dispatch_elements_follow_the_message_content() -> None:
    dispatches = (
        Dispatch(
            "zho",
            ebrps=COUNTY_PLATFORM_EBRID,
            brd_sys_type="0301",
            brd_sys_info="(050232032200000001,3,80)",
        ),
        Dispatch(ebras=WARNING_SOURCE_EBRID),
    )
    ebd = vector_ebd()
    ebd = replace(ebd, body=replace(ebd.body, dispatches=dispatches))  # type: ignore[type-var]
    expected = EBM_VECTOR.replace(b"    </MsgContent>\n  </EBM>", DISPATCH_VECTOR)
    assert expected != EBM_VECTOR
    assert write_ebd(ebd) == expected
    assert read_ebd(expected) == ebd


def _envelope(body_xml: str, kind: str, related: str = "") -> bytes:
    rel = f"\n  <RelatedEBD>\n    <EBDID>{related}</EBDID>\n  </RelatedEBD>" if related else ""
    return f"""<?xml version='1.0' encoding='UTF-8'?>
<EBD>
  <EBDVersion>1.0</EBDVersion>
  <EBDID>{EBDID}</EBDID>
  <EBDType>{kind}</EBDType>
  <SRC>
    <EBRID>{WARNING_SOURCE_EBRID}</EBRID>
  </SRC>
  <DEST/>
  <EBDTime>2024-06-01 10:00:00</EBDTime>{rel}
  <{kind}>
{body_xml}
  </{kind}>
</EBD>
""".encode()


REQUEST = "10" + COUNTY_PLATFORM_EBRID + "2024060100000009"
VECTORS = [
    (
        EbdResponse(ResultCode.SIGNATURE_FAILED, "签名验证失败"),
        "    <ResultCode>4</ResultCode>\n    <ResultDesc>签名验证失败</ResultDesc>",
        REQUEST,
    ),
    (ConnectionCheck(T), "    <RptTime>2024-06-01 10:00:00</RptTime>", ""),
    (EbmStateRequest(EBMID), f"    <EBM>\n      <EBMID>{EBMID}</EBMID>\n    </EBM>", ""),
    (
        EbmStateResponse(
            T, EBMID, BrdStateCode.SUCCEEDED, "播发成功", Coverage("0.9", ("150902000000",), "5")
        ),
        f"""    <RptTime>2024-06-01 10:00:00</RptTime>
    <EBM>
      <EBMID>{EBMID}</EBMID>
    </EBM>
    <BrdStateCode>3</BrdStateCode>
    <BrdStateDesc>播发成功</BrdStateDesc>
    <Coverage>
      <CoverageRate>0.9</CoverageRate>
      <AreaCode>150902000000</AreaCode>
      <ResBrdStat>5</ResBrdStat>
    </Coverage>""",
        REQUEST,
    ),
    (
        OmdRequest("EBRPSState", T, T, "Incremental"),
        """    <OMDType>EBRPSState</OMDType>
    <Params>
      <RptStartTime>2024-06-01 10:00:00</RptStartTime>
      <RptEndTime>2024-06-01 10:00:00</RptEndTime>
      <RptType>Incremental</RptType>
    </Params>""",
        "",
    ),
    (
        PlatformInfo(
            (
                PlatformEntry(
                    T,
                    WARNING_SOURCE_EBRID,
                    "预警中心",
                    parent_ebrid=COUNTY_PLATFORM_EBRID,
                    longitude="113.1",
                    latitude="41.0",
                    url="http://127.0.0.1/ebd",
                ),
            )
        ),
        f"""    <Params>
      <RptStartTime></RptStartTime>
      <RptEndTime></RptEndTime>
      <RptType>Full</RptType>
    </Params>
    <EBRPS>
      <RptTime>2024-06-01 10:00:00</RptTime>
      <RptType>Sync</RptType>
      <RelatedEBRPS>
        <EBRID>{COUNTY_PLATFORM_EBRID}</EBRID>
      </RelatedEBRPS>
      <EBRID>{WARNING_SOURCE_EBRID}</EBRID>
      <EBRName>预警中心</EBRName>
      <Address></Address>
      <Contact></Contact>
      <PhoneNumber></PhoneNumber>
      <Longitude>113.1</Longitude>
      <Latitude>41.0</Latitude>
      <URL>http://127.0.0.1/ebd</URL>
    </EBRPS>""",
        "",
    ),
    (
        PlatformInfo(
            (PlatformEntry(T, COUNTY_PLATFORM_EBRID, "卓资县发射台", phone="0474-1"),),
            kind=EbdType.EBRST_INFO,
        ),
        f"""    <Params>
      <RptStartTime></RptStartTime>
      <RptEndTime></RptEndTime>
      <RptType>Full</RptType>
    </Params>
    <EBRST>
      <RptTime>2024-06-01 10:00:00</RptTime>
      <RptType>Sync</RptType>
      <EBRID>{COUNTY_PLATFORM_EBRID}</EBRID>
      <EBRName>卓资县发射台</EBRName>
      <Address></Address>
      <Contact></Contact>
      <PhoneNumber>0474-1</PhoneNumber>
      <Longitude></Longitude>
      <Latitude></Latitude>
    </EBRST>""",
        "",
    ),
    (
        DeviceInfo(
            EbdType.EBRAS_INFO,
            (
                DeviceEntry(
                    T,
                    WARNING_SOURCE_EBRID,
                    "调频适配器",
                    parent_ebrps=COUNTY_PLATFORM_EBRID,
                    parent_ebrst=COUNTY_PLATFORM_EBRID,
                    longitude="113.1",
                    url="http://127.0.0.1/as",
                ),
            ),
        ),
        f"""    <EBRAS>
      <RptTime>2024-06-01 10:00:00</RptTime>
      <RptType>Sync</RptType>
      <RelatedEBRPS>
        <EBRID>{COUNTY_PLATFORM_EBRID}</EBRID>
      </RelatedEBRPS>
      <RelatedEBRST>
        <EBRID>{COUNTY_PLATFORM_EBRID}</EBRID>
      </RelatedEBRST>
      <EBRID>{WARNING_SOURCE_EBRID}</EBRID>
      <EBRName>调频适配器</EBRName>
      <Longitude>113.1</Longitude>
      <Latitude></Latitude>
      <URL>http://127.0.0.1/as</URL>
    </EBRAS>""",
        "",
    ),
    (
        DeviceInfo(
            EbdType.EBRDT_INFO,
            (DeviceEntry(T, WARNING_SOURCE_EBRID, "村终端", "Delete", COUNTY_PLATFORM_EBRID),),
        ),
        f"""    <EBRDT>
      <RptTime>2024-06-01 10:00:00</RptTime>
      <RptType>Delete</RptType>
      <RelatedEBRPS>
        <EBRID>{COUNTY_PLATFORM_EBRID}</EBRID>
      </RelatedEBRPS>
      <EBRID>{WARNING_SOURCE_EBRID}</EBRID>
      <EBRName>村终端</EBRName>
      <Longitude></Longitude>
      <Latitude></Latitude>
    </EBRDT>""",
        "",
    ),
    (
        ResourceState(
            EbdType.EBRPS_STATE,
            (ResourceStateEntry(T, WARNING_SOURCE_EBRID, ResourceStateCode.FAULT, "故障"),),
        ),
        f"""    <EBRPS>
      <RptTime>2024-06-01 10:00:00</RptTime>
      <EBRID>{WARNING_SOURCE_EBRID}</EBRID>
      <StateCode>3</StateCode>
      <StateDesc>故障</StateDesc>
    </EBRPS>""",
        "",
    ),
]


@pytest.mark.parametrize(("body", "xml", "related"), VECTORS, ids=lambda v: type(v).__name__)
def test_every_body_is_written_byte_exact_and_read_back(
    body: object, xml: str, related: str
) -> None:
    ebd = Ebd(EBDID, WARNING_SOURCE_EBRID, T, body, related_ebdid=related or None)  # type: ignore[arg-type]
    expected = _envelope(xml, ebd.ebd_type.value, related)
    written = write_ebd(ebd)
    assert written == expected
    assert read_ebd(written) == ebd


def test_code_tables_have_the_agreed_values() -> None:
    assert [t.value for t in EbdType] == [
        "EBM", "EBMStateRequest", "EBMStateResponse", "EBMBrdLog", "OMDRequest",
        "EBRPSInfo", "EBRSTInfo", "EBRASInfo", "EBRBSInfo", "EBRDTInfo",
        "EBRPSState", "EBRASState", "EBRBSState", "EBRDTState", "ConnectionCheck", "EBDResponse",
    ]  # fmt: skip
    assert {c.name: int(c) for c in ResultCode} == {
        "RECEIVED": 0, "OK": 1, "PARSE_FAILED": 2, "CONTENT_MISSING": 3,
        "SIGNATURE_FAILED": 4, "OTHER_ERROR": 5,
    }  # fmt: skip
    assert [int(m) for m in MsgType] == [1, 2, 3, 4, 5]
    assert {s.name: int(s) for s in Severity} == {
        "UNKNOWN": 0, "RED": 1, "ORANGE": 2, "YELLOW": 3, "BLUE": 4, "TEST": 15,
    }  # fmt: skip
    assert [int(b) for b in BrdStateCode] == [0, 1, 2, 3, 4, 5]
    assert BrdStateCode.SUCCEEDED == 3 and BrdStateCode.CANCELLED == 5
    assert [int(r) for r in ResourceStateCode] == [1, 2, 3, 4, 5]
    assert (int(AuxiliaryType.MP3), int(AuxiliaryType.WAV)) == (2, 3)


def test_ids_follow_the_digit_rules() -> None:
    assert make_ebdid(WARNING_SOURCE_EBRID, 2024060100000001) == EBDID
    assert len(EBDID) == 41 and ebdid_source(EBDID) == WARNING_SOURCE_EBRID
    heartbeat = make_ebdid(WARNING_SOURCE_EBRID, 0, heartbeat=True)
    assert heartbeat == "01" + WARNING_SOURCE_EBRID + "0" * 16
    assert make_ebmid(WARNING_SOURCE_EBRID, "20240601", 1) == EBMID and len(EBMID) == 35
    assert check_ebdid("10434152300000003140103010024580203933926")  # a deployed id
    assert area_code("150921") == "150921000000"
    for code in ("11B03", "11000", "10000", "19000", "20000", "00000", "13F01"):
        assert check_event_type(code) == code
    for bad in ("0000", "11b03", "15A01", "11B3", "1234567"):
        with pytest.raises(EbdFormatError, match="EventType"):
            check_event_type(bad)
    with pytest.raises(EbdFormatError, match="EBDID"):
        check_ebdid("10" + WARNING_SOURCE_EBRID + "123")
    with pytest.raises(EbdFormatError, match="EBMID"):
        make_ebmid(WARNING_SOURCE_EBRID, "20240601", 10000)


LEGACY_HEARTBEAT = b"""<?xml version="1.0" encoding="utf-8"?>
<EBD xmlns:xs="http://www.w3.org/2001/XMLSchema">
  <EBDVersion>1.0</EBDVersion>
  <EBDID>010103331124000000010000000000000000</EBDID>
  <EBDType>ConnectionCheck</EBDType>
  <SRC><EBEID>010333112400000001</EBEID></SRC>
  <DEST><EBRID>010234152300000001</EBRID></DEST>
  <EBDTime>2018-06-19 13:16:53</EBDTime>
  <ConnectionCheck><RptTime>2018-06-19 13:16:53</RptTime></ConnectionCheck>
</EBD>"""


def test_the_legacy_36_digit_heartbeat_is_read() -> None:
    ebd = read_ebd(LEGACY_HEARTBEAT)
    assert ebd.ebd_type is EbdType.CONNECTION_CHECK
    assert ebd.ebdid == "010103331124000000010000000000000000"
    assert ebd.src_ebrid == "010333112400000001"
    assert ebd.body == ConnectionCheck(datetime(2018, 6, 19, 13, 16, 53))


def test_namespaces_and_order_do_not_matter() -> None:
    shuffled = EBM_VECTOR.replace(b"<EBD>", b'<p:EBD xmlns:p="urn:x">').replace(
        b"</EBD>", b"</p:EBD>"
    )
    # MsgContent before MsgBasicInfo, and EBDTime first.
    text = shuffled.decode()
    basic = text[text.index("<MsgBasicInfo>") : text.index("</MsgBasicInfo>") + 15]
    text = text.replace(basic, "")
    text = text.replace("</MsgContent>", "</MsgContent>" + basic)
    assert read_ebd(text.encode()) == vector_ebd()


@pytest.mark.parametrize(
    ("change", "element", "code"),
    [
        (lambda x: x.replace(b"<Severity>2</Severity>", b"<Severity>9</Severity>"), "Severity", 2),
        (
            lambda x: x.replace(
                b"<MsgTitle>\xe6\x9a\xb4\xe9\x9b\xa8\xe6\xa9\x99\xe8\x89\xb2\xe9\xa2\x84\xe8\xad\xa6</MsgTitle>",
                b"",
            ),
            "MsgContent/MsgTitle",
            3,
        ),
        (lambda x: x.replace(b"2024-06-01 10:01:00", b"2024/06/01"), "StartTime", 2),
        (lambda x: x.replace(b"150902000000,", b"15090,"), "AreaCode", 2),
        (lambda x: x.replace(b"<EBDType>EBM<", b"<EBDType>Foo<"), "EBDType", 2),
        (lambda x: x.replace(b"<EventType>11B03", b"<EventType>x"), "EventType", 2),
        (lambda x: x[:200], "EBD", 2),
        (
            lambda x: x.replace(b"<MsgBasicInfo>", b"<MsgBasicInfo><MsgType><a/></MsgType>"),
            "MsgType",
            2,
        ),
    ],
)
def test_bad_input_names_the_element(change: object, element: str, code: int) -> None:
    with pytest.raises(EbdFormatError) as caught:
        read_ebd(change(EBM_VECTOR))  # type: ignore[operator]
    assert element in caught.value.element
    assert caught.value.result_code == code


def test_entity_expansion_and_external_entities_are_refused() -> None:
    laughs = b"""<?xml version="1.0"?>
<!DOCTYPE EBD [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">
<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;"><!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">]>
<EBD><EBDType>&d;</EBDType></EBD>"""
    with pytest.raises(EbdFormatError, match="DOCTYPE"):
        read_ebd(laughs)
    external = b'<?xml version="1.0"?><!DOCTYPE x SYSTEM "http://127.0.0.1:9/x.dtd"><EBD/>'
    with pytest.raises(EbdFormatError, match="DOCTYPE"):
        read_ebd(external)
    utf16 = laughs.replace(b'<?xml version="1.0"?>', b"").decode().encode("utf-16")
    with pytest.raises(EbdFormatError):
        read_ebd(utf16)
    with pytest.raises(EbdFormatError, match="limit"):
        read_ebd(b"<EBD>" + b" " * (5 * 1024 * 1024) + b"</EBD>")


def test_writer_refuses_values_the_format_cannot_carry() -> None:
    ebd = vector_ebd()
    with pytest.raises(EbdFormatError, match="AreaCode"):
        write_ebd(replace(ebd, body=replace(ebd.body, area_codes=("1509",))))  # type: ignore[type-var]
    with pytest.raises(EbdFormatError, match="DEST/EBRID"):
        write_ebd(replace(ebd, dest_ebrid="123"))


xml_text = (
    st.text(
        st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\ufffe\uffff"),
        min_size=1,
        max_size=60,
    )
    .map(str.strip)
    .filter(bool)
)


@settings(max_examples=60, deadline=None)
@given(title=xml_text, description=xml_text, name=xml_text, sequence=st.integers(0, 9999))
def test_any_ebm_text_survives_the_round_trip(
    title: str, description: str, name: str, sequence: int
) -> None:
    ebd = vector_ebd()
    ebm = replace(
        ebd.body,  # type: ignore[type-var]
        title=title,
        description=description,
        sender_name=name,
        ebmid=make_ebmid(WARNING_SOURCE_EBRID, "20240601", sequence),
    )
    assert read_ebd(write_ebd(replace(ebd, body=ebm))) == replace(ebd, body=ebm)


def test_text_xml_cannot_carry_is_a_clear_error() -> None:
    ebd = vector_ebd()
    with pytest.raises(EbdFormatError, match="MsgTitle"):
        write_ebd(replace(ebd, body=replace(ebd.body, title="a\x01b")))  # type: ignore[type-var]
