"""Data: corpora (folders, manifests), feature cache, synthetic corpus, recipes, targets."""
