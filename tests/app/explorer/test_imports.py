"""Imported embeddings are read into the values the files hold, and every bad file is refused naming the file, the row and the reason."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from app.explorer import imports
from app.explorer.imports import ImportRefused


def _npy(path: Path, X: np.ndarray) -> tuple[Path, str]:
    np.save(path, X)
    return path, path.name


def _text(path: Path, text: str) -> tuple[Path, str]:
    path.write_text(text)
    return path, path.name


@pytest.fixture
def X() -> np.ndarray:
    return np.random.default_rng(0).normal(size=(6, 3)).astype(np.float32)


def test_npy_with_one_column_metadata_as_tensorboard_writes_it(tmp_path, X):
    got = imports.read(_npy(tmp_path / "e.npy", X), _text(tmp_path / "metadata.tsv", "cat\ndog\ncat\nbird\ndog\ncat\n"))
    np.testing.assert_array_equal(got.embeddings, X)
    assert got.class_names == ["bird", "cat", "dog"]
    assert got.labels.tolist() == [1, 2, 1, 0, 2, 1]
    assert got.indices.tolist() == list(range(6))


def test_projector_tsv_pair_keeps_ids_labels_and_class_names(tmp_path, X):
    emb = "\n".join("\t".join(f"{v:.7g}" for v in row) for row in X) + "\n"
    meta = "index\tlabel\tclass\tsplit\n" + "".join(f"{100 + i}\t{i % 2 * 3}\t{'odd' if i % 2 else 'even'}\tval\n" for i in range(6))
    got = imports.read(_text(tmp_path / "embeddings.tsv", emb), _text(tmp_path / "metadata.tsv", meta))
    np.testing.assert_allclose(got.embeddings, X, rtol=1e-6)
    assert got.indices.tolist() == [100, 101, 102, 103, 104, 105]
    assert got.class_names == ["even", "odd"] and got.labels.tolist() == [0, 1, 0, 1, 0, 1]


def test_parquet_list_column_joined_to_labels_by_string_ids(tmp_path, X):
    ids = [f"sku-{i}" for i in range(6)]
    pq.write_table(pa.table({"id": ids, "embedding": [list(map(float, r)) for r in X]}), tmp_path / "e.parquet")
    order = [5, 3, 1, 0, 2, 4]  # the labels file in another order: joined by id
    pq.write_table(pa.table({"id": [ids[i] for i in order], "label": [f"c{i % 2}" for i in order]}), tmp_path / "l.parquet")
    got = imports.read((tmp_path / "e.parquet", "e.parquet"), (tmp_path / "l.parquet", "l.parquet"))
    np.testing.assert_allclose(got.embeddings, X)
    assert [got.class_names[c] for c in got.labels] == [f"c{i % 2}" for i in range(6)]
    assert got.indices.tolist() == list(range(6))  # text ids join, the rows number the points


def test_csv_with_header_reads_numeric_columns_and_labels(tmp_path, X):
    rows = "".join(f"{i},{i % 3}," + ",".join(f"{v:.7g}" for v in X[i]) + "\n" for i in range(6))
    got = imports.read(_text(tmp_path / "e.csv", "id,label,a,b,c\n" + rows))
    np.testing.assert_allclose(got.embeddings, X, rtol=1e-6)
    assert got.labels.tolist() == [0, 1, 2, 0, 1, 2] and got.indices.tolist() == list(range(6))


def _refused(match: str, *args) -> ImportRefused:
    with pytest.raises(ImportRefused, match=match) as e:
        imports.read(*args)
    return e.value


def test_bad_values_are_refused_at_their_row(tmp_path, X):
    bad = X.copy()
    bad[4, 1] = np.nan
    e = _refused("value 1 is NaN", _npy(tmp_path / "nan.npy", bad))
    assert (e.file, e.row, e.field) == ("nan.npy", 4, "embeddings")
    bad[4, 1] = np.inf
    assert _refused("infinite", _npy(tmp_path / "inf.npy", bad)).row == 4
    huge = X.astype(np.float64)
    huge[2, 0] = 1e300  # past float32
    assert _refused("infinite", _npy(tmp_path / "huge.npy", huge)).row == 2
    text = "a,b\n1,2\n3,oops\n5,6\n"
    e = _refused(r"e\.csv, row 1 \(line 3\): column 'b' is not numeric: 'oops'", _text(tmp_path / "e.csv", text))
    assert e.row == 1
    assert _refused("empty or NaN", _text(tmp_path / "gap.tsv", "1\t2\n3\t\n")).row == 1


def test_mismatched_and_unknown_labels_are_refused(tmp_path, X):
    emb = _npy(tmp_path / "e.npy", X)
    e = _refused("5 rows for 6 embeddings in e.npy", emb, _text(tmp_path / "l.tsv", "a\nb\nc\nd\ne\n"))
    assert e.field == "labels"
    ids = "id,a,b,c\n" + "".join(f"{i}," + ",".join(map(str, X[i])) + "\n" for i in range(6))
    labels = "id,label\n" + "".join(f"{i},x\n" for i in (0, 1, 2, 3, 4, 9))
    e = _refused("no label for id 5", _text(tmp_path / "ids.csv", ids), _text(tmp_path / "l.csv", labels))
    labels = "id,label\n" + "".join(f"{i},x\n" for i in (0, 1, 2, 3, 4, 5, 9))
    e = _refused("unknown id 9", _text(tmp_path / "ids.csv", ids), _text(tmp_path / "l.csv", labels))
    assert (e.file, e.row) == ("l.csv", 6)
    assert _refused("id 1 appears twice", _text(tmp_path / "d.csv", ids.replace("\n2,", "\n1,"))).row == 2
    e = _refused("named 'x' here but 'y'", emb, _text(tmp_path / "n.tsv", "label\tclass\n" + "0\ty\n" * 5 + "0\tx\n"))
    assert e.row == 5


def test_caps_formats_and_pickles_are_refused(tmp_path, monkeypatch):
    assert "at most 4,096" in str(_refused("dimensions", _npy(tmp_path / "wide.npy", np.zeros((3, 4097), np.float32))))
    monkeypatch.setattr(imports, "MAX_POINTS", 5)
    assert "at most 5 points" in str(_refused("6 rows", _npy(tmp_path / "long.npy", np.zeros((6, 3), np.float32))))
    _refused("unknown format .pkl", (tmp_path / "e.pkl", "e.pkl"))
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    _refused("never unpickled", (tmp_path / "obj.npy", "obj.npy"))
    _refused("numbers are needed", _npy(tmp_path / "s.npy", np.array([["a", "b"], ["c", "d"]])))


def test_paths_outside_the_data_roots_are_refused(tmp_path):
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "imgs").mkdir(parents=True)
    outside.mkdir()
    (root / "escape").symlink_to(outside)
    assert imports.inside_roots(str(root / "imgs"), [root], "images", folder=True) == (root / "imgs").resolve()
    for path in (outside, root / "escape", root / "imgs" / ".." / ".." / "outside"):
        with pytest.raises(ImportRefused, match="not inside the data roots"):
            imports.inside_roots(str(path), [root], "images", folder=True)
    for missing in (str(root / "nope.npy"), str(root) + "/x\x00.npy"):
        with pytest.raises(ImportRefused, match="no such file"):
            imports.inside_roots(missing, [root], "embeddings_path", folder=False)


def test_image_folder_gives_each_point_a_file(tmp_path, X):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(6):
        (folder / f"{i:02d}.png").write_bytes(b"png")
    got = imports.read(_npy(tmp_path / "e.npy", X), images=folder)
    assert got.image_files == [f"{i:02d}.png" for i in range(6)]
    (folder / "06.png").write_bytes(b"png")
    _refused("7 images for 6 points", _npy(tmp_path / "e.npy", X), None, folder)
    named = "label\timage\n" + "".join(f"a\t{i:02d}.png\n" for i in range(5)) + "a\t../e.npy\n"
    assert _refused("is not a file inside the folder", _npy(tmp_path / "e.npy", X), _text(tmp_path / "m.tsv", named), folder).row == 5
