"""A Keras 3 LSTM (JAX backend) over per-group windows of consecutive rows.

For each row, the input is the scaled feature vectors of the last `window` rows of the same
group (ordered by time) in the frame being predicted, zero-padded and masked at the start
of a series. The window is `lstm_window_hours` converted to steps of the data's frequency (at
least 2). Inputs are the same features (calendar included) as the other families, plus degree
days when the spec names a temperature column; missing values are imputed with medians and
scaled, fitted on the rows the model is fitted on and saved with it."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from mlops_assets.core.models.data import ModelData, Split
from mlops_assets.core.models.tabular import fit_record, preprocessor
from mlops_assets.core.training_config import TrainingConfig, window_steps


def _keras():
    os.environ.setdefault("KERAS_BACKEND", "jax")
    import keras

    return keras


def window_positions(frame: pd.DataFrame, timestamp: str, group: str | None, window: int) -> np.ndarray:
    """(n_rows, window) indices into `frame` of each row's window, -1 where the series has
    no earlier row. The last column is the row itself."""
    n = len(frame)
    keys = frame[group].to_numpy() if group else np.zeros(n)
    order = np.lexsort((frame[timestamp].to_numpy(), keys))
    sorted_keys = keys[order]
    starts = np.r_[0, np.flatnonzero(sorted_keys[1:] != sorted_keys[:-1]) + 1]
    position = np.arange(n) - np.repeat(starts, np.diff(np.r_[starts, n]))
    out = np.full((n, window), -1, dtype=np.int64)
    for k in range(window):
        back = np.arange(n) - k
        valid = position >= k
        out[order[valid], window - 1 - k] = order[back[valid]]
    return out


def windows(features: np.ndarray, positions: np.ndarray) -> np.ndarray:
    padded = np.vstack([features, np.zeros((1, features.shape[1]), dtype=features.dtype)])
    return padded[np.where(positions < 0, len(features), positions)]


@dataclass
class SequenceForecaster:
    prep: Any
    y_mean: float
    y_std: float
    window: int
    feature_columns: list[str]
    timestamp: str
    group: str | None
    model: Any = field(repr=False)
    kind: str = "lstm"
    fit_info: dict[str, Any] = field(default_factory=dict)  # fitted on what; `best_epoch` chosen by early stopping

    def _features(self, frame: pd.DataFrame, chunk_rows: int = 100_000) -> np.ndarray:
        """The scaled feature matrix (float32), transformed chunk by chunk so the float64
        one-hot matrix of a large frame is never built whole."""
        X = frame[self.feature_columns]
        out = np.empty((len(X), len(self.prep.get_feature_names_out())), dtype=np.float32)
        for start in range(0, len(X), chunk_rows):
            out[start : start + chunk_rows] = self.prep.transform(X.iloc[start : start + chunk_rows])
        return out

    def _inputs(self, frame: pd.DataFrame, rows: np.ndarray | None = None) -> np.ndarray:
        feats = self._features(frame)
        positions = window_positions(frame, self.timestamp, self.group, self.window)
        return windows(feats, positions if rows is None else positions[rows])

    def predict(self, frame: pd.DataFrame, chunk_rows: int = 4096) -> np.ndarray:
        """Windows are built chunk by chunk, so memory does not grow with the frame (chunks of
        20,000 windows cost ~550 MB more peak at 1M rows than chunks of 4,096, at no gain in time)."""
        frame = frame.reset_index(drop=True)
        if len(frame) == 0:
            return np.zeros(0)
        feats = self._features(frame)
        positions = window_positions(frame, self.timestamp, self.group, self.window)
        scaled = np.concatenate(
            [
                self.model.predict(windows(feats, positions[start : start + chunk_rows]), batch_size=2048, verbose=0).reshape(-1)
                for start in range(0, len(frame), chunk_rows)
            ]
        )
        return scaled.astype(float) * self.y_std + self.y_mean

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "lstm.keras")
            self.model.save(path)
            with open(path, "rb") as fh:
                state["model"] = fh.read()
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        keras = _keras()
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "lstm.keras")
            with open(path, "wb") as fh:
                fh.write(state["model"])
            state["model"] = keras.saving.load_model(path)
        self.__dict__.update(state)


def _network(keras, shape: tuple[int, ...], config: TrainingConfig):
    model = keras.Sequential(
        [
            keras.Input(shape=shape),
            keras.layers.Masking(mask_value=0.0),
            keras.layers.LSTM(config.lstm_units),
            keras.layers.Dense(16, activation="relu"),
            keras.layers.Dense(1),
        ]
    )
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="huber")
    return model


def _prepared(data: ModelData, split: Split, config: TrainingConfig) -> tuple[SequenceForecaster, np.ndarray]:
    """A forecaster whose scalers are fitted on the newest `lstm_max_train_rows` rows of
    `split` (the rows it learns from), and those rows' positions."""
    rows = np.arange(len(split))[-config.lstm_max_train_rows :]
    prep = preprocessor(data, scale=True).fit(split.X[data.feature_columns].iloc[rows], split.y[rows])
    y_mean, y_std = float(split.y[rows].mean()), float(split.y[rows].std() or 1.0)
    window = window_steps(config.lstm_window_hours, data.frequency)
    return SequenceForecaster(prep, y_mean, y_std, window, data.feature_columns, data.timestamp, data.group, None), rows


