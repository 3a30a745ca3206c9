"""``efficientnet_b0``: COLA's encoder, from the ``efficientnet-pytorch`` package.

Saeed et al. 2021, "Contrastive learning of general-purpose audio representations" (ICASSP 2021,
§3.2): EfficientNet-B0 on log-mel spectrograms with one input channel and global max pooling,
giving 1280-d embeddings. The network is the package's (not hand-written; timm cannot be used
here because it imports torchvision); only the pooling is ours.

``forward`` max-pools the final feature map over frequency, giving one 1280-d frame per 32 input
frames (320 ms at a 10 ms hop); ``embed`` max-pools those frames over time, so the two together
are COLA's global max pool over time and frequency.

Export notes: the model is built with ``image_size=None`` so its "same" padding is computed from
each input's size (the package's static padding is fixed for one image size and fails on short
inputs), and with the plain ``x * sigmoid(x)`` swish rather than the package's memory-efficient
custom autograd function, which ONNX export cannot trace. Training speed is unaffected on CPU.
"""

from __future__ import annotations

import torch

from pocketear.encoders.base import Encoder
from pocketear.errors import InvalidValue
from pocketear.registry import register

INPUT_HOP_MS = 10.0
TIME_STRIDE = 32  # five stride-2 stages


class EfficientNetB0(Encoder):
    """EfficientNet-B0 trunk (1 input channel, no classifier) with max pooling.

    Args:
        n_mels: mel bins of the input (any value >= 1; the trunk is fully convolutional).
        drop_connect_rate: stochastic-depth rate of the trunk (the package's default 0.2).

    Raises:
        InvalidValue: ``n_mels < 1`` or a rate outside ``[0, 1)`` (a user's encoder config).
    """

    input_frames = 96
    pooling = "max"
    embed_dim = 1280

    def __init__(self, n_mels: int = 64, drop_connect_rate: float = 0.2) -> None:
        from efficientnet_pytorch import EfficientNet

        super().__init__()
        if n_mels < 1 or not 0.0 <= drop_connect_rate < 1.0:
            raise InvalidValue(f"need n_mels >= 1 and 0 <= drop_connect_rate < 1; got {n_mels}, "
                               f"{drop_connect_rate}")
        self.n_mels = int(n_mels)
        self.time_stride = TIME_STRIDE
        self.frame_hop_ms = INPUT_HOP_MS * TIME_STRIDE
        self.trunk = EfficientNet.from_name("efficientnet-b0", in_channels=1, include_top=False,
                                            image_size=None, drop_connect_rate=drop_connect_rate)
        self.trunk.set_swish(memory_efficient=False)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Log-mel ``(B, 1, T, n_mels)`` → frame features ``(B, ceil(T / 32), 1280)``."""
        if x.ndim != 4 or x.shape[1] != 1 or x.shape[-1] != self.n_mels:
            raise ValueError(f"{type(self).__name__} expects log-mel (B, 1, T, {self.n_mels}), "
                             f"got {tuple(x.shape)}")
        h = self.trunk.extract_features(x)  # (B, 1280, T', F')
        return h.amax(dim=3).transpose(1, 2)


@register("encoder", "efficientnet_b0")
def efficientnet_b0(n_mels: int = 64, **kwargs: float) -> EfficientNetB0:
    """EfficientNet-B0 (one channel, global max pool, 1280-d; ~4.0 M params): COLA's encoder."""
    return EfficientNetB0(n_mels=n_mels, **kwargs)
