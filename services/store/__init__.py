"""Persistence: the tables (models), the engine (db), and the modules that read and write them."""
