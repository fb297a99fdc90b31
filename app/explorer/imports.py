"""Embeddings brought from elsewhere, read and checked before anything is stored. Torch-free.

Embeddings: .npy (a 2-D numeric array); .npz (`embeddings`, or its only 2-D array, with optional
`labels` and `ids`); CSV/TSV: TensorBoard projector's embeddings.tsv (numbers only, no header), or a
header row naming numeric columns beside optional id/label columns; Parquet: a list column
(`embedding`, `embeddings`, `vector`, `features`) or numeric columns, beside optional id/label columns.

Labels (optional): .npy/.npz of one value a point, or CSV/TSV as TensorBoard's metadata.tsv is written:
one column without header, or a header row with `label` (else the first column), and optionally
`class`/`class_name`, `id`/`index` and `image`/`file`/`path` (relative to the image folder).

Ids: whole-number ids become the points' indices (the number the explorer shows and the API takes);
other ids only join labels to embeddings; without ids a point's index is its row. Rows are counted
from 0 like the points; text files also say the line. Every refusal names the file, the row and why.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

MAX_POINTS = 2_000_000
MAX_DIMS = 4096
MAX_VALUES = 256 * 1024 * 1024  # points x dimensions: 1 GiB of float32
MAX_FILE_BYTES = 4 * 1024**3
EMBEDDING_FORMATS = (".npy", ".npz", ".csv", ".tsv", ".parquet")
LABEL_FORMATS = (".npy", ".npz", ".csv", ".tsv", ".txt", ".parquet")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp", ".tif", ".tiff")
ID_COLUMNS = ("id", "index", "ids")
LABEL_COLUMNS = ("label", "labels")
NAME_COLUMNS = ("class", "class_name", "classname")
IMAGE_COLUMNS = ("image", "file", "path", "filename")
VECTOR_COLUMNS = ("embedding", "embeddings", "vector", "vectors", "features")
INDEX_MAX = 2**31 - 1


class ImportRefused(ValueError):
    """Bad input: which file (the form field it came in), which row, and why."""

    def __init__(self, field_name: str, file: str, reason: str, row: int | None = None, line: int | None = None):
        self.field = field_name
        self.file = file
        self.row = row
        self.reason = reason
        where = f", row {row:,}" + (f" (line {line:,})" if line is not None else "") if row is not None else ""
        super().__init__(f"{file}{where}: {reason}" if file else reason)


@dataclass
class Imported:
    embeddings: np.ndarray  # float32 (N, D), finite
    indices: np.ndarray  # int64 (N,): the points' indices (whole-number ids, else row numbers)
    labels: np.ndarray | None  # int64 (N,) in 0..C-1, or None
    class_names: list[str]
    image_files: list[str] | None  # per row, relative to the image folder
    source: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.embeddings)


@dataclass
class _Table:
    """A file's columns (pyarrow), the line of its first data row (text files), and its name."""

    columns: dict[str, Any]
    first_line: int | None


def check_suffix(name: str, allowed: tuple[str, ...], field_name: str) -> str:
    suffix = Path(name).suffix.lower()
    if suffix not in allowed:
        raise ImportRefused(field_name, name, f"unknown format {suffix or '(no suffix)'}: use one of {', '.join(allowed)}")
    return suffix


def _line(table: _Table, row: int) -> int | None:
    return None if table.first_line is None else table.first_line + row


