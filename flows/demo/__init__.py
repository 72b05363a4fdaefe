"""The demo CRM store: its schema and a deterministic generator."""
