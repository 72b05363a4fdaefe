"""Tenure never phones home: the process-wide offline defaults, made in this one place.

The package ``__init__`` of ``anonymizers`` and of ``flows`` import this module first, so
the defaults are in the environment before anything that reads them is imported:

* tldextract (Presidio's e-mail and URL recognizers) uses the public suffix list it ships
  instead of fetching one (``TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS`` empty);
* Prefect's server analytics are off (``PREFECT_SERVER_ANALYTICS_ENABLED``), for the
  temporary API a run or a Secret block look-up starts.

A setting the user made explicitly still wins, except that the text engine takes
tldextract's shared extractor offline whatever it was built with
(``keep_tldextract_offline``: tldextract may have been imported before these defaults).
"""

from __future__ import annotations

import os

#: The environment defaults, set unless the user set them.
DEFAULTS = {
    "TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS": "",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
}

for _name, _value in DEFAULTS.items():
    os.environ.setdefault(_name, _value)


def keep_tldextract_offline() -> None:
    """Make tldextract's shared extractor use the list it ships, whatever it was built with."""
    import tldextract.tldextract

    tldextract.tldextract.TLD_EXTRACTOR.suffix_list_urls = ()
