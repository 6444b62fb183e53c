"""Rules several domains apply, below every domain (the node may import them too)."""
