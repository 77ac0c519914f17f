"""The recordings service."""
