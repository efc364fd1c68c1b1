"""Security: landed names cannot escape the archive or quarantine, nothing from the landing
zone is ever unpickled, secrets come only from the environment, servers bind to 127.0.0.1."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
from click.testing import CliRunner

from mlops_assets.core.ingest import BatchError, batch_key, is_candidate_file, parse_batch, sanitize_name, sha256_hex
from mlops_assets_tests.reliability.counts import record

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "mlops_assets"
HOSTILE_NAMES = [
    "../../etc/passwd.csv",
    "/etc/passwd.csv",
    "..\\..\\windows\\system32\\evil.csv",
    "evil\\..\\..\\..\\etc\\cron.d\\payload.csv",
    "a\x00b.csv",
    "..",
    ".",
    "",
    "....csv",
    "\u202ecsv.exe",  # right-to-left override
    "ｆｕｌｌｗｉｄｔｈ.csv",
    "名前.csv",
    "line\nbreak.csv",
    "-rf --no-preserve-root.csv",
    "x" * 5000 + ".csv",
    "CON.csv",
]


@pytest.mark.parametrize("name", HOSTILE_NAMES, ids=range(len(HOSTILE_NAMES)))
def test_sanitized_names_stay_inside_their_folder(name, tmp_path):
    safe = sanitize_name(name)
    key = batch_key(name, sha256_hex(name.encode("utf-8", "surrogatepass")))
    for segment in (safe, key):
        assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", segment), segment
        assert len(segment) <= 120 and segment not in (".", "..")
        assert (tmp_path / segment).resolve().parent == tmp_path.resolve()


@pytest.mark.parametrize("name", ["../../etc/passwd.csv", "sub/dir.csv", "..", "a\x00b.csv"])
def test_the_landing_zone_refuses_names_that_are_not_one_plain_segment(name, tmp_path):
    from mlops_assets.resources.landing import LandingZone

    zone = LandingZone(root=str(tmp_path / "landing"), archive_root=str(tmp_path / "archive"), quarantine_root=str(tmp_path / "q"))
    (tmp_path / "landing").mkdir()
    with pytest.raises(ValueError, match="not a plain file name"):
        zone.receive(name)
    assert not (tmp_path / "archive").exists()


@pytest.mark.parametrize("name", ["model.pkl", "model.pickle", "scaler.joblib", "obj.dill", "arr.npy", "weights.pt"])
def test_serialized_objects_are_received_then_refused_never_loaded(name):
    assert is_candidate_file(name)  # received and quarantined, not left lying in the landing zone
    with pytest.raises(BatchError) as error:
        parse_batch(name, b"\x80\x04\x95 not even looked at")
    assert error.value.kind == "unsupported_format" and "never loaded" in error.value.message


UNSAFE_LOADERS = re.compile(
    r"\b(?:c?pickle|cloudpickle|dill|joblib|shelve|marshal)\s*\.\s*(?:loads?|Unpickler|open)\b"
    r"|\bread_pickle\s*\(|allow_pickle\s*=\s*True|\btorch\s*\.\s*load\s*\(|\byaml\s*\.\s*(?:unsafe_)?load\s*\(|\b(?:eval|exec)\s*\(",
)
# The one deserialization: the pyfunc wrapper loading the model artifact that MLflow hands it
# from its own store (written by training), never a path from the landing zone.
ALLOWED_LOADS = {("mlops_assets/core/pyfunc_model.py", 'self.forecaster = joblib.load(context.artifacts["forecaster"])')}


def test_the_package_never_unpickles_landed_data_or_evaluates_anything():
    """No pickle-family loader, unsafe YAML, eval or exec in the package except the pyfunc
    model loader: data comes in only as CSV or Parquet."""
    sources = sorted(PACKAGE.rglob("*.py"))
    hits = {
        (str(path.relative_to(REPO)), line.strip())
        for path in sources
        for line in path.read_text().splitlines()
        if UNSAFE_LOADERS.search(line)
    }
    assert hits - ALLOWED_LOADS == set()
    landing_code = [PACKAGE / "core" / "ingest.py", PACKAGE / "core" / "cleaning.py", PACKAGE / "resources" / "landing.py", *(PACKAGE / "defs" / "ingestion").glob("*.py")]
    loaders_imported = r"(?m)^\s*(?:import|from)\s+(?:c?pickle|cloudpickle|dill|joblib|shelve|marshal|mlflow)\b"
    assert [path.name for path in landing_code if re.search(loaders_imported, path.read_text())] == []
    record("security_static_scan", python_files_scanned=len(sources), unsafe_loader_calls=len(hits - ALLOWED_LOADS), allowed_model_loaders=len(hits & ALLOWED_LOADS))


SECRET_PATTERNS = {
    "aws access key": r"AKIA[0-9A-Z]{16}",
    "private key": r"-----BEGIN [A-Z ]*PRIVATE KEY-----",
    "slack token": r"xox[abprs]-[0-9A-Za-z-]{10,}",
    "slack webhook": r"hooks\.slack\.com/services/T[0-9A-Z]+/[0-9A-Z]+/[0-9A-Za-z]+",
    "github token": r"gh[pousr]_[A-Za-z0-9]{36}",
    "google api key": r"AIza[0-9A-Za-z_-]{35}",
    "gcp service account key": r"\"type\"\s*:\s*\"service_account\"",
    "password in a URL": r"[a-z+]+://[^/\s:@'\"]+:[^/\s:@'\"$<{]+@",
    "hard-coded secret": r"(?i)\b(?:password|passwd|secret|api_key|token)\b\s*[:=]\s*['\"][^'\"\s$<{]{6,}['\"]",
    "filled-in env secret": r"(?m)^[ \t]*MLOPS_[A-Z_]*(?:PASSWORD|SECRET|TOKEN|WEBHOOK_URL)[ \t]*=[ \t]*[^\s#]+",
}


def repository_files() -> list[Path]:
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    return [REPO / name for name in listed if (REPO / name).is_file() and (REPO / name).stat().st_size < 2_000_000]


def test_no_secrets_are_committed():
    files = repository_files()
    found = []
    for path in files:
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue
        found += [f"{path.relative_to(REPO)}: {label}" for label, pattern in SECRET_PATTERNS.items() if re.search(pattern, text)]
    assert found == []
    record("security_secret_scan", files_scanned=len(files), patterns=len(SECRET_PATTERNS), findings=len(found))


def test_alert_secrets_are_read_from_the_environment_at_run_time(mlops_home, monkeypatch):
    monkeypatch.setenv("MLOPS_SMTP_PASSWORD", "value-only-in-the-environment")
    monkeypatch.setenv("MLOPS_SLACK_WEBHOOK_URL", "https://hooks.example.test/only-in-the-environment")
    from mlops_assets.definitions import build_definitions

    alerts = build_definitions("local").resources["alerts"]
    assert isinstance(alerts.smtp_password, dg.EnvVar) and alerts.smtp_password == "MLOPS_SMTP_PASSWORD"
    assert isinstance(alerts.slack_webhook_url, dg.EnvVar) and alerts.slack_webhook_url == "MLOPS_SLACK_WEBHOOK_URL"
    assert alerts.smtp_password.get_value() == "value-only-in-the-environment"  # resolved when used, never stored


def test_production_instance_config_takes_every_credential_from_the_environment():
    import yaml

    config = yaml.safe_load((REPO / "deploy" / "dagster.yaml").read_text())
    postgres = config["storage"]["postgres"]["postgres_db"]
    assert postgres == {
        "hostname": {"env": "MLOPS_PG_HOST"},
        "port": {"env": "MLOPS_PG_PORT"},
        "username": {"env": "MLOPS_PG_USER"},
        "password": {"env": "MLOPS_PG_PASSWORD"},
        "db_name": {"env": "MLOPS_PG_DAGSTER_DB"},
        "scheme": "postgresql+psycopg2",
    }


def test_servers_bind_to_loopback_by_default():
    from mlops_assets.cli import main, serve
    from mlops_assets.serving import serve_command

    host = next(p for p in serve.params if p.name == "host")
    assert host.default == "127.0.0.1"
    assert "127.0.0.1" in CliRunner().invoke(main, ["serve", "--help"]).output
    command = serve_command("models:/m@champion", host.default, 5001)
    assert command[command.index("-h") + 1] == "127.0.0.1"
    makefile = (REPO / "Makefile").read_text()
    assert re.search(r"dagster dev -h 127\.0\.0\.1 ", makefile) and re.search(r"mlflow ui .*--host 127\.0\.0\.1 ", makefile)
    # What runs by default: the Makefile, the package, the workspace and the deploy configs
    # (deploy/README.md may describe container set-ups, where a pod must listen on 0.0.0.0).
    defaults = [REPO / "Makefile", REPO / "workspace.yaml", *PACKAGE.rglob("*.py"), *(REPO / "deploy").glob("*.yaml"), *(REPO / "deploy").glob("*.template")]
    assert [p.name for p in defaults if "0.0.0.0" in p.read_text()] == []


def test_dependency_audit_runs_in_ci_and_fails_loudly():
    """`.ci/run` runs `make audit`: pip-audit --strict (a package that cannot be checked fails
    the audit instead of passing silently), ignoring only ids listed with a reason."""
    assert "make audit" in (REPO / ".ci" / "run").read_text()
    makefile = (REPO / "Makefile").read_text()
    assert re.search(r"pip-audit --strict .*-r \$\(VENV\)/audit-requirements\.txt", makefile)
    entries = [line for line in (REPO / ".ci" / "pip-audit-ignore.txt").read_text().splitlines() if line.strip() and not line.startswith("#")]
    entry_with_reason = r"\s*[A-Z]+-[\w-]+\s+#\s*\S.{9,}"
    assert [line for line in entries if not re.fullmatch(entry_with_reason, line)] == []
    # The file has no entries yet, so check the rule itself: an id needs a reason of 10+ characters.
    assert re.fullmatch(entry_with_reason, "GHSA-abcd-1234-wxyz  # fixed in 2.1; our pin allows it from March")
    assert [line for line in ("GHSA-abcd-1234-wxyz", "PYSEC-2024-1 # why", "# GHSA-x only a comment") if re.fullmatch(entry_with_reason, line)] == []
    assert subprocess.run([sys.executable, "-m", "pip_audit", "--version"], capture_output=True).returncode == 0
