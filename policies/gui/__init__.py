"""GUI policies: the privileged MiniWoB++ oracle (DOM), the pixels-only OCR policy, the VLM with GUI tools."""
