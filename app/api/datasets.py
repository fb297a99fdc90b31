"""Datasets a job can use: the bundled ones and the image folders under the allowed roots."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from app.api.deps import SettingsDep
from app.api.schemas import DatasetList, DatasetOut
from app.benchmarks import BENCHMARKS
from app.benchmarks import detect as detect_benchmark
from app.datasets import BUNDLED, DEFAULT_FOLDER_SIZE, NATIVE_SIZE, DatasetError, load_catalog

router = APIRouter(prefix="/api/datasets", tags=["datasets"])


def _folders(roots) -> list[DatasetOut]:
    """Each direct subfolder of a data root that holds class folders of images."""
    found = []
    for root in roots:
        if not root.is_dir():
            continue
        for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
            kind = detect_benchmark(folder) or "imagefolder"
            try:
                c = load_catalog(kind, str(folder), roots)
            except DatasetError:
                continue
            what = f"{BENCHMARKS[kind].title} (dataset {kind!r})" if kind in BENCHMARKS else "image folder"
            found.append(
                DatasetOut(
                    name=str(folder),
                    description=f"{what} {folder.name}",
                    classes=len(c.class_names),
                    images=c.num_images,
                    image_size=DEFAULT_FOLDER_SIZE,
                )
            )
    return found


@router.get("", response_model=DatasetList)
async def list_datasets(settings: SettingsDep) -> DatasetList:
    def build() -> DatasetList:
        bundled = []
        for name, description in BUNDLED.items():
            c = load_catalog(name, None, settings.data_root_paths)
            bundled.append(
                DatasetOut(
                    name=name, description=description, classes=len(c.class_names), images=c.num_images, image_size=NATIVE_SIZE[name]
                )
            )
        bundled.append(
            DatasetOut(
                name="imagefolder",
                description="class-per-subfolder images at dataset_path",
                classes=None,
                images=None,
                image_size=DEFAULT_FOLDER_SIZE,
            )
        )
        return DatasetList(datasets=bundled, roots=[str(r) for r in settings.data_root_paths], folders=_folders(settings.data_root_paths))

    return await run_in_threadpool(build)
