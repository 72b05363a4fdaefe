"""The demo stores (a CRM database, a Maildir, web logs): their schema, a deterministic
generator, and three people planted for individual-rights requests (``planted``)."""
