"""seqlab.diagnostics."""
