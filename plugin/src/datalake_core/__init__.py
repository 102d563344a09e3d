"""Adapters to the DataLake's services. Each external system has exactly one module here."""
