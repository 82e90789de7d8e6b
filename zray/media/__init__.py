"""Pure media code: numpy, PyAV and Pillow in, files or arrays out. Never imports Ray."""
