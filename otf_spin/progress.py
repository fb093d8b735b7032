"""Progress bars (tqdm) that stay quiet when output is not a terminal."""
from __future__ import annotations

import sys


def progress_bar(iterable, description: str, enabled: bool = True, total=None):
    """Wrap ``iterable`` in a tqdm bar on stderr when ``enabled`` and stderr is a terminal."""
    if not enabled or not sys.stderr.isatty():
        return iterable
    from tqdm import tqdm

    return tqdm(iterable, desc=description, total=total, leave=False, dynamic_ncols=True)
