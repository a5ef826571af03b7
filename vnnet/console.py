"""The ``vnnet`` console script: process settings first, then the command line (vnnet.cli).

Transparent huge pages must be requested before the first tensor allocation, which importing
``vnnet.cli`` already makes (``vnnet.runtime``).
"""

from __future__ import annotations

from vnnet.runtime import request_huge_pages


def main() -> None:
    """Entry point of the ``vnnet`` command."""
    request_huge_pages()
    from vnnet.cli import main as cli_main

    cli_main()
