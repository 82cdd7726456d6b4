"""The time loops: one step function run over the steps of a chunk.

``time_loop(step, out_like, compiled)`` builds a loop once; the recurrences
call it once per chunk. Inside a graph (``tf.function``) and with
``compiled=True`` the loop is its own XLA-compiled function: XLA fuses a
step's gate math into a few loops and drops the TF executor's per-op
dispatch, which at B 64 x H 512 costs as much as the step's matmul, while the
large matmuls outside the loops (input projection, weight gradients) keep
TF's oneDNN kernels. So a training step can stay in graph mode and still get
compiled recurrences (1.2x faster on the benchmark's CPU; see
``experiments/throughput/README.md``). Eagerly executed kernels keep plain
loops (an XLA function per eager call would recompile every time); under an
outer ``jit_compile=True`` the loop functions are simply inlined.
"""

from __future__ import annotations

import tensorflow as tf

#: Default of ``compile_loops`` in the kernels and in ``Recurrent`` (and
#: ``compile_loops:`` in conf/model/cell/*.yaml).
DEFAULT_COMPILE_LOOPS = True

# Plain Python control flow only: keep AutoGraph from rewriting the kernels
# when they are called inside a tf.function.
no_autograph = tf.autograph.experimental.do_not_convert


def num_steps(x):
    """The number of time steps of a time-major ``x``: static if known, else dynamic."""
    t = x.shape[0]
    return t if t is not None else tf.shape(x)[0]


def time_loop(step, out_like, compiled, reverse=False, prev=()):
    """A loop over the steps of one chunk, built once and called per chunk:
    ``loop(seqs, carry, initials=()) -> (carry, outs)``.

    ``seqs``: tensors [K, ...] read at each step, or None (a slot the step
    sees as None: an optional input such as the mask keeps its position);
    ``carry``: tuple of state tensors; ``out_like``: one example tensor
    (dtype, shape) per per-step output. ``step(reads, carry) -> (new_carry,
    outputs)`` gets ``reads``, step ``t`` of each of ``seqs``; the outputs
    come back stacked to [K, ...] (indexed by time, also when ``reverse``).

    ``prev``: indices ``k`` into ``seqs``; for each, ``reads`` gets one more
    element after the reads of ``seqs``: ``seqs[k][t - 1]``, or the matching
    entry of ``initials`` at ``t == 0`` (the value before the chunk). The
    backward loops read ``c_{t-1}`` (LSTM) and ``h_{t-1}`` (GRU) this way
    instead of from a shifted copy.

    ``compiled``: inside a graph, run the loop as one XLA-compiled function,
    shared by the chunks (they have the same shapes, so it compiles once);
    ``step``'s closure (weights, masks) is captured as its inputs. The
    recurrences pass the same setting to their forward and backward loops
    (the backward loop is traced later, by ``tape.gradient``).
    """

    def run(seqs, carry, initials):
        # the length is read here: under XLA it must be a compile-time
        # constant, which a dynamic length of the outer graph is not
        return _plain_loop(step, num_steps(seqs[0]), seqs, carry, out_like, reverse,
                           list(zip(prev, initials)))

    if compiled and not tf.executing_eagerly():
        run = tf.function(run, jit_compile=True, autograph=False)

    def loop(seqs, carry, initials=()):
        new_carry, outs = run(list(seqs), tuple(carry), list(initials))
        return tuple(new_carry), list(outs)

    return loop


def _plain_loop(step, n, seqs, carry, out_like, reverse, prev=()):
    """``tf.while_loop`` over ``n`` steps reading ``seqs`` through TensorArrays."""
    read_twice = {k for k, _ in prev}
    in_tas = [
        None if s is None else
        tf.TensorArray(s.dtype, size=n, element_shape=s.shape[1:],
                       clear_after_read=k not in read_twice).unstack(s)
        for k, s in enumerate(seqs)
    ]
    out_tas = [
        tf.TensorArray(o.dtype, size=n, element_shape=o.shape) for o in out_like
    ]

    def body(i, carry, tas):
        t = n - 1 - i if reverse else i
        reads = [None if ta is None else ta.read(t) for ta in in_tas]
        for k, x0 in prev:
            reads.append(tf.where(t > 0, in_tas[k].read(tf.maximum(t - 1, 0)), x0))
        new_carry, outs = step(reads, carry)
        tas = tuple(ta.write(t, o) for ta, o in zip(tas, outs))
        return i + 1, tuple(new_carry), tas

    _, carry, out_tas = tf.while_loop(
        lambda i, *_: i < n,
        body,
        (tf.constant(0, tf.int32), tuple(carry), tuple(out_tas)),
        maximum_iterations=n,
    )
    return carry, [ta.stack() for ta in out_tas]
