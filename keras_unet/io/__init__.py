"""File formats and safe writing: TIFF reading, zarr and OME-Zarr stores, mask files, and the
one atomic writer every output goes through (temporary name, then rename; never replaced
unasked)."""