def _read_text_table(path: Path, name: str, field_name: str, *, header: bool | None) -> _Table:
    """CSV (comma) or TSV/TXT (tab) through pyarrow; `header=None`: a header unless the first line is all numbers."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    delimiter = "," if name.lower().endswith(".csv") else "\t"
    with open(path, "rb") as f:
        first = f.readline().decode("utf-8", errors="replace").rstrip("\r\n")
    if not first.strip():
        raise ImportRefused(field_name, name, "the file is empty", row=0, line=1)
    if header is None:
        header = not all(_is_number(v) for v in first.split(delimiter))
    read = pacsv.ReadOptions(autogenerate_column_names=not header, block_size=8 << 20)
    parse = pacsv.ParseOptions(delimiter=delimiter)
    try:
        table = pacsv.read_csv(path, read_options=read, parse_options=parse)
    except pa.ArrowInvalid as e:
        text = str(e)
        m = re.search(r"[Rr]ow #(\d+)", text)
        row = int(m[1]) - (2 if header else 1) if m else None  # pyarrow counts lines from 1, the header included
        reason = re.sub(r"^CSV parse error: |^In CSV column #\d+: Row #\d+: ", "", text).split("\n")[0]
        raise ImportRefused(
            field_name, name, reason, row=row if row is not None and row >= 0 else None, line=int(m[1]) if m else None
        ) from None
    columns = {str(n).strip(): table.column(i) for i, n in enumerate(table.column_names)}
    return _Table(columns, 2 if header else 1)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _read_parquet(path: Path, name: str, field_name: str) -> _Table:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as e:
        raise ImportRefused(field_name, name, f"not a readable Parquet file ({e})") from None
    return _Table({str(n).strip(): table.column(i) for i, n in enumerate(table.column_names)}, None)


def _pick(columns: dict[str, Any], names: tuple[str, ...]) -> str | None:
    lowered = {k.lower(): k for k in columns}
    return next((lowered[n] for n in names if n in lowered), None)


def _first_null(column: Any) -> int:
    import pyarrow.compute as pc

    return int(pc.index(pc.is_null(column), True).as_py())


def _numeric(column: Any, name: str, file: str, table: _Table, field_name: str) -> np.ndarray:
    """A numeric pyarrow column as float64; text in it is refused at its first non-number."""
    import pyarrow as pa

    if column.null_count:
        row = _first_null(column)
        raise ImportRefused(field_name, file, f"column {name!r} has an empty or NaN value", row=row, line=_line(table, row))
    if pa.types.is_integer(column.type) or pa.types.is_floating(column.type):
        return column.to_numpy().astype(np.float64, copy=False)
    values = column.to_pylist()
    row = next((i for i, v in enumerate(values) if not isinstance(v, (int, float)) and not _is_number(str(v))), 0)
    raise ImportRefused(
        field_name, file, f"column {name!r} is not numeric: {str(values[row])[:40]!r} is not a number", row=row, line=_line(table, row)
    )


def _check_size(n: int, d: int, field_name: str, file: str) -> None:
    if n == 0:
        raise ImportRefused(field_name, file, "no rows")
    if n > MAX_POINTS:
        raise ImportRefused(field_name, file, f"{n:,} rows: at most {MAX_POINTS:,} points are imported")
    if d < 2:
        raise ImportRefused(field_name, file, f"{d} dimension(s): an embedding needs at least 2")
    if d > MAX_DIMS:
        raise ImportRefused(field_name, file, f"{d:,} dimensions: at most {MAX_DIMS:,} are imported")
    if n * d > MAX_VALUES:
        raise ImportRefused(field_name, file, f"{n:,} x {d:,} values: at most {MAX_VALUES:,} (1 GiB of float32) are imported")


def _finite_float32(X: np.ndarray, field_name: str, file: str, table: _Table | None = None) -> np.ndarray:
    with np.errstate(over="ignore"):
        X = np.asarray(X, dtype=np.float32)  # a float64 value past float32's range becomes inf: refused below
    bad = ~np.isfinite(X)
    if bad.any():
        row, col = (int(v) for v in np.argwhere(bad)[0])
        what = "NaN" if np.isnan(X[row, col]) else "infinite (as float32)"
        raise ImportRefused(field_name, file, f"value {col} is {what}", row=row, line=_line(table, row) if table else None)
    return np.ascontiguousarray(X)


def _array_of(value: np.ndarray, field_name: str, file: str, what: str) -> np.ndarray:
    if value.dtype.kind not in "fiub":
        raise ImportRefused(field_name, file, f"{what} has dtype {value.dtype}: numbers are needed")
    return value


def _load_npy(path: Path, name: str, field_name: str) -> dict[str, np.ndarray]:
    try:
        if name.lower().endswith(".npy"):
            return {"": np.load(path, allow_pickle=False, mmap_mode="r")}
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except ValueError as e:
        pickled = "allow_pickle" in str(e) or "Python objects" in str(e)
        reason = "it holds Python objects, which are never unpickled here" if pickled else str(e)
        raise ImportRefused(field_name, name, f"not a readable NumPy file: {reason}") from None
    except (OSError, EOFError) as e:
        raise ImportRefused(field_name, name, f"not a readable NumPy file ({type(e).__name__}: {e})") from None


@dataclass
class _Part:
    """What one file gave: embeddings and/or labels, ids, class names, image files (each per row)."""

    embeddings: np.ndarray | None = None
    ids: np.ndarray | None = None  # object or int64
    labels: np.ndarray | None = None  # raw values (ints or strings)
    names: np.ndarray | None = None
    images: list[str] | None = None
    table: _Table | None = None


def _embeddings_part(path: Path, name: str) -> _Part:
    field_name = "embeddings"
    suffix = check_suffix(name, EMBEDDING_FORMATS, field_name)
    if suffix in (".npy", ".npz"):
        arrays = _load_npy(path, name, field_name)
        key = "" if "" in arrays else "embeddings" if "embeddings" in arrays else None
        if key is None:
            two_d = [k for k, v in arrays.items() if v.ndim == 2]
            if len(two_d) != 1:
                raise ImportRefused(field_name, name, f"no array named 'embeddings' (it holds {', '.join(arrays) or 'nothing'})")
            key = two_d[0]
        X = _array_of(arrays[key], field_name, name, "the embeddings")
        if X.ndim != 2:
            raise ImportRefused(field_name, name, f"the embeddings have shape {X.shape}: (points, dimensions) is needed")
        _check_size(X.shape[0], X.shape[1], field_name, name)
        part = _Part(embeddings=_finite_float32(X, field_name, name))
        for k, attr in (("labels", "labels"), ("ids", "ids")):
            if k in arrays:
                v = arrays[k]
                if v.shape != (len(X),):
                    raise ImportRefused(field_name, name, f"'{k}' has shape {v.shape}; one value a point ({len(X):,}) is needed")
                setattr(part, attr, v)
        return part
    table = _read_parquet(path, name, field_name) if suffix == ".parquet" else _read_text_table(path, name, field_name, header=None)
    cols = table.columns
    meta = {c for c in (_pick(cols, ID_COLUMNS), _pick(cols, LABEL_COLUMNS), _pick(cols, NAME_COLUMNS), _pick(cols, IMAGE_COLUMNS)) if c}
    vector = _pick(cols, VECTOR_COLUMNS)
    n = len(next(iter(cols.values())))
    if vector is not None:
        X = _list_column(cols[vector], vector, name, table, field_name)
    else:
        numeric = [c for c in cols if c not in meta]
        if not numeric:
            raise ImportRefused(field_name, name, "no embedding columns (only " + ", ".join(cols) + ")")
        _check_size(n, len(numeric), field_name, name)
        X = np.empty((n, len(numeric)), dtype=np.float32)
        for j, c in enumerate(numeric):
            X[:, j] = _numeric(cols[c], c, name, table, field_name)
    _check_size(X.shape[0], X.shape[1], field_name, name)
    part = _Part(embeddings=_finite_float32(X, field_name, name, table), table=table)
    _meta_columns(part, cols, name, table, field_name)
    return part


def _list_column(column: Any, col: str, file: str, table: _Table, field_name: str) -> np.ndarray:
    import pyarrow as pa
    import pyarrow.compute as pc

    if not (pa.types.is_list(column.type) or pa.types.is_large_list(column.type) or pa.types.is_fixed_size_list(column.type)):
        raise ImportRefused(field_name, file, f"column {col!r} is {column.type}, not a list of numbers")
    if column.null_count:
        row = _first_null(column)
        raise ImportRefused(field_name, file, f"column {col!r} is empty", row=row)
    lengths = pc.list_value_length(column).to_numpy()
    if len(lengths) and (lengths != lengths[0]).any():
        row = int(np.flatnonzero(lengths != lengths[0])[0])
        raise ImportRefused(field_name, file, f"{int(lengths[row])} values where the first row has {int(lengths[0])}", row=row)
    d = int(lengths[0]) if len(lengths) else 0
    _check_size(len(lengths), d, field_name, file)
    flat = pc.list_flatten(column)
    if flat.null_count or not (pa.types.is_integer(flat.type) or pa.types.is_floating(flat.type)):
        raise ImportRefused(field_name, file, f"column {col!r} holds {flat.type} values with gaps or text: numbers are needed")
    return flat.to_numpy().astype(np.float32).reshape(len(lengths), d)


def _meta_columns(part: _Part, cols: dict[str, Any], file: str, table: _Table, field_name: str) -> None:
    for names, attr in ((ID_COLUMNS, "ids"), (LABEL_COLUMNS, "labels"), (NAME_COLUMNS, "names")):
        c = _pick(cols, names)
        if c is not None:
            column = cols[c]
            if column.null_count:
                row = _first_null(column)
                raise ImportRefused(field_name, file, f"column {c!r} has an empty value", row=row, line=_line(table, row))
            setattr(part, attr, np.asarray(column.to_numpy(zero_copy_only=False)))
    c = _pick(cols, IMAGE_COLUMNS)
    if c is not None:
        part.images = [str(v) for v in cols[c].to_pylist()]


def _labels_part(path: Path, name: str) -> _Part:
    field_name = "labels"
    suffix = check_suffix(name, LABEL_FORMATS, field_name)
    if suffix in (".npy", ".npz"):
        arrays = _load_npy(path, name, field_name)
        key = "" if "" in arrays else "labels" if "labels" in arrays else (next(iter(arrays)) if len(arrays) == 1 else None)
        if key is None:
            raise ImportRefused(field_name, name, f"no array named 'labels' (it holds {', '.join(arrays) or 'nothing'})")
        v = np.asarray(arrays[key])
        if v.ndim != 1:
            raise ImportRefused(field_name, name, f"the labels have shape {v.shape}: one value a point is needed")
        if v.dtype.kind not in "iuU":
            raise ImportRefused(field_name, name, f"the labels have dtype {v.dtype}: whole numbers or text are needed")
        return _Part(labels=v, ids=np.asarray(arrays["ids"]) if "ids" in arrays else None)
    if suffix == ".parquet":
        table = _read_parquet(path, name, field_name)
    else:
        with open(path, "rb") as f:
            first = f.readline().decode("utf-8", errors="replace")
        delimiter = "," if suffix == ".csv" else "\t"
        table = _read_text_table(path, name, field_name, header=delimiter in first)  # TensorBoard: one column, no header
    cols = table.columns
    part = _Part(table=table)
    _meta_columns(part, cols, name, table, field_name)
    if part.labels is None:
        others = [c for c in cols if c not in {_pick(cols, ID_COLUMNS), _pick(cols, NAME_COLUMNS), _pick(cols, IMAGE_COLUMNS)}]
        if not others:
            raise ImportRefused(field_name, name, "no label column (name one 'label')")
        column = cols[others[0]]
        if column.null_count:
            row = _first_null(column)
            raise ImportRefused(field_name, name, f"column {others[0]!r} has an empty value", row=row, line=_line(table, row))
        part.labels = np.asarray(column.to_numpy(zero_copy_only=False))
    return part


def _whole_numbers(ids: np.ndarray) -> np.ndarray | None:
    """int64 ids when every id is a whole number in 0..2^31-1, else None."""
    if ids.dtype.kind in "iu":
        v = ids.astype(np.int64)
    elif ids.dtype.kind == "f" and np.isfinite(ids).all() and (ids == np.round(ids)).all():
        v = ids.astype(np.int64)
    else:
        try:
            v = np.array([int(str(x)) for x in ids], dtype=np.int64)
        except ValueError:
            return None
    return v if len(v) == 0 or (v.min() >= 0 and v.max() <= INDEX_MAX) else None


def _duplicate(ids: np.ndarray) -> int | None:
    keys = ids.astype(str) if ids.dtype.kind not in "iu" else ids
    _, first, counts = np.unique(keys, return_index=True, return_counts=True)
    if (counts > 1).any():
        dup_first = first[counts > 1].min()
        same = np.flatnonzero(keys == keys[dup_first])
        return int(same[1])
    return None


def _class_codes(raw: np.ndarray, names: np.ndarray | None, file: str, table: _Table | None) -> tuple[np.ndarray, list[str]]:
    """Labels as 0..C-1 in sorted order of their values, and each class's name (a class column's, else the value)."""
    values = raw.astype(np.int64) if raw.dtype.kind in "iub" else raw.astype(str)
    uniq, codes = np.unique(values, return_inverse=True)
    class_names = [str(u) for u in uniq]
    if names is not None:
        names = names.astype(str)
        first = np.zeros(len(uniq), dtype=np.int64)
        first[codes[::-1]] = np.arange(len(codes))[::-1]
        class_names = [str(names[r]) for r in first]
        mismatch = np.flatnonzero(names != np.asarray(class_names, dtype=object)[codes].astype(str))
        if len(mismatch):
            row = int(mismatch[0])
            raise ImportRefused(
                "labels",
                file,
                f"label {values[row]} is named {str(names[row])!r} here but {class_names[codes[row]]!r} on row {int(first[codes[row]])}",
                row=row,
                line=_line(table, row) if table else None,
            )
    return codes.astype(np.int64), class_names


def read(embeddings: tuple[Path, str], labels: tuple[Path, str] | None = None, images: Path | None = None) -> Imported:
    """Read and check an import: (path on disk, name to report) of each file; `images`: a checked folder or None."""
    emb_path, emb_name = embeddings
    files = [(emb_path, emb_name, "embeddings")] + ([(labels[0], labels[1], "labels")] if labels else [])
    for p, n, f in files:
        check_suffix(n, EMBEDDING_FORMATS if f == "embeddings" else LABEL_FORMATS, f)
        if p.stat().st_size > MAX_FILE_BYTES:
            raise ImportRefused(f, n, f"{p.stat().st_size:,} bytes: at most {MAX_FILE_BYTES:,} are imported")
    part = _embeddings_part(emb_path, emb_name)
    X = part.embeddings
    assert X is not None
    n = len(X)
    ids, raw, names, image_files = part.ids, part.labels, part.names, part.images
    labels_file = emb_name
    label_table = part.table
    if ids is not None and (row := _duplicate(ids)) is not None:
        raise ImportRefused(
            "embeddings", emb_name, f"id {ids[row]} appears twice", row=row, line=_line(part.table, row) if part.table else None
        )
    if labels is not None:
        lab = _labels_part(*labels)
        labels_file, label_table = labels[1], lab.table
        assert lab.labels is not None
        if lab.ids is not None and (row := _duplicate(lab.ids)) is not None:
            raise ImportRefused(
                "labels", labels[1], f"id {lab.ids[row]} appears twice", row=row, line=_line(lab.table, row) if lab.table else None
            )
        if ids is not None and lab.ids is not None:
            order = _join(ids, lab.ids, emb_name, labels[1], lab.table)
        else:
            if len(lab.labels) != n:
                raise ImportRefused(
                    "labels",
                    labels[1],
                    f"{len(lab.labels):,} rows for {n:,} embeddings in {emb_name}: one label a point, in the same order "
                    "(or an id column in both files)",
                )
            order = np.arange(n)
            ids = ids if ids is not None else lab.ids
        raw = lab.labels[order]
        names = lab.names[order] if lab.names is not None else None
        if lab.images is not None:
            image_files = [lab.images[i] for i in order]
        label_table = lab.table if (order == np.arange(n)).all() else None  # joined rows have no one line
    indices = np.arange(n, dtype=np.int64)
    if ids is not None and (whole := _whole_numbers(ids)) is not None:
        indices = whole
    codes, class_names = (None, []) if raw is None else _class_codes(raw, names, labels_file, label_table)
    image_list = _image_files(images, image_files, n) if images is not None else None
    return Imported(
        embeddings=X,
        indices=indices,
        labels=codes,
        class_names=class_names,
        image_files=image_list,
        source={"embeddings": emb_name, "labels": labels[1] if labels else None, "images": str(images) if images else None},
    )


def _join(ids: np.ndarray, label_ids: np.ndarray, emb_name: str, labels_name: str, table: _Table | None) -> np.ndarray:
    """For each embedding row, the labels row with its id; an id either side lacks is refused."""
    a = ids.astype(str) if ids.dtype.kind not in "iu" else ids.astype(np.int64)
    b = label_ids.astype(str) if label_ids.dtype.kind not in "iu" else label_ids.astype(np.int64)
    if a.dtype != b.dtype:
        a, b = a.astype(str), b.astype(str)
    order_b = np.argsort(b, kind="stable")
    pos = np.searchsorted(b, a, sorter=order_b)
    pos = np.minimum(pos, len(b) - 1)
    found = b[order_b[pos]] == a
    if not found.all():
        row = int(np.flatnonzero(~found)[0])
        raise ImportRefused("labels", labels_name, f"no label for id {a[row]} (row {row:,} of {emb_name})")
    unknown = ~np.isin(b, a)
    if unknown.any():
        row = int(np.flatnonzero(unknown)[0])
        raise ImportRefused(
            "labels",
            labels_name,
            f"unknown id {b[row]}: no embedding in {emb_name} has it",
            row=row,
            line=_line(table, row) if table else None,
        )
    return order_b[pos]


def _image_files(folder: Path, named: list[str] | None, n: int) -> list[str]:
    """Each point's image, relative to `folder`: the labels' image column, else the folder's images in sorted order."""
    if named is None:
        found = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if len(found) != n:
            raise ImportRefused(
                "images", str(folder), f"{len(found):,} images for {n:,} points: give an image column (image, file or path) in the labels"
            )
        return found
    root = folder.resolve()
    for row, name in enumerate(named):
        p = (folder / name).resolve()
        if root not in p.parents or not p.is_file():
            raise ImportRefused("images", str(folder), f"image {name!r} is not a file inside the folder", row=row)
    return named


def inside_roots(text: str, roots: list[Path], field_name: str, *, folder: bool) -> Path:
    """A server-side path named in a request: resolved (symlinks followed) and inside one of the data roots."""
    try:
        real = Path(text).expanduser().resolve(strict=True)
    except (OSError, RuntimeError, ValueError):  # ValueError: a NUL byte in the path
        raise ImportRefused(field_name, text, "no such file or folder on the server") from None
    if not any(real == r or r in real.parents for r in roots):
        raise ImportRefused(
            field_name, text, "not inside the data roots (EMBEDLAB_DATA_ROOTS and EMBEDLAB_HOME/datasets): the server reads nothing else"
        )
    if folder and not real.is_dir():
        raise ImportRefused(field_name, text, "not a folder")
    if not folder and not real.is_file():
        raise ImportRefused(field_name, text, "not a file")
    return real
