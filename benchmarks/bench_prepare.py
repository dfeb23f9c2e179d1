#!/usr/bin/env python
"""Benchmark of the prepare path (the token store) against the tokenizer's ceiling and the usual
`datasets.map` pipeline, on one corpus.

    python benchmarks/make_corpus.py --size 100MB --out /tmp/medtrain-bench/corpus-100MB
    python benchmarks/tokenizer.py --corpus /tmp/medtrain-bench/corpus-100MB --out /tmp/medtrain-bench/tokenizer
    python benchmarks/bench_prepare.py --corpus /tmp/medtrain-bench/corpus-100MB \
        --tokenizer /tmp/medtrain-bench/tokenizer --work /tmp/medtrain-bench/work-100MB

Every approach runs in its own fresh subprocess (this script again, with --worker), so its memory is
its own. The timed section starts after the approach's imports (each worker imports what it needs,
then starts its clock) and ends when its output is complete; the subprocess's whole wall time is
reported too. Memory: the process tree (the worker and all its descendants) is sampled every 50 ms
with psutil, summing RSS (shared pages of forked workers counted once per process) and PSS (shared
pages split: the real total; sampled every 200 ms, as reading smaps costs more); ru_maxrss is the largest single process (from wait4 on the worker).
CPU time is user+system of the whole tree, from wait4.

Approaches (--approaches, comma-separated; default all):
  ceiling        tokenizers.Tokenizer.encode_batch (TOKENIZERS_PARALLELISM=true, 1000 documents per
                 batch) over every document, reading the files as it goes; nothing else
  ceiling_fast   the same with encode_batch_fast (no offsets; what medtrain calls when it exists)
  baseline       datasets.load_dataset("text"/"json") + .map(tokenize, batched, num_proc=2) +
                 .map(group_texts, batched, num_proc=2), block_size 1024: run_clm.py / MedicalGPT,
                 with a fresh HF datasets cache under --work
  ours           prepare_data.py --num_proc 2 into a fresh --output_dir (1 rank)
  second_run     pretraining.py on that store with a tiny Llama (--max_steps 1): seconds from the start
                 of run() to the first training step (on_step_begin), the block index not yet cached
  second_run_warm  the same again (block index cached in the store)
  ours_2ranks    torchrun --nproc_per_node 2 prepare_data.py --num_proc 1 into a fresh --output_dir
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
ALL = ["ceiling", "ceiling_fast", "baseline", "ours", "second_run", "second_run_warm", "ours_2ranks"]
BLOCK_SIZE = 1024
BATCH_DOCS = 1000


# ===================================================================================================
# workers (each runs in its own subprocess; imports first, then the clock starts)
# ===================================================================================================
def _corpus_files(corpus: str) -> dict:
    sys.path.insert(0, HERE)
    from make_corpus import data_files

    return data_files(corpus)


def _finish(spec: dict, t0: float, cpu0: float, **extra) -> None:
    import resource

    t1 = time.time()
    ru = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    rank = os.environ.get("RANK")
    out = {"seconds": t1 - t0, "t_start": t0, "t_end": t1, "cpu_import_seconds": cpu0,
           "cpu_seconds_after_import": ru.ru_utime + ru.ru_stime + kids.ru_utime + kids.ru_stime - cpu0,
           "ru_maxrss_mb_self": ru.ru_maxrss / 1024, "ru_maxrss_mb_children": kids.ru_maxrss / 1024, **extra}
    path = spec["result"] + (f".rank{rank}" if rank is not None else "")
    with open(path, "w") as fh:
        json.dump(out, fh)


def _cpu_now() -> float:
    import resource

    ru = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime + kids.ru_utime + kids.ru_stime


def worker_ceiling(spec: dict, fast: bool = False) -> None:
    os.environ["TOKENIZERS_PARALLELISM"] = "true"
    import json as _json

    from tokenizers import Tokenizer

    files = _corpus_files(spec["corpus"])
    cpu0, t0 = _cpu_now(), time.time()
    tok = Tokenizer.from_file(os.path.join(spec["tokenizer"], "tokenizer.json"))
    encode = tok.encode_batch_fast if fast else tok.encode_batch
    n_tokens = n_docs = 0
    loads = _json.loads
    for path in files["txt"] + files["jsonl"]:
        is_json = path.endswith(".jsonl")
        batch: list = []
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                batch.append(loads(line)["text"] if is_json else line.rstrip("\n"))
                if len(batch) >= BATCH_DOCS:
                    n_tokens += sum(map(len, encode(batch, add_special_tokens=False)))
                    n_docs += len(batch)
                    batch = []
        if batch:
            n_tokens += sum(map(len, encode(batch, add_special_tokens=False)))
            n_docs += len(batch)
    _finish(spec, t0, cpu0, tokens=n_tokens, documents=n_docs)


def _tokenize_function(examples):  # run_clm.py / MedicalGPT: tokenizer(examples["text"])
    return _TOKENIZER(examples["text"])


def _group_texts(examples):  # run_clm.py's group_texts, block_size 1024
    from itertools import chain

    concatenated = {k: list(chain(*examples[k])) for k in examples.keys()}
    total_length = len(concatenated[list(examples.keys())[0]])
    total_length = (total_length // BLOCK_SIZE) * BLOCK_SIZE
    result = {k: [t[i: i + BLOCK_SIZE] for i in range(0, total_length, BLOCK_SIZE)]
              for k, t in concatenated.items()}
    result["labels"] = result["input_ids"].copy()
    return result


_TOKENIZER = None


def worker_baseline(spec: dict) -> None:
    global _TOKENIZER
    os.environ["HF_DATASETS_CACHE"] = spec["hf_cache"]
    import datasets
    import pyarrow.compute as pc
    from datasets import concatenate_datasets, load_dataset
    from transformers import AutoTokenizer

    datasets.disable_progress_bars()
    files = _corpus_files(spec["corpus"])
    cpu0, t0 = _cpu_now(), time.time()
    _TOKENIZER = AutoTokenizer.from_pretrained(spec["tokenizer"])
    parts = []
    if files["txt"]:
        parts.append(load_dataset("text", data_files={"train": files["txt"]}, cache_dir=spec["hf_cache"])["train"])
    if files["jsonl"]:
        parts.append(load_dataset("json", data_files={"train": files["jsonl"]}, cache_dir=spec["hf_cache"])["train"])
    raw = concatenate_datasets(parts) if len(parts) > 1 else parts[0]
    tokenized = raw.map(_tokenize_function, batched=True, num_proc=2, remove_columns=raw.column_names,
                        desc="Running tokenizer on dataset")
    lm = tokenized.map(_group_texts, batched=True, num_proc=2, desc=f"Grouping texts in chunks of {BLOCK_SIZE}")
    t_done = time.time()
    # counted after the clock: tokens of the tokenized documents and the blocks
    n_tokens = int(pc.sum(pc.list_value_length(tokenized.data.column("input_ids"))).as_py())
    _finish(spec, t0, cpu0, tokens=n_tokens, documents=raw.num_rows, blocks=lm.num_rows,
            seconds_override=t_done - t0)


def _medtrain_imports() -> None:
    """What prepare_data.py loads for sure. Anything else the prepare path imports (lazily) is counted
    in its time and memory: it is part of its cost. (Importing more here, e.g. torch, would charge
    ours for memory it may not need.)"""
    sys.path.insert(0, REPO)
    import numpy  # noqa: F401
    import tokenizers  # noqa: F401

    import medtrain.cli.prepare  # noqa: F401
    import medtrain.data.token_store  # noqa: F401
    import medtrain.data.tokenization  # noqa: F401


def worker_ours(spec: dict) -> None:
    """What `python prepare_data.py ARGS` runs (prepare_data.py is `sys.exit(medtrain.prepare.main())`),
    with the clock started after the imports."""
    _medtrain_imports()
    import medtrain.cli.prepare

    cpu0, t0 = _cpu_now(), time.time()
    rc = medtrain.prepare.main(spec["argv"])
    if rc:
        raise SystemExit(rc)
    _finish(spec, t0, cpu0)


def worker_second_run(spec: dict) -> None:
    sys.path.insert(0, REPO)
    import torch  # noqa: F401
    import transformers
    from transformers import TrainerCallback

    import medtrain.cli.pretrain
    import medtrain.training.runner  # noqa: F401
    import medtrain.training.trainer

    marks: dict = {}

    class FirstStep(TrainerCallback):
        def on_train_begin(self, args, state, control, **kw):
            marks.setdefault("train_begin", time.time())

        def on_step_begin(self, args, state, control, **kw):
            marks.setdefault("first_step", time.time())

    original = medtrain.trainer.MedTrainer.__init__

    def patched(self, *a, **kw):
        marks.setdefault("trainer_init", time.time())
        original(self, *a, **kw)
        self.add_callback(FirstStep())

    medtrain.trainer.MedTrainer.__init__ = patched
    transformers.utils.logging.set_verbosity_warning()
    cpu0, t0 = _cpu_now(), time.time()
    medtrain.pretrain.run(spec["argv"])
    _finish(spec, t0, cpu0, to_first_step=marks["first_step"] - t0,
            to_trainer_init=marks["trainer_init"] - t0, to_train_begin=marks["train_begin"] - t0)


WORKERS = {"ceiling": worker_ceiling, "ceiling_fast": lambda s: worker_ceiling(s, fast=True),
           "baseline": worker_baseline, "ours": worker_ours, "second_run": worker_second_run,
           "second_run_warm": worker_second_run}


# ===================================================================================================
# the driver: one subprocess per approach, its tree sampled every 50 ms
# ===================================================================================================
class TreeSampler(threading.Thread):
    """Peak of the summed RSS and PSS of a process and all its descendants, sampled every `interval` s."""

    def __init__(self, pid: int, interval: float = 0.05):
        super().__init__(daemon=True)
        import psutil

        self.psutil = psutil
        self.root = psutil.Process(pid)
        self.interval = interval
        self.peak_rss = self.peak_pss = 0
        self.max_procs = 0
        self.samples = 0
        self.stop = threading.Event()

    @staticmethod
    def _pss(pid: int) -> int:
        try:  # smaps_rollup: cheap, one line per field
            with open(f"/proc/{pid}/smaps_rollup") as fh:
                for line in fh:
                    if line.startswith("Pss:"):
                        return int(line.split()[1]) * 1024
        except OSError:
            pass
        return 0

    def run(self):
        ps = self.psutil
        while not self.stop.is_set():
            try:
                procs = [self.root] + self.root.children(recursive=True)
            except ps.Error:
                break
            rss = pss = 0
            with_pss = self.samples % 4 == 0  # smaps_rollup costs more: every 4th sample (200 ms)
            for p in procs:
                try:
                    rss += p.memory_info().rss
                    pss += self._pss(p.pid) if with_pss else 0
                except ps.Error:
                    pass
            self.peak_rss = max(self.peak_rss, rss)
            self.peak_pss = max(self.peak_pss, pss)
            self.max_procs = max(self.max_procs, len(procs))
            self.samples += 1
            self.stop.wait(self.interval)


def _machine_busy_seconds() -> float:
    """CPU seconds spent busy by the whole machine so far (/proc/stat: all but idle and iowait)."""
    with open("/proc/stat") as fh:
        v = [int(x) for x in fh.readline().split()[1:]]
    return (sum(v[:8]) - v[3] - v[4]) / os.sysconf("SC_CLK_TCK")


def run_measured(cmd: list[str], env: dict, log_path: str) -> dict:
    """Run `cmd`; wall time, tree memory peaks, and rusage (wait4) of the whole tree. Also the CPU
    time other processes of the machine used meanwhile (the benchmark does not own the machine)."""
    busy0, load0 = _machine_busy_seconds(), os.getloadavg()[0]
    t0 = time.time()
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
        sampler = TreeSampler(proc.pid)
        sampler.start()
        _, status, ru = os.wait4(proc.pid, 0)
        wall = time.time() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        sampler.stop.set()
        sampler.join()
    other = max(0.0, _machine_busy_seconds() - busy0 - (ru.ru_utime + ru.ru_stime))
    return {"returncode": proc.returncode, "process_wall_seconds": wall,
            "other_processes_cpu_seconds": other, "other_processes_cores": other / wall,
            "loadavg_start_end": [load0, os.getloadavg()[0]],
            "peak_tree_rss_mb": sampler.peak_rss / 2**20, "peak_tree_pss_mb": sampler.peak_pss / 2**20,
            "ru_maxrss_mb": ru.ru_maxrss / 1024, "tree_cpu_seconds": ru.ru_utime + ru.ru_stime,
            "max_processes": sampler.max_procs, "memory_samples": sampler.samples, "log": log_path}


def _fresh(path: str) -> str:
    if os.path.exists(path):
        shutil.rmtree(path)
    return path


def _worker_cmd(name: str, spec_path: str) -> list[str]:
    return [sys.executable, os.path.abspath(__file__), "--worker", name, "--spec", spec_path]


def run_approach(name: str, args, work: str, corpus_bytes: int) -> dict:
    env = dict(os.environ)
    env.pop("TOKENIZERS_PARALLELISM", None)
    env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
    result_path = os.path.join(work, f"{name}.result.json")
    for stale in [result_path] + [f"{result_path}.rank{r}" for r in range(8)]:
        if os.path.exists(stale):
            os.remove(stale)
    spec = {"corpus": os.path.abspath(args.corpus), "tokenizer": os.path.abspath(args.tokenizer),
            "result": result_path}
    store = os.path.join(work, "store")
    cmd = None
    if name == "baseline":
        spec["hf_cache"] = _fresh(os.path.join(work, "hf_cache"))
        os.makedirs(spec["hf_cache"])
        env["HF_DATASETS_CACHE"] = spec["hf_cache"]
    elif name == "ours":
        _fresh(store)
        spec["argv"] = ["--tokenizer_name_or_path", spec["tokenizer"], "--train_file_dir", spec["corpus"],
                        "--output_dir", store, "--num_proc", "2"]
    elif name == "ours_2ranks":
        spec["argv"] = ["--tokenizer_name_or_path", spec["tokenizer"], "--train_file_dir", spec["corpus"],
                        "--output_dir", _fresh(os.path.join(work, "store-2ranks")), "--num_proc", "1"]
        spec_path = os.path.join(work, f"{name}.spec.json")
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
               str(29500 + os.getpid() % 1000), os.path.abspath(__file__), "--worker", "ours", "--spec", spec_path]
    elif name in ("second_run", "second_run_warm"):
        if not os.path.exists(os.path.join(store, "manifest.json")):
            raise SystemExit(f"{name} needs the store of 'ours' in {store}: run 'ours' first")
        if name == "second_run":
            shutil.rmtree(os.path.join(store, "packing"), ignore_errors=True)  # nothing cached by a previous run
        spec["argv"] = ["--model_name_or_path", ensure_tiny_model(args, work), "--tokenizer_name_or_path",
                        spec["tokenizer"], "--train_file_dir", store, "--max_steps", "1",
                        "--block_size", str(BLOCK_SIZE), "--per_device_train_batch_size", "1",
                        "--max_eval_samples", "4", "--save_strategy", "no", "--logging_steps", "1",
                        "--output_dir", _fresh(os.path.join(work, f"pt-{name}"))]
    spec_path = os.path.join(work, f"{name}.spec.json")
    with open(spec_path, "w") as fh:
        json.dump(spec, fh)
    cmd = cmd or _worker_cmd(name, spec_path)
    print(f"[{time.strftime('%H:%M:%S')}] {name}: {' '.join(cmd)}", flush=True)
    m = run_measured(cmd, env, os.path.join(work, f"{name}.log"))
    if m["returncode"] != 0:
        raise SystemExit(f"{name} failed (exit {m['returncode']}); see {m['log']}:\n" +
                         open(m["log"]).read()[-3000:])
    res = {"approach": name, "command": cmd, "spec": spec, **m}
    if name == "ours_2ranks":
        ranks = [json.load(open(f"{result_path}.rank{r}")) for r in range(2)]
        res["ranks_worker"] = ranks
        res["seconds"] = max(r["t_end"] for r in ranks) - min(r["t_start"] for r in ranks)
        res["cpu_import_seconds"] = sum(r["cpu_import_seconds"] for r in ranks)
    else:
        r = json.load(open(result_path))
        res.update(r)
        if "seconds_override" in r:
            res["seconds"] = r.pop("seconds_override")
            res.pop("seconds_override", None)
    if name in ("ours", "ours_2ranks"):
        with open(os.path.join(spec["argv"][5], "manifest.json")) as fh:
            man = json.load(fh)
        res.update(tokens=man["tokens"], documents=man["documents"], manifest_ranks=man.get("ranks", []),
                   manifest_wall_seconds=man.get("wall_seconds"),
                   manifest_worker_seconds=man.get("worker_seconds"),
                   peak_rss_mb_per_worker=man.get("peak_rss_mb_per_worker"),
                   store_bytes=sum(os.path.getsize(os.path.join(dp, f))
                                   for dp, _, fs in os.walk(spec["argv"][5]) for f in fs))
        res["manifest_cpu_seconds_total"] = sum(r.get("cpu_seconds", 0) for r in res["manifest_ranks"])
    if name == "ours_2ranks":
        res["cpu_seconds_after_import"] = sum(r["cpu_seconds_after_import"] for r in res["ranks_worker"])
    if "tokens" in res and res.get("cpu_seconds_after_import"):
        res["mb_per_cpu_s"] = corpus_bytes / 1e6 / res["cpu_seconds_after_import"]
    if "tokens" in res and res.get("seconds"):
        res["mb_per_s"] = corpus_bytes / 1e6 / res["seconds"]
        res["tokens_per_s"] = res["tokens"] / res["seconds"]
    return res


def ensure_tiny_model(args, work: str) -> str:
    path = os.path.join(work, "tiny-llama")
    if not os.path.exists(os.path.join(path, "config.json")):
        code = ("import sys; sys.path.insert(0, %r); from transformers import AutoTokenizer; "
                "from medtrain.training.demo import build_model; tok = AutoTokenizer.from_pretrained(%r); "
                "build_model(%r, len(tok), bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, "
                "pad_token_id=tok.pad_token_id)" % (REPO, os.path.abspath(args.tokenizer), path))
        subprocess.run([sys.executable, "-c", code], check=True)
    return path


# ===================================================================================================
# report
# ===================================================================================================
def summarize(results: dict, corpus_bytes: int) -> dict:
    g = lambda a, k: results.get(a, {}).get(k)  # noqa: E731
    s: dict = {}

    def ratio(name, a, b):
        if a is not None and b:
            s[name] = a / b

    ratio("ours_over_ceiling_throughput", g("ours", "mb_per_s"), g("ceiling", "mb_per_s"))
    ratio("ours_over_ceiling_fast_throughput", g("ours", "mb_per_s"), g("ceiling_fast", "mb_per_s"))
    ratio("ours_over_baseline_throughput", g("ours", "mb_per_s"), g("baseline", "mb_per_s"))
    # the same per CPU second (robust when other processes share the machine)
    ratio("ours_over_ceiling_cpu_efficiency", g("ours", "mb_per_cpu_s"), g("ceiling", "mb_per_cpu_s"))
    ratio("ours_over_ceiling_fast_cpu_efficiency", g("ours", "mb_per_cpu_s"), g("ceiling_fast", "mb_per_cpu_s"))
    ratio("ours_over_baseline_cpu_efficiency", g("ours", "mb_per_cpu_s"), g("baseline", "mb_per_cpu_s"))
    ratio("ours_over_baseline_peak_pss", g("ours", "peak_tree_pss_mb"), g("baseline", "peak_tree_pss_mb"))
    ratio("ours_over_baseline_peak_rss", g("ours", "peak_tree_rss_mb"), g("baseline", "peak_tree_rss_mb"))
    if "ours_2ranks" in results and "ours" in results:
        two, one = results["ours_2ranks"], results["ours"]
        ratio("two_ranks_over_one_cpu_manifest", two.get("manifest_cpu_seconds_total"),
              one.get("manifest_cpu_seconds_total"))
        ratio("two_ranks_over_one_cpu_tree", two.get("tree_cpu_seconds"), one.get("tree_cpu_seconds"))
        ratio("two_ranks_over_one_cpu_after_import",
              sum(r["cpu_seconds_after_import"] for r in two["ranks_worker"]), one.get("cpu_seconds_after_import"))
    for name in ("second_run", "second_run_warm"):
        if name in results:
            s[f"{name}_to_first_step_s"] = results[name]["to_first_step"]
    targets = {}
    if "ours_over_ceiling_throughput" in s:
        targets["throughput >= 0.9 x ceiling"] = s["ours_over_ceiling_throughput"] >= 0.9
    if "ours_over_ceiling_fast_throughput" in s:
        targets["throughput >= 0.9 x ceiling_fast"] = s["ours_over_ceiling_fast_throughput"] >= 0.9
    if "ours_over_ceiling_cpu_efficiency" in s:
        targets["MB per CPU-second >= 0.9 x ceiling"] = s["ours_over_ceiling_cpu_efficiency"] >= 0.9
    if "ours_over_ceiling_fast_cpu_efficiency" in s:
        targets["MB per CPU-second >= 0.9 x ceiling_fast"] = s["ours_over_ceiling_fast_cpu_efficiency"] >= 0.9
    if "ours_over_baseline_peak_pss" in s:
        targets["peak memory <= 1/3 of baseline (PSS)"] = s["ours_over_baseline_peak_pss"] <= 1 / 3
        targets["peak memory <= 1/3 of baseline (RSS sum)"] = s["ours_over_baseline_peak_rss"] <= 1 / 3
    if "second_run_to_first_step_s" in s:
        targets["second run first step < 3 s"] = s["second_run_to_first_step_s"] < 3
    if "two_ranks_over_one_cpu_manifest" in s:
        targets["2 ranks CPU <= 1.15 x 1 rank (manifest cpu_seconds)"] = s["two_ranks_over_one_cpu_manifest"] <= 1.15
        targets["2 ranks CPU <= 1.15 x 1 rank (process tree)"] = s["two_ranks_over_one_cpu_tree"] <= 1.15
    s["targets"] = targets
    return s


def table(results: dict, corpus_bytes: int) -> str:
    head = ("| approach | seconds (after imports) | process wall s | MB/s | tokens/s | tokens | CPU s after imports | "
            "MB per CPU-s | peak tree PSS MB | peak tree RSS MB | ru_maxrss MB | CPU s (tree) | other load (cores) |")
    rows = [head, "|" + "---|" * (head.count("|") - 1)]
    for name in ALL:
        r = results.get(name)
        if not r:
            continue
        secs = r.get("to_first_step") if name.startswith("second_run") else r.get("seconds")
        label = name + (" (to first step)" if name.startswith("second_run") else "")
        f = lambda v, fmt: (fmt % v) if isinstance(v, (int, float)) else "-"  # noqa: E731
        rows.append(f"| {label} | {f(secs, '%.2f')} | {f(r.get('process_wall_seconds'), '%.1f')} | "
                    f"{f(r.get('mb_per_s'), '%.2f')} | {f(r.get('tokens_per_s'), '%.0f')} | "
                    f"{f(r.get('tokens'), '%d')} | {f(r.get('cpu_seconds_after_import'), '%.1f')} | "
                    f"{f(r.get('mb_per_cpu_s'), '%.2f')} | {f(r.get('peak_tree_pss_mb'), '%.0f')} | "
                    f"{f(r.get('peak_tree_rss_mb'), '%.0f')} | {f(r.get('ru_maxrss_mb'), '%.0f')} | "
                    f"{f(r.get('tree_cpu_seconds'), '%.1f')} | {f(r.get('other_processes_cores'), '%.2f')} |")
    return "\n".join(rows)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", help="corpus directory (make_corpus.py)")
    ap.add_argument("--tokenizer", help="tokenizer directory (tokenizer.py)")
    ap.add_argument("--work", default=None, help="scratch + results directory (default: <corpus>-work)")
    ap.add_argument("--approaches", default=",".join(ALL), help=f"comma-separated subset of {','.join(ALL)}")
    ap.add_argument("--report", metavar="RESULTS_JSON", help="only print the table and summary of a results.json")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--spec", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        with open(args.spec) as fh:
            WORKERS[args.worker](json.load(fh))
        return 0
    if args.report:
        with open(args.report) as fh:
            data = json.load(fh)
        results, nbytes = data["results"], data["corpus_bytes"]
        for name, r in results.items():  # derived fields (for results written by older versions)
            if name == "ours_2ranks" and "ranks_worker" in r:
                r["cpu_seconds_after_import"] = sum(w["cpu_seconds_after_import"] for w in r["ranks_worker"])
            if "tokens" in r and r.get("cpu_seconds_after_import"):
                r["mb_per_cpu_s"] = nbytes / 1e6 / r["cpu_seconds_after_import"]
        print(f"corpus {data['corpus']}: {nbytes / 1e6:.1f} MB; machine {data['machine']}")
        print(table(results, nbytes))
        print(json.dumps(summarize(results, nbytes), indent=1))
        return 0
    if not (args.corpus and args.tokenizer):
        ap.error("--corpus and --tokenizer are required")
    work = os.path.abspath(args.work or args.corpus.rstrip("/") + "-work")
    os.makedirs(work, exist_ok=True)
    files = _corpus_files(args.corpus)
    corpus_bytes = sum(os.path.getsize(p) for p in files["txt"] + files["jsonl"])
    chosen = [a.strip() for a in args.approaches.split(",") if a.strip()]
    unknown = set(chosen) - set(ALL)
    if unknown:
        ap.error(f"unknown approaches {sorted(unknown)}")
    out_path = os.path.join(work, "results.json")
    results: dict = {}
    if os.path.exists(out_path):  # keep earlier approaches' numbers when rerunning a subset
        with open(out_path) as fh:
            results = json.load(fh).get("results", {})
    import platform

    import psutil

    machine = {"cpus": os.cpu_count(), "affinity": len(os.sched_getaffinity(0)),
               "memory_gib": round(psutil.virtual_memory().total / 2**30, 1), "platform": platform.platform(),
               "python": platform.python_version()}
    for name in [a for a in ALL if a in chosen]:
        results[name] = run_approach(name, args, work, corpus_bytes)
        r = results[name]
        print(f"    {name}: {r.get('to_first_step', r.get('seconds')):.2f} s, peak PSS {r['peak_tree_pss_mb']:.0f} MB, "
              f"RSS {r['peak_tree_rss_mb']:.0f} MB, CPU {r['tree_cpu_seconds']:.1f} s", flush=True)
        with open(out_path, "w") as fh:
            json.dump({"corpus": os.path.abspath(args.corpus), "corpus_bytes": corpus_bytes, "machine": machine,
                       "results": results, "summary": summarize(results, corpus_bytes)}, fh, indent=1)
    summary = summarize(results, corpus_bytes)
    with open(out_path, "w") as fh:
        json.dump({"corpus": os.path.abspath(args.corpus), "corpus_bytes": corpus_bytes, "machine": machine,
                   "results": results, "summary": summary}, fh, indent=1)
    print(f"\ncorpus {args.corpus}: {corpus_bytes / 1e6:.1f} MB; machine {machine}")
    print(table(results, corpus_bytes))
    print(json.dumps({k: v for k, v in summary.items()}, indent=1))
    print(f"results: {out_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
