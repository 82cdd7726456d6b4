"""seqlab.training."""
