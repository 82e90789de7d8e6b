"""Engines: plain classes that turn a request into an artifact. Never import Ray."""
