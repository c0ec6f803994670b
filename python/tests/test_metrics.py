"""``render_metrics``: one scan as Prometheus metrics, by the core's one
encoder (docs/design.md, "Metrics"); the series themselves are compared with
every other surface by the conformance suite."""

from __future__ import annotations

import pytest

import firma_stack

from _support import CONFORMANCE, Kit


def test_both_formats_and_collection() -> None:
    kit = Kit(CONFORMANCE / "fixtures" / "live-and-stale.json")
    try:
        rt = kit.placeholders["runtime"]
        text = firma_stack.render_metrics(rt, collect=False)
        assert "# TYPE firma_sidecar_up gauge\n" in text
        assert 'firma_sidecars{state="stopped"} 20\n' in text
        assert "# EOF" not in text
        om = firma_stack.render_metrics(rt, format="openmetrics", collect=False)
        assert om.endswith("# EOF\n")
        assert "# TYPE firma_build info\n" in om
        # Collecting: the stale markers are removed and counted.
        text = firma_stack.render_metrics(rt)
        assert "firma_markers_collected 20\n" in text
        assert 'firma_sidecars{state="stopped"} 0\n' in text
    finally:
        kit.close()


def test_a_bad_format_or_timeout_is_invalid_argument() -> None:
    with pytest.raises(firma_stack.InvalidArgumentError, match="format"):
        firma_stack.render_metrics("/nonexistent", format="json")  # type: ignore[arg-type]
    with pytest.raises(firma_stack.InvalidArgumentError, match="timeout"):
        firma_stack.render_metrics("/nonexistent", timeout=0)


def test_a_missing_runtime_dir_is_runtime_dir_up_0() -> None:
    text = firma_stack.render_metrics("/nonexistent/firma")
    assert "firma_runtime_dir_up 0\n" in text
