"""`mlops-assets serve`: the champion behind a server that checks every request first.

Speaks MLflow's scoring protocol, so MLflow clients work unchanged:
- POST /invocations with `dataframe_split` or `dataframe_records` JSON ->
  {"predictions": [...], "prediction_lower": [...], "prediction_upper": [...],
   "interval_level": 0.8, "served_by": ["model" | "fallback", ...], "new_group": [bool, ...],
   "model_version": "3"}; the interval is the champion's as adapted by the labelled batches
  monitoring has seen (core/intervals.py; null bounds for a model logged without one);
  `new_group` is true for a row whose group the champion does not know (it is forecast by the
  group fallback), null for a model logged without one.
- a refused request -> HTTP 400 {"error_code": ..., "message": ..., "problems": [{"row",
  "column", "problem", "value"}, ...]} naming the column and the row (see core/request_checks.py);
- GET /ping and /health (200 once a model is loaded), GET /version (MLflow and model version).

The model is `models:/<name>@champion`, loaded once; a thread looks at the alias every
`reload_seconds` and swaps in the new champion when it moved (requests in flight finish on the
model they started with). Binds 127.0.0.1 unless told otherwise."""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from dataclasses import dataclass, replace
from typing import Any

from mlops_assets.core.spec import DatasetSpec

logger = logging.getLogger("mlops_assets.server")


@dataclass(frozen=True)
class Champion:
    version: str
    model: Any  # mlflow PyFuncModel
    known_groups: frozenset[str] | None
    input_schema: Any
    intervals: Any = None  # core.intervals.IntervalCalibrator, as adapted so far


def adapted_intervals(version: str, model: Any, state_dir: str | None) -> Any:
    """The version's interval as monitoring adapted it (under `state_dir`, default the local
    storage's), else the one logged with the model."""
    from mlops_assets.defs.monitoring.intervals import current_calibrator
    from mlops_assets.resources.monitoring import DriftSettings

    return current_calibrator(DriftSettings(interval_state_dir=state_dir or ""), version, model)


def load_champion(client: Any, name: str, alias: str = "champion", state_dir: str | None = None) -> Champion:
    import mlflow.pyfunc

    from mlops_assets.core.pyfunc_model import known_groups

    version = str(client.get_model_version_by_alias(name, alias).version)
    model = mlflow.pyfunc.load_model(f"models:/{name}/{version}")
    known = known_groups(model)
    intervals = adapted_intervals(version, model, state_dir)
    return Champion(version, model, None if known is None else frozenset(known), model.metadata.get_input_schema(), intervals)


