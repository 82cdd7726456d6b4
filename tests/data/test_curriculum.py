"""data.seq_len_schedule: each epoch's batches have the scheduled length, every
batch the same tokens, every epoch the same steps; bad schedules are clear errors."""

import keras
import numpy as np
import pytest

from seqlab.data.curriculum import (
    SeqLenCurriculum,
    check_seq_len_schedule,
    curriculum_dataset,
    epoch_variable,
)
from seqlab.errors import ConfigError
from seqlab.experiment import run
from tests.e2e.helpers import all_runs, compose_cfg, store_client

STAGES = [(0, 4), (1, 8), (3, 16)]
IDS = np.arange(1001, dtype=np.int32) % 97  # 1000 targets: 62 windows of 16 -> 16 steps of 4


@pytest.mark.parametrize("schedule, message", [
    ("32", "expected a non-empty list"),
    ([], "expected a non-empty list"),
    ([[0, 8], [1]], r"seq_len_schedule\[1\]=\[1\]: expected a pair of integers"),
    ([[0, 8.5]], "expected a pair of integers"),
    ([[1, 8]], "first stage must start at epoch 0"),
    ([[0, 8], [2, 16], [2, 32]], "epochs must increase"),
    ([[0, 0]], "seq_len 0 must be in 1..data.seq_len=32"),
    ([[0, 8], [1, 64]], "seq_len 64 must be in 1..data.seq_len=32"),
    ([[0, 5]], "seq_len 5 must divide the 128 tokens of a batch"),
])
def test_bad_schedules_name_the_entry_and_the_fix(schedule, message):
    with pytest.raises(ConfigError, match=message):
        check_seq_len_schedule(schedule, seq_len=32, batch_size=4)


def test_streams_refuse_a_schedule():
    with pytest.raises(ConfigError, match="needs data.batching=windows"):
        check_seq_len_schedule([[0, 8]], seq_len=32, batch_size=4, batching="streams")


def test_each_epoch_has_its_length_the_same_steps_and_tokens_per_batch():
    epoch = epoch_variable()
    dataset, steps = curriculum_dataset(IDS, STAGES, seq_len=16, batch_size=4, seed=0, epoch=epoch)
    assert steps == 16 and int(dataset.cardinality()) == 16
    orders = []
    for e, length in enumerate([4, 8, 8, 16, 16]):
        epoch.assign(e)
        batches = list(dataset.as_numpy_iterator())
        assert len(batches) == steps
        # every full batch holds batch_size x seq_len = 64 tokens; the last may be partial
        assert {x.shape for x, _ in batches[:-1]} == {(64 // length, length)}
        for x, y in batches:  # targets are the inputs shifted by one token
            np.testing.assert_array_equal(x[:, 1:], y[:, :-1])
        orders.append(np.concatenate([x[:, 0] for x, _ in batches]))
    # the two epochs at length 8 see different orders; a rerun the same ones
    assert not np.array_equal(orders[1], orders[2])
    epoch.assign(1)
    np.testing.assert_array_equal(np.concatenate([x[:, 0] for x, _ in dataset.as_numpy_iterator()]), orders[1])


class _ShapeModel(keras.Model):
    """Trains nothing; reports each batch's shape to the callbacks."""

    def train_step(self, data):
        x, _ = data
        shape = keras.ops.shape(x)
        return {"rows": keras.ops.cast(shape[0], "float32"), "length": keras.ops.cast(shape[1], "float32")}


class _Record(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.seen, self.logged = [], []

    def on_epoch_begin(self, epoch, logs=None):
        self.seen.append([])

    def on_train_batch_end(self, batch, logs=None):
        self.seen[-1].append((int(logs["rows"]), int(logs["length"])))

    def on_epoch_end(self, epoch, logs=None):
        self.logged.append(logs["seq_len"])


def test_fit_reads_each_epoch_at_its_scheduled_length():
    epoch = epoch_variable()
    dataset, steps = curriculum_dataset(IDS, STAGES, seq_len=16, batch_size=4, seed=0, epoch=epoch)
    model = _ShapeModel()
    model.compile()
    record = _Record()
    model.fit(dataset, epochs=4, callbacks=[SeqLenCurriculum(STAGES, epoch), record], shuffle=False, verbose=0)
    assert [len(batches) for batches in record.seen] == [steps] * 4
    assert [{s for s in batches[:-1]} for batches in record.seen] == [{(16, 4)}, {(8, 8)}, {(8, 8)}, {(4, 16)}]
    assert record.logged == [4.0, 8.0, 8.0, 16.0]


def test_a_schedule_with_fixed_steps_per_epoch_fails_before_training(tmp_path):
    with pytest.raises(ConfigError, match=r"trainer.steps_per_epoch=5 cannot be used with this data: "
                                          r"data.seq_len_schedule .*set trainer.steps_per_epoch=null"):
        run(compose_cfg(tmp_path, "data.seq_len_schedule=[[0,8],[1,32]]", "trainer.steps_per_epoch=5"),
            output_dir=tmp_path / "out")
    (r,) = all_runs(store_client(tmp_path))  # the run ends FAILED with the reason, nothing trained
    assert r.info.status == "FAILED" and "seq_len_schedule" in r.data.tags["failure_reason"]


@pytest.mark.slow
def test_a_curriculum_run_logs_its_lengths_and_counts_optimizer_steps(tmp_path, data_dir):
    # debug=tiny cut to 8,000 characters: windows of 32, batch 16, 16 steps per
    # epoch at every stage. The same run checks that trainer.remat=true trains
    # (one run for both keeps the suite's time; tests/training/test_remat.py
    # checks remat's gradients).
    cfg = compose_cfg(tmp_path, "data.seq_len_schedule=[[0,8],[1,32]]", "trainer.epochs=2",
                      "data.limit_chars=8000", "trainer.test=false", "trainer.remat=true",
                      "tracking.log_model=false")
    run(cfg, output_dir=tmp_path / "out")
    client = store_client(tmp_path)
    (r,) = all_runs(client)
    assert r.info.status == "FINISHED"
    assert r.data.params["trainer.remat"] == "True"
    history = {k: [(m.step, m.value) for m in client.get_metric_history(r.info.run_id, k)]
               for k in ("seq_len", "val_loss")}
    steps = int(r.data.params["trainer_info.steps_per_epoch"])
    assert history["seq_len"] == [(steps, 8.0), (2 * steps, 32.0)]
    assert [step for step, _ in history["val_loss"]] == [steps, 2 * steps]
