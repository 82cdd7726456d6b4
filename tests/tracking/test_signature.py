"""The logged model's MLflow signature: multi-input models (seq2seq) name their tensors."""

import numpy as np

from seqlab.models import build_rnn_lm, build_transformer_seq2seq
from seqlab.tracking.run import TrackedRun, keras_signature, load_logged_model


def test_single_input_model_keeps_an_unnamed_tensor_spec():
    signature = keras_signature(build_rnn_lm(vocab_size=7, embedding_dim=4, hidden_size=4))
    (spec,) = signature.inputs.inputs
    assert spec.name is None and spec.shape == (-1, -1)


def test_a_two_input_seq2seq_model_is_logged_with_named_inputs_and_loads_back(tmp_path):
    model = build_transformer_seq2seq(source_vocab_size=12, target_vocab_size=12, d_model=8, num_heads=2,
                                      num_layers=1, ff_dim=8)
    signature = keras_signature(model)
    assert [s.name for s in signature.inputs.inputs] == ["source", "target_in"]
    with TrackedRun({"store_dir": str(tmp_path / "mlruns")}) as run:
        uri = run.log_model(model)
    restored = load_logged_model(uri)
    batch = {"source": np.array([[4, 5, 2, 0]], "int32"), "target_in": np.array([[1, 6, 7]], "int32")}
    np.testing.assert_allclose(restored(batch), model(batch), atol=1e-6)
