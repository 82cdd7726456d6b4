"""Text generation: greedy, temperature, top-k, top-p and beam search.

    from seqlab.generation import generate_text, next_token_distribution
    generate_text(model, tokenizer, "ROMEO:", max_new_tokens=200, strategy="top_p", top_p=0.9, seed=0)

Modules, one concept each:

- ``sampling``: option checks and logit processors (temperature, top-k, top-p)
  in ``keras.ops``; the seeded Gumbel-max draw;
- ``recurrent``: one-token steps of a model, state-carrying (``O(n)``) or the
  naive prefix re-run (``O(n^2)``);
- ``decode``: the compiled sampling loop (``tf.function`` + ``tf.while_loop``);
- ``beam``: compiled beam search with length penalty and end token;
- ``transformer``: the Transformer LM's one-token step through per-block KV caches;
- ``seq2seq``: greedy and beam decoding of encoder-decoder models (encode once,
  then a cached decoder step), and batched translation;
- ``api``: text-level functions over a tokenizer, the next-token view.
"""

from seqlab.generation.api import (
    BeamText,
    TokenProb,
    beam_search_text,
    encode_prompt,
    format_distribution,
    generate_text,
    generate_texts,
    next_token_distribution,
)
from seqlab.generation.beam import Hypothesis, beam_search
from seqlab.generation.decode import generate
from seqlab.generation.recurrent import PrefixStep, StatefulStep, make_step, stateful_support
from seqlab.generation.sampling import STRATEGIES, process_logits, resolve_sampling, sample_logits
from seqlab.generation.seq2seq import (
    FullRecompute,
    TransformerCachedStep,
    beam_decode,
    greedy_decode,
    make_seq2seq_step,
    register_seq2seq_step,
    translate,
)

__all__ = [
    "STRATEGIES",
    "BeamText",
    "FullRecompute",
    "Hypothesis",
    "PrefixStep",
    "StatefulStep",
    "TokenProb",
    "TransformerCachedStep",
    "beam_decode",
    "beam_search",
    "beam_search_text",
    "encode_prompt",
    "format_distribution",
    "generate",
    "generate_text",
    "generate_texts",
    "greedy_decode",
    "make_seq2seq_step",
    "make_step",
    "next_token_distribution",
    "process_logits",
    "register_seq2seq_step",
    "resolve_sampling",
    "sample_logits",
    "stateful_support",
    "translate",
]
