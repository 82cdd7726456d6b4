"""seqlab.tracking."""
