"""CUB-200-2011, Cars-196 and SOP read from generated miniatures of their published layouts give their official splits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy.io import savemat

from app.datasets import load_catalog


def image(path: Path, value: int) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((12, 12, 3), value, dtype=np.uint8)).save(path)
    return str(path)


def make_cub(root: Path, classes=(1, 2, 100, 101, 150, 200), per_class: int = 2) -> Path:
    lines, labels, n = [], [], 0
    for c in classes:
        for i in range(per_class):
            n += 1
            rel = f"{c:03d}.Bird_{c}/Bird_{c}_{i}.jpg"
            image(root / "images" / rel, n)
            lines.append(f"{n} {rel}")
            labels.append(f"{n} {c}")
    (root / "images.txt").write_text("\n".join(lines) + "\n")
    (root / "image_class_labels.txt").write_text("\n".join(labels) + "\n")
    return root


def make_cars(root: Path, classes=(1, 2, 98, 99, 150, 196), per_class: int = 2) -> Path:
    rows = []
    for c in classes:
        for i in range(per_class):
            rel = f"car_ims/{c:03d}{i:03d}.jpg"
            image(root / rel, c)
            rows.append((rel, 0, 0, 10, 10, c, 0))
    annotations = np.array(
        [rows],
        dtype=[
            ("relative_im_path", "O"),
            ("bbox_x1", "O"),
            ("bbox_y1", "O"),
            ("bbox_x2", "O"),
            ("bbox_y2", "O"),
            ("class", "O"),
            ("test", "O"),
        ],
    )
    savemat(root / "cars_annos.mat", {"annotations": annotations})
    return root


def make_sop(root: Path, train=(1, 2, 3), test=(11319, 11320, 11321), per_class: int = 2) -> Path:
    n = 0
    for name, classes in (("Ebay_train.txt", train), ("Ebay_test.txt", test)):
        lines = ["image_id class_id super_class_id path"]
        for c in classes:
            for i in range(per_class):
                n += 1
                rel = f"bicycle_final/{c}_{i}.JPG"
                image(root / rel, n)
                lines.append(f"{n} {c} 1 {rel}")
        (root / name).write_text("\n".join(lines) + "\n")
    return root


@pytest.mark.parametrize(
    "name, make, train_ids, test_ids",
    [
        ("cub200", make_cub, ["1", "2", "100"], ["101", "150", "200"]),
        ("cars196", make_cars, ["1", "2", "98"], ["99", "150", "196"]),
        ("sop", make_sop, ["1", "2", "3"], ["11319", "11320", "11321"]),
    ],
)
def test_miniature_gives_the_official_class_disjoint_split(settings, name, make, train_ids, test_ids):
    root = make(settings.data_root_paths[0] / name)
    catalog = load_catalog(name, str(root), settings.data_root_paths)
    assert catalog.num_images == 12 and all(f.is_file() for f in catalog.files)
    test_classes = sorted({catalog.class_names[label] for label in catalog.labels[catalog.official_test]}, key=int)
    train_classes = sorted({catalog.class_names[label] for label in catalog.labels[~catalog.official_test]}, key=int)
    assert train_classes == train_ids and test_classes == test_ids
    # Train classes are numbered first, so the official test classes are the last labels.
    assert catalog.labels[catalog.official_test].min() > catalog.labels[~catalog.official_test].max()


def test_benchmarks_are_listed_submitted_and_refused_when_a_split_file_is_missing(client, settings):
    data = settings.data_root_paths[0]
    make_cub(data / "CUB_200_2011")
    make_sop(data / "Stanford_Online_Products")
    make_cars(data / "cars196")
    listed = {Path(f["name"]).name: f for f in client.get("/api/datasets").json()["folders"]}
    assert "CUB-200-2011" in listed["CUB_200_2011"]["description"] and listed["CUB_200_2011"]["images"] == 12
    assert "'sop'" in listed["Stanford_Online_Products"]["description"] and "Cars-196" in listed["cars196"]["description"]
    body = {"dataset": "cub200", "dataset_path": str(data / "CUB_200_2011"), "classes_per_batch": 2, "samples_per_class": 2}
    assert client.post("/api/jobs", json=body).status_code == 201
    (data / "Stanford_Online_Products" / "Ebay_test.txt").unlink()
    r = client.post("/api/jobs", json={**body, "dataset": "sop", "dataset_path": str(data / "Stanford_Online_Products")})
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["field"] == "dataset_path" and "Ebay_test.txt is missing" in r.json()["detail"][0]["reason"]
    r = client.post("/api/jobs", json={"dataset": "cars196", "classes_per_batch": 2, "samples_per_class": 2})
    assert r.status_code == 422 and "required when dataset is 'cars196'" in r.json()["detail"][0]["reason"]


def test_a_listed_path_outside_the_copy_is_refused(settings):
    root = make_cub(settings.data_root_paths[0] / "cub")
    (root / "images.txt").write_text("1 ../../../etc/passwd\n")
    (root / "image_class_labels.txt").write_text("1 1\n")
    with pytest.raises(ValueError, match="outside the copy"):
        load_catalog("cub200", str(root), settings.data_root_paths)


def test_official_test_classes_are_the_locked_test_part(settings):
    from app.benchmarks import official_parts

    catalog = load_catalog(
        "cars196", str(make_cars(settings.data_root_paths[0] / "cars", classes=(1, 2, 3, 4, 98, 99, 196))), settings.data_root_paths
    )
    train, val, test = official_parts(catalog.labels, catalog.official_test, val_fraction=0.4)
    ids = lambda rows: sorted({int(catalog.class_names[label]) for label in catalog.labels[rows]})  # noqa: E731
    assert ids(test) == [99, 196] and ids(val) == [4, 98] and ids(train) == [1, 2, 3]
    train, val, test = official_parts(catalog.labels, catalog.official_test, val_fraction=0.4, folds=3, fold=0)
    assert ids(val) == [1, 2] and ids(test) == [99, 196] and ids(train) == [3, 4, 98]
