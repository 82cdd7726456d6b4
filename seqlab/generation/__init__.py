"""seqlab.generation."""
