"""Detection and transformation of personal information (Presidio, offline)."""
