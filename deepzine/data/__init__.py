"""The load_data stage and the page file: archive download, rasterizing, squaring, HDF5 writing and reading."""
