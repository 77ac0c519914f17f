"""Test support: real infrastructure started by the tests themselves."""
