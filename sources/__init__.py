"""dlt sources, one sub-package each (the layout of dlt's verified sources)."""
