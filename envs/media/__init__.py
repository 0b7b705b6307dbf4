"""Media sources: video files and streams (PyAV), cameras (OpenCV), the screen (mss), a test pattern, recordings."""
