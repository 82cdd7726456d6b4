"""Attention heat maps of test translations, as a PNG (matplotlib's Agg canvas, no display).

For a model with attention (:func:`seqlab.models.rnn_seq2seq.attention_weights`
returns its weights; None for any other model) the first few test sentences
are run once more, teacher-forced on ``<bos>`` + the tokens the decoder
generated, so row ``i`` of a map is the attention ``alpha_i`` the decoder
spent producing output token ``i`` (the last row: the ``<eos>``). Columns are
the source pieces (and the source's ``<eos>``); every row sums to 1 over them.
The translation scoring (:mod:`seqlab.data.translation_scoring`) writes the file to
``<output_dir>/plots/`` and logs it under ``plots/``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from seqlab.data.pairs import BOS_ID, EOS_ID, PAD_ID, UNK_ID

ATTENTION_FILE = "test_attention.png"


def piece_labels(vocab, ids) -> list[str]:
    """A readable label per id: the piece's text (``<eos>``, ``<unk>`` for the specials)."""
    specials = {PAD_ID: "<pad>", BOS_ID: "<bos>", EOS_ID: "<eos>", UNK_ID: "<unk>"}
    return [specials.get(int(i)) or vocab.decode([int(i)]).strip() or "\u2423" for i in ids]


def plot_attention(maps: Sequence[np.ndarray], sources: Sequence[list[str]], targets: Sequence[list[str]],
                   path: str | Path, title: str = "attention of the decoder over the source") -> Path:
    """One heat map per sentence, side by side: ``maps[k]`` is ``[len(targets[k]), len(sources[k])]``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    widths = [max(len(s), 1) for s in sources]
    height = max(max(len(t) for t in targets), 1)
    fig = Figure(figsize=(min(4.0 + 0.35 * sum(widths), 40.0), 1.8 + 0.3 * height), dpi=100)
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(maps), squeeze=False, gridspec_kw={"width_ratios": widths})[0]
    image = None
    for ax, weights, src, tgt in zip(axes, maps, sources, targets, strict=True):
        image = ax.imshow(weights, cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
        ax.set_xticks(range(len(src)), src, rotation=90, fontsize=8)
        ax.set_yticks(range(len(tgt)), tgt, fontsize=8)
        ax.set_xlabel("source")
    axes[0].set_ylabel("generated")
    fig.colorbar(image, ax=list(axes), fraction=0.02, pad=0.02, label="attention weight")
    fig.suptitle(title)
    fig.savefig(path, format="png", bbox_inches="tight")
    return path


def attention_maps(model, sources: Sequence[np.ndarray], generated: Sequence[np.ndarray]):
    """``[T_k, S_k]`` weights per sentence (generated tokens + ``<eos>`` by source ids), or None
    when the model has no attention to show."""
    from seqlab.models.rnn_seq2seq import RnnSeq2SeqParts

    if RnnSeq2SeqParts.missing(model) is not None or RnnSeq2SeqParts.from_model(model).attention == "none":
        return None
    from seqlab.models.rnn_seq2seq import attention_weights

    sources = [np.asarray(s, np.int32).reshape(-1) for s in sources]
    generated = [np.asarray(g, np.int32).reshape(-1) for g in generated]
    source = np.full((len(sources), max(s.size for s in sources)), PAD_ID, np.int32)
    target_in = np.full((len(sources), max(g.size for g in generated) + 1), PAD_ID, np.int32)
    for k, (s, g) in enumerate(zip(sources, generated, strict=True)):
        source[k, : s.size] = s
        target_in[k, : g.size + 1] = [BOS_ID, *g]
    weights = np.asarray(attention_weights(model, source, target_in))
    return [weights[k, : g.size + 1, : s.size] for k, (s, g) in enumerate(zip(sources, generated, strict=True))]


def save_attention_maps(model, sources, generated, source_vocab, target_vocab, path: str | Path,
                        count: int = 3) -> Path | None:
    """The heat maps of the first ``count`` sentences as one PNG at ``path``; None if the model has no attention."""
    sources, generated = list(sources)[:count], list(generated)[:count]
    if not sources:
        return None
    maps = attention_maps(model, sources, generated)
    if maps is None:
        return None
    return plot_attention(
        maps,
        [piece_labels(source_vocab, s) for s in sources],
        [[*piece_labels(target_vocab, g), "<eos>"] for g in generated],
        path,
    )


__all__ = ["ATTENTION_FILE", "attention_maps", "piece_labels", "plot_attention", "save_attention_maps"]
