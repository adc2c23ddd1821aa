"""Small helpers shared by every stage: cameras, image I/O, errors, CLI glue."""
