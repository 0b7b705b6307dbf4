"""On-device adaptation of a streaming VLM checkpoint with zeroth-order optimisation (MeZO, QZO).

Why this package exists: a small device (a Jetson-class board) that runs a checkpoint should be able to learn
a new skill or correct a habit from a few dozen recorded episodes, with no more memory than inference.
Backpropagation keeps every activation of the forward pass, a gradient per weight and (AdamW) two moments
per weight: several times the inference footprint. Zeroth-order optimisation needs only forward passes:

- :mod:`.mezo`: MeZO (Malladi et al. 2023). Per step one random seed; every trainable tensor is perturbed in
  place by ``+eps * z`` (``z ~ N(0, 1)`` regenerated from the seed, never stored), the loss is measured, then
  at ``-eps * z``, the weights are restored, and each tensor moves by ``-lr * g * z`` with the projected
  gradient ``g = (loss+ - loss-) / (2 eps)``. No activations, gradients or optimiser state are kept.
- :mod:`.quant`: int8 / int4 weight-only quantisation of the linear layers (per-output-channel scales), as a
  small device would run the model.
- :mod:`.qzo`: QZO (quantized zeroth-order): the integer weights stay frozen, the same two-forward estimator
  moves only the quantisation scales (and biases, norms).
- :mod:`.objective`: the loss, the very one ``agentkit train`` minimises (assistant tokens, focal loss on the
  state tokens), computed with the training collate code under ``torch.inference_mode``.
- :mod:`.run`: ``agentkit adapt``: data, the loop, held-out loss, and a checkpoint folder the engine loads
  with ``from_pretrained`` (a QZO model is saved dequantised: every weight is ``int * scale`` exactly).
- :mod:`.memory`: peak resident memory of a phase of a process (``VmHWM`` reset through
  ``/proc/self/clear_refs``), for ``agentkit bench adapt``.

Like :mod:`agentkit.policies.vlm.train`, every module imports torch inside its functions or at first use.
"""
