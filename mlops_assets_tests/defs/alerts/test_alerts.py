"""Alerts reach a real SMTP server (aiosmtpd) and a real HTTP receiver on 127.0.0.1,
exactly once per failed check and once per failed run."""

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import dagster as dg
import pytest
from aiosmtpd.controller import Controller

from mlops_assets.core.ingest import batch_key, sha256_hex
from mlops_assets.core.simulate import SimulationConfig, write_batches, write_corrupt
from mlops_assets.core.spec import load_spec
from mlops_assets.defs.alerts.sensors import check_failure_alert_sensor, run_failure_alert_sensor
from mlops_assets.runner import ingest_landed

SPEC = load_spec()


class Inbox:
    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(envelope.content.decode("utf-8", "replace"))
        return "250 OK"


@pytest.fixture
def smtp():
    inbox = Inbox()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield inbox, port
    controller.stop()


@pytest.fixture
def webhook():
    received = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield received, f"http://127.0.0.1:{server.server_port}/hook"
    server.shutdown()


@pytest.fixture
def alerting_defs(mlops_home, smtp, webhook, monkeypatch):
    monkeypatch.setenv("MLOPS_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("MLOPS_SMTP_PORT", str(smtp[1]))
    monkeypatch.setenv("MLOPS_SMTP_TO", "oncall@example.test")
    monkeypatch.setenv("MLOPS_ALERT_WEBHOOK_URL", webhook[1])
    from mlops_assets.definitions import build_definitions

    return build_definitions("local")


def run_check_sensor(defs, instance, cursor=None):
    with dg.build_sensor_context(instance=instance, cursor=cursor, resources={"alerts": defs.resources["alerts"]}) as context:
        return check_failure_alert_sensor(context)


def test_each_failed_check_alerts_exactly_once(alerting_defs, instance, landing_dir, mlops_home, smtp, webhook):
    started = run_check_sensor(alerting_defs, instance)  # the daemon's first tick, before anything happened
    write_batches(SPEC, SimulationConfig(days=1, groups=2), landing_dir)
    write_corrupt(SPEC, "wrong_type", landing_dir)
    write_corrupt(SPEC, "truncated", landing_dir)
    summary = ingest_landed(alerting_defs, instance)
    assert len(summary.quarantined) == 2

    first = run_check_sensor(alerting_defs, instance, started.cursor)
    inbox, received = smtp[0], webhook[0]
    assert len(inbox.messages) == 2 and len(received) == 2
    by_check = {body["check"]: body for body in received}
    assert set(by_check) == {"valid_batch", "readable"}
    wrong = by_check["valid_batch"]
    assert wrong["asset"] == "clean_load" and wrong["partition"].startswith("corrupt_wrong_type")
    assert "corrupt_wrong_type" in wrong["reason"] and wrong["run_url"].startswith("http://127.0.0.1:3000/runs/")
    assert any("check valid_batch failed on clean_load" in m and "corrupt_wrong_type" in m for m in inbox.messages)
    log_lines = (mlops_home / "alerts.log").read_text().splitlines()
    assert len(log_lines) == 2

    again = run_check_sensor(alerting_defs, instance, first.cursor)
    assert len(inbox.messages) == 2 and len(received) == 2  # nothing twice
    assert int(again.cursor) >= int(first.cursor)


def test_first_tick_does_not_announce_old_incidents(alerting_defs, instance, landing_dir, mlops_home, webhook):
    write_corrupt(SPEC, "wrong_type", landing_dir)
    ingest_landed(alerting_defs, instance)  # quarantined before the daemon ever ran (as `make demo` does)
    started = run_check_sensor(alerting_defs, instance)
    assert webhook[0] == [] and int(started.cursor) == instance.event_log_storage.get_maximum_record_id()

    write_corrupt(SPEC, "truncated", landing_dir)
    ingest_landed(alerting_defs, instance)
    run_check_sensor(alerting_defs, instance, started.cursor)
    assert [body["check"] for body in webhook[0]] == ["readable"]


def run_failure_sensor_on(defs, instance, run) -> None:
    failure = next(e for e in instance.all_logs(run.run_id) if e.dagster_event and e.dagster_event.event_type == dg.DagsterEventType.RUN_FAILURE)
    context = dg.build_run_status_sensor_context(
        sensor_name="run_failure_alert_sensor", dagster_instance=instance, dagster_run=run, dagster_event=failure.dagster_event,
        resources={"alerts": defs.resources["alerts"]},
    ).for_run_failure()
    run_failure_alert_sensor(context)


def test_a_broken_run_alerts_once_and_a_quarantine_only_by_its_check(alerting_defs, instance, landing_dir, mlops_home, smtp, webhook):
    write_corrupt(SPEC, "empty", landing_dir)
    ingest_landed(alerting_defs, instance)
    quarantined = instance.get_runs(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.FAILURE]))[0]
    run_failure_sensor_on(alerting_defs, instance, quarantined)
    assert webhook[0] == []  # the failed `readable` check is the one alert for this file

    written = write_batches(SPEC, SimulationConfig(days=1, groups=2), landing_dir)[0]
    key = batch_key(written.name, sha256_hex(written.read_bytes()))
    (mlops_home / "storage" / "clean_load" / f"{key}.parquet").mkdir(parents=True)  # an OSError, not bad data
    assert ingest_landed(alerting_defs, instance).failed
    broken = instance.get_runs(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.FAILURE]), limit=1)[0]
    run_failure_sensor_on(alerting_defs, instance, broken)
    received = webhook[0]
    assert len(received) == 1 and received[0]["kind"] == "run_failed" and received[0]["severity"] == "ERROR"
    assert "clean_load" in received[0]["reason"] and "IsADirectoryError" in received[0]["reason"] and received[0]["run_id"] == broken.run_id
    assert len(smtp[0].messages) == 1


