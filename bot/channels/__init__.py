"""Channels translate a platform's wire format into our message types and back."""
