"""Discovery of personal information in a store's columns: names, types and sampled values.

``classify_column`` is the entry point; Presidio and the spaCy models load on first use.
"""

from anonymizers.detection.classify import (
    CLASSIFIER_VERSION,
    LABEL_THRESHOLD,
    VALUE_FAMILIES,
    ColumnFinding,
    ColumnSample,
    classifier_fingerprint,
    classify_column,
    classify_table,
)
from anonymizers.detection.confidence import wilson_lower_bound
from anonymizers.detection.name_rules import match_column_name

__all__ = [
    "CLASSIFIER_VERSION",
    "LABEL_THRESHOLD",
    "VALUE_FAMILIES",
    "ColumnFinding",
    "ColumnSample",
    "classifier_fingerprint",
    "classify_column",
    "classify_table",
    "match_column_name",
    "wilson_lower_bound",
]
