"""The order of the training data across epochs. The posts' Keras reshuffled before every epoch;
Keras 3 on TensorFlow, once seeded, replays one order (the cause the report names for the
Fashion-MNIST gap), Keras 3 on JAX reshuffles. lib.train.keras_train.reshuffled, which every unit
trains through, reshuffles on both (and on Keras 2, as tools.run_variants --backend tf_keras runs it), and a
seed gives the same orders again."""

import json
import sys
from pathlib import Path

import pytest

from tests.conftest import run

ROOT = Path(__file__).resolve().parents[1]
PROBE = r"""
import json, os, sys
if os.environ.get("KERAS_BACKEND") == "tf_keras":  # Keras 2 under the name keras, as tools.run_variants runs it
    del os.environ["KERAS_BACKEND"]
    from tools.run_variants import load_keras
    load_keras("tf_keras")
import numpy as np, keras
from lib.train.keras_train import reshuffled, seed_everything
from tools.run_variants import replay_order_callback

how, seed = sys.argv[1], int(sys.argv[2])
seed_everything(seed)
seen = []


class Note(keras.layers.Layer):
    def call(self, x, training=None):  # eager (run_eagerly): note the images of each training batch
        if training:
            seen.extend(np.asarray(x)[:, 0].astype(int).tolist())
        return x


model = keras.Sequential([keras.Input((1,)), Note(), keras.layers.Dense(1)])
model.compile(optimizer="sgd", loss="mse", run_eagerly=True)
x, y = np.arange(12, dtype="float32").reshape(12, 1), np.zeros((12, 1), "float32")
data = reshuffled(x, y, 4, seed) if how == "reshuffled" else {"x": x, "y": y, "batch_size": 4}
model.fit(**data, epochs=3, verbose=0, callbacks=[replay_order_callback()] if how == "replay" else [])
print(json.dumps([seen[i:i + 12] for i in range(0, len(seen), 12)]))
"""


def orders(tmp_path, backend: str, how: str, seed: int = 0) -> list[list[int]]:
    probe = tmp_path / "probe.py"
    probe.write_text(PROBE)
    found = run(
        [sys.executable, str(probe), how, str(seed)], ROOT, env={"KERAS_BACKEND": backend, "PYTHONPATH": str(ROOT)}
    )
    epochs = json.loads(found.stdout.strip().splitlines()[-1])
    assert len(epochs) == 3 and all(sorted(epoch) == list(range(12)) for epoch in epochs)  # every image once an epoch
    assert epochs[0] != list(range(12))  # shuffled
    return epochs


@pytest.mark.parametrize(
    "backend, how, distinct",
    [
        ("tensorflow", "plain", 1),  # seeded Keras 3 on TensorFlow: the same permutation every epoch
        ("jax", "plain", 3),  # JAX: a new one before every epoch, as fit(shuffle=True) documents
        ("jax", "replay", 1),  # tools.run_variants --replay-order: one order replayed, as on TensorFlow
    ],
)
def test_which_backend_reshuffles_the_training_data_each_epoch(tmp_path, backend, how, distinct):
    assert len({tuple(epoch) for epoch in orders(tmp_path, backend, how)}) == distinct


@pytest.mark.parametrize("backend", ["tensorflow", "jax", "tf_keras"])
def test_every_unit_reshuffles_each_epoch_and_a_seed_repeats_its_orders(tmp_path, backend):
    first = orders(tmp_path, backend, "reshuffled")
    assert len({tuple(epoch) for epoch in first}) == 3  # a new order every epoch
    assert orders(tmp_path, backend, "reshuffled") == first  # the same seed, the same orders
    assert orders(tmp_path, backend, "reshuffled", seed=1) != first