def train_lstm(
    data: ModelData, config: TrainingConfig, sample_weight: np.ndarray | None = None,
) -> tuple[SequenceForecaster, dict[str, Any]]:
    """Fitted on the training split with early stopping on validation (best weights restored);
    `best_epoch` is what `refit_lstm` trains for on train + validation."""
    keras = _keras()
    keras.utils.set_random_seed(config.seed)
    forecaster, rows = _prepared(data, data.train, config)
    X_train = forecaster._inputs(data.train.X, rows)
    y_train = ((data.train.y[rows] - forecaster.y_mean) / forecaster.y_std).astype(np.float32)
    # Early stopping needs a recent validation sample, not every window: all of them at 1M rows
    # cost ~1 GB (rows x window x features float32).
    val_rows = np.arange(len(data.validation))[-max(1, config.lstm_max_train_rows // 4) :]
    X_val = forecaster._inputs(data.validation.X, val_rows)
    y_val = ((data.validation.y[val_rows] - forecaster.y_mean) / forecaster.y_std).astype(np.float32)
    model = _network(keras, X_train.shape[1:], config)
    stop = keras.callbacks.EarlyStopping(patience=config.lstm_patience, restore_best_weights=True)
    history = model.fit(
        X_train, y_train, sample_weight=None if sample_weight is None else sample_weight[rows].astype(np.float32),
        validation_data=(X_val, y_val), epochs=config.lstm_epochs,
        batch_size=config.lstm_batch_size, callbacks=[stop], verbose=0, shuffle=True,
    )
    forecaster.model = model
    losses = history.history
    best_epoch = int(np.argmin(losses["val_loss"])) + 1
    forecaster.fit_info = {**fit_record(data.train, "train"), "best_epoch": best_epoch, "rows_learned_from": int(len(rows))}
    extra = {
        "epochs_run": len(losses["loss"]),
        "best_epoch": best_epoch,
        "best_val_loss": float(min(losses["val_loss"])),
        "train_rows_used": int(len(rows)),
        "validation_rows_used": int(len(val_rows)),
        "window_steps": forecaster.window,
        "loss": "huber",
    }
    return forecaster, extra


def refit_lstm(
    forecaster: SequenceForecaster, data: ModelData, config: TrainingConfig, sample_weight: np.ndarray | None = None,
) -> SequenceForecaster:
    """A fresh network (same seed, units, window) trained on train + validation for the epochs
    early stopping chose; scalers refitted on those rows. Test rows are never seen.
    `sample_weight` is per row of train + validation."""
    keras = _keras()
    keras.utils.set_random_seed(config.seed)
    split = data.train_and_validation()
    epochs = int(forecaster.fit_info.get("best_epoch") or config.lstm_epochs)
    refit, rows = _prepared(data, split, config)
    X = refit._inputs(split.X, rows)
    y = ((split.y[rows] - refit.y_mean) / refit.y_std).astype(np.float32)
    model = _network(keras, X.shape[1:], config)
    model.fit(
        X, y, sample_weight=None if sample_weight is None else sample_weight[rows].astype(np.float32),
        epochs=epochs, batch_size=config.lstm_batch_size, verbose=0, shuffle=True,
    )
    refit.model = model
    refit.fit_info = {**fit_record(split, "train+validation"), "best_epoch": epochs, "rows_learned_from": len(rows)}
    return refit
