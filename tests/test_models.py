"""stages.models.reshuffled: every unit's training data is reshuffled before every epoch, as the
posts' Keras did, on TensorFlow (which replays one order once seeded) and on JAX, and a seed
gives the same orders again."""

import json
import sys
from pathlib import Path

import pytest

from tests.conftest import run

ROOT = Path(__file__).resolve().parents[1]
PROBE = r'''
import json, sys
import numpy as np, keras
from stages.models import reshuffled, seed_everything

seed = int(sys.argv[1])
seed_everything(seed)
seen = []


class Note(keras.layers.Layer):
    def call(self, x, training=None):  # eager (run_eagerly): note the images of each training batch
        if training:
            seen.extend(np.asarray(x)[:, 0].astype(int).tolist())
        return x


model = keras.Sequential([keras.Input((1,)), Note(), keras.layers.Dense(1)])
model.compile(optimizer="sgd", loss="mse", run_eagerly=True)
x = np.arange(12, dtype="float32").reshape(12, 1)
model.fit(**reshuffled(x, np.zeros((12, 1), "float32"), 4, seed), epochs=3, verbose=0)
print(json.dumps([seen[i:i + 12] for i in range(0, len(seen), 12)]))
'''


def orders(tmp_path, backend: str, seed: int) -> list[list[int]]:
    probe = tmp_path / "probe.py"
    probe.write_text(PROBE)
    found = run([sys.executable, str(probe), str(seed)], ROOT, env={"KERAS_BACKEND": backend, "PYTHONPATH": str(ROOT)})
    return json.loads(found.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("backend", ["tensorflow", "jax"])
def test_every_epoch_is_reshuffled_and_a_seed_repeats_its_orders(tmp_path, backend):
    first = orders(tmp_path, backend, 0)
    assert len(first) == 3 and all(sorted(epoch) == list(range(12)) for epoch in first)  # every image once an epoch
    assert len({tuple(epoch) for epoch in first}) == 3  # a new order every epoch
    assert orders(tmp_path, backend, 0) == first  # the same seed, the same orders
    assert orders(tmp_path, backend, 1) != first
