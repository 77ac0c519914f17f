"""meetplane services: one package per service, plus the shared runtime plumbing."""
