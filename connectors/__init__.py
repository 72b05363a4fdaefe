"""Everything that touches a store, behind one small protocol."""
