"""perftest (``ib_write_bw``, ``ib_read_lat``, ...) results, from its JSON file or its text table.

``--out_json --out_json_file=F`` writes ``{"test_info": {...}, "results": {...}}``; perftest prints
it with ``fprintf`` and some versions leave a comma before a closing brace, which strict JSON
rejects, so those commas are dropped before decoding.  The text table is the fallback for builds
without ``--out_json``: its header names end at a ``[unit]`` (``BW average[MB/sec]``,
``99% percentile[usec]``), which is how columns are told apart.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from hpcos.probes.parsers import ParseError, is_int, number

_TRAILING_COMMA = re.compile(r",(\s*[}\]])")
_TITLE = re.compile(r"^\s*(?P<title>\S.*?(?:BW|Latency) Test)\s*$")
_DEVICE = re.compile(r"Device\s*:\s*(?P<dev>\S+)")

_CANONICAL = {
    "#bytes": "size",
    "msgsize": "size",
    "#iterations": "iterations",
    "n_iterations": "iterations",
    "bwpeak[mb/sec]": "bw_peak_MBps",
    "bwaverage[mb/sec]": "bw_average_MBps",
    "bwpeak[gb/sec]": "bw_peak_Gbps",
    "bwaverage[gb/sec]": "bw_average_Gbps",
    "msgrate[mpps]": "msg_rate_Mpps",
    "msgrate": "msg_rate_Mpps",
    "t_min[usec]": "t_min_us",
    "t_min": "t_min_us",
    "t_max[usec]": "t_max_us",
    "t_max": "t_max_us",
    "t_typical[usec]": "t_typical_us",
    "t_typical": "t_typical_us",
    "t_avg[usec]": "t_avg_us",
    "t_avg": "t_avg_us",
    "t_stdev[usec]": "t_stdev_us",
    "t_stdev": "t_stdev_us",
    "99%percentile[usec]": "p99_us",
    "99.9%percentile[usec]": "p99_9_us",
    "percentile_99": "p99_us",
    "percentile_99.9": "p99_9_us",
    "tpsaverage": "tps_average",
}


@dataclass
class PerftestResult:
    test: str | None  # "RDMA_Write BW Test", "RDMA_Read Latency Test"
    device: str | None
    rows: list[dict[str, float | int]] = field(default_factory=list)
    bw_unit: str = "MB/sec"  # or "Gb/sec" with --report_gbits


def canonical(name: str) -> str:
    squeezed = re.sub(r"\s+", "", name).lower()
    return _CANONICAL.get(squeezed, re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_"))


def parse_json(text: str, *, report_gbits: bool = False) -> PerftestResult:
    """The JSON report.  It does not say whether ``--report_gbits`` was given, so the caller does."""
    try:
        data = json.loads(_TRAILING_COMMA.sub(r"\1", text))
    except json.JSONDecodeError as exc:
        raise ParseError(
            "perftest", f"JSON report does not decode ({exc.msg} at line {exc.lineno})"
        ) from None
    info = data.get("test_info") or {}
    results = data.get("results")
    if not isinstance(results, dict | list) or not results:
        raise ParseError("perftest", "JSON report has no 'results' (did the test finish?)")
    rows = []
    for item in results if isinstance(results, list) else [results]:
        row = {}
        for key, value in item.items():
            name = canonical(key)
            if name == "bw_peak" or name == "bw_average":
                name += "_Gbps" if report_gbits else "_MBps"
            row[name] = value
        rows.append(row)
    return PerftestResult(
        info.get("test"), info.get("Device"), rows, "Gb/sec" if report_gbits else "MB/sec"
    )


def parse_text(text: str) -> PerftestResult:
    test = device = None
    columns: list[str] | None = None
    rows: list[dict] = []
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or set(stripped) == {"-"}:
            continue
        if test is None and (m := _TITLE.match(stripped)):
            test = m["title"]
        if device is None and (m := _DEVICE.search(stripped)):
            device = m["dev"]
        if stripped.startswith("#bytes"):
            columns = [canonical(n) for n in split_header(stripped)]
            continue
        cells = stripped.split()
        if columns and is_int(cells[0]):
            if len(cells) != len(columns):
                raise ParseError(
                    "perftest", f"row has {len(cells)} cells for columns {columns}", line
                )
            rows.append({k: number(c) for k, c in zip(columns, cells, strict=True)})
    if not rows:
        raise ParseError("perftest", "no result rows (header '#bytes ...' and numbers below it)")
    unit = "Gb/sec" if any(k.endswith("_Gbps") for k in columns) else "MB/sec"
    return PerftestResult(test, device, rows, unit)


def split_header(header: str) -> list[str]:
    names: list[str] = []
    pending: list[str] = []
    for word in header.split():
        pending.append(word)
        if word.startswith("#") or word.endswith("]"):
            names.append(" ".join(pending))
            pending = []
    if pending:  # "tps average": the one unitless name, always last
        names.append(" ".join(pending))
    return names
