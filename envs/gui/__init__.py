"""GUI worlds: a real Chromium page through Playwright, MiniWoB++ tasks on it, and the X desktop."""
