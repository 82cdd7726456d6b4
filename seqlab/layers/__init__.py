"""seqlab's Keras layers (cells, recurrent stacks, attention, ...)."""
