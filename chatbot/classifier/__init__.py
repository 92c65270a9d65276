"""The intent classifier: vocabulary, n-gram and Keras models, the bundle file, and ranking in numpy."""
