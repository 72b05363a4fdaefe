"""Detection and transformation of personal information (Presidio, offline).

Importing the package registers every operator in ``anonymizers.operators.OPERATORS``;
the heavy parts (Presidio, spaCy models, Faker pools) load on first use only.
"""

from anonymizers import age_band, basic, generalize, keyed, text_redaction

__all__ = ["age_band", "basic", "generalize", "keyed", "text_redaction"]
