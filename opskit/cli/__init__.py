"""Thin Click commands: parse -> call an operation -> render. Loaded lazily."""
