"""Training the streaming VLM: recordings -> a Streamo-style dataset -> a checkpoint the engine loads.

Why this package exists: every competent result used to come from hand-written perception or privileged
experts; no model had learned *when* to speak or *where* to act. This package turns the project's own
recordings (``--record`` of any eval or app) into a streaming instruction dataset in Streamo's layout
(DESIGN §4: one multi-turn dialogue per episode, a user turn per frame, an assistant turn holding one state
token, Response followed by tool calls in the canonical text form) and fine-tunes or trains from scratch
any architecture the engine supports, so that the result streams through the very same engine.

- :mod:`.dataset`: ``export`` (recordings -> ``dialogues.parquet`` + frames + datasheet), ``stats``,
  loading with ``datasets``.
- :mod:`.collate`: a dialogue -> model inputs, built with the engine's own adapter (template, tokenizer,
  image processor, positions), so training and streaming see identical tokens and positions.
- :mod:`.loss`: focal loss (Streamo, gamma = 2) or class weights on the state tokens, cross-entropy on the
  answers; assistant turns only.
- :mod:`.model`: a model to train (from scratch at a preset size with a domain tokenizer, or an existing
  checkpoint with the state tokens added; LoRA with ``peft`` for large ones).
- :mod:`.evaluate`: held-out metrics through the engine's streaming session (state precision/recall per
  class, point error, tool-call match).
- :mod:`.trainer`: the loop (progress bar, periodic eval, resumable checkpoints, early stop).
- :mod:`.plots`: loss and accuracy curves as a PNG.

Every module imports torch, transformers, datasets and pyarrow inside its functions; the package itself
imports none of them (``pip install agentkit[train]`` provides them).
"""
