"""The meetings service."""