def test_a_broken_channel_does_not_lose_the_alert(mlops_home, monkeypatch):
    from mlops_assets.resources.alerts import Alert, AlertChannels

    channels = AlertChannels(log_file=str(mlops_home / "alerts.log"), webhook_url="http://127.0.0.1:9/nothing-listens")
    outcome = channels.send(Alert(kind="check_failed", title="t", reason="r"))
    assert outcome["log"] == "written" and outcome["webhook"].startswith("failed")
    lines = [json.loads(line) for line in (mlops_home / "alerts.log").read_text().splitlines()]
    assert [line["kind"] for line in lines] == ["check_failed", "alert_delivery_failed"]


def test_slack_channel_posts_the_message_text(mlops_home, webhook):
    from mlops_assets.resources.alerts import Alert, AlertChannels

    received, url = webhook
    channels = AlertChannels(log_file=str(mlops_home / "alerts.log"), slack_webhook_url=url)
    outcome = channels.send(Alert(kind="rollback", title="rollback: champion v3 -> v1", reason="evening peak", asset="champion_model", run_id="abc"))
    assert outcome["slack"] == "sent"
    assert received == [{"text": "[ERROR] rollback: champion v3 -> v1\nevening peak\nasset champion_model\nrun: http://127.0.0.1:3000/runs/abc"}]


def test_a_run_that_failed_on_a_blocking_check_is_alerted_once_by_the_check_with_its_reason(alerting_defs, instance, landing_dir, webhook):
    from mlops_assets.runner import run_job

    started = run_check_sensor(alerting_defs, instance)
    write_batches(SPEC, SimulationConfig(days=1, groups=2), landing_dir)  # a day: shorter than the 24 h lag
    ingest_landed(alerting_defs, instance)
    result = run_job(alerting_defs, "preparation_job", instance)
    assert not result.success
    run_failure_sensor_on(alerting_defs, instance, instance.get_run_by_id(result.run_id))
    assert webhook[0] == []  # the run failed only on its checks: they say why
    run_check_sensor(alerting_defs, instance, started.cursor)
    by_check = {body["check"]: body for body in webhook[0]}
    assert {body["kind"] for body in webhook[0]} == {"check_failed"} and len(by_check) == len(webhook[0])
    assert by_check["lags_stay_in_group"]["reason"] == "no feature rows" and by_check["lags_stay_in_group"]["severity"] == "ERROR"
