"""The explorer's points as binary columns: one little-endian body the page reads into typed arrays.

Layout: uint32 header length H, H bytes of UTF-8 JSON (padded with spaces so the columns start on an
8-byte boundary), then each column's raw bytes at the offset the header names (counted from the end
of the header, each 4-byte aligned). At 1,000,000 points that is ~22 MB (18 before the per-point AP column) instead of ~82 MB of JSON, and
the page needs no parsing: `new Float32Array(buffer, offset, n)`.
"""

from __future__ import annotations

import json
import struct
import threading
import weakref
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

from app.explorer.embeddings import JobEmbedding, projection_version
from app.explorer.layout import SPLITS

MEDIA_TYPE = "application/vnd.embedlab.columns"
# name -> little-endian dtype; the 4-byte columns first so every column stays aligned for its typed array.
DTYPES: dict[str, str] = {
    "index": "<i4",
    "x": "<f4",
    "y": "<f4",
    "label": "<i4",
    "ap": "<f4",  # AP@R of each scored point; NaN where not scored (a training sample point, a file from before it)
    "split": "u1",
    "nn_same_label": "u1",
}
MAX_CACHED = 4

_cache: dict[int, tuple[weakref.ref, bytes]] = {}
_lock = threading.Lock()


def _arrays(data: JobEmbedding) -> dict[str, np.ndarray]:
    return {
        "index": data.indices,
        "x": data.xy[:, 0],
        "y": data.xy[:, 1],
        "label": data.labels,
        "split": data.split,
        "nn_same_label": data.nn_same_label,
        "ap": data.ap_column(),
    }


def encode(data: JobEmbedding) -> bytes:
    return _encode(_arrays(data), data.class_names)


class Unreadable(ValueError):
    """projection.npz is there but cannot be read here (app.explorer.embeddings says why)."""


_file_cache: OrderedDict[Path, tuple[tuple[int, int], bytes]] = OrderedDict()


def encoded_file(job_dir: Path) -> bytes:
    """The columns straight from projection.npz, without the embeddings or the neighbour index (first paint
    must not wait for an HNSW build over a million points); once per version of the file."""
    path, signature = projection_version(job_dir)
    with _lock:
        hit = _file_cache.get(path)
        if hit and hit[0] == signature:
            _file_cache.move_to_end(path)
            return hit[1]
    try:
        with np.load(path, allow_pickle=False) as z:
            xy = z["xy"]
            arrays = {
                "index": z["indices"],
                "x": xy[:, 0],
                "y": xy[:, 1],
                "label": z["labels"],
                "split": z["split"],
                "nn_same_label": z["nn_same_label"],
            }
            arrays["ap"] = z["ap"] if "ap" in z.files else np.full(len(arrays["index"]), np.nan, dtype=np.float32)
            names = json.loads(str(z["meta"]))["class_names"]
        if len({len(a) for a in arrays.values()}) != 1:
            raise ValueError("columns of different lengths")
    except (OSError, ValueError, KeyError, IndexError, TypeError, zipfile.BadZipFile) as e:
        raise Unreadable(str(e)) from None
    body = _encode(arrays, names)
    with _lock:
        _file_cache[path] = (signature, body)
        while len(_file_cache) > MAX_CACHED:
            _file_cache.popitem(last=False)
    return body


def _encode(arrays: dict[str, np.ndarray], class_names: list[str]) -> bytes:
    n = len(arrays["index"])
    columns, blobs, offset = [], [], 0
    for name, dtype in DTYPES.items():
        blob = np.ascontiguousarray(arrays[name], dtype=dtype).tobytes()
        columns.append({"name": name, "dtype": dtype.lstrip("<"), "offset": offset, "length": n})
        pad = -len(blob) % 4
        blobs.append(blob + b"\0" * pad)
        offset += len(blob) + pad
    header: dict[str, Any] = {"version": 1, "n": n, "columns": columns, "splits": list(SPLITS), "class_names": class_names}
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-(len(text) + 4) % 8)
    return struct.pack("<I", len(text)) + text + b"".join(blobs)


def encoded(data: JobEmbedding) -> bytes:
    """`encode`, once per loaded version of a job's embedding (the JobEmbedding object is that version)."""
    key = id(data)
    with _lock:
        hit = _cache.get(key)
        if hit and hit[0]() is data:
            return hit[1]
    body = encode(data)
    with _lock:
        _cache[key] = (weakref.ref(data), body)
        for k in [k for k, (ref, _) in _cache.items() if ref() is None]:
            del _cache[k]
        while len(_cache) > MAX_CACHED:
            del _cache[next(iter(_cache))]
    return body


def decode(body: bytes) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """What static/explore.js does with the body, in NumPy: the header and a view of each column."""
    (size,) = struct.unpack_from("<I", body, 0)
    header = json.loads(body[4 : 4 + size])
    start = 4 + size
    arrays = {
        c["name"]: np.frombuffer(body, dtype=np.dtype(c["dtype"]).newbyteorder("<"), count=c["length"], offset=start + c["offset"])
        for c in header["columns"]
    }
    return header, arrays
