"""Wire contracts shared by every meetplane service: schemas only, no behaviour."""
