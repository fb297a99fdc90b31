"""Each page marks the nav item it belongs to: what it shows (a job's pages under Jobs, a collection's under Collections)."""

from __future__ import annotations

import re

import pytest


def current(page) -> list[str]:
    assert page.status_code == 200, page.text
    return re.findall(r'<a href="[^"]*" aria-current="page">([^<]+)</a>', page.text)


@pytest.mark.parametrize(
    ("path", "item"),
    [
        ("/", "Jobs"),
        ("/compare?jobs=1,2", "Jobs"),
        ("/sweeps", "Sweeps"),
        ("/collections", "Collections"),
        ("/compare/neighbourhoods?a=job:1&b=job:3", "Jobs"),
        ("/compare/neighbourhoods?a=job:7&b=collection:2", "Collections"),
        ("/compare/neighbourhoods?a=collection:2&b=job:7", "Collections"),
        ("/compare/neighbourhoods?a=collection:1&b=collection:2", "Collections"),
    ],
)
def test_the_nav_marks_the_section_a_page_belongs_to(client, path, item):
    assert current(client.get(path)) == [item]
