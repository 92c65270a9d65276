"""Training: fit the classifier on a bot's data and choose its fallback threshold (needs TensorFlow)."""
