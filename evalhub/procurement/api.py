"""Procurement API."""
