"""The comparison page renders with the page security headers, the job ids escaped."""

from __future__ import annotations


def test_compare_page_escapes_its_input(client):
    page = client.get("/compare", params={"jobs": '1,2"><script>x</script>'})
    assert page.status_code == 200 and "script-src 'self'" in page.headers["content-security-policy"]
    assert "<script>x</script>" not in page.text and "&lt;script&gt;" in page.text
    assert '<script type="module" src="/static/compare.js"></script>' in page.text
