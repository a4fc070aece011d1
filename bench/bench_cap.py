"""CAP intake throughput: parse_cap (parse + structure + values + tolerant model rules) over
every valid sample, beside plain lxml XMLSchema validation of the same documents.

Run: ``.venv/bin/python bench/bench_cap.py [--seconds 3]``. Prints documents per second for
both and their ratio; the store side of intake is measured elsewhere.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from lxml import etree

from broadcaster.cap import parse_cap, to_xml
from tests.conftest import CAP_DATA, CAP_SAMPLES


def _rate(work: Callable[[bytes], object], documents: list[bytes], seconds: float) -> float:
    done = 0
    start = time.perf_counter()
    deadline = start + seconds
    while time.perf_counter() < deadline:
        for document in documents:
            work(document)
        done += len(documents)
    return done / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="time per measurement")
    args = parser.parse_args()

    documents = [path.read_bytes() for path in sorted((CAP_SAMPLES / "valid").glob("*.xml"))]
    total_kib = sum(len(document) for document in documents) / 1024
    schema = etree.XMLSchema(etree.parse(str(CAP_DATA / "CAP-v1.2.xsd")))
    plain_parser = etree.XMLParser(resolve_entities=False, no_network=True)

    def xsd_only(document: bytes) -> object:
        return schema.validate(etree.fromstring(document, plain_parser))

    def intake(document: bytes) -> object:
        return parse_cap(document)

    def write(document: bytes) -> object:
        return to_xml(parse_cap(document).alert)

    for document in documents:
        intake(document)
        assert xsd_only(document), "a valid sample failed the OASIS schema"

    print(f"{len(documents)} valid samples, {total_kib:.0f} KiB in total")
    xsd_rate = _rate(xsd_only, documents, args.seconds)
    intake_rate = _rate(intake, documents, args.seconds)
    write_rate = _rate(write, documents, args.seconds)
    print(f"lxml XMLSchema validate only : {xsd_rate:10.0f} docs/s")
    print(f"parse_cap (full intake check): {intake_rate:10.0f} docs/s")
    print(f"parse_cap + to_xml           : {write_rate:10.0f} docs/s")
    print(f"intake / XMLSchema ratio     : {intake_rate / xsd_rate:10.2f}")


if __name__ == "__main__":
    main()
