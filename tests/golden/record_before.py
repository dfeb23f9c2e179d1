"""Record reference values with the code BEFORE the restructuring (run once, from the old checkout)."""
import hashlib, json, os, sys, tempfile
import numpy as np
root = sys.argv[1]; sys.path.insert(0, root)
os.environ["TOKENIZERS_PARALLELISM"] = "false"
import torch; torch.set_num_threads(1)
from medtrain.demo import DEMO_CORPUS, ensure_demo_assets
from medtrain.tokenization import load_tokenizer_spec
from medtrain.sources import find_files
from medtrain.token_store import StoreBuilder, TokenCorpus
from medtrain.streaming import StreamingBlocks

def sha(*arrays):
    h = hashlib.sha256()
    for a in arrays: h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()

tmp = tempfile.mkdtemp()
demo = ensure_demo_assets(os.path.join(tmp, "demo"))
spec = load_tokenizer_spec(demo)
out = {"tokenizer_json_sha": hashlib.sha256(spec.tokenizer_json.encode()).hexdigest()}
store = StoreBuilder(find_files([DEMO_CORPUS]), spec, os.path.join(tmp, "c"), show_progress=False).ensure()
m = json.load(open(os.path.join(store, "manifest.json")))
out["store_units"] = {}
for u in m["units"]:
    base = os.path.join(store, "units", f"{u['unit']:05d}")
    out["store_units"][u["source"] + f":{u['start']}"] = {
        "tokens": hashlib.sha256(open(base + ".tokens", "rb").read()).hexdigest(),
        "docs": sha(np.load(base + ".docs.npy")), "keys": sha(np.load(base + ".keys.npy"))}
out["documents"], out["tokens"] = m["documents"], m["tokens"]
def stream_hashes(store, man, with_mask=False):
    """The store's content whatever its unit plan: token bytes, document lengths and keys, in order."""
    h = {k: hashlib.sha256() for k in (["tokens", "lengths", "keys"] + (["mask"] if with_mask else []))}
    for u in man["units"]:
        base = os.path.join(store, "units", f"{u['unit']:05d}")
        h["tokens"].update(open(base + ".tokens", "rb").read())
        h["lengths"].update(np.diff(np.load(base + ".docs.npy")).astype(np.int64).tobytes())
        h["keys"].update(np.load(base + ".keys.npy").astype(np.uint32).tobytes())
        if with_mask:
            h["mask"].update(open(base + ".mask", "rb").read())
    return {k: v.hexdigest() for k, v in h.items()}
out["store_stream"] = stream_hashes(store, m)
corpus = TokenCorpus([store])
out["blocks"] = {}
for strategy in ("concat", "group_by_text", "best_fit", "none"):
    for split, hold in (("all", 0.0), ("train", 5.0), ("eval", 5.0)):
        idx = corpus.blocks(64, strategy, True, split, hold)
        rows = sha(*[corpus.block_tokens(idx, b)["input_ids"] for b in range(idx.n_blocks)])
        out["blocks"][f"{strategy}/{split}"] = {"n_blocks": idx.n_blocks, "index": sha(idx.piece_doc, idx.piece_start, idx.piece_len, idx.block_ptr), "rows": rows}
# streaming, one reader, no shuffle: rows hashed
for strategy in ("concat", "group_by_text"):
    s = StreamingBlocks(find_files([DEMO_CORPUS]), spec, 64, strategy, loop=False)
    rows = [r["input_ids"] for r in s.rows()]
    out["blocks"][f"streaming/{strategy}"] = {"n_blocks": len(rows), "rows": sha(*rows)}
# losses through the entry points
from medtrain.pretrain import main as pt_main
def pt(name, *extra):
    o = os.path.join(tmp, name)
    rc = pt_main(["--model_name_or_path", demo, "--cache_dir", os.path.join(tmp, "cache"), "--output_dir", o,
                  "--block_size", "64", "--per_device_train_batch_size", "4", "--learning_rate", "3e-3",
                  "--logging_steps", "1", "--save_strategy", "no", "--num_proc", "1", "--seed", "7",
                  "--report_to", "none", "--max_steps", "6", *extra])
    assert rc == 0
    st = json.load(open(os.path.join(o, "trainer_state.json")))
    return {h["step"]: h["loss"] for h in st["log_history"] if "loss" in h}
out["losses"] = {"pt_concat": pt("a"), "pt_group_by_text": pt("b", "--group_by_text", "true"),
                 "pt_streaming": pt("c", "--streaming", "true", "--shuffle_buffer_size", "64")}
from medtrain.sft import main as sft_main, DEMO_SFT_DATA
o = os.path.join(tmp, "sft")
assert sft_main(["--model_name_or_path", demo, "--train_file_dir", DEMO_SFT_DATA, "--cache_dir", os.path.join(tmp, "cache"),
                 "--output_dir", o, "--model_max_length", "256", "--per_device_train_batch_size", "8",
                 "--learning_rate", "3e-3", "--logging_steps", "1", "--save_strategy", "no", "--num_proc", "1",
                 "--seed", "5", "--validation_split_percentage", "5", "--max_steps", "6"]) == 0
st = json.load(open(os.path.join(o, "trainer_state.json")))
out["losses"]["sft"] = {h["step"]: h["loss"] for h in st["log_history"] if "loss" in h}
summ = json.load(open(os.path.join(o, "run_summary.json")))
sstore = summ["train"]["stores"][0]
sm = json.load(open(os.path.join(sstore, "manifest.json")))
out["sft_store_units"] = {}
for u in sm["units"]:
    base = os.path.join(sstore, "units", f"{u['unit']:05d}")
    out["sft_store_units"][u["source"] + f":{u['start']}"] = {
        "tokens": hashlib.sha256(open(base + ".tokens", "rb").read()).hexdigest(),
        "mask": hashlib.sha256(open(base + ".mask", "rb").read()).hexdigest(),
        "docs": sha(np.load(base + ".docs.npy"))}
out["sft_store_stream"] = stream_hashes(sstore, sm, with_mask=True)
json.dump(out, open(sys.argv[2], "w"), indent=1, sort_keys=True)
print("ok")
