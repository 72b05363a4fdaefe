"""The ``--dask`` and ``--workers`` options of the commands that run work (``run``,
``scan``, ``request fulfil``, ``serve``): where their heavy Python work runs
(``flows.cluster.ClusterOptions``; contradicting options are one line in each command's
error handling)."""

from __future__ import annotations

from typing import Annotated

import typer

DaskOption = Annotated[
    str | None,
    typer.Option(
        "--dask",
        metavar="ADDRESS",
        help="Put the heavy work on the Dask cluster whose scheduler is at ADDRESS "
        "(e.g. tcp://scheduler:8786). See docs/scaling.md.",
        show_default=False,
    ),
]
WorkersOption = Annotated[
    int | None,
    typer.Option(
        "--workers",
        metavar="N",
        help="Put the heavy work on a local Dask cluster of N worker processes.",
        show_default=False,
    ),
]
