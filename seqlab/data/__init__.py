"""Data: tokenizers, text corpora via TensorFlow Datasets, tf.data windows."""