class ChampionHolder:
    """The serving champion, swapped atomically when the alias moves."""

    def __init__(self, client: Any, name: str, alias: str = "champion", state_dir: str | None = None):
        self.client, self.name, self.alias, self.state_dir = client, name, alias, state_dir
        self.current = load_champion(client, name, alias, state_dir)
        self._stop = threading.Event()

    def refresh(self) -> bool:
        """Load the alias's version if it moved (True), else the champion's interval as
        monitoring has adapted it since (False)."""
        version = str(self.client.get_model_version_by_alias(self.name, self.alias).version)
        if version == self.current.version:
            champion = self.current
            self.current = replace(champion, intervals=adapted_intervals(champion.version, champion.model, self.state_dir))
            return False
        previous, self.current = self.current.version, load_champion(self.client, self.name, self.alias, self.state_dir)
        logger.warning("champion moved from v%s to v%s: now serving v%s", previous, version, self.current.version)
        return True

    def watch(self, every_seconds: float) -> None:
        def loop() -> None:
            while not self._stop.wait(every_seconds):
                try:
                    self.refresh()
                except Exception as error:  # the registry may be briefly unreachable: keep serving
                    logger.warning("could not check the champion alias: %s", error)

        threading.Thread(target=loop, name="champion-watch", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()


def predict(champion: Champion, body: bytes, spec: DatasetSpec) -> dict[str, Any]:
    """The response body for a request (RequestError when it is refused)."""
    from mlops_assets.core.pyfunc_model import predict_interval, served_by
    from mlops_assets.core.request_checks import RequestError, model_frame, validated

    frame = validated(body, spec)
    try:
        inputs = model_frame(frame, champion.input_schema)
    except (ValueError, TypeError) as error:
        raise RequestError(f"the request does not fit the model's signature: {error}", error_code="INVALID_PARAMETER_VALUE") from None
    predictions, lower, upper = predict_interval(champion.model, inputs, champion.intervals)
    return {
        "predictions": _finite_or_none(predictions),
        "prediction_lower": _finite_or_none(lower),
        "prediction_upper": _finite_or_none(upper),
        "interval_level": champion.intervals.level if champion.intervals else None,
        "served_by": [str(s) for s in served_by(champion.model, inputs)],
        "new_group": new_groups(champion, frame, spec),
        "model_version": champion.version,
    }


def _finite_or_none(values: Any) -> list[float | None]:
    return [float(v) if math.isfinite(float(v)) else None for v in values]


def new_groups(champion: Champion, frame: Any, spec: DatasetSpec) -> list[bool | None]:
    """Per row: is its group unknown to the champion (None: a model logged without a group fallback)."""
    if not spec.group:
        return [False] * len(frame)
    if champion.known_groups is None:
        return [None] * len(frame)
    return [g not in champion.known_groups for g in frame[spec.group]]


def build_app(holder: ChampionHolder, spec: DatasetSpec):
    """The Starlette app (what uvicorn serves)."""
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    import mlflow

    from mlops_assets.core.request_checks import RequestError

    def error(status: int, error_code: str, message: str, **extra: Any) -> JSONResponse:
        return JSONResponse({"error_code": error_code, "message": message, **extra}, status_code=status)

    async def ping(request) -> Response:
        return Response("\n", status_code=200, media_type="application/json")

    async def version(request) -> JSONResponse:
        champion = holder.current
        return JSONResponse({"mlflow_version": mlflow.__version__, "model": holder.name, "alias": holder.alias, "model_version": champion.version})

    def invocations_sync(body: bytes) -> Response:
        champion = holder.current  # one model for the whole request, even if the alias moves
        try:
            answer = predict(champion, body, spec)
        except RequestError as refused:
            return JSONResponse(refused.payload(), status_code=400)
        except Exception as failure:  # the model itself failed: say so, as MLflow does
            logger.exception("prediction failed")
            return error(500, "INTERNAL_ERROR", f"the model failed on this request: {type(failure).__name__}: {failure}")
        return Response(json.dumps(answer), media_type="application/json")

    async def invocations(request) -> Response:
        from starlette.concurrency import run_in_threadpool

        content_type = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
        if content_type != "application/json":
            return error(415, "BAD_REQUEST", f"send Content-Type application/json (got {content_type or 'none'!r})")
        return await run_in_threadpool(invocations_sync, await request.body())

    return Starlette(routes=[
        Route("/ping", ping, methods=["GET"]),
        Route("/health", ping, methods=["GET"]),
        Route("/version", version, methods=["GET"]),
        Route("/invocations", invocations, methods=["POST"]),
    ])


def serve(
    tracking_uri: str, name: str, spec: DatasetSpec, host: str = "127.0.0.1", port: int = 5001, reload_seconds: float = 30.0,
    state_dir: str | None = None,
) -> None:
    """Load the champion and serve until interrupted."""
    import uvicorn
    from mlflow import MlflowClient

    import mlflow

    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    holder = ChampionHolder(MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri), name, state_dir=state_dir)
    if reload_seconds > 0:
        holder.watch(reload_seconds)
    started = time.strftime("%H:%M:%S")
    logger.warning("%s serving %s v%s on http://%s:%d", started, name, holder.current.version, host, port)
    try:
        uvicorn.run(build_app(holder, spec), host=host, port=port, log_level="warning", access_log=False)
    finally:
        holder.stop()
