"""Shared fixtures: the tiny demo tokenizer and model (built once per session, locally).
Helpers live in `helpers/` (tests/ is on sys.path through this conftest)."""

import logging
import os

import pytest

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# One intra-op thread for the test process and every process it starts (set before torch is imported):
# the tiny demo model gains nothing from two, and two OpenMP threads on a busy 2-core machine thrash
# (a 30-step in-process run: 0.5 s on one thread, 11 s on two while another process holds a core).
# The launch helpers set the same for torchrun workers (helpers/launch.py).
os.environ.setdefault("OMP_NUM_THREADS", "1")
# the record of verified tokenizer backends (tokenizer_backends.verified_record): one per test session,
# shared with the processes it starts, never the user's ~/.cache/medtrain
if "MEDTRAIN_CACHE" not in os.environ:
    import tempfile

    os.environ["MEDTRAIN_CACHE"] = tempfile.mkdtemp(prefix="medtrain-test-cache-")

import torch  # noqa: E402

torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))

from medtrain.training.demo import DEMO_CORPUS, ensure_demo_assets  # noqa: E402


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: multi-process or long end-to-end tests (CI runs them too)")


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory):
    """The tiny Llama + BPE tokenizer of the demo, built once for the whole session."""
    return ensure_demo_assets(str(tmp_path_factory.mktemp("assets") / "demo"))


@pytest.fixture(scope="session")
def tokenizer(demo_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(demo_dir)


@pytest.fixture(scope="session")
def spec(demo_dir):
    """The demo tokenizer's spec, loaded the way the entry points load it."""
    from medtrain.data.tokenization import load_tokenizer_spec

    return load_tokenizer_spec(demo_dir)


@pytest.fixture
def corpus_dir():
    return DEMO_CORPUS


@pytest.fixture(autouse=True)
def _drop_medtrain_log_handlers():
    """Entry points add a stderr handler bound to the stream pytest captured for that test: remove it
    afterwards, so a later test does not log into a closed stream."""
    yield
    root = logging.getLogger()
    for h in list(root.handlers):
        if getattr(h, "_medtrain", False):
            root.removeHandler(h)
