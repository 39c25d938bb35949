"""moodlib: predict mood/theme tags for a local music library and write them into the files."""

__version__ = "0.1.0"
