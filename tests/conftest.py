"""Shared fixtures: the tiny demo tokenizer and model (built once per session, locally) and helpers."""

import json
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from medtrain.demo import DEMO_CORPUS, ensure_demo_assets  # noqa: E402


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
    from medtrain.tokenization import load_tokenizer_spec

    return load_tokenizer_spec(demo_dir)


@pytest.fixture
def corpus_dir():
    return DEMO_CORPUS


def write_jsonl(path, texts, field="text"):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        for t in texts:
            fh.write(json.dumps({field: t}, ensure_ascii=False) + "\n")
    return str(path)


def write_text(path, content, mode="w"):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as fh:
        fh.write(content)
    return str(path)


def read_summary(output_dir):
    with open(os.path.join(output_dir, "run_summary.json")) as fh:
        return json.load(fh)
