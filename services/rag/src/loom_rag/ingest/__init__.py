"""Ingestion: parse, clean, split, embed, index."""
