"""Backbones a job may name, and whether their pretrained weights are on this server."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from app.api.deps import SettingsDep
from app.weights import listing

router = APIRouter(prefix="/api/backbones", tags=["backbones"])


@router.get("")
async def list_backbones(settings: SettingsDep) -> dict:
    rows = await run_in_threadpool(listing, settings)
    return {
        "backbones": rows,
        "timm": "any timm model as backbone 'timm:<name>' (timm.list_models); pretrained ones when timm publishes weights",
        "offline": settings.offline,
        "fetch": "embedlab weights fetch NAME...",
    }
