"""Vitrine shared runtime."""
