"""Notebook UI: the Lab widget and the %packrat magics."""
