"""Releasing models: servable directories, versions and the registry."""
