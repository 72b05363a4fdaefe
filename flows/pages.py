"""What Tenure's files for people share (the access package, the HTML report): the
Jinja2 environment of their pages, and writing a file whole.

Templates are read from a package's ``templates/`` folder, every value escaped
(autoescape), an undefined name an error rather than an empty string. A file is written
beside its destination, synced, then renamed over it: a reader sees the old file or the
new one, never half of one.
"""

from __future__ import annotations

import os
import tempfile
from functools import cache
from pathlib import Path

from jinja2 import Environment, PackageLoader, StrictUndefined


@cache
def page_environment(package: str) -> Environment:
    """The environment of the templates in ``package``'s ``templates/`` folder."""
    return Environment(
        loader=PackageLoader(package, "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def write_whole(data: bytes, out: Path, mode: int) -> None:
    """Write ``data`` to ``out`` with permissions ``mode``, replaced whole or not at all
    (a failure leaves no temporary file behind)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent)
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, out)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
