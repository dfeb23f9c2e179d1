"""Helpers shared by every test module: writing input files, reading a run's summary.

    helpers          write_jsonl, write_text, read_summary (this file)
    helpers.launch   the real entry points under torchrun / run_pt.sh, in subprocesses
    helpers.sft      conversations in each input format, encoding files with a chat template
    helpers/fault_injection   fault injectors (kill at a step, slow builds) for subprocesses
"""

import json
import os

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DATA = os.path.join(ROOT, "data")


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
