"""The token store's files: their paths, the format version, and writes that are atomic (a temporary
name, fsynced, renamed), so a crash never leaves a file a later run trusts. See the package docstring
for the layout."""

from __future__ import annotations

import os
import socket

import numpy as np

FORMAT_VERSION = 2           # 2: the document index (documents.idx) and block indexes are .idx files
READABLE_VERSIONS = (1, 2)   # a version-1 store gets its documents.idx derived from its units on first open
TOKENS_VERSION = 1           # the unit files' format, what the fingerprint hashes: unchanged since version 1,
                             # so a version-1 store is found (and migrated) where it is, never tokenized again
MANIFEST = "manifest.json"
DOCUMENT_INDEX = "documents.idx"


def atomic_write(path: str, data: bytes) -> None:
    tmp = f"{path}.tmp.{socket.gethostname()}.{os.getpid()}"
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def atomic_npy(path: str, arr: np.ndarray) -> None:
    tmp = f"{path}.tmp.{socket.gethostname()}.{os.getpid()}.npy"
    np.save(tmp, arr)
    os.replace(tmp, path)


def is_store(path: str) -> bool:
    return os.path.isfile(os.path.join(path, MANIFEST))


def unit_paths(store: str, i: int) -> dict:
    base = os.path.join(store, "units", f"{i:05d}")
    return {"tokens": base + ".tokens", "docs": base + ".docs.npy", "keys": base + ".keys.npy",
            "mask": base + ".mask", "done": base + ".json"}
