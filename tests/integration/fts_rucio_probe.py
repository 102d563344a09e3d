"""Drives the FTS stand-in with Rucio's own FTS3Transfertool; run by test_fts_service.py.

A separate process so that Rucio's configuration (RUCIO_CONFIG, read once at import) stays
out of the test session. Prints one JSON line of observations.
"""

import json
import sys
import time
import uuid

from rucio.common.types import InternalAccount, InternalScope
from rucio.core.request import (
    DirectTransfer,
    RequestSource,
    RequestWithSources,
    TransferDestination,
)
from rucio.core.rse import RseData
from rucio.db.sqla.constants import RequestType
from rucio.transfertool.fts3 import FTS3Transfertool

args = json.loads(sys.argv[1])


class FixedUrls(DirectTransfer):
    # Rucio's own transfer description, with URLs given instead of derived from RSE protocols.
    def __init__(self, sources, dst, rws, urls, dest_url):
        super().__init__(sources, rws)
        self._dst, self._urls, self._dest_url = dst, urls, dest_url

    src = property(lambda self: self.sources[0])
    dst = property(lambda self: self._dst)
    dest_url = property(lambda self: self._dest_url)

    def source_url(self, source):
        return self._urls[source.rse.name]

    def dest_protocol(self):
        raise NotImplementedError

    def source_protocol(self, source):
        raise NotImplementedError


def rse(name):
    attributes = {"fts": args["fts"], "supported_checksums": "adler32"}
    return RseData(uuid.uuid4().hex, name=name, attributes=attributes, info={"rse_type": "DISK"})


def transfer(urls, dest, adler32, size):
    dst = rse("SITE_B")
    rws = RequestWithSources(
        id_=uuid.uuid4().hex,
        request_type=RequestType.TRANSFER,
        rule_id=uuid.uuid4().hex,
        scope=InternalScope("lofar"),
        name="file.bin",
        md5=None,
        adler32=adler32,
        byte_count=size,
        activity="User Subscriptions",
        attributes=None,
        previous_attempt_id=None,
        dest_rse=dst,
        account=InternalAccount("root"),
        retry_count=0,
        priority=3,
        transfertool="fts3",
    )
    sources = [RequestSource(rse(name), scheme="file") for name in urls]
    return FixedUrls(sources, TransferDestination(dst, "file"), rws, urls, dest)


def submit(hop):
    path, builder = FTS3Transfertool.submission_builder_for_path([hop])
    tool = builder.make_transfertool(logger=lambda *a, **k: None)
    [job] = tool.group_into_submit_jobs([path])
    return tool, job, tool.submit(job["transfers"], job["job_params"])


out = {}
hop = transfer(args["sources"], args["dest"], args["adler32"], args["size"])
tool, job, job_id = submit(hop)
out["job_params"] = job["job_params"]
request_id = hop.rws.request_id
deadline = time.monotonic() + 20
while time.monotonic() < deadline:
    wanted = {job_id: {request_id: {"request_id": request_id}}, args["missing"]: {}}
    reports = tool.bulk_query(wanted)
    if reports[job_id]:  # Rucio waits for multi-source jobs to end before reporting
        break
    time.sleep(0.1)
report = reports[job_id][request_id]
out["report"] = {k: report.file_response[k] for k in ("file_state", "source_surl", "reason")}
out["report"]["job_state"] = report.job_response["job_state"]
out["report"]["file_metadata"] = report.file_response["file_metadata"]
out["missing"] = reports[args["missing"]]
out["query"] = tool.query([job_id])[0]["job_state"]
out["details"] = [f["file_state"] for f in tool.query([job_id], details=True)]
out["finished_cancel"] = tool.cancel([job_id])["http_status"]
out["whoami"] = tool.whoami()["user_dn"]

blocked = transfer({"SITE_P": args["stalled"]}, args["dest"] + ".2", None, 0)
tool, _, live_id = submit(blocked)
deadline = time.monotonic() + 20
while tool.query([live_id])[0]["job_state"] != "ACTIVE" and time.monotonic() < deadline:
    time.sleep(0.05)
out["priority"] = tool.update_priority(live_id, 5)["priority"]
out["live_cancel"] = tool.cancel([live_id])["job_state"]
print(json.dumps(out, default=str))
