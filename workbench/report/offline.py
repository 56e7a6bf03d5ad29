"""Plotly and HTML set up to render without a network: plotly.js embedded once, no CDN."""

from __future__ import annotations

import re
from typing import Any

_CDN_SCRIPT = re.compile(r'<script src="https?://[^"]*"></script>')
RENDERER = "plotly_mimetype+workbench_offline"


def _offline_renderer() -> Any:
    from plotly.io._base_renderers import NotebookRenderer

    class OfflineNotebookRenderer(NotebookRenderer):
        """plotly's notebook renderer (plotly.js embedded once per notebook) minus the
        MathJax CDN tag it adds to every figure; report figures use no LaTeX."""

        def to_mimebundle(self, fig_dict: Any) -> Any:
            bundle = super().to_mimebundle(fig_dict)
            if "text/html" in bundle:
                bundle["text/html"] = _CDN_SCRIPT.sub("", bundle["text/html"])
            return bundle

    return OfflineNotebookRenderer(connected=False)


def setup() -> None:
    """Call once at the top of a notebook: figures render offline (interactive in JupyterLab,
    and embedded in exported HTML)."""
    import plotly.io as pio

    if "workbench_offline" not in pio.renderers:
        pio.renderers["workbench_offline"] = _offline_renderer()
    pio.renderers.default = RENDERER
