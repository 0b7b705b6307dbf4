"""Robot policies for pick-and-place: the privileged expert, the pixels-only colour policy, the VLM with tools."""
