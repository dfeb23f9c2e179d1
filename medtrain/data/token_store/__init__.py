"""The token store: documents tokenized once, on disk, memory-mapped by every rank and every later run.

Layout (format version 2), in a directory named by the fingerprint of everything that changes the
tokens (input paths/sizes/mtimes or contents, the tokenizer, the text field, BOS/EOS, skip policy):

    <cache_dir>/token_store/<fingerprint[:20]>/
        plan.json            the work units (file, byte range) every builder agrees on
        units/00000.tokens   token ids of the unit's documents, back to back, raw little-endian
                             uint16 (vocabulary <= 65535) or uint32 (see manifest "dtype")
        units/00000.docs.npy int64 document offsets into 00000.tokens: n_docs + 1 values, from 0
        units/00000.keys.npy uint32 per document: crc32("<relpath>:<byte offset or row>") (holdout)
        units/00000.json     the unit's counts; written last, by rename: its presence marks the unit done
        documents.idx        the document index (format 2): per document its start in its unit's token
                             file (int64), length (int32) and key (uint32); per unit its first document
        packing/*.idx        block indexes computed from the lengths, per block_size/strategy/split
        manifest.json        written last, by rename: its presence marks the store complete

The .idx files (format in `index`) are built once, by the first process that needs them, and
memory-mapped read-only by every process. A format-1 store (no documents.idx) is read where it is: its
document index is derived from units/*.docs.npy and *.keys.npy on first open (under cache_dir when
the store cannot be written to); nothing is tokenized again, and the fingerprint is unchanged.

Worked example: a unit with documents "Fever." -> [412, 9, 2] and "Take aspirin." -> [77, 1030, 9, 2]
(EOS = 2) has 00000.tokens = 412 9 2 77 1030 9 2 (7 uint16 values) and 00000.docs.npy = [0, 3, 7].

Building is parallel and collective-free: units are taken round-robin by the builder ranks (every
rank of every node with prepare_on=global, the ranks of one node with local), and by `num_proc`
worker processes within a rank. Every file is written under a temporary name and renamed when
complete, so a killed build leaves nothing a later run trusts, a rerun resumes from finished units,
and two jobs building the same store at once write identical files (the last rename wins). A rank
that is done waits for the others by watching the filesystem, never inside a collective, so a
build of any length cannot hit `ddp_timeout`.

Modules: `layout` (paths, version, atomic writes), `index` (index files and building them once),
`builder` (planning and building units, the manifest, `prepare_store`), `reader` (`TokenCorpus`:
the stores of a run read as one corpus).
"""

from medtrain.data.token_store.builder import StoreBuilder, fingerprint, prepare_store, resolve_inputs  # noqa: F401
from medtrain.data.token_store.layout import FORMAT_VERSION, MANIFEST, is_store  # noqa: F401
from medtrain.data.token_store.reader import TokenCorpus  # noqa: F401

__all__ = ["FORMAT_VERSION", "MANIFEST", "StoreBuilder", "TokenCorpus", "fingerprint", "is_store", "prepare_store",
           "resolve_inputs"]
