"""Where the time of a site transfer (policies `rule` and `fts`) goes, from timestamps the
services keep: the FTS jobs' submit/start/finish times (FTS REST API, 1 s resolution) and, for
rules, the time Rucio marked each rule OK. All clocks are this machine's."""

from __future__ import annotations

import datetime as dt
import os
from typing import Any

import requests

from datalake_core.rucio_adapter import RucioAdapter
from staging.common import CA_ENV

FTS_TIME = "%Y-%m-%dT%H:%M:%S"


def _posix(value: Any) -> float | None:
    """FTS strings and Rucio datetimes are naive UTC."""
    if not value:
        return None
    when = value if isinstance(value, dt.datetime) else dt.datetime.strptime(value, FTS_TIME)
    return when.replace(tzinfo=dt.UTC).timestamp()


def _get(url: str, **kwargs: Any) -> Any:
    """The FTS service answers holders of a testbed client certificate, over verified TLS
    (`staging.common.client_env` names both)."""
    return requests.get(url, timeout=30, cert=os.environ.get("X509_USER_PROXY"),
                        verify=os.environ.get(CA_ENV, True), **kwargs).json()


def fts_files(endpoint: str, names: list[str]) -> list[dict[str, Any]]:
    """The FTS file records (with their job's submit time) whose destination is one of the
    DIDs `names`, among jobs finished in the last hour."""
    final = "FINISHED,FAILED,FINISHEDDIRTY,CANCELED"
    jobs = _get(f"{endpoint}/jobs", params={"state_in": final, "time_window": "1:0"})
    suffixes = tuple("/" + n for n in names)
    out = []
    for job in jobs:
        files = _get(f"{endpoint}/jobs/{job['job_id']}/files")
        for f in files:
            if str(f.get("dest_surl", "")).endswith(suffixes):
                out.append({**f, "submit_time": job.get("submit_time"), "job_id": job["job_id"]})
    return out


def breakdown(started: float, site_done: float | None, endpoint: str, names: list[str],
              rucio: RucioAdapter | None = None, rule_ids: list[str] | None = None,
              finished: float | None = None) -> dict[str, Any]:
    """Seconds spent in each step between `started` (the staging call, POSIX time),
    `site_done` (when the provider saw the files at the site) and `finished` (all local)."""
    files = fts_files(endpoint, names)
    if not files:
        return {"error": "no FTS transfers found for these files"}
    submit = min(t for f in files if (t := _posix(f.get("submit_time"))) is not None)
    begin = min((t for f in files if (t := _posix(f.get("start_time"))) is not None),
                default=submit)
    end = max((t for f in files if (t := _posix(f.get("finish_time"))) is not None),
              default=begin)
    steps: dict[str, float] = {"until FTS job submitted": submit - started,
                               "queued in FTS": begin - submit,
                               "FTS copying (first start to last finish)": end - begin}
    known = end
    if rucio is not None and rule_ids:
        oks = [_posix(rucio.client.get_replication_rule(r).get("updated_at")) for r in rule_ids]
        known = max([t for t in oks if t is not None], default=end)
        steps["FTS done until Rucio marks the rules OK"] = known - end
    if site_done is not None:
        steps["until the provider sees the files at the site"] = site_done - known
        if finished is not None:
            steps["site replicas made local (verified, then linked)"] = finished - site_done
    schemes = sorted({f"{str(f.get('source_surl')).split(':')[0]} -> "
                      f"{str(f.get('dest_surl')).split(':')[0]}" for f in files})
    return {"steps_s": {k: round(v, 2) for k, v in steps.items()},
            "fts_jobs": len({f["job_id"] for f in files}), "fts_files": len(files),
            "schemes": schemes,
            "note": "FTS times have 1 s resolution; steps can be off by a second"}
