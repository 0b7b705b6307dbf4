"""Narration outputs: console and message feed, subtitles (SRT/WebVTT), speech (espeak-ng)."""
