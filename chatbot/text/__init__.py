"""Text and language: normalise, split into words, stem, correct slips, compare short texts."""
