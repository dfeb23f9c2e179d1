"""Shared fixtures: the tiny demo tokenizer and model (built once per session, locally).
Helpers live in `helpers/` (tests/ is on sys.path through this conftest)."""

import logging
import os

import pytest

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

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
