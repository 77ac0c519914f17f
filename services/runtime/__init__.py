"""Plumbing every service uses: NATS, outbox, consumers, stores, logging, launcher, CLI.

Nothing domain-specific lives here.
"""
