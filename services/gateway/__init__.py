"""The gateway: OpenVidu Meet-compatible REST API in front of the services."""
