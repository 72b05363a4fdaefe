"""Requests from people about their personal information: access, portability, correction,
erasure, consent withdrawal and complaints (issue 16)."""
