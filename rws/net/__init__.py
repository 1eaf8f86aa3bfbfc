"""Listening sockets, shared across config generations."""
