"""The catalog system (目录体系): resource, sharing, open and demand catalogs."""
