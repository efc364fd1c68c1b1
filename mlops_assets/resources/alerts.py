"""Alert channels: a log file (always), and optionally email over SMTP, a generic JSON
webhook and a Slack incoming webhook. Secrets come from the environment (dg.EnvVar)."""

from __future__ import annotations

import fcntl
import json
import smtplib
import urllib.request
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from email.message import EmailMessage
from pathlib import Path

import dagster as dg

# Check metadata naming the incident a failed check belongs to: the sensor sends one alert per
# key (with `send_once`), however many checks failed and whoever else reported it first.
ALERT_KEY = "alert_key"


@dataclass
class Alert:
    kind: str  # check_failed | run_failed | rollback | bias_drift | ...
    title: str
    reason: str
    asset: str = ""
    check: str = ""
    partition: str = ""
    severity: str = "ERROR"
    run_id: str = ""
    run_url: str = ""
    extra: dict = field(default_factory=dict)
    key: str = ""  # set by `AlertChannels.send_once`: the alert is sent once per key

    def text(self) -> str:
        parts = [f"[{self.severity}] {self.title}", self.reason]
        where = ", ".join(f"{k} {v}" for k, v in (("asset", self.asset), ("check", self.check), ("partition", self.partition)) if v)
        if where:
            parts.append(where)
        if self.run_url:
            parts.append(f"run: {self.run_url}")
        return "\n".join(parts)


def _logged_key(lines, key: str) -> bool:
    """Whether a record of the alert log (one JSON object per line) has this key."""
    needle = json.dumps(key)
    for line in lines:
        if needle in line:
            try:
                if json.loads(line).get("key") == key:
                    return True
            except ValueError:
                continue
    return False


class AlertChannels(dg.ConfigurableResource):
    """Where alerts go. The log file is always written; empty settings switch a channel off."""

    log_file: str
    dagster_ui_url: str = "http://127.0.0.1:3000"
    smtp_host: str = ""
    smtp_port: int = 25
    smtp_from: str = "mlops-assets@localhost"
    smtp_to: str = ""
    smtp_user: str = ""
    smtp_password: str = ""
    webhook_url: str = ""
    slack_webhook_url: str = ""
    timeout_seconds: float = 10.0

    def run_url(self, run_id: str) -> str:
        return f"{self.dagster_ui_url}/runs/{run_id}" if run_id else ""

    def send(self, alert: Alert) -> dict[str, str]:
        """Deliver to every configured channel; a failing channel is logged, never fatal."""
        if alert.run_id and not alert.run_url:
            alert.run_url = self.run_url(alert.run_id)
        outcome = {"log": self._log(alert)}
        for name, enabled, deliver in (
            ("email", bool(self.smtp_host and self.smtp_to), self._email),
            ("webhook", bool(self.webhook_url), self._webhook),
            ("slack", bool(self.slack_webhook_url), self._slack),
        ):
            if not enabled:
                continue
            try:
                deliver(alert)
                outcome[name] = "sent"
            except Exception as exc:  # one broken channel must not hide the alert elsewhere
                outcome[name] = f"failed: {exc}"
                self._log(Alert("alert_delivery_failed", f"{name} delivery failed", str(exc), severity="WARN"))
        return outcome

    def send_once(self, alert: Alert, key: str) -> dict[str, str] | None:
        """Deliver like `send`, only if no alert with this `key` is in the log file yet (the key
        is stored in the record as "key"); None when skipped. An exclusive lock on the log file
        is held from the look-up to the write, so two processes cannot both send it."""
        path = Path(self.log_file)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a+", encoding="utf-8") as fh:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            try:
                fh.seek(0)
                if _logged_key(fh, key):
                    return None
                alert.key = key
                return self.send(alert)
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)

    def _log(self, alert: Alert) -> str:
        path = Path(self.log_file)
        path.parent.mkdir(parents=True, exist_ok=True)
        record = {"at": datetime.now(timezone.utc).isoformat(timespec="seconds"), **asdict(alert)}
        with path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(record, default=str) + "\n")
        return "written"

    def _email(self, alert: Alert) -> None:
        message = EmailMessage()
        message["Subject"] = f"[mlops_assets] {alert.title}"
        message["From"] = self.smtp_from
        message["To"] = self.smtp_to
        message.set_content(alert.text())
        with smtplib.SMTP(self.smtp_host, self.smtp_port, timeout=self.timeout_seconds) as smtp:
            if self.smtp_user:
                smtp.starttls()
                smtp.login(self.smtp_user, self.smtp_password)
            smtp.send_message(message)

    def _post(self, url: str, payload: dict) -> None:
        request = urllib.request.Request(url, data=json.dumps(payload, default=str).encode(), headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=self.timeout_seconds) as response:
            if response.status >= 300:
                raise RuntimeError(f"HTTP {response.status}")

    def _webhook(self, alert: Alert) -> None:
        self._post(self.webhook_url, {**asdict(alert), "text": alert.text()})

    def _slack(self, alert: Alert) -> None:
        self._post(self.slack_webhook_url, {"text": alert.text()})
