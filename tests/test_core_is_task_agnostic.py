"""The core names no task: what a task adds comes in its data bundle.

tests/e2e/test_new_task.py shows a new task and model running through the
core; this guards the source against a task detail creeping back in.
"""

import inspect
import re

import seqlab.experiment

TASK_WORDS = re.compile(r"tokeniz|seq_len|stateful|sampler|hasattr", re.IGNORECASE)


def test_experiment_module_names_no_task_detail():
    source = inspect.getsource(seqlab.experiment)
    assert TASK_WORDS.findall(source) == []
