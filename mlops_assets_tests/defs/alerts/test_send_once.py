"""`AlertChannels.send_once`: one alert per key, also when processes race for it."""

import json
import multiprocessing

from mlops_assets.resources.alerts import Alert, AlertChannels

KEY = "retired_group:Zone A/B (ö):2024-01-18T23:00:00+00:00"


def _records(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _race(log_file: str, barrier, results) -> None:
    channels = AlertChannels(log_file=log_file)
    barrier.wait()
    for _ in range(5):
        results.put(channels.send_once(Alert("group_retired", "group retired", "no data", severity="WARN"), key=KEY) is not None)


def test_an_alert_is_sent_once_per_key_and_stores_the_key(tmp_path):
    log = tmp_path / "logs" / "alerts.log"
    channels = AlertChannels(log_file=str(log))
    first = channels.send_once(Alert("group_retired", "group retired", "no data", severity="WARN"), key=KEY)
    again = channels.send_once(Alert("group_retired", "group retired", "no data", severity="WARN"), key=KEY)
    other = channels.send_once(Alert("group_retired", "group retired", "no data", severity="WARN"), key=KEY + "x")
    channels.send(Alert("check_failed", "unrelated", "no key"))
    assert first == {"log": "written"} and again is None and other == {"log": "written"}
    records = _records(log)
    assert [r["key"] for r in records] == [KEY, KEY + "x", ""] and records[0]["severity"] == "WARN"


def test_processes_racing_for_the_same_key_send_it_once(tmp_path):
    log = tmp_path / "alerts.log"
    context = multiprocessing.get_context("fork")
    barrier, results = context.Barrier(4), context.Queue()
    workers = [context.Process(target=_race, args=(str(log), barrier, results)) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    sent = [results.get(timeout=5) for _ in range(20)]
    assert all(worker.exitcode == 0 for worker in workers)
    assert sent.count(True) == 1 and len(_records(log)) == 1
