"""The FTS service's completion messages, as Rucio's conveyor-receiver reads them."""

from lofar_datalake_testbed.servers.fts.messages import Broker, completion

JOB = {"job_id": "7f1c", "vo_name": "lofar", "job_state": "FINISHED", "job_type": "N",
       "retry": 3, "user_dn": "/CN=pipeline", "cred_id": "abc123",
       "job_metadata": {"issuer": "rucio", "multi_sources": False}}
FILE = {"file_id": 42, "file_state": "FINISHED", "source_surl": "https://127.0.0.1:9001/a/f",
        "dest_surl": "file:///rse/A/f", "start_time": "2026-12-03T10:00:00",
        "finish_time": "2026-12-03T10:00:02", "filesize": 17, "retry": 0, "reason": None,
        "file_metadata": {"request_id": "r1", "scope": "lofar", "name": "f"}}


def test_a_finished_file_is_reported_ok_with_its_job_id_last_in_the_transfer_id():
    message = completion(JOB, FILE, "https://127.0.0.1:8446")
    assert message is not None
    assert message["t_final_transfer_state"] == "Ok"
    assert message["tr_id"].split("__")[-1] == "7f1c"
    assert message["tr_id"].startswith("2026-12-03-1000__127.0.0.1__localhost__42__")
    assert message["tr_timestamp_complete"] - message["tr_timestamp_start"] == 2000
    assert message["file_metadata"]["request_id"] == "r1"
    assert (message["vo"], message["endpnt"]) == ("lofar", "https://127.0.0.1:8446")


def test_a_failed_file_carries_its_reason_and_a_file_still_moving_gives_no_message():
    failed = completion(JOB, {**FILE, "file_state": "FAILED", "reason": "TRANSFER [5] gone"}, "e")
    assert failed is not None
    assert (failed["t_final_transfer_state"], failed["t__error_message"]) == (
        "Error", "TRANSFER [5] gone")
    assert completion(JOB, {**FILE, "file_state": "SUBMITTED"}, "e") is None
    assert completion(JOB, {**FILE, "file_state": "ACTIVE"}, "e") is None


def test_the_message_names_neither_the_submitter_nor_its_credential():
    text = str(completion(JOB, FILE, "e"))
    assert "/CN=pipeline" not in text
    assert "abc123" not in text


def test_the_broker_login_is_not_in_its_repr(tmp_path):
    path = tmp_path / "publisher.ini"
    path.write_text("[broker]\nhost = 127.0.0.1\nport = 1\nvhost = h\ndestination = /queue/q\n"
                    "username = fts\npassword = s3cret-value\n")
    assert "s3cret-value" not in repr(Broker.from_file(path))
