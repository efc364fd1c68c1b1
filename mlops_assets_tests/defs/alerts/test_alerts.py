"""Alerts reach a real SMTP server (aiosmtpd) and a real HTTP receiver on 127.0.0.1,
exactly once per failed check and once per failed run."""

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import dagster as dg
import pytest
from aiosmtpd.controller import Controller

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
    write_batches(SPEC, SimulationConfig(days=1, groups=2), landing_dir)
    write_corrupt(SPEC, "wrong_type", landing_dir)
    write_corrupt(SPEC, "truncated", landing_dir)
    summary = ingest_landed(alerting_defs, instance)
    assert len(summary.quarantined) == 2

    first = run_check_sensor(alerting_defs, instance)
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


def test_failed_run_alerts_once(alerting_defs, instance, landing_dir, smtp, webhook):
    write_corrupt(SPEC, "empty", landing_dir)
    ingest_landed(alerting_defs, instance)
    run = instance.get_runs(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.FAILURE]))[0]
    failure = next(e for e in instance.all_logs(run.run_id) if e.dagster_event and e.dagster_event.event_type == dg.DagsterEventType.RUN_FAILURE)
    context = dg.build_run_status_sensor_context(
        sensor_name="run_failure_alert_sensor", dagster_instance=instance, dagster_run=run, dagster_event=failure.dagster_event,
        resources={"alerts": alerting_defs.resources["alerts"]},
    ).for_run_failure()
    run_failure_alert_sensor(context)
    received = webhook[0]
    assert len(received) == 1 and received[0]["kind"] == "run_failed"
    assert "raw_load" in received[0]["reason"] and received[0]["run_id"] == run.run_id
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
