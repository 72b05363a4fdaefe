"""Detection and transformation of personal information (Presidio, offline).

Importing the package loads no operator: ``anonymizers.registry`` lists the built-in
ones and holds the registry policies are checked against. The heavy parts (Presidio,
spaCy models, Faker pools) load on first use only.
"""

# First: the offline defaults must be set before anything that reads them is imported.
from anonymizers import offline  # noqa: F401
