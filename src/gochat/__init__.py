"""GoChat: a real-time instant-messaging server."""

__version__ = "0.1.0"
